"""Verification results: the package verdict and typed facts per signature and timestamp.

Statuses and flags are NuGet's (NC ``Signing/Verification/SignatureVerificationStatus.cs``,
``SignatureVerificationStatusFlags.cs``, ``VerificationUtility.GetSignatureVerificationStatus``).

Per signature (:class:`SignatureInfo`) and per timestamp (:class:`TimestampInfo`) the result separates three facts,
as pyHanko's ``SignatureStatus`` does (``intact``, ``valid``, ``trusted``):

* ``intact``: the CMS signature value verifies with the signer certificate's key and the signed content matches (the
  package hash for the primary signature, the message imprint for a timestamp);
* ``valid``: intact, and the certificate rules pass: NuGet's certificate requirements (NU3013-NU3017, NU3022-NU3025),
  the chain builds without errors other than an untrusted root, the certificate is not revoked, its revocation
  status is known unless the policy accepts unknown revocation, and the signer was within its validity at the time
  the signature's timestamp proves (at ``now`` without one);
* ``trusted``: valid, and the chain ends in a root of the trust store (or, for a signature, a trusted signer entry
  allows its untrusted root: ``allowUntrustedRoot``).

Consumers branch on these fields and on :class:`~nuseal.codes.NuCode` values, never on message text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from nuseal.codes import Issue, Level, NuCode
from nuseal.package.structure import StructureCode, StructureProblem

__all__ = [
    "CertificateIdentity",
    "Placement",
    "RevocationStatus",
    "SignatureInfo",
    "SignatureKind",
    "Status",
    "StatusFlags",
    "StructureCode",
    "StructureProblem",
    "TimestampInfo",
    "VerificationResult",
    "status_from_flags",
]


class Status(enum.IntEnum):
    """NuGet's ``SignatureVerificationStatus``; lower is worse (the merge takes the minimum)."""

    UNKNOWN = 0
    SUSPECT = 1
    DISALLOWED = 2
    VALID = 3


class StatusFlags(enum.IntFlag):
    """NuGet's ``SignatureVerificationStatusFlags``."""

    NO_ERRORS = 0
    NO_SIGNATURE = 1 << 0
    NO_CERTIFICATE = 1 << 1
    MULTIPLE_SIGNATURES = 1 << 2
    SIGNATURE_CHECK_FAILED = 1 << 3
    SIGNATURE_ALGORITHM_UNSUPPORTED = 1 << 4
    CERTIFICATE_PUBLIC_KEY_INVALID = 1 << 5
    HAS_LIFETIME_SIGNING_EKU = 1 << 6
    CERTIFICATE_VALIDITY_IN_THE_FUTURE = 1 << 7
    CERTIFICATE_EXPIRED = 1 << 8
    HASH_ALGORITHM_UNSUPPORTED = 1 << 9
    MESSAGE_IMPRINT_UNSUPPORTED_ALGORITHM = 1 << 10
    INTEGRITY_CHECK_FAILED = 1 << 11
    CHAIN_BUILDING_FAILURE = 1 << 12
    UNKNOWN_REVOCATION = 1 << 13
    CERTIFICATE_REVOKED = 1 << 14
    UNTRUSTED_ROOT = 1 << 15
    GENERALIZED_TIME_OUTSIDE_VALIDITY = 1 << 16
    NO_VALID_TIMESTAMP = 1 << 17
    MULTIPLE_TIMESTAMPS = 1 << 18
    UNKNOWN_BUILD_STATUS = 1 << 19


_SUSPECT = StatusFlags.INTEGRITY_CHECK_FAILED | StatusFlags.CERTIFICATE_REVOKED
_ILLEGAL = (
    StatusFlags.NO_CERTIFICATE
    | StatusFlags.MULTIPLE_SIGNATURES
    | StatusFlags.SIGNATURE_CHECK_FAILED
    | StatusFlags.SIGNATURE_ALGORITHM_UNSUPPORTED
    | StatusFlags.CERTIFICATE_PUBLIC_KEY_INVALID
    | StatusFlags.HAS_LIFETIME_SIGNING_EKU
    | StatusFlags.CERTIFICATE_VALIDITY_IN_THE_FUTURE
    | StatusFlags.HASH_ALGORITHM_UNSUPPORTED
    | StatusFlags.MESSAGE_IMPRINT_UNSUPPORTED_ALGORITHM
)
_UNTRUSTED = (
    StatusFlags.NO_SIGNATURE
    | StatusFlags.CERTIFICATE_EXPIRED
    | StatusFlags.CHAIN_BUILDING_FAILURE
    | StatusFlags.UNKNOWN_REVOCATION
    | StatusFlags.UNTRUSTED_ROOT
    | StatusFlags.GENERALIZED_TIME_OUTSIDE_VALIDITY
    | StatusFlags.UNKNOWN_BUILD_STATUS
)


def status_from_flags(flags: StatusFlags) -> Status:
    """NC ``VerificationUtility.GetSignatureVerificationStatus``."""
    if flags == StatusFlags.NO_ERRORS:
        return Status.VALID
    if flags & _SUSPECT:
        return Status.SUSPECT
    if not flags & ~(_ILLEGAL | _UNTRUSTED | StatusFlags.NO_VALID_TIMESTAMP | StatusFlags.MULTIPLE_TIMESTAMPS):
        return Status.DISALLOWED
    return Status.UNKNOWN


class SignatureKind(enum.StrEnum):
    """The signature type NuGet reads from the commitment-type-indication attribute (NUGET-SIGNING.md §3)."""

    AUTHOR = "author"
    REPOSITORY = "repository"
    UNKNOWN = "unknown"


class Placement(enum.StrEnum):
    """Where a signature sits: the primary signature, or a countersignature on it. The values are the strings
    ``SignatureInfo.placement`` held before it was typed, so ``placement == "primary"`` still holds."""

    PRIMARY = "primary"
    COUNTERSIGNATURE = "countersignature"


class RevocationStatus(enum.StrEnum):
    """The revocation status of a certificate chain as the chain builder found it.

    ``GOOD``: every certificate's status was found and none is revoked; ``REVOKED``: one is revoked (``.NET``
    ``Revoked``); ``UNKNOWN``: a status could not be found (``OfflineRevocation`` / ``RevocationStatusUnknown``);
    ``NOT_CHECKED``: no chain was built for it (the signature failed earlier, or the policy did not judge it).
    """

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    NOT_CHECKED = "not-checked"


@dataclass(frozen=True)
class CertificateIdentity:
    """Who a certificate names and which certificate it is.

    ``subject``/``issuer`` in .NET's ``X500DistinguishedName.Name`` form (as NuGet prints them);
    ``sha256_fingerprint``: upper-case hex SHA-256 of the DER; ``serial_number``: the serial as an integer;
    ``not_before``/``not_after``: the validity period (UTC); ``self_issued``: subject equals issuer; ``der``: the
    certificate's bytes (load with ``cryptography.x509.load_der_x509_certificate`` when the object is needed).
    """

    subject: str
    issuer: str
    sha256_fingerprint: str
    serial_number: int
    not_before: datetime
    not_after: datetime
    self_issued: bool
    der: bytes = field(repr=False)


@dataclass(frozen=True)
class TimestampInfo:
    """One RFC 3161 timestamp on a signature (NUGET-SIGNING.md §3.4): its time, its TSA and what was established.

    ``gen_time``: the token's ``TSTInfo.genTime`` (UTC); ``authority``: the TSA's signing certificate (``None``
    when the token carries none, NU3020). ``checked``: the engine judged this timestamp (NuGet judges only the
    first, and only when the policy looks at its signature); when ``False``, ``valid`` and ``trusted`` are
    ``False`` and ``revocation`` is ``NOT_CHECKED``, while ``intact`` is still established. ``issues``: the
    findings about this timestamp, each with its NU code. ``certificates``: the DER of the token's own certificate
    set (the TSA's chain as the token carries it), in the token's order.
    """

    gen_time: datetime
    authority: CertificateIdentity | None
    intact: bool
    valid: bool
    trusted: bool
    checked: bool
    revocation: RevocationStatus
    issues: tuple[Issue, ...] = ()
    certificates: tuple[bytes, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class SignatureInfo:
    """One signature (the primary signature or its repository countersignature): what a report shows and the
    typed facts consumers branch on (module docstring for ``intact``/``valid``/``trusted``).

    ``placement``/``kind``: enums (``type`` keeps NuGet's spelling, "Author"/"Repository"/"Unknown", for reports).
    ``signer``: the signing certificate's identity (``None`` when the signature has none, NU3010). ``checked``:
    the engine judged this signature's certificate under the policy (e.g. a repository countersignature under a
    policy that does not look at it is not); when ``False``, ``valid`` and ``trusted`` are ``False`` and
    ``revocation`` is ``NOT_CHECKED``. ``issues``: the findings about this signature (its timestamps' are on
    :attr:`timestamp_details`), each with its NU code. ``certificates``: the DER of the signature's certificate set
    (for a countersignature, the primary's, which NuGet uses to build its chain). ``other_countersignatures``
    (primary only): countersignature values that are not readable repository countersignatures (author
    countersignatures, unknown types, undecodable); NuGet's client ignores them, nuget.org refuses them.
    ``timestamps`` keeps the earlier ``(genTime, TSA subject)`` pairs; :attr:`timestamp_details` has the facts.
    """

    placement: Placement
    type: str  # "Author" | "Repository" | "Unknown" (NuGet's spelling)
    signer_subject: str | None
    signer_issuer: str | None
    fingerprints: dict[str, str]  # "SHA256" -> upper hex
    not_before: datetime | None
    not_after: datetime | None
    timestamps: tuple[tuple[datetime, str | None], ...]  # (genTime, TSA subject)
    hash_algorithm: str | None = None
    v3_service_index_url: str | None = None
    package_owners: tuple[str, ...] | None = None
    kind: SignatureKind = SignatureKind.UNKNOWN
    signer: CertificateIdentity | None = None
    intact: bool = False
    valid: bool = False
    trusted: bool = False
    checked: bool = False
    revocation: RevocationStatus = RevocationStatus.NOT_CHECKED
    issues: tuple[Issue, ...] = ()
    timestamp_details: tuple[TimestampInfo, ...] = ()
    certificates: tuple[bytes, ...] = field(default=(), repr=False)
    other_countersignatures: int = 0

    @property
    def codes(self) -> frozenset[NuCode]:
        """The NU codes of this signature's issues and of its timestamps' issues."""
        found = {i.code for i in self.issues if i.code is not None}
        found.update(i.code for t in self.timestamp_details for i in t.issues if i.code is not None)
        return frozenset(found)


@dataclass(frozen=True)
class VerificationResult:
    """The verdict for one package.

    ``valid`` is NuGet's ``VerifySignaturesResult.Valid``. ``issues`` keeps NuGet's order and levels (info
    lines included); ``errors``/``warnings`` filter them. ``structure`` holds nuseal's container hardening
    findings as typed values (:class:`StructureProblem`, with a :class:`StructureCode`); each is also in ``issues``
    as an error without a NU code, for reports. ``signatures``: the primary signature first, then its repository
    countersignature if any (empty when the package is unsigned or its signature cannot be read).
    """

    source: str | None
    policy: str
    valid: bool
    is_signed: bool
    issues: tuple[Issue, ...]
    package_id: str | None = None
    package_version: str | None = None
    content_hash: str | None = None
    signatures: tuple[SignatureInfo, ...] = field(default=())
    structure: tuple[StructureProblem, ...] = field(default=())

    @property
    def primary(self) -> SignatureInfo | None:
        """The primary signature's facts (``None`` when unsigned or unreadable)."""
        return next((s for s in self.signatures if s.placement is Placement.PRIMARY), None)

    @property
    def repository_countersignature(self) -> SignatureInfo | None:
        """The repository countersignature's facts, if the package has one."""
        return next((s for s in self.signatures if s.placement is Placement.COUNTERSIGNATURE), None)

    @property
    def structure_codes(self) -> frozenset[StructureCode]:
        """The distinct container-hardening codes."""
        return frozenset(p.code for p in self.structure)

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.level is Level.ERROR)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.level is Level.WARNING)

    @property
    def error_codes(self) -> frozenset[str]:
        """The distinct NU codes at error level (for comparisons with NuGet)."""
        return frozenset(i.code.value for i in self.errors if i.code is not None)
