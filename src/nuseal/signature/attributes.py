"""NuGet's signed attributes: readers with NuGet's exact rules, and DER writers for the signing side.

Attributes (NUGET-SIGNING.md §3.2, §3.3): commitment-type-indication (ETSI, the signature type),
signing-certificate-v2 (RFC 5035) and signing-certificate (RFC 2634), nuget-v3-service-index-url and
nuget-package-owners (NuGet's own, ``1.3.6.1.4.1.311.84.2.1.1.{1,2}``), signing-time (RFC 5652 §11.3).

Readers follow NC ``Signatures/*.cs`` and ``AttributeUtility``/``SignatureUtility``; errors carry NuGet's
codes: malformed DER is NU3003 (NuGet's ``DerSequenceReader`` throws ``CryptographicException``, which
``PackageSignatureVerifier`` reports as NU3003); other format errors are NU3000 (``SignatureException``
without a code). Writers emit exactly what NuGet writes (NC ``*.Encode``), for ``nuseal.signature.builder``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.codes import NuCode
from nuseal.errors import SignatureFormatError, SigningCertificateError, UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.signature import oids
from nuseal.signature._cms import CertRef, NameKey, RawAttribute, attributes_of, name_key_of_der
from nuseal.signature._der import (
    TAG_CONTEXT_CONSTRUCTED_4,
    TAG_IA5_STRING,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_SEQUENCE,
    TAG_UTF8_STRING,
    DerError,
    DerReader,
    encode_tlv,
    set_of,
)

__all__ = [
    "EssCertId",
    "EssIssuerSerial",
    "SignatureType",
    "SigningCertificateError",
    "SigningCertificateRule",
    "check_signing_certificate",
    "encode_attribute",
    "encode_commitment_type_indication",
    "encode_package_owners",
    "encode_signing_certificate_v2",
    "encode_signing_time",
    "encode_v3_service_index_url",
    "read_commitment_type",
    "read_package_owners",
    "read_signing_certificate",
    "read_signing_certificate_v2",
    "read_signing_time",
    "read_v3_service_index_url",
    "signature_type_of",
]

_SHA256 = HashAlgorithm.SHA256.oid
_ALLOWED_HASH_OIDS = frozenset(alg.oid for alg in HashAlgorithm)
_SHA1_HASH_LENGTH = 20


class SignatureType(enum.StrEnum):
    """A signature's type, from its commitment-type-indication (NC ``SignatureType``)."""

    AUTHOR = "Author"
    REPOSITORY = "Repository"
    UNKNOWN = "Unknown"


_TYPE_BY_OID = {oids.PROOF_OF_ORIGIN: SignatureType.AUTHOR, oids.PROOF_OF_RECEIPT: SignatureType.REPOSITORY}
_OID_BY_TYPE = {value: key for key, value in _TYPE_BY_OID.items()}


#: Attribute values whose decoding is remembered, per reader (the commitment type, signing-certificate(-v2) of a
#: known signer, repository URL and owners recur in every signature of a publisher or feed).
READER_CACHE_SIZE = 1024
_T = TypeVar("_T")


def _memoised(reader: Callable[[bytes], _T]) -> Callable[[bytes], _T]:
    """``reader`` remembering its answers by the value's bytes; a value that raises is never remembered, so it
    raises the same error every time. Answers are immutable (strings, tuples of frozen records)."""
    answers: dict[bytes, _T] = {}

    @functools.wraps(reader)
    def read(value: bytes) -> _T:
        if type(value) is not bytes:  # only immutable bytes are keys; anything else is read as given
            return reader(value)
        found = answers.get(value, answers)
        if found is not answers:
            return found  # type: ignore[return-value]
        answer = reader(value)
        if len(answers) >= READER_CACHE_SIZE:
            answers.clear()
        answers[value] = answer
        return answer

    return read


def _malformed(what: str, exc: Exception | None = None) -> SignatureFormatError:
    detail = f": {exc}" if exc else ""
    return SignatureFormatError(f"The {what} attribute cannot be decoded{detail}.", code=NuCode.NU3003)


def _format_error(message: str) -> SignatureFormatError:
    return SignatureFormatError(message, code=NuCode.NU3000)


# --------------------------------------------------------------------------- commitment type
@_memoised
def read_commitment_type(value: bytes) -> str:
    """The commitment type OID of one commitment-type-indication value (NC ``CommitmentTypeIndication.Read``).

    ``SEQUENCE { OID, SEQUENCE SIZE(1..MAX) OF qualifier OPTIONAL }``.

    Raises:
        SignatureFormatError: NU3003 malformed; NU3000 an empty qualifier list.
    """
    try:
        seq = DerReader.for_value(value).read_sequence()
        oid = seq.read_oid()
        if seq.has_data:
            qualifiers = seq.read_sequence()
            count = 0
            while qualifiers.has_data:
                qualifier = qualifiers.read_sequence()
                qualifier.read_oid()
                count += 1
            if count == 0:
                raise _format_error("The commitment-type-indication attribute is invalid.")
    except DerError as exc:
        raise _malformed("commitment-type-indication", exc) from exc
    return oid


def signature_type_of(signed_attrs: Sequence[RawAttribute] | None) -> SignatureType:
    """The signature type from all commitment-type-indication values (NC ``AttributeUtility.GetSignatureType``).

    Unknown commitment types are ignored; none known gives ``UNKNOWN``.

    Raises:
        SignatureFormatError: NU3000 when both proof-of-origin and proof-of-receipt appear; as
            :func:`read_commitment_type` for a bad value.
    """
    known: list[SignatureType] = []
    for attr in attributes_of(signed_attrs, oids.COMMITMENT_TYPE_INDICATION):
        for value in attr.values:
            found = _TYPE_BY_OID.get(read_commitment_type(value), SignatureType.UNKNOWN)
            if found is not SignatureType.UNKNOWN and found not in known:
                known.append(found)
    if len(known) > 1:
        raise _format_error("The commitment-type-indication attribute contains an invalid combination of values.")
    return known[0] if known else SignatureType.UNKNOWN


# --------------------------------------------------------------------------- ESS signing certificate
@dataclass(frozen=True, slots=True)
class EssIssuerSerial:
    """``IssuerSerial`` with its one directoryName (NuGet supports no other GeneralName)."""

    issuer: NameKey
    serial_raw: bytes  # INTEGER content octets as encoded


@dataclass(frozen=True, slots=True)
class EssCertId:
    """An ``ESSCertIDv2`` (``hash_algorithm_oid`` set; SHA-256 when absent) or an ``ESSCertID`` (SHA-1, ``None``)."""

    hash_algorithm_oid: str | None
    cert_hash: bytes
    issuer_serial: EssIssuerSerial | None


def _read_issuer_serial(reader: DerReader, what: str) -> EssIssuerSerial:
    seq = reader.read_sequence()
    names = seq.read_sequence()
    if names.peek_tag() != TAG_CONTEXT_CONSTRUCTED_4:
        raise _format_error("The ASN.1 data is unsupported.")
    directory = names.read(TAG_CONTEXT_CONSTRUCTED_4)
    if names.has_data:
        raise _format_error("The ASN.1 data is invalid.")
    try:
        issuer = name_key_of_der(directory.contents)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise _malformed(what, exc) from exc
    return EssIssuerSerial(issuer, seq.read_integer_bytes())


def _read_policies(reader: DerReader) -> None:
    policies = reader.read_sequence()
    while policies.has_data:
        policy = policies.read_sequence()
        policy.read_oid()


@_memoised
def read_signing_certificate_v2(value: bytes) -> tuple[EssCertId, ...]:
    """The ESSCertIDv2 list of one signing-certificate-v2 value (NC ``SigningCertificateV2.Read``, RFC 5035).

    Raises:
        SignatureFormatError: NU3003 malformed DER or a hash AlgorithmIdentifier with non-NULL parameters;
            NU3000 trailing data or a GeneralName other than directoryName.
    """
    what = "signing-certificate-v2"
    try:
        outer = DerReader.for_value(value).read_sequence()
        ids = outer.read_sequence()
        out: list[EssCertId] = []
        while ids.has_data:
            item = ids.read_sequence()
            algorithm = _SHA256
            if item.peek_tag() == TAG_SEQUENCE:
                alg = item.read_sequence()
                algorithm = alg.read_oid()
                if alg.has_data:
                    alg.read_null()
                    if alg.has_data:
                        raise _format_error("The signing-certificate-v2 attribute is invalid.")
            cert_hash = item.read_octet_string()
            issuer_serial = None
            if item.has_data:
                issuer_serial = _read_issuer_serial(item, what)
                if item.has_data:
                    raise _format_error("The signing-certificate-v2 attribute is invalid.")
            out.append(EssCertId(algorithm, cert_hash, issuer_serial))
        if outer.has_data:
            _read_policies(outer)
            if outer.has_data:
                raise _format_error("The ASN.1 data is invalid.")
    except DerError as exc:
        raise _malformed(what, exc) from exc
    return tuple(out)


@_memoised
def read_signing_certificate(value: bytes) -> tuple[EssCertId, ...]:
    """The ESSCertID list of one signing-certificate (v1) value (NC ``SigningCertificate.Read``, RFC 2634).

    Raises:
        SignatureFormatError: NU3003 malformed; NU3000 trailing data.
    """
    what = "signing-certificate"
    try:
        outer = DerReader.for_value(value).read_sequence()
        ids = outer.read_sequence()
        out: list[EssCertId] = []
        while ids.has_data:
            item = ids.read_sequence()
            cert_hash = item.read_octet_string()
            issuer_serial = None
            if item.has_data:
                issuer_serial = _read_issuer_serial(item, what)
                if item.has_data:
                    raise _format_error("The signing-certificate attribute is invalid.")
            out.append(EssCertId(None, cert_hash, issuer_serial))
        if outer.has_data:
            _read_policies(outer)
            if outer.has_data:
                raise _format_error("The ASN.1 data is invalid.")
    except DerError as exc:
        raise _malformed(what, exc) from exc
    return tuple(out)


class SigningCertificateRule(enum.Enum):
    """Which ESS attributes a signer must carry (NC ``SignatureUtility.SigningCertificateRequirement``)."""

    NONE = "none"  # unknown-type primary signatures
    V2_ONLY = "v2-only"  # author and repository signatures, repository countersignatures
    EITHER_OR_BOTH = "either-or-both"  # RFC 3161 timestamp signers


def _issuer_serial_matches(issuer_serial: EssIssuerSerial, cert: CertRef) -> bool:
    return issuer_serial.serial_raw == cert.serial_raw and issuer_serial.issuer == cert.issuer


def check_signing_certificate(
    signed_attrs: Sequence[RawAttribute] | None,
    certificate: CertRef,
    rule: SigningCertificateRule,
    *,
    issuer_serial_required: bool,
) -> None:
    """Apply NuGet's signing-certificate(-v2) rules to a signer (NC ``SignatureUtility.GetCertificates``).

    Each attribute may appear at most once with one value. ``V2_ONLY``: v1 must be absent and v2
    present; ``EITHER_OR_BOTH``: at least one. A present v2 needs at least one ESSCertIDv2, every hash
    algorithm SHA-256/384/512, and the first must match ``certificate`` (IssuerSerial, when present or
    required: raw serial octets and issuer name equal; then the hash of the certificate DER). A present
    v1 needs at least one ESSCertID whose first matches by IssuerSerial (when present) and has a 20-byte
    hash (NuGet does not compare the SHA-1 value).

    Raises:
        SigningCertificateError: a rule failed (the caller's code: NU3011 / NU3031 / NU3021).
        SignatureFormatError: NU3003 / NU3000 when an attribute value cannot be read.
    """
    v1 = attributes_of(signed_attrs, oids.SIGNING_CERTIFICATE)
    v2 = attributes_of(signed_attrs, oids.SIGNING_CERTIFICATE_V2)
    for attrs, name in ((v1, "signing-certificate"), (v2, "signing-certificate-v2")):
        if len(attrs) > 1:
            raise SigningCertificateError(f"Multiple {name} attributes are not allowed.")
        if attrs and len(attrs[0].values) != 1:
            raise SigningCertificateError(f"The {name} attribute must have exactly one attribute value.")
    if rule is SigningCertificateRule.V2_ONLY:
        if v1:
            raise SigningCertificateError("The signing-certificate attribute is not allowed.")
        if not v2:
            raise SigningCertificateError("Exactly one signing-certificate-v2 attribute is required.")
    elif rule is SigningCertificateRule.EITHER_OR_BOTH and not v1 and not v2:
        raise SigningCertificateError(
            "Either the signing-certificate or signing-certificate-v2 attribute must be present."
        )
    if v2:
        ids = read_signing_certificate_v2(v2[0].values[0])
        if not ids:
            raise SigningCertificateError("The signing-certificate-v2 attribute is invalid.")
        if any(i.hash_algorithm_oid not in _ALLOWED_HASH_OIDS for i in ids):
            raise SigningCertificateError("The signing-certificate-v2 attribute uses an unsupported hash algorithm.")
        first = ids[0]
        if issuer_serial_required and first.issuer_serial is None:
            raise SigningCertificateError("The signing-certificate-v2 attribute has no issuerSerial.")
        algorithm = HashAlgorithm.from_oid(first.hash_algorithm_oid or _SHA256)
        matches = algorithm is not None and first.cert_hash == algorithm.digest(certificate.der)
        if first.issuer_serial is not None and not _issuer_serial_matches(first.issuer_serial, certificate):
            matches = False
        if not matches:
            raise SigningCertificateError(
                "A certificate referenced by the signing-certificate-v2 attribute could not be found."
            )
    if v1:
        ids = read_signing_certificate(v1[0].values[0])
        if not ids:
            raise SigningCertificateError("The signing-certificate attribute is invalid.")
        first = ids[0]
        matches = len(first.cert_hash) == _SHA1_HASH_LENGTH
        if first.issuer_serial is not None and not _issuer_serial_matches(first.issuer_serial, certificate):
            matches = False
        if not matches:
            raise SigningCertificateError(
                "A certificate referenced by the signing-certificate attribute could not be found."
            )


# --------------------------------------------------------------------------- repository attributes
def _is_https_url(text: str) -> bool:
    """An absolute https URL, as NuGet requires (``Uri.TryCreate(Absolute)`` and ``Scheme == "https"``)."""
    if not text or any(ch.isspace() or ord(ch) < 0x20 for ch in text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme.lower() == "https" and bool(parts.hostname)


@_memoised
def read_v3_service_index_url(value: bytes) -> str:
    """The URL of one nuget-v3-service-index-url value (IA5String; NC ``NuGetV3ServiceIndexUrl.Read``).

    Raises:
        SignatureFormatError: NU3003 not an IA5String; NU3000 not an absolute https URL.
    """
    try:
        text = DerReader.for_value(value).read_ia5_string()
    except DerError as exc:
        raise _malformed("nuget-v3-service-index-url", exc) from exc
    if not _is_https_url(text):
        raise _format_error("The nuget-v3-service-index-url attribute is invalid.")
    return text


@_memoised
def read_package_owners(value: bytes) -> tuple[str, ...]:
    """The owners of one nuget-package-owners value (NC ``NuGetPackageOwners.Read``).

    ``SEQUENCE SIZE(1..MAX) OF UTF8String``, order kept.

    Raises:
        SignatureFormatError: NU3003 malformed; NU3000 empty list or an empty / whitespace-only owner.
    """
    owners: list[str] = []
    try:
        seq = DerReader.for_value(value).read_sequence()
        while seq.has_data:
            owner = seq.read_utf8_string()
            if not owner.strip():
                raise _format_error("The nuget-package-owners attribute is invalid.")
            owners.append(owner)
    except DerError as exc:
        raise _malformed("nuget-package-owners", exc) from exc
    if not owners:
        raise _format_error("The nuget-package-owners attribute is invalid.")
    return tuple(owners)


def read_signing_time(value: bytes) -> datetime | None:
    """The signing-time value (UTCTime or GeneralizedTime) as tz-aware UTC, or ``None`` if unreadable.

    NuGet only checks that the attribute exists, so an unreadable value is not an error here.
    """
    try:
        parsed = core.load(value)
        if not isinstance(parsed, core.UTCTime | core.GeneralizedTime):
            return None
        when = parsed.native
    except (ValueError, TypeError):
        return None
    if not isinstance(when, datetime):
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- writers
def encode_attribute(oid: str, values: Sequence[bytes]) -> bytes:
    """``Attribute ::= SEQUENCE { attrType OID, attrValues SET OF value }`` in DER."""
    return encode_tlv(TAG_SEQUENCE, core.ObjectIdentifier(oid).dump() + set_of(list(values)))


def encode_commitment_type_indication(signature_type: SignatureType) -> bytes:
    """``SEQUENCE { proofOfOrigin | proofOfReceipt }`` without qualifiers (NC ``CommitmentTypeIndication.Encode``).

    Raises:
        UsageError: ``signature_type`` is ``UNKNOWN``.
    """
    oid = _OID_BY_TYPE.get(signature_type)
    if oid is None:
        raise UsageError("only Author and Repository signatures carry a commitment-type-indication")
    return encode_tlv(TAG_SEQUENCE, core.ObjectIdentifier(oid).dump())


def _unsigned_integer(raw: bytes) -> bytes:
    """NC ``DerEncoder.SegmentedEncodeUnsignedInteger``: leading zeros dropped, 0x00 added before a high bit."""
    body = raw.lstrip(b"\x00") or b"\x00"
    if body[0] & 0x80:
        body = b"\x00" + body
    return encode_tlv(TAG_INTEGER, body)


def encode_signing_certificate_v2(certificate: x509.Certificate, hash_algorithm: HashAlgorithm) -> bytes:
    """The signing-certificate-v2 value NuGet writes (NC ``SigningCertificateV2.Create(...).Encode()``).

    ``SEQUENCE { SEQUENCE { ESSCertIDv2 { AlgorithmIdentifier { oid } (explicit even for SHA-256, no NULL),
    OCTET STRING H(cert DER), IssuerSerial { GeneralNames { [4] issuer Name }, serial } } } }``, no policies.
    """
    der = certificate.public_bytes(Encoding.DER)
    tbs = asn1_x509.Certificate.load(der)["tbs_certificate"]
    issuer_der = tbs["issuer"].dump()
    general_names = encode_tlv(TAG_SEQUENCE, encode_tlv(TAG_CONTEXT_CONSTRUCTED_4, issuer_der))
    issuer_serial = encode_tlv(TAG_SEQUENCE, general_names + _unsigned_integer(bytes(tbs["serial_number"].contents)))
    algorithm = encode_tlv(TAG_SEQUENCE, core.ObjectIdentifier(hash_algorithm.oid).dump())
    cert_hash = encode_tlv(TAG_OCTET_STRING, hash_algorithm.digest(der))
    ess_cert_id = encode_tlv(TAG_SEQUENCE, algorithm + cert_hash + issuer_serial)
    return encode_tlv(TAG_SEQUENCE, encode_tlv(TAG_SEQUENCE, ess_cert_id))


def encode_v3_service_index_url(url: str) -> bytes:
    """The nuget-v3-service-index-url value: the URL as given, as IA5String (NC ``NuGetV3ServiceIndexUrl.Encode``).

    Raises:
        UsageError: not an absolute https URL, or not ASCII.
    """
    if not url.isascii() or not _is_https_url(url):
        raise UsageError(f"the V3 service index URL must be an absolute https URL: {url!r}")
    return encode_tlv(TAG_IA5_STRING, url.encode("ascii"))


def encode_package_owners(owners: Sequence[str]) -> bytes:
    """The nuget-package-owners value: ``SEQUENCE OF UTF8String``, order kept (NC ``NuGetPackageOwners.Encode``).

    Raises:
        UsageError: no owners, or an empty / whitespace-only owner.
    """
    if not owners or any(not owner.strip() for owner in owners):
        raise UsageError("package owners must be a non-empty list of non-blank names")
    return encode_tlv(TAG_SEQUENCE, b"".join(encode_tlv(TAG_UTF8_STRING, o.encode("utf-8")) for o in owners))


def encode_signing_time(when: datetime) -> bytes:
    """The signing-time value as .NET's ``Pkcs9SigningTime`` writes it: UTCTime for 1950-2049, else GeneralizedTime.

    Fractional seconds are dropped. Raises ``UsageError`` for a naive datetime.
    """
    if when.tzinfo is None:
        raise UsageError("signing time must be timezone-aware")
    utc = when.astimezone(UTC).replace(microsecond=0)
    if 1950 <= utc.year < 2050:  # RFC 5280 §4.1.2.5 UTCTime range
        return bytes(core.UTCTime(utc).dump())
    return bytes(core.GeneralizedTime(utc).dump())
