"""CMS plumbing shared by package signatures and RFC 3161 tokens (RFC 5652).

Decodes a ``ContentInfo``/``SignedData`` once into plain immutable records (with asn1crypto), finds a
signer's certificate as .NET's ``SignerInfo.Certificate`` does, and checks a SignerInfo's signature as
``SignerInfo.CheckSignature(verifySignatureOnly: true)`` does. No trust decisions here.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from nuseal.signature import oids
from nuseal.signature._der import TAG_OCTET_STRING, TAG_SEQUENCE, DerError, encode_tlv, read_tlv, set_of

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_VALUES",
    "MAX_CERTIFICATES",
    "CertRef",
    "CmsDecodeError",
    "NameKey",
    "RawAttribute",
    "RawSignedData",
    "RawSignerInfo",
    "SignerId",
    "IssuerSerialId",
    "KeyId",
    "attributes_of",
    "check_signer_signature",
    "decode_signed_data",
    "decode_signer_info",
    "find_certificate",
    "hash_for_oid",
    "load_certificates",
    "cached_name_key",
    "name_key",
    "name_key_of_der",
    "oid_text",
]

MAX_CERTIFICATES = 100
"""Most certificates read from one SignedData (real NuGet signatures carry 3 to 9; nuseal's bound)."""
MAX_ATTRIBUTES = 64
"""Most signed or unsigned attributes read from one SignerInfo (nuseal's bound)."""
MAX_ATTRIBUTE_VALUES = 64
"""Most values read from one attribute (nuseal's bound)."""

NameKey = tuple[tuple[tuple[str, str], ...], ...]
"""An X.500 name as RDNs of (attribute OID, value text); equal keys render equal in .NET's
``X500DistinguishedName.Name``."""

_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


class CmsDecodeError(ValueError):
    """The bytes are not a decodable CMS structure (NuGet: ``CryptographicException`` -> NU3003)."""


# --------------------------------------------------------------------------- asn1crypto specs
class _AnySet(core.SetOf):  # type: ignore[misc]
    _child_spec = core.Any


class _RawAttributeSpec(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [("type", core.ObjectIdentifier), ("values", _AnySet)]


class _RawAttributesSpec(core.SetOf):  # type: ignore[misc]
    _child_spec = _RawAttributeSpec


class _SignerInfoSpec(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("version", core.Integer),
        ("sid", cms.SignerIdentifier),
        ("digest_algorithm", algos.DigestAlgorithm),
        ("signed_attrs", _RawAttributesSpec, {"implicit": 0, "optional": True}),
        ("signature_algorithm", algos.SignedDigestAlgorithm),
        ("signature", core.OctetString),
        ("unsigned_attrs", _RawAttributesSpec, {"implicit": 1, "optional": True}),
    ]


class _SignerInfosSpec(core.SetOf):  # type: ignore[misc]
    _child_spec = core.Any


class _EncapContentInfoSpec(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("content_type", core.ObjectIdentifier),
        ("content", core.OctetString, {"explicit": 0, "optional": True}),
    ]


class _SignedDataSpec(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("version", core.Integer),
        ("digest_algorithms", _AnySet),
        ("encap_content_info", _EncapContentInfoSpec),
        ("certificates", _AnySet, {"implicit": 0, "optional": True}),
        ("crls", _AnySet, {"implicit": 1, "optional": True}),
        ("signer_infos", _SignerInfosSpec),
    ]


class _ContentInfoSpec(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("content_type", core.ObjectIdentifier),
        ("content", core.Any, {"explicit": 0, "optional": True}),
    ]


# --------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class RawAttribute:
    """One attribute as encoded: its OID and the DER of each value, in order."""

    oid: str
    values: tuple[bytes, ...]
    oid_der: bytes
    _encoded: bytes | None = field(default=None, repr=False, compare=False)

    def der(self) -> bytes:
        """DER re-encoding (values as a DER-sorted SET OF), as .NET re-encodes before verifying; made once per
        attribute (a cached attribute, such as a known signer's signing-certificate-v2, recurs in signer after
        signer)."""
        encoded = self._encoded
        if encoded is None:
            encoded = encode_tlv(TAG_SEQUENCE, self.oid_der + set_of(self.values))
            object.__setattr__(self, "_encoded", encoded)
        return encoded


@dataclass(frozen=True, slots=True)
class IssuerSerialId:
    issuer: NameKey
    serial: int


@dataclass(frozen=True, slots=True)
class KeyId:
    value: bytes


SignerId = IssuerSerialId | KeyId


@dataclass(frozen=True, slots=True)
class RawSignerInfo:
    """A SignerInfo (RFC 5652 §5.3), decoded."""

    der: bytes
    version: int
    sid: SignerId
    digest_algorithm_oid: str
    signature_algorithm_oid: str
    pss: tuple[str, str, int] | None  # RSASSA-PSS (hash OID, MGF1 hash OID, salt length)
    signature: bytes
    signed_attrs: tuple[RawAttribute, ...] | None
    unsigned_attrs: tuple[RawAttribute, ...]


@dataclass(frozen=True, slots=True)
class RawSignedData:
    """A ContentInfo(SignedData) (RFC 5652 §5.1), decoded; certificates still DER."""

    content_type: str
    content: bytes | None  # eContent OCTET STRING contents
    certificates: tuple[bytes, ...]  # the ``certificate`` choices only, in order, duplicates kept
    signer_infos: tuple[RawSignerInfo, ...]


@dataclass(frozen=True, eq=False, slots=True)
class CertRef:
    """A certificate with the fields the CMS and ESS rules compare."""

    certificate: x509.Certificate
    der: bytes
    issuer: NameKey
    serial: int
    serial_raw: bytes  # INTEGER content octets as encoded
    key_id: bytes  # subjectKeyIdentifier, else SHA-1 of the SubjectPublicKeyInfo (.NET FindBySubjectKeyIdentifier)


# --------------------------------------------------------------------------- decoding
def name_key(name: asn1_x509.Name) -> NameKey:
    """Comparable key of an asn1crypto ``Name`` (decodes every value; raises on malformed names)."""
    rdns: list[tuple[tuple[str, str], ...]] = []
    for rdn in name.chosen:
        atvs: list[tuple[str, str]] = []
        for atv in rdn:
            value = atv["value"]
            try:
                native = value.native
            except AttributeError:  # asn1crypto has no .native for ObjectDescriptor, InstanceOf, Real
                native = None
            atvs.append((atv["type"].dotted, native if isinstance(native, str) else value.dump().hex()))
        rdns.append(tuple(atvs))
    return tuple(rdns)


#: Decoded names and OIDs remembered by their encoding (the same issuer names and attribute OIDs recur in every
#: signature and timestamp); cleared when full.
PARSE_CACHE_SIZE = 4096
_NAME_KEYS: dict[bytes, NameKey] = {}
_OID_TEXTS: dict[bytes, str] = {}
_ATTRIBUTES: dict[bytes, RawAttribute] = {}
#: Largest attribute (content octets) remembered by :data:`_ATTRIBUTES`.
MAX_CACHED_ATTRIBUTE = 2048
#: SignedData certificate sets remembered by their content octets.
CERTIFICATE_SET_CACHE_SIZE = 256
_CERTIFICATE_SETS: dict[bytes, tuple[bytes, ...]] = {}


def _remember(cache: dict[bytes, Any], key: bytes, value: Any) -> None:
    if len(cache) >= PARSE_CACHE_SIZE:
        cache.clear()
    cache[key] = value


def cached_name_key(name: asn1_x509.Name) -> NameKey:
    """:func:`name_key`, memoised by the name's encoding: a name seen before is not decoded again. A name not
    seen before is decoded by :func:`name_key` itself (same result, same errors)."""
    encoded = name.dump()
    found = _NAME_KEYS.get(encoded)
    if found is None:
        found = name_key(name)
        _remember(_NAME_KEYS, encoded, found)
    return found


def name_key_of_der(encoded: bytes) -> NameKey:
    """``name_key(Name.load(encoded, strict=True))``, memoised by ``encoded``.

    Raises:
        ValueError, TypeError, KeyError, IndexError: as ``Name.load`` / :func:`name_key` do for a malformed name
            (never cached).
    """
    found = _NAME_KEYS.get(encoded)
    if found is None:
        found = name_key(asn1_x509.Name.load(encoded, strict=True))
        _remember(_NAME_KEYS, encoded, found)
    return found


def oid_text(oid: core.ObjectIdentifier) -> str:
    """``oid.dotted``, memoised by the OID's content octets."""
    contents = oid.contents
    found = _OID_TEXTS.get(contents)
    if found is None:
        found = oid.dotted
        _remember(_OID_TEXTS, contents, found)
    return found


def _attributes(spec: _RawAttributesSpec) -> tuple[RawAttribute, ...]:
    if len(spec) > MAX_ATTRIBUTES:
        raise CmsDecodeError(f"more than {MAX_ATTRIBUTES} attributes in a SignerInfo")
    out: list[RawAttribute] = []
    for attr in spec:
        # An attribute decodes from its content octets alone: one seen before (content type, commitment type,
        # the signing-certificate-v2 of a known signer, the repository URL and owners) is not decoded again.
        key = attr.contents
        found = _ATTRIBUTES.get(key)
        if found is None:
            values = attr["values"]
            if len(values) > MAX_ATTRIBUTE_VALUES:
                raise CmsDecodeError(f"more than {MAX_ATTRIBUTE_VALUES} values in one attribute")
            oid = attr["type"]
            found = RawAttribute(oid_text(oid), tuple(v.dump() for v in values), oid.dump())
            if len(key) <= MAX_CACHED_ATTRIBUTE:  # large ones (tokens, countersignatures) are one-offs
                _remember(_ATTRIBUTES, key, found)
        out.append(found)
    return tuple(out)


def _certificate_ders(cert_set: _AnySet) -> tuple[bytes, ...]:
    """The DER of each X.509 ``certificate`` choice of a SignedData ``certificates`` set, in order.

    Memoised by the set's content octets (at most :data:`CERTIFICATE_SET_CACHE_SIZE` sets): the same author chain,
    repository chain and TSA certificates come in set after set.

    Raises:
        CmsDecodeError: more than :data:`MAX_CERTIFICATES` certificates.
    """
    key = cert_set.contents
    found = _CERTIFICATE_SETS.get(key)
    if found is None:
        certs: list[bytes] = []
        for choice in cert_set:
            item = choice.dump()
            if item[:1] == bytes([TAG_SEQUENCE]):
                certs.append(item)
                if len(certs) > MAX_CERTIFICATES:
                    raise CmsDecodeError(f"more than {MAX_CERTIFICATES} certificates")
        found = tuple(certs)
        if len(_CERTIFICATE_SETS) >= CERTIFICATE_SET_CACHE_SIZE:
            _CERTIFICATE_SETS.clear()
        _CERTIFICATE_SETS[key] = found
    return found


def _decode_signer(spec: _SignerInfoSpec, der: bytes) -> RawSignerInfo:
    sid_choice = spec["sid"]
    sid: SignerId
    if sid_choice.name == "issuer_and_serial_number":
        ias = sid_choice.chosen
        sid = IssuerSerialId(cached_name_key(ias["issuer"]), int(ias["serial_number"].native))
    else:
        sid = KeyId(bytes(sid_choice.chosen.native))
    sig_alg = spec["signature_algorithm"]
    sig_alg_oid = oid_text(sig_alg["algorithm"])
    pss: tuple[str, str, int] | None = None
    if sig_alg_oid == oids.RSASSA_PSS:
        params = sig_alg["parameters"]
        if not isinstance(params, algos.RSASSAPSSParams):
            raise CmsDecodeError("RSASSA-PSS without parameters")
        mgf = params["mask_gen_algorithm"]
        pss = (
            params["hash_algorithm"]["algorithm"].dotted,
            mgf["parameters"]["algorithm"].dotted,
            int(params["salt_length"].native),
        )
    signed = spec["signed_attrs"]
    unsigned = spec["unsigned_attrs"]
    return RawSignerInfo(
        der=der,
        version=int(spec["version"].native),
        sid=sid,
        digest_algorithm_oid=oid_text(spec["digest_algorithm"]["algorithm"]),
        signature_algorithm_oid=sig_alg_oid,
        pss=pss,
        signature=bytes(spec["signature"].native),
        signed_attrs=None if isinstance(signed, core.Void) else _attributes(signed),
        unsigned_attrs=() if isinstance(unsigned, core.Void) else _attributes(unsigned),
    )


def decode_signer_info(der: bytes) -> RawSignerInfo:
    """Decode one SignerInfo (a countersignature attribute value).

    Raises:
        CmsDecodeError: not a decodable SignerInfo, or over the attribute bounds.
    """
    try:
        spec = _SignerInfoSpec.load(der, strict=True)
        return _decode_signer(spec, der)
    except CmsDecodeError:
        raise
    except _DECODE_ERRORS as exc:
        raise CmsDecodeError(f"the SignerInfo cannot be decoded: {exc}") from exc


def decode_signed_data(der: bytes) -> RawSignedData:
    """Decode a ``ContentInfo`` holding ``SignedData`` (what .NET's ``SignedCms.Decode`` accepts).

    Certificates are returned as DER (non-X.509 certificate choices are skipped, as .NET does); they are
    loaded later by :func:`load_certificates`. Bytes after the ContentInfo are ignored: NuGet accepts a
    ``.signature.p7s`` with trailing bytes (checked with NuGet.Packaging 6.14).

    Raises:
        CmsDecodeError: not decodable, content type not signedData, over the bounds.
    """
    try:
        info = _ContentInfoSpec.load(der)  # bytes after the ContentInfo are ignored, as .NET's SignedCms.Decode does
        if oid_text(info["content_type"]) != oids.SIGNED_DATA:
            raise CmsDecodeError("the content type is not signedData (1.2.840.113549.1.7.2)")
        content = info["content"]
        if isinstance(content, core.Void):
            raise CmsDecodeError("the ContentInfo has no content")
        signed = content.parse(_SignedDataSpec)
        encap = signed["encap_content_info"]
        econtent = encap["content"]
        cert_set = signed["certificates"]
        certs = () if isinstance(cert_set, core.Void) else _certificate_ders(cert_set)
        signers: list[RawSignerInfo] = []
        for item in signed["signer_infos"]:
            signer_der = item.dump()
            signers.append(_decode_signer(_SignerInfoSpec.load(signer_der, strict=True), signer_der))
        return RawSignedData(
            content_type=oid_text(encap["content_type"]),
            content=None if isinstance(econtent, core.Void) else bytes(econtent.native),
            certificates=certs,
            signer_infos=tuple(signers),
        )
    except CmsDecodeError:
        raise
    except _DECODE_ERRORS as exc:
        raise CmsDecodeError(f"the CMS SignedData cannot be decoded: {exc}") from exc


#: Parsed certificates kept by DER: the same CA, repository and TSA certificates recur in every package.
CERTIFICATE_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=CERTIFICATE_CACHE_SIZE)
def _load_certificate(der: bytes) -> CertRef:
    cert = x509.load_der_x509_certificate(der)
    parsed = asn1_x509.Certificate.load(der)
    tbs = parsed["tbs_certificate"]
    ski = parsed.key_identifier
    key_id = (
        bytes(ski)
        if ski is not None
        else hashlib.sha1(  # noqa: S324 - .NET's SKI fallback
            tbs["subject_public_key_info"].dump()
        ).digest()
    )
    return CertRef(
        certificate=cert,
        der=der,
        issuer=name_key(tbs["issuer"]),
        serial=int(tbs["serial_number"].native),
        serial_raw=bytes(tbs["serial_number"].contents),
        key_id=key_id,
    )


def load_certificates(ders: Sequence[bytes]) -> tuple[CertRef, ...]:
    """Load DER certificates with ``cryptography`` and note the identifiers CMS compares (memoised by DER;
    :class:`CertRef` is immutable).

    Raises:
        CmsDecodeError: a certificate cannot be decoded.
    """
    out: list[CertRef] = []
    for der in ders:
        try:
            out.append(_load_certificate(bytes(der)))
        except (*_DECODE_ERRORS, x509.InvalidVersion) as exc:  # InvalidVersion: not a ValueError
            raise CmsDecodeError(f"a certificate cannot be decoded: {exc}") from exc
    return tuple(out)


def find_certificate(sid: SignerId, certificates: Sequence[CertRef]) -> CertRef | None:
    """The signer's certificate: the first match by issuer and serial, or by key identifier.

    .NET ``SignerInfo.FindSignerCertificate``: issuer names compare as rendered strings (modelled by
    :data:`NameKey`); a certificate without the SKI extension matches SHA-1 of its SubjectPublicKeyInfo.
    """
    for ref in certificates:
        if isinstance(sid, IssuerSerialId):
            if ref.serial == sid.serial and ref.issuer == sid.issuer:
                return ref
        elif ref.key_id == sid.value:
            return ref
    return None


def attributes_of(attrs: Sequence[RawAttribute] | None, oid: str) -> list[RawAttribute]:
    """The attributes of type ``oid``, in order."""
    return [a for a in attrs or () if a.oid == oid]


# --------------------------------------------------------------------------- signature check
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    oids.SHA1: hashes.SHA1,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
_RSA_WITH = {
    oids.SHA1_WITH_RSA: oids.SHA1,
    oids.SHA256_WITH_RSA: "2.16.840.1.101.3.4.2.1",
    oids.SHA384_WITH_RSA: "2.16.840.1.101.3.4.2.2",
    oids.SHA512_WITH_RSA: "2.16.840.1.101.3.4.2.3",
}
_ECDSA_WITH = {
    oids.ECDSA_WITH_SHA1: oids.SHA1,
    oids.ECDSA_WITH_SHA256: "2.16.840.1.101.3.4.2.1",
    oids.ECDSA_WITH_SHA384: "2.16.840.1.101.3.4.2.2",
    oids.ECDSA_WITH_SHA512: "2.16.840.1.101.3.4.2.3",
}


def hash_for_oid(oid: str) -> hashes.HashAlgorithm | None:
    """A ``cryptography`` hash for the digest OIDs .NET verifies with (SHA-1, SHA-256/384/512), else ``None``."""
    factory = _HASHES.get(oid)
    return factory() if factory else None


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _message_digest_ok(attrs: tuple[RawAttribute, ...], expected: bytes) -> bool:
    """.NET ``PrepareDigest``: every message-digest attribute has one value equal to ``expected``; at least one."""
    found = False
    for attr in attributes_of(attrs, oids.MESSAGE_DIGEST):
        if len(attr.values) != 1:
            return False
        try:
            tlv = read_tlv(attr.values[0])
        except DerError:
            return False
        if tlv.tag != TAG_OCTET_STRING or tlv.contents != expected:
            return False
        found = True
    return found


def _verify_raw(signer: RawSignerInfo, cert: x509.Certificate, data: bytes, digest_oid: str) -> bool:
    algorithm = hash_for_oid(digest_oid)
    if algorithm is None:
        return False
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False
    alg = signer.signature_algorithm_oid
    try:
        if alg == oids.RSA_ENCRYPTION or alg in _RSA_WITH:
            if alg in _RSA_WITH and _RSA_WITH[alg] != digest_oid:
                return False
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            key.verify(signer.signature, data, padding.PKCS1v15(), algorithm)
            return True
        if alg == oids.RSASSA_PSS and signer.pss is not None:
            hash_oid, mgf_oid, salt = signer.pss
            if hash_oid != digest_oid or mgf_oid != digest_oid or not isinstance(key, rsa.RSAPublicKey):
                return False
            key.verify(signer.signature, data, padding.PSS(padding.MGF1(algorithm), salt), algorithm)
            return True
        if alg == oids.EC_PUBLIC_KEY or alg in _ECDSA_WITH:
            if alg in _ECDSA_WITH and _ECDSA_WITH[alg] != digest_oid:
                return False
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return False
            key.verify(signer.signature, data, ec.ECDSA(algorithm))
            return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return False


def check_signer_signature(
    signer: RawSignerInfo,
    certificate: x509.Certificate | None,
    signed_content: bytes,
    *,
    countersignature: bool = False,
) -> bool:
    """``SignerInfo.CheckSignature(verifySignatureOnly: true)``: is ``signer``'s signature intact?

    ``signed_content`` is what the signer signed: the eContent octets for a SignedData signer, the parent
    SignerInfo's signature octets for a countersigner (RFC 5652 §11.4). With signed attributes, every
    message-digest attribute must equal H(signed_content) and the signature must verify over the
    attributes' DER SET (DER-sorted, or in document order as .NET's compatibility mode allows). A
    countersigner must have signed attributes. The content-type attribute is not checked (.NET does not).
    Never raises: any failure is ``False``.
    """
    if certificate is None:
        return False
    digest_oid = signer.digest_algorithm_oid
    algorithm = hash_for_oid(digest_oid)
    if algorithm is None:
        return False
    attrs = signer.signed_attrs
    if attrs is None:
        if countersignature:
            return False
        return _verify_raw(signer, certificate, signed_content, digest_oid)
    if not _message_digest_ok(attrs, _digest(algorithm, signed_content)):
        return False
    encoded = [a.der() for a in attrs]
    if _verify_raw(signer, certificate, set_of(encoded), digest_oid):
        return True
    return _verify_raw(signer, certificate, set_of(encoded, sort=False), digest_oid)
