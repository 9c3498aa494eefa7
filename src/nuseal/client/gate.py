"""The gate before extraction: verify a downloaded package under the client's policy, then scan it.

Restore (``nuseal restore``) calls :func:`check` for every package it downloaded, before a single byte of it is
written to the global-packages folder (:meth:`nuseal.client.globalpackages.GlobalPackagesFolder.install` does it
for you). Two engines, the same as everywhere else in nuseal (``../shared/DESIGN.md``):

1. ``nuseal.verify`` under :attr:`GateSettings.policy` - NuGet's restore policy, ``signatureValidationMode``
   ``accept`` or ``require`` with the nuget.config ``trustedSigners`` (build it with :func:`client_policy`; NC
   ``ClientPolicyContext.GetClientPolicy``), tightened per source by the source's ``RepositorySignatures``
   resource when the caller passes it (:class:`RepositorySignatureInfo`; NC
   ``RepositorySignatureInfoUtility.GetSignedPackageVerifierSettings``). Any verification error refuses the
   package with its NU code (NU3008 integrity, NU3004 unsigned under require, NU3034 signer outside
   ``trustedSigners``, NU3018 chain...). nuseal's container hardening problems (path tricks, overlapping
   entries, ZIP bombs) refuse it too (no NU code: NuGet has none).
2. ``nuseal.scan`` with :attr:`GateSettings.rules` and :attr:`GateSettings.scan_context`: a finding at or above
   :attr:`GateSettings.block_on` refuses the package (its rule id, e.g. ``NS1110`` for a download-and-run
   ``init.ps1``) unless :attr:`GateSettings.allow` lets that package trigger that rule.

The scan allow list lives in ``nuseal.toml`` beside the project (:func:`load_allow_list`)::

    [[scan.allow]]
    id = "EntityFramework"          # package id pattern (fnmatch glob, case-insensitive): "Contoso.*"
    rules = ["NS1101", "NS1105"]    # rule ids (or globs, "NS1*") this package may trigger
    reason = "init.ps1 adds the EF PowerShell commands"   # optional, shown in reports

Nothing here writes to disk. :func:`check` never raises for a bad package: it returns a :class:`GateResult`
whose :meth:`GateResult.error` is the :class:`~nuseal.errors.RestoreError` to raise (it names the package, the
source, and the NU code or rule id).
"""

from __future__ import annotations

import fnmatch
import functools
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import ConfigError, PackageFormatError, RestoreError
from nuseal.hashalg import HashAlgorithm
from nuseal.package.version import NuGetVersion
from nuseal.scan.engine import ScanContext, ScanReport, scan_package
from nuseal.scan.model import Finding, Severity
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import RuleSet, load_rules
from nuseal.trust import CertificatePurpose, NuGetConfig, RevocationMode, SignatureValidationMode, TrustStore
from nuseal.trust.revocation_cache import RevocationRun, current_run
from nuseal.verify import AllowList, AllowListEntry, SignaturePlacement, VerificationPolicy, VerificationTarget
from nuseal.verify.policy import trusted_signer_entries
from nuseal.verify.result import VerificationResult
from nuseal.verify.verifier import Verifier

if TYPE_CHECKING:
    from nuseal.client.v3documents import RepositorySignatures

__all__ = [
    "ALLOW_LIST_FILE",
    "GateResult",
    "GateSettings",
    "RepositorySignatureInfo",
    "ScanAllowEntry",
    "ScanAllowList",
    "check",
    "client_policy",
    "effective_policy",
    "load_allow_list",
    "refusal_codes",
]

#: The per-project settings file holding the scan allow list (next to the project or solution).
ALLOW_LIST_FILE = "nuseal.toml"

_REPOSITORY_NO_MATCH = "The package signature certificate does not match any of the repository's certificates."
_REPOSITORY_EMPTY = "The repository says all its packages are signed but lists no certificate."


# ---------------------------------------------------------------------------------------------- scan allow list
@dataclass(frozen=True)
class ScanAllowEntry:
    """One ``[[scan.allow]]`` entry: packages whose id matches ``id_pattern`` (fnmatch glob, case-insensitive) may
    trigger the scan rules in ``rules`` (rule ids or globs, case-insensitive)."""

    id_pattern: str
    rules: tuple[str, ...]
    reason: str | None = None

    def matches(self, package_id: str, rule_id: str) -> bool:
        """Whether this entry allows ``rule_id`` for ``package_id``."""
        if not fnmatch.fnmatchcase(package_id.casefold(), self.id_pattern.casefold()):
            return False
        return any(fnmatch.fnmatchcase(rule_id.upper(), r.upper()) for r in self.rules)


@dataclass(frozen=True)
class ScanAllowList:
    """The scan allow list (``nuseal.toml``); empty by default. ``source`` is the file it was read from."""

    entries: tuple[ScanAllowEntry, ...] = ()
    source: str | None = None

    def allows(self, package_id: str | None, rule_id: str) -> ScanAllowEntry | None:
        """The first entry that lets ``package_id`` trigger ``rule_id``, or ``None``."""
        if package_id is None:
            return None
        for entry in self.entries:
            if entry.matches(package_id, rule_id):
                return entry
        return None


def load_allow_list(path: Path | None) -> ScanAllowList:
    """Read the ``[[scan.allow]]`` entries of a ``nuseal.toml`` (``path`` is the file, or a folder holding
    :data:`ALLOW_LIST_FILE`). ``None``, or a folder without the file, gives an empty list.

    Raises:
        ConfigError: the file is not TOML, or an entry lacks ``id``/``rules``, has an empty pattern, or an
            unknown key (naming the file and the entry number).
    """
    if path is None:
        return ScanAllowList()
    file = path / ALLOW_LIST_FILE if path.is_dir() else path
    if not file.is_file():
        return ScanAllowList()
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the scan allow list: {exc}") from exc
    scan = doc.get("scan", {})
    if not isinstance(scan, dict):
        raise ConfigError(f"{file}: [scan] must be a table")
    raw = scan.get("allow", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{file}: scan.allow must be an array of tables ([[scan.allow]])")
    entries: list[ScanAllowEntry] = []
    for n, item in enumerate(raw, start=1):
        where = f"{file}: [[scan.allow]] entry {n}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} is not a table")
        unknown = set(item) - {"id", "rules", "reason"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (expected id, rules, reason)")
        pattern = item.get("id")
        rules = item.get("rules")
        if not isinstance(pattern, str) or not pattern.strip():
            raise ConfigError(f"{where}: 'id' must be a non-empty package id pattern")
        if isinstance(rules, str):
            rules = [rules]
        if not isinstance(rules, list) or not rules or not all(isinstance(r, str) and r.strip() for r in rules):
            raise ConfigError(f"{where}: 'rules' must list the scan rule ids this package may trigger")
        reason = item.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ConfigError(f"{where}: 'reason' must be text")
        entries.append(ScanAllowEntry(pattern.strip(), tuple(r.strip() for r in rules), reason))
    return ScanAllowList(tuple(entries), str(file))


# ---------------------------------------------------------------------------------------------- policy
def client_policy(
    configs: Sequence[NuGetConfig],
    *,
    mode: SignatureValidationMode | None = None,
    revocation_mode: RevocationMode | None = None,
) -> tuple[VerificationPolicy, list[Issue]]:
    """Restore's verification policy from the nuget.config chain (nearest first), as NC
    ``ClientPolicyContext.GetClientPolicy`` builds it: ``signatureValidationMode`` (``mode`` overrides it; else the
    nearest file's value, ``accept`` when none) and every file's ``trustedSigners``
    (:func:`nuseal.verify.policy.trusted_signer_entries`, the same as ``nuseal verify``). ``revocation_mode``
    defaults to ``NUGET_CERT_REVOCATION_MODE``, else online. Returns the policy and the trusted-signer merge
    issues (warnings to print)."""
    trusted, issues = trusted_signer_entries(configs)
    chosen = mode or (configs[0].signature_validation_mode if configs else SignatureValidationMode.ACCEPT)
    revocation = revocation_mode or RevocationMode.from_env()
    if chosen is SignatureValidationMode.REQUIRE:
        return VerificationPolicy.require(trusted_signers=trusted, revocation_mode=revocation), issues
    return VerificationPolicy.accept(trusted_signers=trusted, revocation_mode=revocation), issues


@dataclass(frozen=True)
class RepositorySignatureInfo:
    """A source's ``RepositorySignatures`` resource (NuGet V3 ``RepositorySignatures/5.0.0``): whether every
    package on it is repository-signed, and its signing certificates as allow-list entries (target repository,
    placement primary signature or countersignature, one entry per fingerprint algorithm)."""

    all_repository_signed: bool
    certificates: tuple[AllowListEntry, ...] = ()

    @classmethod
    def from_document(cls, document: RepositorySignatures) -> RepositorySignatureInfo:
        """``document``'s certificates as allow-list entries for repository signatures (NC
        ``RepositorySignatureInfoUtility``): one entry per fingerprint under a hash algorithm NuGet knows, named by
        the certificate's subject; fingerprints under other algorithms are skipped. Restore
        (:meth:`nuseal.client.feedclient.FeedClient.repository_signatures`) and the mirror's upstreams read a
        source's resource through it."""
        entries: list[AllowListEntry] = []
        for cert in document.certificates:
            for oid, fingerprint in cert.fingerprints.items():
                algorithm = HashAlgorithm.from_oid(oid)
                if algorithm is not None:
                    entries.append(
                        AllowListEntry(
                            fingerprint=fingerprint,
                            hash_algorithm=algorithm,
                            target=VerificationTarget.REPOSITORY,
                            placement=SignaturePlacement.ANY,
                            name=cert.subject or None,
                        )
                    )
        return cls(document.all_repository_signed, tuple(entries))


def effective_policy(policy: VerificationPolicy, info: RepositorySignatureInfo | None) -> VerificationPolicy:
    """``policy`` tightened by a source's repository signature info (NC
    ``RepositorySignatureInfoUtility.GetSignedPackageVerifierSettings``): unsigned and untrusted packages are no
    longer allowed when the source says all its packages are repository-signed, and the repository certificates
    become an allow list for repository signatures (required to be non-empty when all are signed)."""
    if info is None:
        return policy
    certs = tuple(
        AllowListEntry(
            fingerprint=e.fingerprint,
            hash_algorithm=e.hash_algorithm,
            target=VerificationTarget.REPOSITORY,
            placement=SignaturePlacement.ANY,
            name=e.name,
        )
        for e in info.certificates
    )
    lists = policy.allow_lists
    if certs or info.all_repository_signed:
        lists = (
            *lists,
            AllowList(
                certs,
                require_non_empty=info.all_repository_signed,
                empty_message=_REPOSITORY_EMPTY,
                no_match_message=_REPOSITORY_NO_MATCH,
            ),
        )
    return policy.evolve(
        name=f"{policy.name}+repository-signatures",
        allow_unsigned=policy.allow_unsigned and not info.all_repository_signed,
        allow_untrusted=policy.allow_untrusted and not info.all_repository_signed,
        allow_lists=lists,
    )


# ---------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class GateSettings:
    """Everything the gate needs; build once per restore and share across packages (it is immutable, and the
    verifier, trust stores and scanner it implies are built once and cached).

    Attributes:
        policy: restore's policy (:func:`client_policy`, or ``VerificationPolicy.accept()/require(...)``).
        block_on: scan findings at or above this severity refuse the package (``--block-on``; default error).
        allow: the scan allow list (:func:`load_allow_list`).
        rules: the scan rules (``None``: the built-in rules, :func:`nuseal.scan.rules.load_rules`).
        scan_context: what the identity analysers need (popular ids, OSV path), as ``nuseal scan`` takes it.
        code_signing_roots / timestamping_roots: PEM bundles of trusted roots (``None``: as the .NET SDK finds
            them on Linux, :meth:`nuseal.trust.TrustStore.discover`).
        repository_signatures: per source (the same string the caller passes as ``source``), that source's
            :class:`RepositorySignatureInfo` (see :func:`effective_policy`).
        scan: ``False`` skips the scan (verification only).
    """

    policy: VerificationPolicy = field(default_factory=VerificationPolicy.accept)
    block_on: Severity = Severity.ERROR
    allow: ScanAllowList = field(default_factory=ScanAllowList)
    rules: RuleSet | None = field(default=None, compare=False)
    scan_context: ScanContext = field(default_factory=ScanContext)
    code_signing_roots: str | None = None
    timestamping_roots: str | None = None
    repository_signatures: tuple[tuple[str, RepositorySignatureInfo], ...] = ()
    scan: bool = True

    def policy_for(self, source: str) -> VerificationPolicy:
        """The policy for packages from ``source`` (:func:`effective_policy` with its repository info)."""
        return effective_policy(self.policy, dict(self.repository_signatures).get(source))

    def verifier_for(self, source: str) -> Verifier:
        """The (cached) verifier for packages from ``source``."""
        return _verifier(self.policy_for(source), self.code_signing_roots, self.timestamping_roots, current_run())

    def scan_rules(self) -> RuleSet:
        """:attr:`rules`, or the built-in rules (loaded once)."""
        return self.rules if self.rules is not None else _builtin_rules()


@functools.cache
def _builtin_rules() -> RuleSet:
    return load_rules()


@functools.cache
def _store(path: str | None, purpose: CertificatePurpose) -> TrustStore:
    return TrustStore.from_pem_file(path) if path else TrustStore.discover(purpose)


@functools.lru_cache(maxsize=32)
def _verifier(
    policy: VerificationPolicy, code_signing: str | None, timestamping: str | None, run: RevocationRun | None = None
) -> Verifier:
    """One verifier per policy, trust bundles and revocation run (it uses the run's host view and cache)."""
    del run  # a key only: Verifier() picks up the current run itself
    return Verifier(
        policy,
        code_signing_roots=_store(code_signing, CertificatePurpose.CODE_SIGNING),
        timestamping_roots=_store(timestamping, CertificatePurpose.TIMESTAMPING),
        with_content_hash=False,
    )


# ---------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one package.

    ``verification`` is the engine's result (``issues`` in NuGet's order). ``scan`` is ``None`` when the scan did
    not run (verification already refused the package, or ``GateSettings.scan`` is off). ``blocking`` are the
    findings at or above the threshold that no allow-list entry covers; ``allowed`` those an entry covered.
    ``problem`` is a refusal that is neither a verification issue nor a finding (the package is not the one
    asked for). The package passes iff :attr:`refused` is false.
    """

    package_id: str
    version: str
    source: str
    verification: VerificationResult
    scan: ScanReport | None = None
    blocking: tuple[Finding, ...] = ()
    allowed: tuple[Finding, ...] = ()
    problem: str | None = None
    block_on: Severity = Severity.ERROR

    @property
    def refused(self) -> bool:
        return self.problem is not None or not self.verification.valid or bool(self.blocking)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        """Verification warnings (NuGet logs them as restore warnings, e.g. NU3027, NU3034 in accept mode)."""
        return self.verification.warnings

    @property
    def code(self) -> NuCode | None:
        """The NU code of the first verification error (``None`` for a scan refusal or an uncoded problem)."""
        if self.verification.valid:
            return None
        for issue in self.verification.errors:
            if issue.code is not None:
                return issue.code
        return None

    @property
    def rule_id(self) -> str | None:
        """The rule of the first blocking finding (``None`` when the scan did not refuse the package)."""
        return self.blocking[0].rule_id if self.blocking else None

    @property
    def message(self) -> str:
        """One line naming the package, the source and why it was refused (empty when it passed); the NuGet form
        ``Package '<id> <version>' from source '<source>': <reason>``."""
        if not self.refused:
            return ""
        head = f"Package '{self.package_id} {self.version}' from source '{self.source}': "
        if self.problem is not None:
            return head + self.problem
        if not self.verification.valid:
            errors = self.verification.errors
            first = errors[0] if errors else None
            if first is None:
                return head + "the package signature validation failed."
            text = first.message
            return head + (f"{first.code.value}: {text}" if first.code else text)
        f = self.blocking[0]
        where = (
            f" ({f.location.path}{':' + str(f.location.line) if f.location.line else ''})" if f.location.path else ""
        )
        more = f" and {len(self.blocking) - 1} more finding(s)" if len(self.blocking) > 1 else ""
        return (
            head + f"{f.rule_id} {f.severity.sarif_level}{where}: {f.message}{more}. Blocked by the scan "
            f"(--block-on {self.block_on.sarif_level}); allow it in {ALLOW_LIST_FILE} with "
            f'[[scan.allow]] id = "{self.package_id}", rules = ["{f.rule_id}"] if it is expected.'
        )

    def error(self) -> RestoreError:
        """The :class:`RestoreError` for a refused package (call only when :attr:`refused`)."""
        return RestoreError(
            self.message,
            code=self.code,
            package=f"{self.package_id} {self.version}",
            source=self.source,
            rule_id=self.rule_id,
        )


# ---------------------------------------------------------------------------------------------- check
def _identity_problem(result: VerificationResult, package_id: str, version: NuGetVersion) -> str | None:
    if result.package_id is None or result.package_version is None:
        return None  # an unreadable nuspec is reported by verification / the scan
    try:
        found = NuGetVersion.parse(result.package_version)
    except PackageFormatError:
        return None
    if result.package_id.casefold() != package_id.casefold() or found != version:
        return (
            f"the downloaded package is {result.package_id} {result.package_version}, not the "
            f"{package_id} {version.normalized} that was asked for"
        )
    return None


def check(
    data: bytes,
    *,
    package_id: str,
    version: NuGetVersion | str,
    source: str,
    settings: GateSettings,
    now: datetime,
) -> GateResult:
    """Verify then scan one downloaded package (``data``: the .nupkg bytes) before anything is written.

    ``package_id``/``version`` are what restore asked for (the nuspec must agree, else the package is refused);
    ``source`` is the source URL or folder it came from (it names the source in errors and picks its repository
    signature info). ``now`` (timezone-aware) is the moment the signatures are judged at.
    Never raises for a bad package; see :class:`GateResult`.
    """
    ver = version if isinstance(version, NuGetVersion) else NuGetVersion.parse(version)
    verifier = settings.verifier_for(source)
    result = verifier.verify_bytes(data, now=now, source=source)
    base = GateResult(
        package_id=package_id, version=ver.normalized, source=source, verification=result, block_on=settings.block_on
    )
    problem = _identity_problem(result, package_id, ver)
    if problem is not None:
        return replace(base, problem=problem)
    if not result.valid or not settings.scan:
        return base
    report = scan_package(
        ScanPackage.from_bytes(data, source=source), settings.scan_rules(), context=settings.scan_context
    )
    blocking: list[Finding] = []
    allowed: list[Finding] = []
    for f in report.findings:
        if f.severity < settings.block_on:
            continue
        if settings.allow.allows(f.package.id or package_id, f.rule_id) is not None:
            allowed.append(f)
        else:
            blocking.append(f)
    return replace(base, scan=report, blocking=tuple(blocking), allowed=tuple(allowed))


def refusal_codes(results: Iterable[GateResult]) -> frozenset[str]:
    """The NU codes and rule ids of refused results (for summaries and tests)."""
    out: set[str] = set()
    for r in results:
        if r.refused:
            out.update(i.code.value for i in r.verification.errors if i.code is not None and i.level is Level.ERROR)
            out.update(f.rule_id for f in r.blocking)
    return frozenset(out)
