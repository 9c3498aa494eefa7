"""Signing packages: author signatures, repository primary signatures and repository countersignatures.

NuGet.Client ``SigningUtility.SignAsync`` / ``Verify`` (NUGET-SIGNING.md §2.2, §3, §1.4), in its order:

1. the signing certificate's requirements (NU3013/NU3014/NU3015/NU3017) and its chain at *now*
   (NU3018; :mod:`nuseal.signing.checks`);
2. ZIP64 (NU3006), more than 0xFFFD entries (NU3039);
3. repository signing of a package whose primary is a repository signature (NU3033) or that already has a
   repository countersignature (NU3032); an author-signed package gets a countersignature;
4. an already signed package without ``overwrite`` (NU3001); with it, the old signature is removed first;
5. the package hash over the whole unsigned .nupkg, the CMS, the timestamp (its response checks and the
   TSA chain, NU3028), and ``.signature.p7s`` appended as NuGet writes it.

No timestamper is a warning (NU3002). Warnings NuGet would log (NU3002, NU3018/NU3028 revocation unknown,
NU3042) come back in :attr:`SignResult.warnings`; what was written (kind, placement, signer certificate and chain,
the timestamp's time and TSA) in :attr:`SignResult.signature`, so callers record it without parsing the package
they just signed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import PackageFormatError, SignatureFormatError, SigningError, TimestampError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive, append_signature
from nuseal.package.archive import MAX_ENTRIES_TO_SIGN
from nuseal.signature.attributes import SignatureType
from nuseal.signature.builder import Signer, Timestamper, add_repository_countersignature, create_primary_signature
from nuseal.signature.model import PrimarySignature
from nuseal.signing.checks import (
    CheckedChain,
    SigningTrust,
    check_signing_certificate,
    check_timestamp_certificate,
)
from nuseal.signing.signer import FileSigner
from nuseal.timestamp import Timestamp
from nuseal.timestamp.client import TimestampClient, with_certificates
from nuseal.verify.result import Placement, SignatureKind

__all__ = [
    "FileSigner",
    "SignResult",
    "SignedSignature",
    "Signer",
    "SigningTrust",
    "check_signing_certificate",
    "check_timestamp_certificate",
    "default_trust",
    "repository_sign_package",
    "sign_package",
]

_NO_TIMESTAMPER = (
    "Timestamper is not specified. Signed package will not be timestamped. "
    "To specify a timestamp server use the timestamper option."
)
_DEFAULT_TRUST: list[SigningTrust] = []
#: Timestamp clients kept per (URL, imprint algorithm), so that connections and TLS set-up are reused.
MAX_CACHED_TIMESTAMP_CLIENTS = 16
_CLIENTS: dict[tuple[str, HashAlgorithm], TimestampClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _client_for(url: str, algorithm: HashAlgorithm) -> TimestampClient:
    with _CLIENTS_LOCK:
        client = _CLIENTS.pop((url, algorithm), None) or TimestampClient(url, hash_algorithm=algorithm)
        _CLIENTS[(url, algorithm)] = client  # most recently used last
        while len(_CLIENTS) > MAX_CACHED_TIMESTAMP_CLIENTS:
            _CLIENTS.pop(next(iter(_CLIENTS))).close()
        return client


@dataclass(frozen=True)
class SignedSignature:
    """The signature a signing call just wrote, as the signing code knows it (no parse of the result).

    ``kind``: author or repository; ``placement``: the primary signature or a countersignature on it;
    ``certificate``: the signing certificate; ``chain``: the issuers written into ``SignedData.certificates`` with it
    (the chain NuGet's checks built at signing time, leaf excluded); ``timestamp_at``: the timestamp token's
    ``genTime`` (UTC; None without a timestamper); ``timestamp_authority``: the TSA's signing certificate.
    """

    kind: SignatureKind
    placement: Placement
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    timestamp_at: datetime | None = None
    timestamp_authority: x509.Certificate | None = None

    @property
    def sha256_fingerprint(self) -> str:
        """Upper-case hex SHA-256 of the signing certificate's DER (as :class:`nuseal.verify.CertificateIdentity`)."""
        return self.certificate.fingerprint(hashes.SHA256()).hex().upper()


@dataclass(frozen=True)
class SignResult:
    """The signed package bytes, the signature written (:class:`SignedSignature`) and the warnings NuGet would
    print (NU3002, NU3018/NU3028, NU3042)."""

    data: bytes
    signature: SignedSignature
    warnings: list[Issue] = field(default_factory=list)


def default_trust() -> SigningTrust:
    """:meth:`SigningTrust.discover`, made once per process (its revocation cache is shared)."""
    if not _DEFAULT_TRUST:
        _DEFAULT_TRUST.append(SigningTrust.discover())
    return _DEFAULT_TRUST[0]


class _ChainedSigner:
    """``signer`` with the chain NuGet found (leaf excluded) as its ``chain``: NuGet writes the built chain,
    root included, into ``SignedData.certificates``."""

    def __init__(self, signer: Signer, chain: Sequence[x509.Certificate]) -> None:
        self._signer = signer
        self._chain = tuple(chain)

    @property
    def certificate(self) -> x509.Certificate:
        return self._signer.certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def sign(self, data: bytes, algorithm: HashAlgorithm) -> bytes:
        return self._signer.sign(data, algorithm)


def _written(kind: SignatureKind, placement: Placement, signer: Signer, stamps: Sequence[Timestamp]) -> SignedSignature:
    stamp = stamps[-1] if stamps else None
    return SignedSignature(
        kind,
        placement,
        signer.certificate,
        signer.chain,
        stamp.gen_time if stamp else None,
        stamp.signer_certificate if stamp else None,
    )


def _checked_signer(signer: Signer, trust: SigningTrust, now: datetime, warnings: list[Issue]) -> Signer:
    checked = check_signing_certificate(signer.certificate, signer.chain, trust=trust, now=now)
    warnings.extend(checked.warnings)
    return _ChainedSigner(signer, checked.chain[1:])


def _timestamper(
    url: str | None,
    client: TimestampClient | None,
    algorithm: HashAlgorithm,
    trust: SigningTrust,
    now: datetime,
    warnings: list[Issue],
    stamps: list[Timestamp],
) -> Timestamper | None:
    """The timestamper the CMS builder calls (None: no timestamper, NU3002); each token it gets is checked and
    appended, parsed, to ``stamps``."""
    if client is None:
        if url is None:
            warnings.append(Issue(NuCode.NU3002, Level.WARNING, _NO_TIMESTAMPER))
            return None
        client = _client_for(url, algorithm)
    chosen = client

    def stamp(signature_value: bytes) -> bytes:
        token = chosen.timestamp(signature_value, now=now)
        parsed = Timestamp.parse(token)
        if parsed.signer_certificate is None:  # Timestamp.check already refused this (NU3020)
            raise TimestampError("The timestamp has no signing certificate.", code=NuCode.NU3020)
        checked: CheckedChain = check_timestamp_certificate(
            parsed.signer_certificate, parsed.certificates, trust=trust, now=now
        )
        warnings.extend(checked.warnings)
        stamps.append(parsed)
        return with_certificates(token, checked.chain)

    return stamp


def _open(data: bytes) -> PackageArchive:
    try:
        archive = PackageArchive.from_bytes(data)
    except PackageFormatError as exc:
        raise SigningError(f"cannot sign: {exc.message}") from exc
    if archive.open_problem is not None:
        raise SigningError(f"cannot sign: {archive.open_problem}")
    if archive.uses_zip64:
        raise SigningError("Signed Zip64 packages are not supported.", code=NuCode.NU3006)
    if archive.layout.eocd.total_entries > MAX_ENTRIES_TO_SIGN:
        raise SigningError("The package cannot be signed as it would require the Zip64 format.", code=NuCode.NU3039)
    return archive


def _primary(archive: PackageArchive) -> PrimarySignature | None:
    if not archive.is_signed:
        return None
    try:
        return PrimarySignature.load(archive.read_signature())
    except (PackageFormatError, SignatureFormatError) as exc:
        raise SigningError(f"cannot read the existing signature: {exc.message}", code=exc.code) from exc


def sign_package(
    data: bytes,
    signer: Signer,
    *,
    timestamper_url: str | None,
    now: datetime,
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    timestamp_hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    overwrite: bool = False,
    trust: SigningTrust | None = None,
    timestamp_client: TimestampClient | None = None,
) -> SignResult:
    """Author-sign the .nupkg ``data`` at moment ``now`` (timezone-aware; the signing time and the moment
    certificates are judged at).

    ``trust`` defaults to :func:`default_trust`; ``timestamp_client`` (instead of ``timestamper_url``) reuses
    a configured client.

    Raises:
        SigningError: NU3013/NU3014/NU3015/NU3017/NU3018 the certificate; NU3006 ZIP64; NU3039 too many
            entries; NU3001 already signed and not ``overwrite``; no code for an unreadable package.
        TimestampError: the TSA failed or its answer failed NuGet's checks (NU3019/NU3020-NU3026/NU3028/NU3036,
            or no code for transport problems, as NuGet).
    """
    trust = trust or default_trust()
    warnings: list[Issue] = []
    stamps: list[Timestamp] = []
    chained = _checked_signer(signer, trust, now, warnings)
    archive = _open(data)
    if archive.is_signed:
        if not overwrite:
            raise SigningError("The package is already signed.", code=NuCode.NU3001)
        archive = _open(archive.without_signature())
    signature = create_primary_signature(
        package_hash=hash_algorithm.digest(archive.data),
        hash_algorithm=hash_algorithm,
        signer=chained,
        signature_type=SignatureType.AUTHOR,
        signing_time=now,
        timestamper=_timestamper(
            timestamper_url, timestamp_client, timestamp_hash_algorithm, trust, now, warnings, stamps
        ),
    )
    written = _written(SignatureKind.AUTHOR, Placement.PRIMARY, chained, stamps)
    return SignResult(append_signature(archive.data, signature, when=now), written, warnings)


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
    trust: SigningTrust | None = None,
    timestamp_client: TimestampClient | None = None,
) -> SignResult:
    """Repository-sign ``data``: a repository primary signature on an unsigned package, a repository
    countersignature on an author-signed (or unknown-type) one, keeping its primary signature byte for byte.

    ``v3_service_index_url`` must be an absolute https URL; ``owners`` are recorded in the order given
    (nuget.org sorts them case-insensitively). Other arguments as :func:`sign_package`.

    Raises:
        SigningError: NU3033 the primary is a repository signature; NU3032 it already has a repository
            countersignature; the certificate and package problems of :func:`sign_package`.
        UsageError: an invalid URL or owner list.
        TimestampError: as :func:`sign_package`.
    """
    trust = trust or default_trust()
    warnings: list[Issue] = []
    stamps: list[Timestamp] = []
    chained = _checked_signer(signer, trust, now, warnings)
    archive = _open(data)
    primary = _primary(archive)
    if primary is not None:
        if primary.type is SignatureType.REPOSITORY:
            raise SigningError(
                "A repository primary signature must not have a repository countersignature.", code=NuCode.NU3033
            )
        if primary.has_repository_countersignature():
            raise SigningError(
                "The package already contains a repository countersignature. Please remove the existing "
                "signature before adding a new repository countersignature.",
                code=NuCode.NU3032,
            )
    stamp = _timestamper(timestamper_url, timestamp_client, timestamp_hash_algorithm, trust, now, warnings, stamps)
    if primary is None:
        signature = create_primary_signature(
            package_hash=hash_algorithm.digest(archive.data),
            hash_algorithm=hash_algorithm,
            signer=chained,
            signature_type=SignatureType.REPOSITORY,
            signing_time=now,
            timestamper=stamp,
            v3_service_index_url=v3_service_index_url,
            owners=owners,
        )
        written = _written(SignatureKind.REPOSITORY, Placement.PRIMARY, chained, stamps)
        return SignResult(append_signature(archive.data, signature, when=now), written, warnings)
    countersigned = add_repository_countersignature(
        archive.read_signature(),
        hash_algorithm=hash_algorithm,
        signer=chained,
        signing_time=now,
        v3_service_index_url=v3_service_index_url,
        owners=owners,
        timestamper=stamp,
    )
    written = _written(SignatureKind.REPOSITORY, Placement.COUNTERSIGNATURE, chained, stamps)
    return SignResult(append_signature(archive.without_signature(), countersigned, when=now), written, warnings)

