"""Creating NuGet signatures: the CMS SignedData NuGet writes (NUGET-SIGNING.md §3.2-§3.6).

* :func:`create_primary_signature`: an author (proofOfOrigin) or repository (proofOfReceipt) primary
  signature over the properties document, attached, with the whole chain in ``certificates``.
* :func:`add_repository_countersignature`: a repository countersignature as the ``countersignature`` unsigned
  attribute of the primary SignerInfo, leaving the primary signature untouched.

Signed attributes: contentType (id-data), signingTime, commitment-type-indication, messageDigest,
signing-certificate-v2 (explicit hashAlgorithm, IssuerSerial), and for repository signatures the v3 service
index URL and package owners; sorted as a DER SET. SID = SubjectKeyIdentifier when the certificate has one, else
IssuerAndSerialNumber (NC ``SigningUtility.CreateCmsSigner``); digest algorithm with NULL parameters and
signatureAlgorithm rsaEncryption, as .NET's ``SignedCms`` writes them. A timestamp token, when a timestamper is
given, is the signature-time-stamp unsigned attribute over the signer's signature value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.codes import NuCode
from nuseal.errors import SigningError
from nuseal.hashalg import HashAlgorithm
from nuseal.signature import oids
from nuseal.signature._der import TAG_SEQUENCE, TAG_SET, encode_tlv, set_of
from nuseal.signature.attributes import (
    SignatureType,
    encode_attribute,
    encode_commitment_type_indication,
    encode_package_owners,
    encode_signing_certificate_v2,
    encode_signing_time,
    encode_v3_service_index_url,
)
from nuseal.signature.content import SignatureContent

__all__ = [
    "Signer",
    "Timestamper",
    "add_repository_countersignature",
    "create_primary_signature",
    "remove_repository_countersignatures",
]

#: Gets a TimeStampToken (DER ContentInfo) for a signature value.
Timestamper = Callable[[bytes], bytes]


@runtime_checkable
class Signer(Protocol):
    """What the builder needs from whoever holds the key: the signing certificate, its chain (issuers, root
    included when known) and the signing operation. Implementations: :class:`nuseal.signing.signer.FileSigner`
    (key in memory), :class:`nuseal.signing.pkcs11.Pkcs11Signer` (key in a token)."""

    @property
    def certificate(self) -> x509.Certificate: ...

    @property
    def chain(self) -> tuple[x509.Certificate, ...]: ...

    def sign(self, data: bytes, algorithm: HashAlgorithm) -> bytes:
        """RSA PKCS#1 v1.5 signature of ``algorithm(data)``."""
        ...

_ASN1_HASH = {HashAlgorithm.SHA256: "sha256", HashAlgorithm.SHA384: "sha384", HashAlgorithm.SHA512: "sha512"}


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _signed_attributes(
    signer: Signer,
    signature_type: SignatureType,
    message_digest: bytes,
    hash_algorithm: HashAlgorithm,
    signing_time: datetime,
    v3_service_index_url: str | None,
    owners: Sequence[str] | None,
) -> bytes:
    attrs = [
        encode_attribute(oids.CONTENT_TYPE, [core.ObjectIdentifier(oids.DATA).dump()]),
        encode_attribute(oids.SIGNING_TIME, [encode_signing_time(signing_time)]),
        encode_attribute(oids.COMMITMENT_TYPE_INDICATION, [encode_commitment_type_indication(signature_type)]),
        encode_attribute(oids.MESSAGE_DIGEST, [core.OctetString(message_digest).dump()]),
        encode_attribute(
            oids.SIGNING_CERTIFICATE_V2, [encode_signing_certificate_v2(signer.certificate, hash_algorithm)]
        ),
    ]
    if signature_type is SignatureType.REPOSITORY:
        if v3_service_index_url is None:
            raise SigningError("a repository signature needs the V3 service index URL")
        attrs.append(
            encode_attribute(oids.NUGET_V3_SERVICE_INDEX_URL, [encode_v3_service_index_url(v3_service_index_url)])
        )
        if owners:
            attrs.append(encode_attribute(oids.NUGET_PACKAGE_OWNERS, [encode_package_owners(owners)]))
    return set_of(attrs)


def _signer_info(
    signer: Signer,
    signed_attrs_der: bytes,
    hash_algorithm: HashAlgorithm,
    timestamper: Timestamper | None,
) -> tuple[bytes, int]:
    """DER SignerInfo and its version (1 or 3), written by splicing: asn1crypto copies and re-encodes a
    nested timestamp token recursively when it is put into a parsed structure (seconds per signature)."""
    cert = _asn1(signer.certificate)
    ski = cert.key_identifier
    if ski is not None:
        sid = cms.SignerIdentifier({"subject_key_identifier": ski})
        version = 3
    else:
        sid = cms.SignerIdentifier(
            {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}
        )
        version = 1
    signature = signer.sign(signed_attrs_der, hash_algorithm)
    fields = [
        core.Integer(version).dump(),
        sid.dump(),
        algos.DigestAlgorithm({"algorithm": _ASN1_HASH[hash_algorithm], "parameters": core.Null()}).dump(),
        _implicit(0xA0, signed_attrs_der),
        algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()}).dump(),
        core.OctetString(signature).dump(),
    ]
    if timestamper is not None:
        token = timestamper(signature)
        fields.append(_implicit(0xA1, set_of([encode_attribute(oids.TIMESTAMP_TOKEN, [token])])))
    return encode_tlv(TAG_SEQUENCE, b"".join(fields)), version


def _implicit(tag: int, set_der: bytes) -> bytes:
    """``[n] IMPLICIT SET OF``: the SET's contents under the context tag."""
    return encode_tlv(tag, set_der[_set_header_length(set_der) :])


def _chain_der(signer: Signer) -> list[bytes]:
    return [c.public_bytes(Encoding.DER) for c in (signer.certificate, *signer.chain)]


def create_primary_signature(
    *,
    package_hash: bytes,
    hash_algorithm: HashAlgorithm,
    signer: Signer,
    signature_type: SignatureType,
    signing_time: datetime,
    timestamper: Timestamper | None = None,
    v3_service_index_url: str | None = None,
    owners: Sequence[str] | None = None,
) -> bytes:
    """The ``.signature.p7s`` content (DER ContentInfo) for a package whose unsigned bytes hash to ``package_hash``.

    Raises:
        SigningError: a repository signature without its URL; NU3014 for a non-RSA key (from the signer).
        UsageError: an invalid URL or owner list (from the attribute encoders).
    """
    content = SignatureContent(hash_algorithm=hash_algorithm, hash_value=package_hash).to_bytes()
    attrs = _signed_attributes(
        signer,
        signature_type,
        hash_algorithm.digest(content),
        hash_algorithm,
        signing_time,
        v3_service_index_url,
        owners,
    )
    info, version = _signer_info(signer, attrs, hash_algorithm, timestamper)
    digest_algorithm = algos.DigestAlgorithm({"algorithm": _ASN1_HASH[hash_algorithm], "parameters": core.Null()})
    encap = cms.EncapsulatedContentInfo({"content_type": "data", "content": content})
    body = b"".join(
        (
            core.Integer(version).dump(),  # v3 with a SubjectKeyIdentifier SID (RFC 5652 §5.1), as SignedCms
            set_of([digest_algorithm.dump()]),
            encap.dump(),
            _implicit(0xA0, set_of(_chain_der(signer))),  # DER-sorted, as SignedCms writes the certificate set
            set_of([info]),
        )
    )
    return encode_tlv(
        TAG_SEQUENCE, core.ObjectIdentifier(oids.SIGNED_DATA).dump() + encode_tlv(0xA0, encode_tlv(TAG_SEQUENCE, body))
    )


def add_repository_countersignature(
    primary_der: bytes,
    *,
    hash_algorithm: HashAlgorithm,
    signer: Signer,
    signing_time: datetime,
    v3_service_index_url: str,
    owners: Sequence[str] | None,
    timestamper: Timestamper | None = None,
) -> bytes:
    """``primary_der`` with a repository countersignature added to its SignerInfo (NUGET-SIGNING.md §3.5).

    Raises:
        SigningError: NU3033 the primary is a repository signature; NU3032 it already has a repository
            countersignature.
    """
    from nuseal.signature.model import PrimarySignature  # noqa: PLC0415 - the model imports this package

    primary = PrimarySignature.load(primary_der)
    if primary.type is SignatureType.REPOSITORY:
        raise SigningError(
            "A repository primary signature must not have a repository countersignature.", code=NuCode.NU3033
        )
    if primary.countersignatures:
        raise SigningError(
            "The package already contains a repository countersignature. Please remove the existing signature "
            "before adding a new repository countersignature.",
            code=NuCode.NU3032,
        )
    attrs = _signed_attributes(
        signer,
        SignatureType.REPOSITORY,
        hash_algorithm.digest(primary.signature_value),
        hash_algorithm,
        signing_time,
        v3_service_index_url,
        owners,
    )
    counter, _ = _signer_info(signer, attrs, hash_algorithm, timestamper)
    # Spliced from the original DER: re-encoding parsed children with asn1crypto would re-serialize the whole
    # timestamp token (seconds per package) and could change bytes NuGet compares.
    ci = cms.ContentInfo.load(primary_der)
    signed_data = ci["content"]
    old = signed_data["signer_infos"][0]
    old_unsigned = old["unsigned_attrs"]
    unsigned = [] if isinstance(old_unsigned, core.Void) else [a.dump() for a in old_unsigned]
    unsigned.append(encode_attribute(oids.COUNTERSIGNATURE, [counter]))
    fields = [old[name].dump() for name in ("version", "sid", "digest_algorithm")]
    fields.append(encode_tlv(0xA0, old["signed_attrs"].contents))
    fields += [old[name].dump() for name in ("signature_algorithm", "signature")]
    unsigned_set = set_of(unsigned)
    fields.append(encode_tlv(0xA1, unsigned_set[_set_header_length(unsigned_set) :]))
    new_info = encode_tlv(TAG_SEQUENCE, b"".join(fields))
    present = [c.dump() for c in signed_data["certificates"]]
    certificates = present + [d for d in _chain_der(signer) if d not in present]
    body = b"".join(
        (
            signed_data["version"].dump(),
            signed_data["digest_algorithms"].dump(),
            signed_data["encap_content_info"].dump(),
            _implicit(0xA0, set_of(certificates)),  # re-sorted, as SignedCms re-encodes it
            encode_tlv(TAG_SET, new_info),
        )
    )
    signed_data_der = encode_tlv(TAG_SEQUENCE, body)
    return encode_tlv(TAG_SEQUENCE, core.ObjectIdentifier(oids.SIGNED_DATA).dump() + encode_tlv(0xA0, signed_data_der))


def remove_repository_countersignatures(primary_der: bytes) -> tuple[bytes, tuple[str | None, ...]]:
    """``primary_der`` without the repository countersignatures of its author signature, and the V3 service index
    URLs they named (``None`` for one without a URL). Unchanged, with no URLs, for a repository or unknown-type
    primary signature or one without repository countersignatures.

    Only the countersignature values go (other countersignature types stay): the author's SignerInfo, signed
    attributes, timestamp and certificate set keep their bytes (asn1crypto re-encodes only the changed
    unsigned-attribute set and its parents' headers), so the author signature stays valid. nuget.org strips
    repository signatures before adding its own (NuGetGallery ``SignatureValidator.RemoveRepositorySignaturesAsync``,
    NUGET-SIGNING.md §5.2).

    Raises:
        SignatureFormatError: ``primary_der`` is not a readable primary signature (as :meth:`PrimarySignature.load`).
    """
    from nuseal.signature.model import PrimarySignature  # noqa: PLC0415 - the model imports this package

    primary = PrimarySignature.load(primary_der)
    if primary.type is not SignatureType.AUTHOR or not primary.countersignatures:
        return primary_der, ()
    values = {c.signature_value for c in primary.countersignatures}
    urls = tuple(c.v3_service_index_url for c in primary.countersignatures)
    info = cms.ContentInfo.load(primary_der)
    signer = info["content"]["signer_infos"][0]
    kept = []
    for attr in signer["unsigned_attrs"]:
        if attr["type"].dotted == oids.COUNTERSIGNATURE:
            remaining = [v for v in attr["values"] if bytes(v["signature"].contents) not in values]
            if not remaining:
                continue
            attr["values"] = cms.SetOfAny([v.dump() for v in remaining])
        kept.append(attr)
    signer["unsigned_attrs"] = cms.CMSAttributes(kept) if kept else core.Void()
    return info.dump(), urls


def _set_header_length(der: bytes) -> int:
    """Length of the tag and length octets at the start of ``der``."""
    return 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
