"""The NuGet signature model: a primary signature and its repository countersignature (NUGET-SIGNING.md §3).

``PrimarySignature.load`` parses ``.signature.p7s`` once, applying the checks NuGet applies while
loading (NC ``PrimarySignature.Load``, ``VerifySigningCertificate``, ``PrimarySignatureFactory``, the
``Signature``/``PrimarySignature``/``RepositoryPrimarySignature`` constructors), in NuGet's order, and
raising :class:`~nuseal.errors.SignatureFormatError` with NuGet's code. Everything NuGet checks later
(timestamps, the countersignature) is parsed here too and kept as data or as issues for
``nuseal.verify``. Nothing here decides trust.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import SignatureFormatError
from nuseal.signature import oids
from nuseal.signature._cms import (
    CertRef,
    CmsDecodeError,
    KeyId,
    RawAttribute,
    RawSignerInfo,
    attributes_of,
    check_signer_signature,
    decode_signed_data,
    decode_signer_info,
    find_certificate,
    load_certificates,
)
from nuseal.signature.attributes import (
    SignatureType,
    SigningCertificateError,
    SigningCertificateRule,
    check_signing_certificate,
    read_package_owners,
    read_signing_time,
    read_v3_service_index_url,
    signature_type_of,
)
from nuseal.signature.content import SignatureContent

__all__ = [
    "MAX_COUNTERSIGNATURES",
    "MAX_SIGNATURE_SIZE",
    "MAX_TIMESTAMPS",
    "PrimarySignature",
    "RepositoryCountersignature",
    "Signature",
]

MAX_SIGNATURE_SIZE = 4 << 20
"""Largest ``.signature.p7s`` parsed, in bytes (real ones are 9 to 20 KB; NuGet has no limit; nuseal's bound)."""
MAX_COUNTERSIGNATURES = 16
"""Most countersignatures read from the primary signer (nuseal's bound)."""
MAX_TIMESTAMPS = 16
"""Most timestamp tokens read from one signer; more set ``too_many_timestamps`` (nuseal's bound)."""

_INVALID_SIGNATURE = "The package signature is invalid or cannot be verified on this platform."
_FRIENDLY = {
    SignatureType.AUTHOR: "author primary signature",
    SignatureType.REPOSITORY: "repository primary signature",
    SignatureType.UNKNOWN: "primary signature",
}
_URL = "nuget-v3-service-index-url"
_OWNERS = "nuget-package-owners"


def _error(code: NuCode, message: str) -> SignatureFormatError:
    return SignatureFormatError(message, code=code)


def _oids(attrs: tuple[RawAttribute, ...] | None) -> tuple[str, ...]:
    return tuple(a.oid for a in attrs or ())


def _timestamp_tokens(signer: RawSignerInfo) -> tuple[tuple[bytes, ...], bool]:
    """Every token in every signature-time-stamp attribute value, in order (NC ``Signature.GetTimestamps``), at
    most :data:`MAX_TIMESTAMPS`, and whether there were more. Parsing them is ``nuseal.timestamp``'s job."""
    tokens: list[bytes] = []
    for attr in attributes_of(signer.unsigned_attrs, oids.TIMESTAMP_TOKEN):
        for value in attr.values:
            if len(tokens) == MAX_TIMESTAMPS:
                return tuple(tokens), True
            tokens.append(value)
    return tuple(tokens), False


def _single_value(attrs: tuple[RawAttribute, ...] | None, oid: str, name: str, *, required: bool) -> bytes | None:
    """NC ``AttributeUtility.GetAttribute`` + the one-value rule: 0 -> NU3000 if required; >1 -> NU3003."""
    found = attributes_of(attrs, oid)
    if not found:
        if required:
            raise _error(NuCode.NU3000, f"Exactly one {name} attribute is required.")
        return None
    if len(found) > 1:  # NuGet throws CryptographicException here, reported as NU3003
        raise _error(NuCode.NU3003, f"Multiple {name} attributes are not allowed.")
    if len(found[0].values) != 1:
        raise _error(NuCode.NU3000, f"The {name} attribute must have exactly one attribute value.")
    return found[0].values[0]


def _repository_attributes(attrs: tuple[RawAttribute, ...] | None) -> tuple[str, tuple[str, ...] | None]:
    """URL (required) and owners (optional) of a repository signer (NC ``AttributeUtility``)."""
    url_value = _single_value(attrs, oids.NUGET_V3_SERVICE_INDEX_URL, _URL, required=True)
    assert url_value is not None  # required=True
    url = read_v3_service_index_url(url_value)
    owners_value = _single_value(attrs, oids.NUGET_PACKAGE_OWNERS, _OWNERS, required=False)
    owners = read_package_owners(owners_value) if owners_value is not None else None
    return url, owners


@dataclass(frozen=True, eq=False)
class Signature:
    """What the primary signature and the repository countersignature share (NC ``Signature``).

    ``signature_value`` is the SignerInfo's ``signature`` OCTET STRING content (what timestamps stamp).
    ``signing_time`` is ``None`` when the attribute is absent or unreadable. ``timestamp_tokens`` holds every
    TimeStampToken found, as DER (several values and several attributes, in order; NuGet uses the first), at
    most :data:`MAX_TIMESTAMPS` (``too_many_timestamps`` says there were more); :func:`nuseal.timestamp.timestamps_of`
    parses them. ``v3_service_index_url`` and ``package_owners`` are set for repository signatures only.
    Attribute OID tuples are in encoded order.
    """

    type: SignatureType
    signer_certificate: x509.Certificate | None
    signature_value: bytes
    digest_algorithm_oid: str
    signature_algorithm_oid: str
    signing_time: datetime | None
    timestamp_tokens: tuple[bytes, ...]
    too_many_timestamps: bool
    v3_service_index_url: str | None
    package_owners: tuple[str, ...] | None
    signed_attribute_oids: tuple[str, ...]
    unsigned_attribute_oids: tuple[str, ...]
    _signer: RawSignerInfo = field(repr=False)
    _signed_content: bytes = field(repr=False)

    @property
    def friendly_name(self) -> str:
        """NuGet's name for this signature in messages ("author primary signature", ...)."""
        return _FRIENDLY[self.type]

    @property
    def signer_id_type(self) -> str:
        """``"IssuerAndSerialNumber"`` or ``"SubjectKeyIdentifier"`` (.NET ``SubjectIdentifierType``)."""
        return "SubjectKeyIdentifier" if isinstance(self._signer.sid, KeyId) else "IssuerAndSerialNumber"

    def verify_signature_value(self) -> bool:
        """``SignerInfo.CheckSignature(verifySignatureOnly: true)``: the signature is intact under the signer key.

        The message-digest attribute must equal H(eContent) for the primary, H(primary
        ``signature_value``) for a countersignature (RFC 5652 §11.4), and the signed attributes must
        verify under the signer certificate's public key. ``False`` when there is no signer certificate.
        Never raises. NuGet reports ``False`` as NU3012 (primary) or NU3012 for the countersignature too
        (NC ``Signature.Verify``).
        """
        return check_signer_signature(
            self._signer,
            self.signer_certificate,
            self._signed_content,
            countersignature=isinstance(self, RepositoryCountersignature),
        )


def _common(
    signer: RawSignerInfo, refs: tuple[CertRef, ...], signed_content: bytes
) -> tuple[CertRef | None, dict[str, Any]]:
    """The :class:`Signature` fields every signer has, as keyword arguments, and the signer's certificate."""
    ref = find_certificate(signer.sid, refs)
    time_attr = attributes_of(signer.signed_attrs, oids.SIGNING_TIME)
    signing_time = read_signing_time(time_attr[0].values[0]) if time_attr and len(time_attr[0].values) == 1 else None
    tokens, too_many = _timestamp_tokens(signer)
    return ref, {
        "signer_certificate": ref.certificate if ref else None,
        "signature_value": signer.signature,
        "digest_algorithm_oid": signer.digest_algorithm_oid,
        "signature_algorithm_oid": signer.signature_algorithm_oid,
        "signing_time": signing_time,
        "timestamp_tokens": tokens,
        "too_many_timestamps": too_many,
        "signed_attribute_oids": _oids(signer.signed_attrs),
        "unsigned_attribute_oids": _oids(signer.unsigned_attrs),
        "_signer": signer,
        "_signed_content": signed_content,
    }


@dataclass(frozen=True, eq=False)
class PrimarySignature(Signature):
    """The one SignerInfo of ``.signature.p7s`` and the SignedData around it (NC ``PrimarySignature``).

    ``der`` is the input; ``content`` the signed properties document; ``certificates`` the SignedData
    certificate set (order and duplicates kept); ``countersignatures`` the repository-typed
    countersignatures in order (other types are ignored, as the client ignores them);
    ``countersignature_count`` every countersignature value on the signer, of any type, readable or not
    (nuget.org refuses those that are not repository countersignatures: NuGetGallery ``SignatureValidator``).
    """

    der: bytes
    content: SignatureContent
    certificates: tuple[x509.Certificate, ...]
    countersignatures: tuple[RepositoryCountersignature, ...]
    _cert_refs: tuple[CertRef, ...] = field(repr=False)
    _countersignature_error: SignatureFormatError | None = field(repr=False)
    countersignature_count: int = 0

    @classmethod
    def load(cls, der: bytes) -> PrimarySignature:
        """Parse ``.signature.p7s`` bytes as NuGet loads a primary signature.

        Checks, in NuGet's order: size (nuseal's bound :data:`MAX_SIGNATURE_SIZE`); CMS decoding;
        one SignerInfo; the type from commitment-type-indication; the signer certificate (by SID);
        signing-certificate-v2 (§3.3); signing-time (not for Unknown); the properties document;
        for a repository primary the service index URL and owners.

        Raises:
            SignatureFormatError: NU3003 not a decodable CMS SignedData (or too large, or an attribute
                value that is not valid DER); NU3009 not exactly one SignerInfo; NU3000 commitment types
                author+repository together, a bad properties document, a missing or invalid repository
                URL or owners; NU3010 no signer certificate; NU3011 ESS rules broken (v1 present, v2
                missing/duplicated/not matching) or signing-time missing; NU3007 ``Version`` is not 1.
        """
        if len(der) > MAX_SIGNATURE_SIZE:
            raise _error(NuCode.NU3003, f"{_INVALID_SIGNATURE} It is larger than {MAX_SIGNATURE_SIZE} bytes.")
        try:
            signed = decode_signed_data(der)
        except CmsDecodeError as exc:
            raise _error(NuCode.NU3003, f"{_INVALID_SIGNATURE} ({exc})") from exc
        if len(signed.signer_infos) != 1:
            raise _error(NuCode.NU3009, "The package signature file does not contain exactly one primary signature.")
        signer = signed.signer_infos[0]
        sig_type = signature_type_of(signer.signed_attrs)
        try:
            refs = load_certificates(signed.certificates)
        except CmsDecodeError as exc:
            raise _error(NuCode.NU3003, f"{_INVALID_SIGNATURE} ({exc})") from exc
        content_bytes = signed.content or b""
        ref, common = _common(signer, refs, content_bytes)
        if ref is None:
            raise _error(NuCode.NU3010, "The primary signature does not have a signing certificate.")
        typed = sig_type is not SignatureType.UNKNOWN
        try:
            check_signing_certificate(
                signer.signed_attrs,
                ref,
                SigningCertificateRule.V2_ONLY if typed else SigningCertificateRule.NONE,
                issuer_serial_required=typed,
            )
        except SigningCertificateError as exc:
            raise _error(NuCode.NU3011, f"The primary signature is invalid. {exc.message}") from exc
        if typed and not attributes_of(signer.signed_attrs, oids.SIGNING_TIME):
            raise _error(NuCode.NU3011, "The primary signature is invalid. The signing-time attribute is missing.")
        content = SignatureContent.parse(content_bytes)
        url, owners = (None, None)
        if sig_type is SignatureType.REPOSITORY:
            url, owners = _repository_attributes(signer.signed_attrs)
        primary = cls(
            type=sig_type,
            v3_service_index_url=url,
            package_owners=owners,
            der=der,
            content=content,
            certificates=tuple(r.certificate for r in refs),
            countersignatures=(),
            _cert_refs=refs,
            _countersignature_error=None,
            **common,
        )
        countersignatures, error = _read_countersignatures(primary, signer, refs)
        # Parse once: the countersignatures refer back to the primary, so they are attached after it exists.
        object.__setattr__(primary, "countersignatures", countersignatures)
        object.__setattr__(primary, "_countersignature_error", error)
        count = sum(len(a.values) for a in attributes_of(signer.unsigned_attrs, oids.COUNTERSIGNATURE))
        object.__setattr__(primary, "countersignature_count", count)
        return primary

    def has_repository_countersignature(self) -> bool:
        """NC ``SignatureUtility.HasRepositoryCountersignature`` (``False`` for a repository primary signature).

        Raises:
            SignatureFormatError: NU3003 a countersignature cannot be decoded; NU3000 a countersignature
                has both commitment types (NuGet throws these while looking).
        """
        if self.type is SignatureType.REPOSITORY:
            return False
        if self._countersignature_error is not None:
            raise self._countersignature_error
        return bool(self.countersignatures)

    def repository_countersignature(self) -> RepositoryCountersignature | None:
        """The one repository countersignature, or ``None`` (NC ``GetRepositoryCountersignature``).

        Raises:
            SignatureFormatError: as :meth:`has_repository_countersignature`; NU3033 the primary is a
                repository signature; NU3032 more than one repository countersignature; the first error
                NuGet throws while building it (NU3000/NU3003 URL or owners, NU3031 signing-time missing).
        """
        if self._countersignature_error is not None:
            raise self._countersignature_error
        for index, countersignature in enumerate(self.countersignatures):
            if index > 0:
                raise _error(NuCode.NU3032, "The package signature contains multiple repository countersignatures.")
            if self.type is SignatureType.REPOSITORY:
                raise _error(
                    NuCode.NU3033, "A repository primary signature must not have a repository countersignature."
                )
            if countersignature._error is not None:
                raise countersignature._error
        return self.countersignatures[0] if self.countersignatures else None


@dataclass(frozen=True, eq=False)
class RepositoryCountersignature(Signature):
    """A repository-typed countersignature of the primary signer (NUGET-SIGNING.md §3.5).

    NC ``RepositoryCountersignature``.

    ``issues`` lists every problem found while parsing it, all at ERROR level: first those NuGet throws
    when it builds the countersignature (NU3000/NU3003 URL or owners, NU3031 signing-time missing; also
    raised by :meth:`PrimarySignature.repository_countersignature`), then NU3010 no signer certificate
    (NuGet reports it at verification), then the signing-certificate-v2 rules (NU3031; NuGet checks those
    only in nuget.org's ``SignatureUtility.GetCertificateChain(primary, countersignature)``, not in the
    client). ``nuget_signature_value`` is what NuGet hashes to check this countersignature's timestamp
    imprint: the *first* countersigner's signature value (NC ``ManagedCmsWrapper`` quirk), which is
    ``signature_value`` unless another countersignature precedes this one.
    """

    primary: PrimarySignature = field(repr=False)
    issues: tuple[Issue, ...]
    nuget_signature_value: bytes = field(repr=False)
    _error: SignatureFormatError | None = field(repr=False)

    @property
    def friendly_name(self) -> str:
        return "repository countersignature"


def _countersignature(
    primary: PrimarySignature, signer: RawSignerInfo, refs: tuple[CertRef, ...], first_value: bytes
) -> RepositoryCountersignature:
    issues: list[Issue] = []
    fatal: SignatureFormatError | None = None
    url: str | None = None
    owners: tuple[str, ...] | None = None
    try:
        url, owners = _repository_attributes(signer.signed_attrs)
    except SignatureFormatError as exc:
        fatal = exc
    if fatal is None and not attributes_of(signer.signed_attrs, oids.SIGNING_TIME):
        fatal = _error(
            NuCode.NU3031, "The repository countersignature is invalid. The signing-time attribute is missing."
        )
    if fatal is not None:
        issues.append(Issue(fatal.code, Level.ERROR, fatal.message))
    ref, common = _common(signer, refs, primary.signature_value)
    if ref is None:
        issues.append(
            Issue(NuCode.NU3010, Level.ERROR, "The repository countersignature does not have a signing certificate.")
        )
    else:
        try:
            check_signing_certificate(
                signer.signed_attrs, ref, SigningCertificateRule.V2_ONLY, issuer_serial_required=True
            )
        except SigningCertificateError as exc:
            issues.append(
                Issue(NuCode.NU3031, Level.ERROR, f"The repository countersignature is invalid. {exc.message}")
            )
        except SignatureFormatError as exc:
            issues.append(Issue(exc.code, Level.ERROR, exc.message))
    return RepositoryCountersignature(
        type=SignatureType.REPOSITORY,
        v3_service_index_url=url,
        package_owners=owners,
        primary=primary,
        issues=tuple(issues),
        nuget_signature_value=first_value,
        _error=fatal,
        **common,
    )


def _read_countersignatures(
    primary: PrimarySignature, signer: RawSignerInfo, refs: tuple[CertRef, ...]
) -> tuple[tuple[RepositoryCountersignature, ...], SignatureFormatError | None]:
    """Repository countersignatures in order, and the first error NuGet throws while enumerating them."""
    decoded: list[RawSignerInfo] = []
    error: SignatureFormatError | None = None
    for attr in attributes_of(signer.unsigned_attrs, oids.COUNTERSIGNATURE):
        for value in attr.values:
            if len(decoded) >= MAX_COUNTERSIGNATURES:
                error = error or _error(NuCode.NU3003, f"More than {MAX_COUNTERSIGNATURES} countersignatures.")
                break
            try:
                decoded.append(decode_signer_info(value))
            except CmsDecodeError as exc:
                error = error or _error(NuCode.NU3003, f"{_INVALID_SIGNATURE} A countersignature: {exc}")
    first_value = decoded[0].signature if decoded else b""
    out: list[RepositoryCountersignature] = []
    for counter in decoded:
        try:
            counter_type = signature_type_of(counter.signed_attrs)
        except SignatureFormatError as exc:
            error = error or exc
            continue
        if counter_type is SignatureType.REPOSITORY:
            out.append(_countersignature(primary, counter, refs, first_value))
    return tuple(out), error
