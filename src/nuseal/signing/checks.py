"""The certificate checks NuGet runs before it signs or accepts a timestamp, with NuGet's codes.

Sources (NuGet.Client ``src/NuGet.Core/NuGet.Packaging/Signing``):

* ``SigningUtility.Verify``: in this order, the signing certificate's own signature algorithm is
  sha{256,384,512}WithRSA (NU3013), its key is RSA >= 2048 bits (NU3014), it has no lifetime-signing EKU
  (NU3015), it is not valid only in the future (NU3017); then the chain is built
  (``SignPackageRequest.BuildSigningCertificateChainOnce``).
* ``CertificateChainUtility.GetCertificateChain``: an ``X509Chain`` with the code-signing (signatures) or
  time-stamping (timestamps) EKU as application policy, ``RevocationMode.Online``, ``RevocationFlag.ExcludeRoot``,
  verification time *now*, and **no** ``IgnoreNotTimeValid`` (an expired certificate fails). Every status
  is fatal except RevocationStatusUnknown and OfflineRevocation (warnings), and UntrustedRoot for a
  self-issued signing certificate (a warning). Fatal statuses: NU3018 for signatures, NU3028 for
  timestamps ("Certificate chain validation failed"); warnings carry the same code. The chain found, leaf
  first and root last, is what NuGet writes into ``SignedData.certificates``.
* ``CertificateBundleX509ChainFactory`` (Linux/macOS): an untrusted root adds the NU3042 warning.

Trust: NuGet trusts its machine store only. :class:`SigningTrust` carries the roots explicitly; with
``trust_supplied_roots`` (the default of :meth:`SigningTrust.discover`), a self-signed certificate that
the signer supplies with its own chain (PFX, PEM chain, token) or that a TSA supplies in its token is
trusted too, so that a private PKI signs without installing its root. Pass a strict store (e.g.
:meth:`SigningTrust.from_pem_files`) for NuGet's exact behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import SigningError, TimestampError, UsageError
from nuseal.trust import (
    CertificatePurpose,
    ChainBuilder,
    ChainResult,
    ChainStatus,
    RevocationCache,
    RevocationFetcher,
    RevocationMode,
    TrustStore,
    check_certificate_requirements,
    is_self_issued,
    untrusted_root_warning,
)

__all__ = ["CHAIN_FAILED_MESSAGE", "CheckedChain", "SigningTrust", "check_signing_certificate",
           "check_timestamp_certificate"]

#: NuGet's ``Strings.CertificateChainValidationFailed``.
CHAIN_FAILED_MESSAGE = "Certificate chain validation failed."

_REVOCATION_WARNINGS = ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION


@dataclass(frozen=True)
class SigningTrust:
    """Where sign-time chains must end, and how revocation is checked while signing.

    ``code_signing_roots`` judge the signing certificate, ``timestamping_roots`` the TSA certificate.
    ``revocation_mode`` is online by default, as NuGet signs; ``fetcher`` is the revocation transport, given by
    the caller that signs online (``nuseal sign``: :class:`nuseal.trust.online.HttpRevocationFetcher`); without
    one nothing is fetched and the chains are checked as in offline mode; ``cache`` keeps OCSP/CRL answers
    across signatures (share one ``SigningTrust`` to sign many packages). ``trust_supplied_roots``: see the
    module docstring.
    """

    code_signing_roots: TrustStore
    timestamping_roots: TrustStore
    revocation_mode: RevocationMode = RevocationMode.ONLINE
    fetcher: RevocationFetcher | None = None
    trust_supplied_roots: bool = False
    cache: RevocationCache = field(default_factory=RevocationCache, compare=False, repr=False)

    @classmethod
    def discover(
        cls, *, revocation_mode: RevocationMode = RevocationMode.ONLINE, fetcher: RevocationFetcher | None = None
    ) -> SigningTrust:
        """The .NET SDK's stores on this machine (:meth:`TrustStore.discover`) plus supplied self-signed roots."""
        return cls(
            TrustStore.discover(CertificatePurpose.CODE_SIGNING),
            TrustStore.discover(CertificatePurpose.TIMESTAMPING),
            revocation_mode=revocation_mode,
            fetcher=fetcher,
            trust_supplied_roots=True,
        )

    @classmethod
    def from_pem_files(
        cls,
        code_signing: str | Path,
        timestamping: str | Path | None = None,
        *,
        revocation_mode: RevocationMode = RevocationMode.ONLINE,
        fetcher: RevocationFetcher | None = None,
    ) -> SigningTrust:
        """Strict trust in PEM bundles (``timestamping`` defaults to ``code_signing``), as the oracle's
        ``--trust-bundle``.

        Raises:
            UsageError: a bundle cannot be read or holds no certificate.
        """
        signing = TrustStore.from_pem_file(code_signing)
        stamping = signing if timestamping is None else TrustStore.from_pem_file(timestamping)
        return cls(signing, stamping, revocation_mode=revocation_mode, fetcher=fetcher)

    def _store(self, base: TrustStore, supplied: Iterable[x509.Certificate]) -> TrustStore:
        if not self.trust_supplied_roots:
            return base
        extra = [c for c in supplied if is_self_issued(c) and c not in base]
        if not extra:
            return base
        return TrustStore.from_certificates((*base.certificates, *extra), source=f"{base.source} + supplied roots")

    def _builder(self, store: TrustStore) -> ChainBuilder:
        return ChainBuilder(store, revocation_mode=self.revocation_mode, fetcher=self.fetcher, cache=self.cache)


@dataclass(frozen=True)
class CheckedChain:
    """A chain that passed: leaf first, root last (NuGet writes all of it), and the warnings logged."""

    chain: tuple[x509.Certificate, ...]
    warnings: tuple[Issue, ...]
    result: ChainResult


def _lines(result: ChainResult, statuses: ChainStatus) -> tuple[str, ...]:
    """``"<Status>: <text>"`` lines in .NET's ``ChainStatus`` order (ascending flag value), as NuGet logs them."""
    return tuple(line for member in statuses for line in result.messages_for(member))


def _judge(result: ChainResult, *, code: NuCode, warning_statuses: ChainStatus) -> CheckedChain:
    fatal = result.statuses & ~warning_statuses
    warnings: list[Issue] = []
    context = untrusted_root_warning(result)  # NuGet logs the chain's AdditionalContext when Build fails
    if context is not None:
        warnings.append(context)
    if result.revocation_mode is RevocationMode.OFFLINE:
        warning_statuses &= ~_REVOCATION_WARNINGS  # revocation was not asked for: nothing to warn about
    warnings += [Issue(code, Level.WARNING, m) for m in _lines(result, result.statuses & warning_statuses)]
    if fatal:
        lines = _lines(result, fatal) or (fatal.dotnet_name,)
        raise_as = TimestampError if code is NuCode.NU3028 else SigningError
        raise raise_as(f"{CHAIN_FAILED_MESSAGE} {'; '.join(lines)}", code=code)
    return CheckedChain(result.chain, tuple(warnings), result)


def check_signing_certificate(
    certificate: x509.Certificate,
    extra_certificates: Sequence[x509.Certificate],
    *,
    trust: SigningTrust,
    now: datetime,
) -> CheckedChain:
    """NuGet's pre-sign checks on a signing certificate (``SigningUtility.Verify``).

    ``extra_certificates`` are the certificates supplied with the key (NuGet's
    ``AdditionalCertificates``); ``now`` (timezone-aware) is the signing moment.

    Raises:
        SigningError: NU3013 / NU3014 / NU3015 / NU3017 (the first failed requirement, in NuGet's order);
            NU3018 when the chain has a fatal status (expired, not valid for code signing, partial,
            untrusted root unless self-issued, revoked, bad signature...).
        UsageError: ``now`` is naive.
    """
    if now.tzinfo is None:
        raise UsageError("signing needs a timezone-aware 'now'")
    failures = check_certificate_requirements(certificate, purpose=CertificatePurpose.CODE_SIGNING, now=now)
    if failures:
        raise SigningError(f"{failures[0].message} ({failures[0].detail})", code=failures[0].code)
    store = trust._store(trust.code_signing_roots, [certificate, *extra_certificates])
    result = trust._builder(store).build(
        certificate,
        extra_certificates=extra_certificates,
        purpose=CertificatePurpose.CODE_SIGNING,
        at=now,
        ignore_not_time_valid=False,
        now=now,
    )
    warning_statuses = _REVOCATION_WARNINGS
    if is_self_issued(certificate):
        warning_statuses |= ChainStatus.UNTRUSTED_ROOT
    return _judge(result, code=NuCode.NU3018, warning_statuses=warning_statuses)


def check_timestamp_certificate(
    certificate: x509.Certificate,
    token_certificates: Sequence[x509.Certificate],
    *,
    trust: SigningTrust,
    now: datetime,
) -> CheckedChain:
    """The chain NuGet builds for a fresh timestamp's signer (``Rfc3161TimestampProvider.GetTimestamp``).

    Raises:
        TimestampError: NU3028 when the chain has a fatal status (not valid for time stamping, expired,
            partial, untrusted root, revoked...).
        UsageError: ``now`` is naive.
    """
    if now.tzinfo is None:
        raise UsageError("timestamping needs a timezone-aware 'now'")
    store = trust._store(trust.timestamping_roots, token_certificates)
    result = trust._builder(store).build(
        certificate,
        extra_certificates=token_certificates,
        purpose=CertificatePurpose.TIMESTAMPING,
        at=now,
        ignore_not_time_valid=False,
        now=now,
    )
    return _judge(result, code=NuCode.NU3028, warning_statuses=_REVOCATION_WARNINGS)
