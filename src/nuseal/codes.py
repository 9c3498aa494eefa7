"""NuGet's ``NU3xxx`` log codes, issue levels and the :class:`Issue` record.

Every layer reports problems with NuGet's own codes so users can look them up in NuGet's
documentation (``docs/reference/errors-and-warnings/NU30xx.md``). Source of the list:
NuGet.Client ``src/NuGet.Core/NuGet.Common/Errors/NuGetLogCode.cs``.

This module sits below every layer (``nuseal.package`` raises NU3005/NU3008 too), which is why
it is not inside ``nuseal.trust`` as ``../shared/DESIGN.md`` suggests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Issue", "Level", "NuCode"]


class NuCode(enum.StrEnum):
    """NuGet log codes (``NuGetLogCode``): the signing codes (NU3xxx) and the restore codes (NU1xxx)."""

    # Restore (NuGet.Client NuGetLogCode.cs; docs/reference/errors-and-warnings/NU1xxx.md)
    NU1004 = "NU1004"  # locked mode: the project's inputs no longer match the lock file
    NU1101 = "NU1101"  # no package with this id on any source
    NU1102 = "NU1102"  # no version in the requested range on any source
    NU1103 = "NU1103"  # only prerelease versions in a range that asks for stable
    NU1107 = "NU1107"  # version conflict between dependencies
    NU1108 = "NU1108"  # dependency cycle
    NU1301 = "NU1301"  # a source could not be read (network, HTTP error)
    NU1403 = "NU1403"  # a downloaded package's content hash differs from the lock file's
    NU1603 = "NU1603"  # the lower bound was not found; a higher version was resolved
    NU1605 = "NU1605"  # detected package downgrade
    NU1608 = "NU1608"  # resolved version outside a dependency's range

    NU3000 = "NU3000"  # generic signature error
    NU3001 = "NU3001"  # invalid input to sign
    NU3002 = "NU3002"  # no timestamper given
    NU3003 = "NU3003"  # package signature is invalid (CMS decode)
    NU3004 = "NU3004"  # package is not signed
    NU3005 = "NU3005"  # invalid package signature file entry
    NU3006 = "NU3006"  # signed ZIP64 not supported
    NU3007 = "NU3007"  # signature format version not supported
    NU3008 = "NU3008"  # package integrity check failed
    NU3009 = "NU3009"  # not exactly one primary signature
    NU3010 = "NU3010"  # primary signature has no signing certificate
    NU3011 = "NU3011"  # primary signature is invalid
    NU3012 = "NU3012"  # primary signature validation failed
    NU3013 = "NU3013"  # signing cert: unsupported signature algorithm
    NU3014 = "NU3014"  # signing cert: public key not RSA >= 2048
    NU3015 = "NU3015"  # lifetime signing EKU
    NU3016 = "NU3016"  # package hash algorithm unsupported
    NU3017 = "NU3017"  # signing cert not yet valid
    NU3018 = "NU3018"  # chain building failed for the primary signature
    NU3019 = "NU3019"  # timestamp integrity check failed
    NU3020 = "NU3020"  # timestamp has no signing certificate
    NU3021 = "NU3021"  # timestamp signature validation failed
    NU3022 = "NU3022"  # timestamp cert: unsupported signature algorithm
    NU3023 = "NU3023"  # timestamp cert: public key not RSA >= 2048
    NU3024 = "NU3024"  # timestamp: unsupported digest algorithm
    NU3025 = "NU3025"  # timestamp cert not yet valid
    NU3026 = "NU3026"  # timestamp response nonce mismatch
    NU3027 = "NU3027"  # signature should be timestamped
    NU3028 = "NU3028"  # chain building failed for the timestamp
    NU3029 = "NU3029"  # timestamp signature invalid (no certificates)
    NU3030 = "NU3030"  # timestamp imprint hash algorithm unsupported
    NU3031 = "NU3031"  # repository countersignature is invalid
    NU3032 = "NU3032"  # multiple repository countersignatures
    NU3033 = "NU3033"  # repository primary signature with a repository countersignature
    NU3034 = "NU3034"  # certificate not in the allow list
    NU3035 = "NU3035"  # chain building failed for the repository countersignature
    NU3036 = "NU3036"  # timestamp genTime outside the TSA cert's validity
    NU3037 = "NU3037"  # signature validity period has expired
    NU3038 = "NU3038"  # repository countersignature required but missing
    NU3039 = "NU3039"  # package would require ZIP64
    NU3040 = "NU3040"  # conflicting allowUntrustedRoot in trustedSigners
    NU3041 = "NU3041"  # plugin download with unsigned packages disallowed
    NU3042 = "NU3042"  # root missing from the Linux/macOS trust bundle
    NU3043 = "NU3043"  # invalid --certificate-fingerprint value


class Level(enum.StrEnum):
    """How serious an issue is; NuGet's ``LogLevel`` subset used by signature logs."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding: NuGet code, level and a human-readable message (NuGet's wording where it has one).

    ``code`` is ``None`` for findings NuGet has no code for (nuseal's own container hardening, such as
    a path-traversal entry name in an otherwise intact package).
    """

    code: NuCode | None
    level: Level
    message: str

    def __str__(self) -> str:
        code = self.code.value if self.code else "nuseal"
        return f"{self.level.value} {code}: {self.message}"

    def __reduce__(self) -> tuple[type[Issue], tuple[NuCode | None, Level, str]]:
        # A slotted dataclass pickles through dataclasses' generic __getstate__, which calls fields() on every
        # instance: verification results carry ~15 issues and cross a process boundary under --jobs.
        return (Issue, (self.code, self.level, self.message))
