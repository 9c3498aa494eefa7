"""The verification engine: integrity, signatures, timestamps, chains, allow lists, under a policy.

A port of the *rules* of NuGet.Client's ``PackageSignatureVerifier`` with its three providers
(``IntegrityVerificationProvider``, ``SignatureTrustAndValidityVerificationProvider``,
``AllowListVerificationProvider``), ``Signature.Verify``, ``Signature.TryGetValidTimestamp`` and
``Timestamp.Verify`` (NC ``src/NuGet.Core/NuGet.Packaging/Signing/**``; ``../shared/NUGET-SIGNING.md`` §4).
Codes, levels, ordering and wording follow NuGet so results can be compared line by line.

Steps for one package:

1. Container: ``.signature.p7s`` present? (unsigned: valid only if the policy allows it, else NU3004).
2. Parse once: the signature entry (NU3005) and the CMS (NU3003/NU3009/NU3011/...); a parse failure is a
   single issue, fatal unless the policy allows illegal signatures.
3. Providers, each giving a status; the package is valid iff every status is VALID:
   integrity (NU3008), trust and validity (timestamp first, then the signer at the time the timestamp proves,
   then the repository countersignature when the policy asks for it), then each allow list (NU3034).

Nothing here prints, reads the clock (``now`` is passed in) or opens a socket; revocation data comes through
the :class:`~nuseal.trust.ChainBuilder` given to the verifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import NusealError, PackageFormatError, SignatureFormatError, UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive
from nuseal.signature import (
    PrimarySignature,
    RepositoryCountersignature,
    Signature,
    SignatureType,
)
from nuseal.timestamp import Timestamp, timestamp_errors_of, timestamps_of
from nuseal.trust import (
    DEFAULT_OBSERVED_STATUSES,
    CertificatePurpose,
    ChainBuilder,
    ChainResult,
    ChainStatus,
    RevocationCache,
    RevocationFetcher,
    RevocationMode,
    TrustStore,
    check_certificate_requirements,
    fingerprint,
    untrusted_root_warning,
)
from nuseal.trust.certificate import facts
from nuseal.trust.revocation import revocation_deadline
from nuseal.trust.revocation_cache import current_run
from nuseal.verify.policy import (
    AllowList,
    AllowListEntry,
    CountersignatureBehavior,
    SignaturePlacement,
    VerificationPolicy,
    VerificationTarget,
)
from nuseal.verify.result import (
    CertificateIdentity,
    Placement,
    RevocationStatus,
    SignatureInfo,
    SignatureKind,
    Status,
    StatusFlags,
    TimestampInfo,
    VerificationResult,
    status_from_flags,
)

__all__ = ["Verifier"]


def _issue(fatal: bool, code: NuCode | None, message: str) -> Issue:
    """NuGet's ``SignatureLog.Issue(fatal, code, message)``: an error when fatal, else a warning."""
    return Issue(code, Level.ERROR if fatal else Level.WARNING, message)


def _info(message: str) -> Issue:
    return Issue(None, Level.INFO, message)


@dataclass
class _Summary:
    """NuGet's ``SignatureVerificationSummary``."""

    type: str
    status: Status
    flags: StatusFlags
    issues: list[Issue]
    timestamp: object | None = None
    expiration_time: datetime | None = None


@dataclass
class _Ledger:
    """What one verification established per signature and per timestamp (keyed by object identity: the objects
    live for the whole ``verify`` call), read back by :class:`_Describe` to build the typed result."""

    summaries: dict[int, _Summary] = field(default_factory=dict)  # signature -> its own findings (no timestamp's)
    chains: dict[int, ChainResult] = field(default_factory=dict)  # signature or timestamp -> its chain
    timestamp_issues: dict[int, list[Issue]] = field(default_factory=dict)
    integrity: bool | None = None  # the package hash matched the primary signature's (None: not checked)


@dataclass(frozen=True)
class _ProviderResult:
    status: Status
    issues: list[Issue] = field(default_factory=list)


# NuGet verify-time wording (NC Strings.resx), keyed by requirement code.
_REQUIREMENT_MESSAGES: dict[NuCode, str] = {
    NuCode.NU3013: "The {0}'s certificate has an unsupported signature algorithm.",
    NuCode.NU3014: "The {0}'s certificate does not meet a minimum public key length requirement.",
    NuCode.NU3015: "The lifetime signing EKU in the {0}'s certificate is not supported.",
    NuCode.NU3017: "The {0}'s certificate is not yet valid.",
}
_REQUIREMENT_FLAGS: dict[NuCode, StatusFlags] = {
    NuCode.NU3013: StatusFlags.SIGNATURE_ALGORITHM_UNSUPPORTED,
    NuCode.NU3014: StatusFlags.CERTIFICATE_PUBLIC_KEY_INVALID,
    NuCode.NU3015: StatusFlags.HAS_LIFETIME_SIGNING_EKU,
    NuCode.NU3017: StatusFlags.CERTIFICATE_VALIDITY_IN_THE_FUTURE,
}
# Timestamp.check() codes -> NuGet's SignatureVerificationStatusFlags (NC VerificationUtility.ValidateTimestamp).
_TIMESTAMP_FLAGS: dict[NuCode, StatusFlags] = {
    NuCode.NU3020: StatusFlags.NO_CERTIFICATE,
    NuCode.NU3021: StatusFlags.SIGNATURE_CHECK_FAILED,
    NuCode.NU3022: StatusFlags.SIGNATURE_ALGORITHM_UNSUPPORTED,
    NuCode.NU3023: StatusFlags.CERTIFICATE_PUBLIC_KEY_INVALID,
    NuCode.NU3024: StatusFlags.HASH_ALGORITHM_UNSUPPORTED,
    NuCode.NU3019: StatusFlags.INTEGRITY_CHECK_FAILED,
    NuCode.NU3030: StatusFlags.MESSAGE_IMPRINT_UNSUPPORTED_ALGORITHM,
    NuCode.NU3025: StatusFlags.CERTIFICATE_VALIDITY_IN_THE_FUTURE,
    NuCode.NU3036: StatusFlags.GENERALIZED_TIME_OUTSIDE_VALIDITY,
}
_OFFLINE_WHILE_OFFLINE = (
    "The revocation function was unable to check revocation because the certificate is not available in the "
    "cached certificate revocation list and NUGET_CERT_REVOCATION_MODE environment variable has been set to "
    "offline. For more information, visit https://aka.ms/certificateRevocationMode."
)
_OFFLINE_WHILE_ONLINE = (
    "The revocation function was unable to check revocation because the revocation server could not be reached. "
    "For more information, visit https://aka.ms/certificateRevocationMode."
)
_NO_TIMESTAMP = (
    "The signature should be timestamped to enable long-term signature validity after the certificate has expired."
)
_INTEGRITY = (
    "The package integrity check failed. The package has changed since it was signed. "
    "Try clearing the local http-cache and run nuget operation again."
)


class _SignatureLoadError(Exception):
    """A ``SignatureException`` NuGet throws while loading or evaluating: one issue, fatal unless allowIllegal."""

    def __init__(self, code: NuCode | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _status_message(text: str) -> str:
    """Chain messages are ``"<Status>: <text>"``; NuGet prints .NET's status information text."""
    return text.split(": ", 1)[1] if ": " in text else text


def _validate_against_timestamp(cert: x509.Certificate, lower: datetime, upper: datetime) -> bool:
    """NC ``Rfc3161TimestampVerificationUtility.ValidateSignerCertificateAgainstTimestamp`` (strict inequalities)."""
    return upper < cert.not_valid_after_utc and lower > cert.not_valid_before_utc


class Verifier:
    """Verifies packages under one :class:`VerificationPolicy`, with trust stores and revocation injected.

    Args:
        policy: what to check and what is fatal.
        code_signing_roots / timestamping_roots: the trust stores (NuGet's code-signing and timestamping bundles).
        fetcher: revocation transport for online mode; ignored offline. Without one (and outside a
            :func:`~nuseal.trust.revocation_cache.revocation_run` that has one) nothing is fetched: library use
            does no network I/O and revocation is treated as in offline mode (NuGet's information messages).
        cache: a revocation cache to share across verifiers (default: one per verifier).
        with_content_hash: also compute NuGet's SHA-512 content hash for the result (a second pass over the
            package; off by default so a verification costs one hash of the file).

    ``verify`` never raises for a bad package; it returns a :class:`VerificationResult`.
    """

    def __init__(
        self,
        policy: VerificationPolicy,
        *,
        code_signing_roots: TrustStore,
        timestamping_roots: TrustStore,
        fetcher: RevocationFetcher | None = None,
        cache: RevocationCache | None = None,
        with_content_hash: bool = False,
    ) -> None:
        self.policy = policy
        self.with_content_hash = with_content_hash
        run = current_run()  # nuseal.trust.revocation_cache: the run's host view, disk cache and deadline
        shared = cache if cache is not None else (run.cache if run is not None else RevocationCache())
        if fetcher is None and run is not None:
            fetcher = run.fetcher
        self._signing_chains = ChainBuilder(
            code_signing_roots, revocation_mode=policy.revocation_mode, fetcher=fetcher, cache=shared
        )
        self._timestamp_chains = ChainBuilder(
            timestamping_roots, revocation_mode=policy.revocation_mode, fetcher=fetcher, cache=shared
        )

    # ------------------------------------------------------------------ entry points
    def verify_bytes(self, data: bytes, *, now: datetime, source: str | None = None) -> VerificationResult:
        """Verify a package given as bytes. A file that is not a ZIP gives an invalid result, not an exception."""
        try:
            archive = PackageArchive.from_bytes(data, source=source)
        except PackageFormatError as exc:
            return self._unreadable(source, exc)
        return self.verify(archive, now=now)

    def verify_path(self, path: str, *, now: datetime) -> VerificationResult:
        """Verify a .nupkg file.

        Raises:
            UsageError: the file cannot be read (missing, permissions): an input error, not a package verdict.
        """
        try:
            archive = PackageArchive.from_path(path)
        except PackageFormatError as exc:
            return self._unreadable(path, exc)
        return self.verify(archive, now=now)

    def _unreadable(self, source: str | None, exc: PackageFormatError) -> VerificationResult:
        return VerificationResult(
            source=source,
            policy=self.policy.name,
            valid=False,
            is_signed=False,
            issues=(Issue(exc.code, Level.ERROR, f"The package is not a valid package file: {exc.message}"),),
        )

    def verify(self, archive: PackageArchive, *, now: datetime) -> VerificationResult:
        """Verify one parsed package at moment ``now`` (timezone-aware); inside a
        :func:`~nuseal.trust.revocation_cache.revocation_run`, its revocation requests share the run's deadline."""
        run = current_run()
        with revocation_deadline(run.package_timeout if run is not None else None):
            return self._verify(archive, now=now)

    def _verify(self, archive: PackageArchive, *, now: datetime) -> VerificationResult:
        if now.tzinfo is None:
            raise UsageError("verification needs a timezone-aware 'now'")
        if archive.open_problem is not None:
            return self._unreadable(archive.source, PackageFormatError(archive.open_problem))
        policy = self.policy
        issues: list[Issue] = []
        infos: list[SignatureInfo] = []
        ledger = _Ledger()
        valid: bool
        package_id = package_version = None
        try:
            spec = archive.nuspec()
            package_id, package_version = spec.id, spec.version.normalized
        except NusealError:
            pass
        if not archive.is_signed:
            if policy.allow_unsigned:
                valid = True
            else:
                issues.append(Issue(NuCode.NU3004, Level.ERROR, policy.unsigned_message))
                valid = False
        else:
            try:
                primary = self._load(archive)
            except _SignatureLoadError as exc:
                issues.append(_issue(not policy.allow_illegal, exc.code, exc.message))
                valid = policy.allow_illegal
            else:
                try:
                    results = [
                        self._integrity(archive, primary, ledger),
                        self._trust_and_validity(primary, now, ledger),
                        *(self._allow_list(primary, allow_list) for allow_list in policy.allow_lists),
                    ]
                except _SignatureLoadError as exc:
                    issues.append(_issue(not policy.allow_illegal, exc.code, exc.message))
                    valid = policy.allow_illegal
                else:
                    for r in results:
                        issues.extend(r.issues)
                    valid = all(r.status is Status.VALID for r in results)
                infos.extend(_Describe(self, ledger, now).signatures(primary))
        structure = archive.structure_problems
        for problem in structure:
            issues.append(Issue(None, Level.ERROR, f"The package archive is unsafe: {problem.message}"))
            valid = False
        content_hash: str | None = None
        if self.with_content_hash:
            try:
                content_hash = archive.content_hash()
            except NusealError:
                content_hash = None
        return VerificationResult(
            source=archive.source,
            policy=policy.name,
            valid=valid,
            is_signed=archive.is_signed,
            issues=tuple(issues),
            package_id=package_id,
            package_version=package_version,
            content_hash=content_hash,
            signatures=tuple(infos),
            structure=structure,
        )

    # ------------------------------------------------------------------ step 2: parse once
    @staticmethod
    def _load(archive: PackageArchive) -> PrimarySignature:
        """NC ``GetPrimarySignatureAsync`` + ``PrimarySignature.Load`` (timestamps are decoded at load)."""
        try:
            primary = PrimarySignature.load(archive.read_signature())
        except (PackageFormatError, SignatureFormatError) as exc:
            raise _SignatureLoadError(exc.code or NuCode.NU3000, exc.message) from exc
        _raise_timestamp_load_errors(primary)
        return primary

    # ------------------------------------------------------------------ step 3a: integrity
    def _integrity(self, archive: PackageArchive, primary: PrimarySignature, ledger: _Ledger) -> _ProviderResult:
        """NC ``IntegrityVerificationProvider``."""
        alg = primary.content.hash_algorithm
        issues = [_info(f"Signature Hash Algorithm: {alg.nuget_name}")]
        try:
            ok = archive.package_hash(alg) == primary.content.hash_value
        except PackageFormatError:
            ok = False
        ledger.integrity = ok
        if ok:
            return _ProviderResult(Status.VALID, issues)
        issues.append(Issue(NuCode.NU3008, Level.ERROR, _INTEGRITY))
        return _ProviderResult(Status.SUSPECT, issues)

    # ------------------------------------------------------------------ step 3b: trust and validity
    def _trust_and_validity(self, primary: PrimarySignature, now: datetime, ledger: _Ledger) -> _ProviderResult:
        """NC ``SignatureTrustAndValidityVerificationProvider.Verify``."""
        policy = self.policy
        try:
            countersignature_exists = primary.has_repository_countersignature()
        except SignatureFormatError as exc:
            raise _SignatureLoadError(exc.code, exc.message) from exc
        wants_countersignature = VerificationTarget.REPOSITORY in policy.verification_target and (
            SignaturePlacement.COUNTERSIGNATURE in policy.signature_placement
        )
        status = Status.UNKNOWN
        issues: list[Issue] = []
        primary_summary: _Summary | None = None
        if SignaturePlacement.PRIMARY_SIGNATURE in policy.signature_placement and _is_target(
            primary.type.value, policy.verification_target
        ):
            primary_summary = self._validity_and_trust(primary, primary.certificates, now, ledger)
            issues.extend(primary_summary.issues)
            status = primary_summary.status

        behavior = policy.countersignature_behavior
        if behavior is CountersignatureBehavior.IF_EXISTS:
            check = wants_countersignature and countersignature_exists
        elif behavior is CountersignatureBehavior.IF_EXISTS_AND_IS_NECESSARY:
            check = (
                wants_countersignature
                and countersignature_exists
                and (primary_summary is None or _has_untrusted_root(primary_summary) or _is_expired(primary_summary))
            )
        elif behavior is CountersignatureBehavior.ALWAYS:
            check = wants_countersignature
        else:
            check = False
        if check:
            countersignature = self._repository_countersignature(primary)
            if countersignature is None:
                if behavior is CountersignatureBehavior.ALWAYS:
                    issues.append(
                        Issue(
                            NuCode.NU3038,
                            Level.ERROR,
                            "Verification settings require a repository countersignature, but the package does "
                            "not have a repository countersignature.",
                        )
                    )
                    status = Status.DISALLOWED
            else:
                summary = self._validity_and_trust(countersignature, primary.certificates, now, ledger)
                if primary_summary is None:
                    status = summary.status
                else:
                    if summary.status is Status.VALID:
                        cert = primary.signer_certificate
                        ts = summary.timestamp
                        covered = (
                            cert is not None
                            and isinstance(ts, Timestamp)
                            and _validate_against_timestamp(cert, ts.lower_limit, ts.upper_limit)
                        )
                        if _is_expired(primary_summary) and _has_untrusted_root(primary_summary):
                            issues = [i for i in issues if i.code is not NuCode.NU3018]
                            if covered:
                                issues = [i for i in issues if i.code is not NuCode.NU3037]
                                status = Status.VALID
                        elif _is_expired(primary_summary) and covered:
                            issues = [i for i in issues if i.code is not NuCode.NU3037]
                            status = Status.VALID
                        elif _has_untrusted_root(primary_summary):
                            issues = [i for i in issues if i.code is not NuCode.NU3018]
                            status = Status.VALID
                    status = Status(min(status, summary.status))
                issues.extend(summary.issues)
        return _ProviderResult(status, issues)

    @staticmethod
    def _repository_countersignature(primary: PrimarySignature) -> RepositoryCountersignature | None:
        try:
            countersignature = primary.repository_countersignature()
        except SignatureFormatError as exc:
            raise _SignatureLoadError(exc.code, exc.message) from exc
        if countersignature is not None:
            _raise_timestamp_load_errors(countersignature)
        return countersignature

    def _untrusted_root_allowed(self, signature: Signature) -> bool:
        """NC ``IsUntrustedRootAllowed``: ordinal fingerprint compare (a lower-case config value never matches)."""
        cert = signature.signer_certificate
        if cert is None:
            return False
        return any(
            entry.fingerprint == fingerprint(cert, entry.hash_algorithm) for entry in self.policy.untrusted_root_allowed
        )

    def _validity_and_trust(
        self, signature: Signature, extra: tuple[x509.Certificate, ...], now: datetime, ledger: _Ledger
    ) -> _Summary:
        """NC ``VerifyValidityAndTrust``: the timestamp first, then the signature at the time it proves."""
        policy = self.policy
        ts_issues, ts_flags, timestamp = self._valid_timestamp(signature, now, ledger)
        ts_status = status_from_flags(ts_flags)  # NoValidTimestamp / MultipleTimestamps alone -> Disallowed
        summary = self._verify_signature(signature, timestamp, extra, now, ledger)
        stamped = {id(i) for found in ledger.timestamp_issues.values() for i in found}
        ledger.summaries[id(signature)] = _Summary(
            summary.type,
            summary.status,
            summary.flags,
            summary.issues + [i for i in ts_issues if id(i) not in stamped],  # NU3027 / multiple timestamps
            summary.timestamp,
            summary.expiration_time,
        )
        if ts_status is not Status.VALID and not policy.allow_ignore_timestamp:
            return _Summary(
                signature.type.value, Status.DISALLOWED, StatusFlags.NO_VALID_TIMESTAMP, summary.issues + ts_issues
            )
        summary.issues.extend(ts_issues)
        return summary

    def _valid_timestamp(
        self, signature: Signature, now: datetime, ledger: _Ledger
    ) -> tuple[list[Issue], StatusFlags, Timestamp | None]:
        """NC ``Signature.TryGetValidTimestamp`` + ``Timestamp.Verify``."""
        policy = self.policy
        issues: list[Issue] = []
        flags = StatusFlags.NO_ERRORS
        stamps = timestamps_of(signature)
        if not stamps:
            issues.append(_issue(not policy.allow_no_timestamp, NuCode.NU3027, _NO_TIMESTAMP))
            if not policy.allow_no_timestamp:
                return issues, StatusFlags.NO_VALID_TIMESTAMP, None
            return issues, flags, None
        if len(stamps) > 1 and not policy.allow_multiple_timestamps:
            issues.append(Issue(NuCode.NU3000, Level.ERROR, "Multiple timestamps are not accepted."))
            return issues, StatusFlags.MULTIPLE_TIMESTAMPS, None
        timestamp = stamps[0]
        first = len(issues)
        flags |= self._verify_timestamp(signature, timestamp, issues, now, ledger)
        ledger.timestamp_issues[id(timestamp)] = issues[first:]
        if flags not in (StatusFlags.NO_ERRORS, StatusFlags.UNKNOWN_REVOCATION):
            return issues, flags, None
        return issues, flags, timestamp

    def _verify_timestamp(
        self, signature: Signature, timestamp: Timestamp, issues: list[Issue], now: datetime, ledger: _Ledger
    ) -> StatusFlags:
        """NC ``Timestamp.Verify``: the token's own checks, then its chain at the current time."""
        policy = self.policy
        as_error = not policy.allow_ignore_timestamp
        name = signature.friendly_name
        stamped = (
            signature.nuget_signature_value
            if isinstance(signature, RepositoryCountersignature)
            else signature.signature_value
        )
        flags = StatusFlags.NO_ERRORS
        for found in timestamp.check(stamped, now=now, signature_name=name):
            code = found.code or NuCode.NU3021
            issues.append(_issue(as_error, code, found.message))
            flags |= _TIMESTAMP_FLAGS.get(code, StatusFlags.SIGNATURE_CHECK_FAILED)
        if flags:
            return flags
        tsa = timestamp.signer_certificate
        if tsa is None:  # check() reports NU3020 first; kept for type narrowing
            return StatusFlags.NO_CERTIFICATE
        chain = self._timestamp_chains.build(
            tsa, extra_certificates=timestamp.certificates, purpose=CertificatePurpose.TIMESTAMPING, at=now, now=now
        )
        ledger.chains[id(timestamp)] = chain
        if chain.succeeded:
            return StatusFlags.NO_ERRORS
        if not chain.errors:
            return StatusFlags.UNKNOWN_BUILD_STATUS
        has_issues = False
        for message in chain.messages_for(chain.statuses & DEFAULT_OBSERVED_STATUSES):
            issues.append(
                _issue(
                    as_error,
                    NuCode.NU3028,
                    f"The {name}'s timestamp found a chain building issue: {_status_message(message)}",
                )
            )
            flags |= StatusFlags.CHAIN_BUILDING_FAILURE
            has_issues = True
        if chain.has(ChainStatus.UNTRUSTED_ROOT):
            warning = untrusted_root_warning(chain)
            if warning is not None:
                issues.append(warning)
            issues.append(
                Issue(
                    NuCode.NU3028,
                    Level.ERROR,
                    f"The {name}'s timestamping certificate is not trusted by the trust provider.",
                )
            )
            flags |= StatusFlags.UNTRUSTED_ROOT
            has_issues = True
        if chain.has(ChainStatus.REVOKED):
            text = (
                _status_message(chain.messages_for(ChainStatus.REVOKED)[0])
                if chain.messages_for(ChainStatus.REVOKED)
                else "revoked"
            )
            issues.append(
                Issue(NuCode.NU3028, Level.ERROR, f"The {name}'s timestamp found a chain building issue: {text}")
            )
            return flags | StatusFlags.CERTIFICATE_REVOKED
        offline = chain.has(ChainStatus.OFFLINE_REVOCATION)
        unknown = chain.has(ChainStatus.REVOCATION_STATUS_UNKNOWN)
        if offline or unknown:
            if as_error:
                issues.extend(self._unknown_revocation_issues(chain, f"The {name}'s timestamp", NuCode.NU3028))
            if not has_issues and (policy.allow_ignore_timestamp or policy.allow_unknown_revocation):
                return StatusFlags.NO_ERRORS
            flags |= StatusFlags.UNKNOWN_REVOCATION
        return flags

    def _unknown_revocation_issues(self, chain: ChainResult, subject: str, code: NuCode) -> list[Issue]:
        """What NuGet logs for OfflineRevocation / RevocationStatusUnknown (``Signature.Verify`` and
        ``Timestamp.Verify`` share this): information in offline mode, NU3018/NU3028 in online mode (an error only
        when unknown revocation is not allowed)."""
        policy = self.policy
        prefix = f"{subject} found a chain building issue: "
        found: list[str] = []
        if chain.has(ChainStatus.OFFLINE_REVOCATION):
            offline_text = (
                _OFFLINE_WHILE_OFFLINE if chain.revocation_mode is RevocationMode.OFFLINE else _OFFLINE_WHILE_ONLINE
            )
            found.append(prefix + offline_text)
        if chain.has(ChainStatus.REVOCATION_STATUS_UNKNOWN):
            first = chain.messages_for(ChainStatus.REVOCATION_STATUS_UNKNOWN)
            found.append(prefix + (_status_message(first[0]) if first else "The revocation status is unknown."))
        if chain.revocation_mode is RevocationMode.OFFLINE:  # the policy's mode, or offline without a fetcher
            return [_info(text) for text in found]
        return [_issue(not policy.allow_unknown_revocation, code, text) for text in found]

    def _verify_signature(
        self,
        signature: Signature,
        timestamp: Timestamp | None,
        extra: tuple[x509.Certificate, ...],
        now: datetime,
        ledger: _Ledger,
    ) -> _Summary:
        """NC ``Signature.Verify`` (NUGET-SIGNING.md §4.2)."""
        policy = self.policy
        untrusted_allowed = self._untrusted_root_allowed(signature)
        allow_untrusted = policy.allow_untrusted or untrusted_allowed
        report_untrusted = not untrusted_allowed
        name = signature.friendly_name
        kind = signature.type.value
        chain_code = NuCode.NU3012
        issues: list[Issue] = []
        cert = signature.signer_certificate
        if cert is None:
            issues.append(
                _issue(not policy.allow_illegal, NuCode.NU3010, f"The {name} does not have a signing certificate.")
            )
            status = Status.VALID if policy.allow_illegal else Status.DISALLOWED
            return _Summary(kind, status, StatusFlags.NO_CERTIFICATE, issues)
        if not signature.verify_signature_value():
            issues.append(_issue(not policy.allow_illegal, NuCode.NU3012, f"The {name} validation failed."))
            status = Status.VALID if policy.allow_illegal else Status.DISALLOWED
            return _Summary(kind, status, StatusFlags.SIGNATURE_CHECK_FAILED, issues)
        cert_flags = StatusFlags.NO_ERRORS
        for failure in check_certificate_requirements(cert, purpose=CertificatePurpose.CODE_SIGNING, now=now):
            code = failure.code
            issues.append(_issue(not policy.allow_illegal, code, _REQUIREMENT_MESSAGES[code].format(name)))
            cert_flags |= _REQUIREMENT_FLAGS[code]
        if cert_flags:
            return _Summary(kind, status_from_flags(cert_flags), cert_flags, issues, timestamp)
        lower = timestamp.lower_limit if timestamp else now
        upper = timestamp.upper_limit if timestamp else now
        flags = StatusFlags.NO_ERRORS
        chain = self._signing_chains.build(
            cert, extra_certificates=extra, purpose=CertificatePurpose.CODE_SIGNING, at=upper, now=now
        )
        ledger.chains[id(signature)] = chain
        if not chain.succeeded and not chain.errors:
            return _Summary(kind, Status.UNKNOWN, StatusFlags.UNKNOWN_BUILD_STATUS, issues, timestamp)
        has_issues = False
        for message in chain.messages_for(chain.statuses & DEFAULT_OBSERVED_STATUSES):
            issues.append(
                _issue(
                    not policy.allow_illegal,
                    chain_code,
                    f"The {name} found a chain building issue: {_status_message(message)}",
                )
            )
            has_issues = True
            flags |= StatusFlags.CHAIN_BUILDING_FAILURE
        if chain.has(ChainStatus.REVOKED):
            revoked = chain.messages_for(ChainStatus.REVOKED)
            text = _status_message(revoked[0]) if revoked else "The certificate is revoked."
            issues.append(Issue(chain_code, Level.ERROR, f"The {name} found a chain building issue: {text}"))
            return _Summary(kind, Status.SUSPECT, flags | StatusFlags.CERTIFICATE_REVOKED, issues, timestamp)
        if chain.has(ChainStatus.UNTRUSTED_ROOT):
            if report_untrusted:
                warning = untrusted_root_warning(chain)
                if warning is not None:
                    issues.append(warning)
                issues.append(
                    _issue(
                        not allow_untrusted,
                        NuCode.NU3018,
                        f"The {name}'s signing certificate is not trusted by the trust provider.",
                    )
                )
            if not allow_untrusted:
                has_issues = True
                flags |= StatusFlags.UNTRUSTED_ROOT
        offline = chain.has(ChainStatus.OFFLINE_REVOCATION)
        unknown = chain.has(ChainStatus.REVOCATION_STATUS_UNKNOWN)
        if offline or unknown:
            if policy.report_unknown_revocation:
                issues.extend(self._unknown_revocation_issues(chain, f"The {name}", NuCode.NU3018))
            if not policy.allow_unknown_revocation:
                has_issues = True
                flags |= StatusFlags.UNKNOWN_REVOCATION
        expiration: datetime | None = None
        time_valid = _validate_against_timestamp(cert, lower, upper)
        if time_valid and not has_issues:
            return _Summary(kind, Status.VALID, flags, issues, timestamp)
        if not time_valid:
            issues.append(_issue(not allow_untrusted, NuCode.NU3037, f"The {name} validity period has expired."))
            if not allow_untrusted:
                flags |= StatusFlags.CERTIFICATE_EXPIRED
            expiration = cert.not_valid_after_utc
        return _Summary(kind, status_from_flags(flags), flags, issues, timestamp, expiration)

    # ------------------------------------------------------------------ step 3c: allow lists
    def _allow_list(self, primary: PrimarySignature, allow_list: AllowList) -> _ProviderResult:
        """NC ``AllowListVerificationProvider.VerifyAllowList``."""
        policy = self.policy
        if not allow_list.entries:
            if allow_list.require_non_empty:
                return _ProviderResult(Status.DISALLOWED, [Issue(NuCode.NU3034, Level.ERROR, allow_list.empty_message)])
            return _ProviderResult(Status.VALID)
        if self._is_allowed(primary, allow_list.entries):
            return _ProviderResult(Status.VALID)
        status = Status.VALID if policy.allow_untrusted else Status.DISALLOWED
        return _ProviderResult(status, [_issue(not policy.allow_untrusted, NuCode.NU3034, allow_list.no_match_message)])

    def _is_allowed(self, primary: PrimarySignature, entries: tuple[AllowListEntry, ...]) -> bool:
        countersignature: RepositoryCountersignature | None = None
        looked = False
        for entry in entries:
            if SignaturePlacement.PRIMARY_SIGNATURE in entry.placement and _matches(entry, primary):
                return True
            if SignaturePlacement.COUNTERSIGNATURE in entry.placement:
                if not looked:
                    countersignature = self._repository_countersignature(primary)
                    looked = True
                if countersignature is not None and _matches(entry, countersignature):
                    return True
        return False


def _matches(entry: AllowListEntry, signature: Signature) -> bool:
    """Target, fingerprint (case-insensitive) and, for repository entries with owners, an owner in common."""
    cert = signature.signer_certificate
    if cert is None or not _targets(entry.target, signature):
        return False
    if entry.fingerprint.upper() != fingerprint(cert, entry.hash_algorithm).upper():
        return False
    is_repository_signature = signature.type is SignatureType.REPOSITORY
    if VerificationTarget.REPOSITORY in entry.target and entry.owners and is_repository_signature:
        return bool(entry.owners & set(signature.package_owners or ()))
    return True


def _targets(target: VerificationTarget, signature: Signature) -> bool:
    """NC ``IsSignatureTargeted``."""
    if isinstance(signature, RepositoryCountersignature):
        return VerificationTarget.REPOSITORY in target
    if signature.type is SignatureType.AUTHOR:
        return VerificationTarget.AUTHOR in target
    if signature.type is SignatureType.REPOSITORY:
        return VerificationTarget.REPOSITORY in target
    return False


def _is_target(signature_type: str, target: VerificationTarget) -> bool:
    """NC ``VerificationUtility.IsVerificationTarget``."""
    wanted = {
        "Unknown": VerificationTarget.UNKNOWN,
        "Author": VerificationTarget.AUTHOR,
        "Repository": VerificationTarget.REPOSITORY,
    }[signature_type]
    return wanted in target


def _has_untrusted_root(summary: _Summary) -> bool:
    return (
        summary.type != "Repository"
        and summary.status is not Status.VALID
        and StatusFlags.UNTRUSTED_ROOT in summary.flags
    )


def _is_expired(summary: _Summary) -> bool:
    return summary.type != "Repository" and summary.expiration_time is not None


def _raise_timestamp_load_errors(signature: Signature) -> None:
    """NuGet decodes timestamp tokens while building a signature and throws on the first bad one."""
    errors = timestamp_errors_of(signature)
    if errors:
        raise _SignatureLoadError(errors[0].code or NuCode.NU3021, errors[0].message)
    for timestamp in timestamps_of(signature):
        problem = timestamp._load_issue(signature.friendly_name)  # the load-time tier of Timestamp.check
        if problem is not None:
            raise _SignatureLoadError(problem.code or NuCode.NU3021, problem.message)


# What the typed result records (nuseal.verify.result docstring): intact / valid / trusted and revocation.
_REQUIREMENT_FAILURES = (
    StatusFlags.SIGNATURE_ALGORITHM_UNSUPPORTED
    | StatusFlags.CERTIFICATE_PUBLIC_KEY_INVALID
    | StatusFlags.HAS_LIFETIME_SIGNING_EKU
    | StatusFlags.CERTIFICATE_VALIDITY_IN_THE_FUTURE
)
_NOT_INTACT = StatusFlags.NO_CERTIFICATE | StatusFlags.SIGNATURE_CHECK_FAILED
# Timestamp.check() codes about the certificate rather than the token's integrity (NU3022/23/25/36).
_TIMESTAMP_VALIDITY_CODES = frozenset({NuCode.NU3022, NuCode.NU3023, NuCode.NU3025, NuCode.NU3036})
_SIGNATURE_KINDS = {
    SignatureType.AUTHOR: SignatureKind.AUTHOR,
    SignatureType.REPOSITORY: SignatureKind.REPOSITORY,
    SignatureType.UNKNOWN: SignatureKind.UNKNOWN,
}


def _identity(cert: x509.Certificate) -> CertificateIdentity:
    known = facts(cert)  # names and fingerprints memoised per certificate
    return CertificateIdentity(
        subject=known.dotnet_subject,
        issuer=known.dotnet_issuer,
        sha256_fingerprint=known.fingerprint(HashAlgorithm.SHA256),
        serial_number=cert.serial_number,
        not_before=known.not_before,
        not_after=known.not_after,
        self_issued=known.self_issued,
        der=known.der,
    )


def _revocation(chain: ChainResult | None) -> RevocationStatus:
    if chain is None:
        return RevocationStatus.NOT_CHECKED
    if chain.has(ChainStatus.REVOKED):
        return RevocationStatus.REVOKED
    if chain.has(ChainStatus.OFFLINE_REVOCATION) or chain.has(ChainStatus.REVOCATION_STATUS_UNKNOWN):
        return RevocationStatus.UNKNOWN
    return RevocationStatus.GOOD


def _chain_valid(chain: ChainResult, revocation: RevocationStatus, unknown_allowed: bool) -> bool:
    """The chain built without a status other than an untrusted root, and the revocation rules pass."""
    if chain.statuses & DEFAULT_OBSERVED_STATUSES:
        return False
    if revocation is RevocationStatus.REVOKED:
        return False
    return revocation is RevocationStatus.GOOD or unknown_allowed


class _Describe:
    """Builds the typed :class:`SignatureInfo` values from what one verification recorded in its ledger."""

    def __init__(self, verifier: Verifier, ledger: _Ledger, now: datetime) -> None:
        self.verifier = verifier
        self.policy = verifier.policy
        self.ledger = ledger
        self.now = now

    def signatures(self, primary: PrimarySignature) -> list[SignatureInfo]:
        out = [self.signature(primary, Placement.PRIMARY, primary.certificates)]
        try:
            countersignature = primary.repository_countersignature()
        except SignatureFormatError:
            countersignature = None
        if countersignature is not None:
            out.append(self.signature(countersignature, Placement.COUNTERSIGNATURE, primary.certificates))
        return out

    def signature(
        self, signature: Signature, placement: Placement, certificates: tuple[x509.Certificate, ...]
    ) -> SignatureInfo:
        policy = self.policy
        cert = signature.signer_certificate
        known = facts(cert) if cert else None
        summary = self.ledger.summaries.get(id(signature))
        chain = self.ledger.chains.get(id(signature))
        content_ok = self.ledger.integrity is not False if placement is Placement.PRIMARY else True
        issues: list[Issue] = []
        if placement is Placement.PRIMARY and self.ledger.integrity is False:
            issues.append(Issue(NuCode.NU3008, Level.ERROR, _INTEGRITY))
        valid = trusted = False
        revocation = RevocationStatus.NOT_CHECKED
        if summary is None:  # the policy did not judge it: only its integrity is established
            intact = cert is not None and content_ok and signature.verify_signature_value()
        else:
            issues.extend(summary.issues)
            intact = cert is not None and content_ok and not summary.flags & _NOT_INTACT
            revocation = _revocation(chain)
            if intact and cert is not None and chain is not None and not summary.flags & _REQUIREMENT_FAILURES:
                stamp = summary.timestamp if isinstance(summary.timestamp, Timestamp) else None
                lower = stamp.lower_limit if stamp else self.now
                upper = stamp.upper_limit if stamp else self.now
                valid = _chain_valid(chain, revocation, policy.allow_unknown_revocation) and (
                    _validate_against_timestamp(cert, lower, upper)
                )
                trusted = valid and (
                    not chain.has(ChainStatus.UNTRUSTED_ROOT) or self.verifier._untrusted_root_allowed(signature)
                )
        stamped = (
            signature.nuget_signature_value
            if isinstance(signature, RepositoryCountersignature)
            else signature.signature_value
        )
        return SignatureInfo(
            placement=placement,
            type=signature.type.value,
            signer_subject=known.dotnet_subject if known else None,
            signer_issuer=known.dotnet_issuer if known else None,
            fingerprints={a.nuget_name: known.fingerprint(a) for a in HashAlgorithm} if known else {},
            not_before=known.not_before if known else None,
            not_after=known.not_after if known else None,
            timestamps=tuple(
                (t.gen_time, facts(t.signer_certificate).dotnet_subject if t.signer_certificate else None)
                for t in timestamps_of(signature)
            ),
            hash_algorithm=(
                signature.content.hash_algorithm.nuget_name if isinstance(signature, PrimarySignature) else None
            ),
            v3_service_index_url=signature.v3_service_index_url,
            package_owners=signature.package_owners,
            kind=_SIGNATURE_KINDS[signature.type],
            signer=_identity(cert) if cert else None,
            intact=intact,
            valid=valid,
            trusted=trusted,
            checked=summary is not None,
            revocation=revocation,
            issues=tuple(issues),
            timestamp_details=tuple(
                self.timestamp(t, stamped, signature.friendly_name) for t in timestamps_of(signature)
            ),
            certificates=tuple(facts(c).der for c in certificates),
            other_countersignatures=(
                signature.countersignature_count - len(signature.countersignatures)
                if isinstance(signature, PrimarySignature)
                else 0
            ),
        )

    def timestamp(self, timestamp: Timestamp, stamped: bytes, name: str) -> TimestampInfo:
        policy = self.policy
        tsa = timestamp.signer_certificate
        chain = self.ledger.chains.get(id(timestamp))
        judged = self.ledger.timestamp_issues.get(id(timestamp))
        # The token's own findings (Timestamp.check); the engine builds the chain only when there are none.
        if judged is None:
            found = timestamp.check(stamped, now=self.now, signature_name=name)
        else:
            found = judged if chain is None else []
        token_codes = {i.code or NuCode.NU3021 for i in found}
        intact = tsa is not None and not token_codes - _TIMESTAMP_VALIDITY_CODES
        revocation = _revocation(chain) if judged is not None else RevocationStatus.NOT_CHECKED
        valid = trusted = False
        if judged is not None and chain is not None and intact and not token_codes:
            unknown_allowed = policy.allow_ignore_timestamp or policy.allow_unknown_revocation
            valid = _chain_valid(chain, revocation, unknown_allowed)
            trusted = valid and not chain.has(ChainStatus.UNTRUSTED_ROOT)
        return TimestampInfo(
            gen_time=timestamp.gen_time,
            authority=_identity(tsa) if tsa else None,
            intact=intact,
            valid=valid,
            trusted=trusted,
            checked=judged is not None,
            revocation=revocation,
            issues=tuple(judged) if judged is not None else (),
            certificates=tuple(facts(c).der for c in timestamp.certificates),
        )
