"""The nuseal exception hierarchy.

Verification never raises for a bad package (it returns a result with issues); these exceptions are
for malformed input at parse time, usage errors and I/O failures. Every exception that carries a
NuGet code exposes it as ``code`` so callers never branch on message text.
"""

from __future__ import annotations

from nuseal.codes import NuCode

__all__ = [
    "ConfigError",
    "NetworkError",
    "NusealError",
    "PackageFormatError",
    "RestoreError",
    "SignatureFormatError",
    "SigningCertificateError",
    "SigningError",
    "TimestampError",
    "UsageError",
]


class NusealError(Exception):
    """Root of every error nuseal raises on purpose.

    ``code`` is NuGet's ``NU3xxx`` code when the problem has one, else ``None``.
    """

    def __init__(self, message: str, *, code: NuCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}" if self.code else self.message


class UsageError(NusealError):
    """The caller asked for something impossible (bad option, missing file)."""


class ConfigError(NusealError):
    """A configuration file (nuget.config, feed settings) is invalid."""


class PackageFormatError(NusealError):
    """The .nupkg is not a readable package: bad ZIP framing, bad signature entry, bad nuspec.

    Codes: NU3005 for the signature entry, NU3008 where NuGet would report an integrity failure,
    ``None`` for plain ZIP damage that NuGet reports as a corrupt package.
    """


class SignatureFormatError(NusealError):
    """The ``.signature.p7s`` content cannot be read as a NuGet signature (NU3000/3003/3007/3009/3011...)."""


class SigningCertificateError(SignatureFormatError):
    """A signer's ESS signing-certificate(-v2) attribute breaks NuGet's rules (NC ``SignatureUtility.GetCertificates``).

    Raised without a code by :func:`nuseal.signature.attributes.check_signing_certificate`: the caller reports it
    with the code of the signature it was checking (NU3011 primary, NU3031 repository countersignature, NU3021
    timestamp).
    """


class TimestampError(NusealError):
    """An RFC 3161 request or response failed (NU3019/3020/3021/3026...)."""


class SigningError(NusealError):
    """Signing refused or failed (NU3001/3006/3013/3014/3017/3018/3039...)."""


class NetworkError(NusealError):
    """An HTTP fetch (revocation data, TSA, feed) failed or timed out."""


class RestoreError(NusealError):
    """A restore or audit could not go on: nothing resolves (NU1101/NU1102/NU1103), a conflict (NU1107),
    the lock file no longer matches (NU1004, NU1403), a source failed (NU1301), or a package was refused by
    the gate before extraction (its NU3xxx code, or ``rule_id`` for a scan finding).

    ``package`` is ``"<id> <version>"`` when one package is concerned, ``source`` the feed it came from.
    """

    def __init__(
        self,
        message: str,
        *,
        code: NuCode | None = None,
        package: str | None = None,
        source: str | None = None,
        rule_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.package = package
        self.source = source
        self.rule_id = rule_id
