"""NuGet's own requirements on signing and timestamping certificates, checked before any chain is built.

Source: NuGet.Client ``Signing/Utility/CertificateUtility.cs`` (``IsSignatureAlgorithmSupported``,
``IsCertificatePublicKeyValid``, ``HasLifetimeSigningEku``, ``IsCertificateValidityPeriodInTheFuture``) as
called by ``VerificationUtility.ValidateSigningCertificate`` (signatures) and ``Timestamp.Verify``
(timestamps); ``../shared/NUGET-SIGNING.md`` §3.4 and §3.6. Every failing check is reported, in NuGet's
order; the caller decides whether they are errors (``allowIllegal``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from nuseal.codes import NuCode
from nuseal.errors import UsageError
from nuseal.signature import oids
from nuseal.trust.certificate import CertificatePurpose

__all__ = [
    "RSA_MIN_KEY_BITS",
    "SUPPORTED_CERTIFICATE_SIGNATURE_ALGORITHMS",
    "RequirementFailure",
    "RequirementKind",
    "check_certificate_requirements",
    "requirement_code",
]

#: ``SigningSpecifications.V1.RSAPublicKeyMinLength``: the smallest RSA modulus NuGet accepts (bits).
RSA_MIN_KEY_BITS = 2048

#: The certificate ``signatureAlgorithm`` values NuGet accepts (how the issuer signed the certificate).
SUPPORTED_CERTIFICATE_SIGNATURE_ALGORITHMS = frozenset(
    {oids.SHA256_WITH_RSA, oids.SHA384_WITH_RSA, oids.SHA512_WITH_RSA}
)


class RequirementKind(enum.Enum):
    """Which of NuGet's certificate requirements failed."""

    UNSUPPORTED_SIGNATURE_ALGORITHM = "unsupported-signature-algorithm"
    """The certificate is not signed with sha256/384/512WithRSAEncryption (NU3013 / NU3022)."""
    WEAK_PUBLIC_KEY = "weak-public-key"
    """The public key is not RSA, or RSA shorter than 2048 bits (NU3014 / NU3023)."""
    LIFETIME_SIGNING_EKU = "lifetime-signing-eku"
    """The certificate carries the lifetime-signing EKU 1.3.6.1.4.1.311.10.3.13 (NU3015; signing only)."""
    NOT_YET_VALID = "not-yet-valid"
    """``now < notBefore`` (NU3017 / NU3025)."""


_CODES: dict[tuple[RequirementKind, CertificatePurpose], NuCode] = {
    (RequirementKind.UNSUPPORTED_SIGNATURE_ALGORITHM, CertificatePurpose.CODE_SIGNING): NuCode.NU3013,
    (RequirementKind.WEAK_PUBLIC_KEY, CertificatePurpose.CODE_SIGNING): NuCode.NU3014,
    (RequirementKind.LIFETIME_SIGNING_EKU, CertificatePurpose.CODE_SIGNING): NuCode.NU3015,
    (RequirementKind.NOT_YET_VALID, CertificatePurpose.CODE_SIGNING): NuCode.NU3017,
    (RequirementKind.UNSUPPORTED_SIGNATURE_ALGORITHM, CertificatePurpose.TIMESTAMPING): NuCode.NU3022,
    (RequirementKind.WEAK_PUBLIC_KEY, CertificatePurpose.TIMESTAMPING): NuCode.NU3023,
    (RequirementKind.NOT_YET_VALID, CertificatePurpose.TIMESTAMPING): NuCode.NU3025,
}

# NuGet's wording (NC ``NuGetLogCode`` documentation / ``Strings.resx``).
_MESSAGES: dict[tuple[RequirementKind, CertificatePurpose], str] = {
    (RequirementKind.UNSUPPORTED_SIGNATURE_ALGORITHM, CertificatePurpose.CODE_SIGNING): (
        "The signing certificate has an unsupported signature algorithm."
    ),
    (RequirementKind.WEAK_PUBLIC_KEY, CertificatePurpose.CODE_SIGNING): (
        "The signing certificate does not meet a minimum public key length requirement."
    ),
    (RequirementKind.LIFETIME_SIGNING_EKU, CertificatePurpose.CODE_SIGNING): (
        "Certificates with lifetime signer EKU are not supported."
    ),
    (RequirementKind.NOT_YET_VALID, CertificatePurpose.CODE_SIGNING): "The signing certificate is not yet valid.",
    (RequirementKind.UNSUPPORTED_SIGNATURE_ALGORITHM, CertificatePurpose.TIMESTAMPING): (
        "The timestamp certificate has an unsupported signature algorithm."
    ),
    (RequirementKind.WEAK_PUBLIC_KEY, CertificatePurpose.TIMESTAMPING): (
        "The timestamp's certificate does not meet a minimum public key length requirement."
    ),
    (RequirementKind.NOT_YET_VALID, CertificatePurpose.TIMESTAMPING): (
        "The timestamp signing certificate is not yet valid."
    ),
}


def requirement_code(kind: RequirementKind, purpose: CertificatePurpose) -> NuCode:
    """NuGet's code for ``kind`` on a certificate used for ``purpose``.

    Raises:
        UsageError: ``LIFETIME_SIGNING_EKU`` with ``TIMESTAMPING`` (NuGet does not check it for timestamps).
    """
    try:
        return _CODES[(kind, purpose)]
    except KeyError:
        raise UsageError(f"NuGet has no {kind.value} requirement for {purpose.name} certificates") from None


@dataclass(frozen=True, slots=True)
class RequirementFailure:
    """One failed requirement: what failed, for which purpose, NuGet's message and detail."""

    kind: RequirementKind
    purpose: CertificatePurpose
    message: str
    detail: str

    @property
    def code(self) -> NuCode:
        """NuGet's code (NU3013/3014/3015/3017 for signing, NU3022/3023/3025 for timestamping)."""
        return requirement_code(self.kind, self.purpose)


def _key_description(cert: x509.Certificate) -> tuple[bool, str]:
    try:
        key = cert.public_key()
    except (ValueError, TypeError) as exc:  # unsupported or malformed key
        return False, f"the public key cannot be read ({exc})"
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size >= RSA_MIN_KEY_BITS:
            return True, f"RSA {key.key_size} bits"
        return False, f"RSA {key.key_size} bits, at least {RSA_MIN_KEY_BITS} required"
    return False, f"{type(key).__name__.removeprefix('_')} key; NuGet requires RSA of at least {RSA_MIN_KEY_BITS} bits"


def _has_lifetime_signing_eku(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return any(usage.dotted_string == oids.LIFETIME_SIGNING_EKU for usage in eku)


def check_certificate_requirements(
    cert: x509.Certificate, *, purpose: CertificatePurpose, now: datetime
) -> list[RequirementFailure]:
    """NuGet's pre-chain checks on a signing (``CODE_SIGNING``) or timestamp (``TIMESTAMPING``) certificate.

    In NuGet's order: the certificate's own ``signatureAlgorithm`` is sha256/384/512WithRSAEncryption; the
    key is RSA >= 2048 bits (any EC key fails); no lifetime-signing EKU (signing certificates only); not
    valid only in the future (``now < notBefore``, strict). ``now`` must be timezone-aware; it is the
    verification's current time, not the timestamp (NuGet uses ``DateTime.Now``).

    Returns:
        Every failure, empty when the certificate meets all requirements.

    Raises:
        UsageError: ``now`` is naive.
    """
    if now.tzinfo is None:
        raise UsageError("check_certificate_requirements needs a timezone-aware 'now'")
    failures: list[RequirementFailure] = []

    def fail(kind: RequirementKind, detail: str) -> None:
        failures.append(RequirementFailure(kind, purpose, _MESSAGES[(kind, purpose)], detail))

    algorithm = cert.signature_algorithm_oid.dotted_string
    if algorithm not in SUPPORTED_CERTIFICATE_SIGNATURE_ALGORITHMS:
        name = getattr(cert.signature_algorithm_oid, "_name", algorithm)
        fail(RequirementKind.UNSUPPORTED_SIGNATURE_ALGORITHM, f"signature algorithm {name} ({algorithm})")
    key_ok, key_detail = _key_description(cert)
    if not key_ok:
        fail(RequirementKind.WEAK_PUBLIC_KEY, key_detail)
    if purpose is CertificatePurpose.CODE_SIGNING and _has_lifetime_signing_eku(cert):
        fail(RequirementKind.LIFETIME_SIGNING_EKU, f"EKU {oids.LIFETIME_SIGNING_EKU} present")
    if now < cert.not_valid_before_utc:
        fail(RequirementKind.NOT_YET_VALID, f"valid from {cert.not_valid_before_utc.isoformat()}")
    return failures
