"""Signing packages: author signatures, repository primary signatures and repository countersignatures.

Rules from NuGet.Client ``SigningUtility.SignAsync`` / ``Verify`` (NUGET-SIGNING.md §2.2, §3, §1.4): the package
hash is taken over the whole unsigned .nupkg; an existing signature is refused (NU3001) unless ``overwrite``,
then removed first; ZIP64 is refused (NU3006); the signing certificate must meet NuGet's requirements
(NU3013/NU3014/NU3015/NU3017 via :mod:`nuseal.trust`), carry the code-signing EKU and be within its validity;
no timestamper is a warning (NU3002). The signature entry is appended as NuGet writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.x509 import ExtendedKeyUsage, ExtensionNotFound
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import PackageFormatError, SigningError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive, append_signature
from nuseal.signature.attributes import SignatureType
from nuseal.signature.builder import Timestamper, add_repository_countersignature, create_primary_signature
from nuseal.signature.model import PrimarySignature
from nuseal.signature.signer import FileSigner, Signer
from nuseal.timestamp.client import TimestampClient
from nuseal.trust import CertificatePurpose, check_certificate_requirements

__all__ = ["FileSigner", "SignResult", "Signer", "repository_sign_package", "sign_package"]

_NO_TIMESTAMPER = (
    "Timestamper is not specified. Signed package will not be timestamped. "
    "To specify a timestamp server use the timestamper option."
)


@dataclass(frozen=True)
class SignResult:
    """The signed package bytes and the warnings NuGet would print (NU3002)."""

    data: bytes
    warnings: list[Issue] = field(default_factory=list)


def _check_signer(signer: Signer, now: datetime) -> None:
    cert = signer.certificate
    failures = check_certificate_requirements(cert, purpose=CertificatePurpose.CODE_SIGNING, now=now)
    if failures:
        raise SigningError(failures[0].message, code=failures[0].code)
    if now >= cert.not_valid_after_utc:
        raise SigningError(
            f"The signing certificate has expired ({cert.not_valid_after_utc:%Y-%m-%d}).", code=NuCode.NU3018
        )
    try:
        ekus = cert.extensions.get_extension_for_class(ExtendedKeyUsage).value
    except ExtensionNotFound:
        return  # no EKU extension: valid for any purpose
    if ExtendedKeyUsageOID.CODE_SIGNING not in ekus and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in ekus:
        raise SigningError(
            "The signing certificate is not valid for code signing (no code-signing EKU).", code=NuCode.NU3018
        )


def _timestamper(url: str | None, algorithm: HashAlgorithm, now: datetime) -> Timestamper | None:
    if url is None:
        return None
    client = TimestampClient(url, hash_algorithm=algorithm)
    return lambda value: client.timestamp(value, now=now)


def _open(data: bytes) -> PackageArchive:
    try:
        archive = PackageArchive.from_bytes(data)
    except PackageFormatError as exc:
        raise SigningError(f"cannot sign: {exc.message}") from exc
    if archive.uses_zip64:
        raise SigningError("Signed Zip64 packages are not supported.", code=NuCode.NU3006)
    return archive


def sign_package(
    data: bytes,
    signer: Signer,
    *,
    timestamper_url: str | None,
    now: datetime,
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    timestamp_hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    overwrite: bool = False,
) -> SignResult:
    """Author-sign the .nupkg ``data``.

    Raises:
        SigningError: NU3001 already signed and not ``overwrite``; NU3006 ZIP64; certificate problems
            (NU3013/NU3014/NU3015/NU3017, expired or no code-signing EKU as NU3018); timestamp failures surface as
            :class:`~nuseal.errors.TimestampError` (NU3019/NU3026/...).
    """
    archive = _open(data)
    if archive.is_signed:
        if not overwrite:
            raise SigningError("The package is already signed.", code=NuCode.NU3001)
        archive = _open(archive.without_signature())
    _check_signer(signer, now)
    warnings = [] if timestamper_url else [Issue(NuCode.NU3002, Level.WARNING, _NO_TIMESTAMPER)]
    signature = create_primary_signature(
        package_hash=hash_algorithm.digest(archive.data),
        hash_algorithm=hash_algorithm,
        signer=signer,
        signature_type=SignatureType.AUTHOR,
        signing_time=now,
        timestamper=_timestamper(timestamper_url, timestamp_hash_algorithm, now),
    )
    return SignResult(append_signature(archive.data, signature, when=now), warnings)


def repository_sign_package(
    data: bytes,
    signer: Signer,
    *,
    v3_service_index_url: str,
    owners: Sequence[str] | None,
    timestamper_url: str | None,
    now: datetime,
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    timestamp_hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
) -> SignResult:
    """Repository-sign ``data``: a repository primary signature on an unsigned package, a repository
    countersignature on an author-signed one (the author signature is kept byte for byte).

    Raises:
        SigningError: NU3033 the package already has a repository primary signature; NU3032 it already has a
            repository countersignature; the certificate problems of :func:`sign_package`.
    """
    archive = _open(data)
    _check_signer(signer, now)
    warnings = [] if timestamper_url else [Issue(NuCode.NU3002, Level.WARNING, _NO_TIMESTAMPER)]
    stamp = _timestamper(timestamper_url, timestamp_hash_algorithm, now)
    if not archive.is_signed:
        signature = create_primary_signature(
            package_hash=hash_algorithm.digest(archive.data),
            hash_algorithm=hash_algorithm,
            signer=signer,
            signature_type=SignatureType.REPOSITORY,
            signing_time=now,
            timestamper=stamp,
            v3_service_index_url=v3_service_index_url,
            owners=owners,
        )
        return SignResult(append_signature(archive.data, signature, when=now), warnings)
    existing = archive.read_signature()
    PrimarySignature.load(existing)  # refuse what NuGet could not read
    countersigned = add_repository_countersignature(
        existing,
        hash_algorithm=hash_algorithm,
        signer=signer,
        signing_time=now,
        v3_service_index_url=v3_service_index_url,
        owners=owners,
        timestamper=stamp,
    )
    return SignResult(append_signature(archive.without_signature(), countersigned, when=now), warnings)
