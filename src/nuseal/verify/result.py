"""Verification results: per-signature summaries and the package verdict.

Statuses and flags are NuGet's (NC ``Signing/Verification/SignatureVerificationStatus.cs``,
``SignatureVerificationStatusFlags.cs``, ``VerificationUtility.GetSignatureVerificationStatus``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from nuseal.codes import Issue, Level

__all__ = ["SignatureInfo", "Status", "StatusFlags", "VerificationResult", "status_from_flags"]


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


@dataclass(frozen=True)
class SignatureInfo:
    """What a report shows about one signature (primary or repository countersignature)."""

    placement: str  # "primary" | "countersignature"
    type: str  # "Author" | "Repository" | "Unknown"
    signer_subject: str | None
    signer_issuer: str | None
    fingerprints: dict[str, str]  # "SHA256" -> upper hex
    not_before: datetime | None
    not_after: datetime | None
    timestamps: tuple[tuple[datetime, str | None], ...]  # (genTime, TSA subject)
    hash_algorithm: str | None = None
    v3_service_index_url: str | None = None
    package_owners: tuple[str, ...] | None = None


@dataclass(frozen=True)
class VerificationResult:
    """The verdict for one package.

    ``valid`` is NuGet's ``VerifySignaturesResult.Valid``. ``issues`` keeps NuGet's order and levels (info
    lines included); ``errors``/``warnings`` filter them. ``structure_problems`` are nuseal's container
    hardening findings, also present in ``issues`` as errors without a code.
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
