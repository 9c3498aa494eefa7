"""The ingestion checks (issue 16): what the feed asks of every package before it is served.

Each check reads one :class:`Candidate` (the package, who or what brought it, and what earlier checks learned) and
returns a :class:`StageResult`: ``pass``, ``hold`` (quarantine for a person to decide), ``refuse`` or ``skip``,
with JSON evidence. The same checks run for upstream packages (:mod:`nuseal.feed.mirror.ingest`) and for pushes
(:mod:`nuseal.feed.mirror.push`); the callers decide what a verdict does to their request.

In order:

* ``signatures`` (upstream packages only; pushes have the signing stages, :mod:`nuseal.feed.signing.stages`): the
  verification engine under NuGet's accept policy tightened by the upstream's ``RepositorySignatures`` resource
  (:func:`nuseal.client.gate.effective_policy`, NuGet's ``RepositorySignatureInfoUtility``): a package that does
  not verify, or whose repository signature is not by a certificate the upstream lists, is refused. Then the author
  policy (``IngestConfig.author_policy``): ``none``; ``any`` -- an author primary signature that verifies with a
  trusted chain; ``allow-list`` -- the same, by a certificate whose SHA-256 fingerprint is in
  ``IngestConfig.trusted_signers`` (NuGet ``trustedSigners``). A failed author policy holds the version. NU codes
  and the signatures (type, subject, issuer, SHA-256) are the evidence; nothing matches message text.
* ``identity``: a *new* id under a reserved prefix (nuget.org's id prefix reservation) that the pusher does not own
  is refused; a new id that is a look-alike (:mod:`nuseal.scan.lookalike`, NS5002-NS5005, not the weak family
  case) of an id on the feed (pushed or upstream-cached) or of a popular id is refused for a push and held for an
  upstream package, naming the id it imitates.
* ``scan``: the scan engine (:mod:`nuseal.scan`); findings at or above ``hold_severity`` hold the version;
  for pushes, findings of a ``block_rules`` rule refuse it (400). Look-alike (NS5xxx) and OSV (NS6xxx) findings are
  shown but decided by ``identity`` and ``known-bad``.
* ``known-bad``: OSV data (``--osv DIR``): a malicious version (OpenSSF ``MAL-*``) is refused for good; a vulnerable
  one passes, with its advisories as evidence (the feed lists them in ``VulnerabilityInfo``).
* ``cooldown`` (upstream packages): a version published upstream less than ``min_release_age_seconds`` ago is held
  until it is old enough (``release_at``), unless an admin overrode the cooldown for the id or the version.
* ``continuity`` (upstream packages; pushes with ``push_continuity``): the author signer (certificate SHA-256,
  subject, issuer) must be one accepted for the id (``accepted_signers``, or the author certificates of its
  published versions); a version signed by another
  certificate, or unsigned where earlier versions were signed, is held with both identities; a signature that names
  the accepted certificate but is not intact (the engine's typed result) is held too. The first signed version's
  signer is accepted when it is published.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from nuseal.client.gate import RepositorySignatureInfo, effective_policy
from nuseal.errors import ConfigError
from nuseal.feed.mirror.osv_refresh import OsvData
from nuseal.feed.mirror.vulnerabilities import VulnerabilityInfo
from nuseal.feed.publish.signatures import read_signatures
from nuseal.feed.store.models import (
    AcceptedSigner,
    Certificate,
    CooldownOverride,
    Owner,
    Package,
    PackageSignature,
    Registration,
    ReservedPrefix,
)
from nuseal.package import Nuspec, PackageArchive
from nuseal.scan.engine import ScanContext, scan_package
from nuseal.scan.lookalike import PopularIds, builtin_popular_ids, read_id_file
from nuseal.scan.model import Finding, Severity
from nuseal.scan.osv import Advisory
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import RuleSet, load_rules
from nuseal.trust import CertificatePurpose, RevocationFetcher, RevocationMode, TrustStore
from nuseal.verify import VerificationPolicy, VerificationResult, Verifier
from nuseal.verify.result import SignatureKind

__all__ = [
    "AUTHOR_POLICIES",
    "outcome_state",
    "author_signer",
    "Candidate",
    "IngestChecks",
    "IngestSettings",
    "SignerIdentity",
    "StageResult",
    "UpstreamInfo",
    "Verdict",
    "finding_evidence",
    "ingest_settings",
]

#: ``IngestConfig.author_policy`` values.
AUTHOR_POLICIES = ("none", "any", "allow-list")
#: Scan rules whose findings other stages decide (look-alike ids: ``identity``; OSV: ``known-bad``).
_DECIDED_ELSEWHERE = ("NS5", "NS6")
#: How far back of the newest indexed registration the look-alike index reads again (transactions commit out of order).
INDEX_MARGIN = timedelta(minutes=10)
#: Most findings kept as evidence per version.
MAX_EVIDENCE_FINDINGS = 50


class Verdict(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    HOLD = "hold"
    REFUSE = "refuse"
    SKIP = "skip"


@dataclass(frozen=True)
class StageResult:
    """One stage's verdict on one version, with its JSON-able ``evidence``; ``release_at`` for a cooldown hold."""

    stage: str
    verdict: Verdict
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    release_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stage": self.stage,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "evidence": dict(self.evidence),
        }
        if self.release_at is not None:
            out["release_at"] = self.release_at.astimezone(UTC).isoformat()
        return out


@dataclass(frozen=True)
class UpstreamInfo:
    """Where an upstream package came from, as the mirror read it.

    Attributes:
        url: the upstream's V3 service index URL (names it in evidence and errors).
        repository_signatures: the upstream's ``RepositorySignatures/5.0.0`` resource (None: it has none; then only
            what the package's own signatures say is checked).
        published: the version's ``published`` date on the upstream (registration leaf; cooldown), None: unknown.
    """

    url: str
    repository_signatures: RepositorySignatureInfo | None = None
    published: datetime | None = None


@dataclass(frozen=True)
class SignerIdentity:
    """An author signer: its certificate's SHA-256 (lower-case hex), subject and issuer (.NET names)."""

    fingerprint: str
    subject: str
    issuer: str

    def to_json(self) -> dict[str, str]:
        return {"fingerprint": self.fingerprint, "subject": self.subject, "issuer": self.issuer}


@dataclass
class Candidate:
    """One package being ingested (``source`` ``push`` or ``upstream``)."""

    path: Path
    archive: PackageArchive
    nuspec: Nuspec
    source: str
    now: datetime
    upstream: UpstreamInfo | None = None
    pusher_pk: int | None = None
    #: Set by the ``signatures`` stage: the engine's result (``continuity`` reuses it).
    verification: VerificationResult | None = None

    @property
    def id(self) -> str:
        return self.nuspec.id

    @property
    def version(self) -> str:
        return self.nuspec.version.normalized

    @property
    def id_lower(self) -> str:
        return self.nuspec.id.lower()

    @property
    def version_lower(self) -> str:
        return self.nuspec.version.normalized.lower()


@dataclass(frozen=True)
class IngestSettings:
    """The checks' settings (from ``FeedConfig.ingest`` and ``FeedConfig.signing``'s trust bundles)."""

    hold_severity: Severity | None = Severity.ERROR
    block_rules: tuple[str, ...] = ()
    author_policy: str = "none"
    trusted_signers: tuple[str, ...] = ()
    min_release_age: timedelta = timedelta(0)
    osv_path: str | None = None
    osv_refresh_seconds: float = 0.0
    popular_id_files: tuple[str, ...] = ()
    rules_files: tuple[str, ...] = ()
    revocation_mode: RevocationMode = RevocationMode.ONLINE
    code_signing_roots: str | None = None
    timestamping_roots: str | None = None
    push_continuity: bool = False

    def __post_init__(self) -> None:
        if self.author_policy not in AUTHOR_POLICIES:
            raise ConfigError(f"the author policy must be one of {', '.join(AUTHOR_POLICIES)}")
        if self.author_policy == "allow-list" and not self.trusted_signers:
            raise ConfigError("the allow-list author policy needs at least one trusted signer fingerprint")
        if self.min_release_age < timedelta(0):
            raise ConfigError("the minimum release age cannot be negative")


def finding_evidence(f: Finding) -> dict[str, Any]:
    """A finding as evidence: rule, severity, message, where, and the snippet a reviewer judges."""
    return {
        "rule": f.rule_id,
        "severity": f.severity.sarif_level,
        "message": f.message,
        "path": f.location.path,
        "line": f.location.line,
        "snippet": f.evidence,
    }


def _signature_json(result: VerificationResult) -> list[dict[str, Any]]:
    """The engine's typed facts per signature (kind, placement, signer identity, intact/valid/trusted, NU codes)."""
    return [
        {
            "placement": str(x.placement),
            "kind": str(x.kind),
            "subject": x.signer.subject if x.signer else x.signer_subject,
            "issuer": x.signer.issuer if x.signer else x.signer_issuer,
            "sha256": (x.signer.sha256_fingerprint if x.signer else "").lower(),
            "intact": x.intact,
            "valid": x.valid,
            "trusted": x.trusted,
            "revocation": str(x.revocation),
            "codes": sorted(c.value for c in x.codes),
            "v3_service_index_url": x.v3_service_index_url,
        }
        for x in result.signatures
    ]


def _codes(result: VerificationResult) -> list[dict[str, str | None]]:
    return [
        {"code": i.code.value if i.code else None, "level": i.level.name.lower(), "message": i.message}
        for i in result.issues
        if i.code is not None or i.level.name != "INFORMATION"
    ]


def author_signer(result: VerificationResult | None) -> SignerIdentity | None:
    """The author primary signature's signer as the verification engine read it (its typed
    :class:`~nuseal.verify.CertificateIdentity`), or None: no result, unsigned, a repository or unknown primary, or a
    signature the engine could not read."""
    primary = result.primary if result is not None else None
    if primary is None or primary.kind is not SignatureKind.AUTHOR or primary.signer is None:
        return None
    signer = primary.signer
    return SignerIdentity(signer.sha256_fingerprint.lower(), signer.subject, signer.issuer)


class IngestChecks:
    """The checks of one feed (thread-safe; the rules, OSV data, look-alike index and verifiers are built once).

    ``db`` is the feed's :class:`~nuseal.feed.store.database.Database`; ``clock`` gives the current UTC time;
    ``fetcher`` carries the OCSP/CRL requests of online revocation checks (the composition root passes the feed's
    HTTP fetcher; without one nothing is fetched and revocation is checked as offline).
    """

    def __init__(
        self,
        db: Any,
        settings: IngestSettings,
        *,
        clock: Callable[[], datetime],
        osv: OsvData | None = None,
        fetcher: RevocationFetcher | None = None,
    ) -> None:
        self.db = db
        self.fetcher = fetcher
        if osv is None and settings.osv_path:
            osv = OsvData(settings.osv_path, clock=clock, refresh_seconds=settings.osv_refresh_seconds)
        #: The OSV data (``--osv``), taken again when its folder changes; None without ``--osv``.
        self.osv = osv
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._index: PopularIds | None = None
        self._indexed: set[str] = set()
        self._indexed_until: datetime | None = None
        self._verifiers: dict[str, Verifier] = {}

    # -------------------------------------------------------------------------------------- shared data
    @functools.cached_property
    def rules(self) -> RuleSet:
        return load_rules([Path(p) for p in self.settings.rules_files])

    @property
    def vulnerabilities(self) -> VulnerabilityInfo | None:
        """The OSV data to check against now (:meth:`OsvData.current`: read again when the ``--osv`` folder changed;
        the snapshot the feed's ``VulnerabilityInfo`` resource is written from in this process), or None."""
        return self.osv.current() if self.osv is not None else None

    def _lookalike_index(self) -> PopularIds:
        """The popular ids (built-in list and ``popular_id_files``) plus every id on the feed, pushed or cached from an
        upstream. After the first call only ids registered since the last one (with a margin for transactions that
        committed late) are read."""
        since = self._indexed_until
        with self.db.read() as session:
            query = select(Registration.id, Registration.created_at)
            if since is not None:
                query = query.where(Registration.created_at >= since - INDEX_MARGIN)
            rows = session.execute(query).all()
        ids = [pid for pid, _ in rows]
        newest = max((_utc(at) for _, at in rows), default=since)
        with self._lock:
            if newest is not None and (self._indexed_until is None or newest > self._indexed_until):
                self._indexed_until = newest
            if self._index is None:
                extra: list[str] = []
                for name in self.settings.popular_id_files:
                    extra.extend(read_id_file(Path(name)))
                self._index = PopularIds((*builtin_popular_ids(), *extra))
            for pid in ids:
                if pid.lower() not in self._indexed:
                    self._index.add(pid)
                    self._indexed.add(pid.lower())
            return self._index

    def _verifier(self, policy: VerificationPolicy) -> Verifier:
        key = repr(policy)
        with self._lock:
            found = self._verifiers.get(key)
            if found is None:
                s = self.settings
                found = Verifier(
                    policy,
                    code_signing_roots=_store(s.code_signing_roots, CertificatePurpose.CODE_SIGNING),
                    timestamping_roots=_store(s.timestamping_roots, CertificatePurpose.TIMESTAMPING),
                    fetcher=self.fetcher,
                )
                if len(self._verifiers) > 32:
                    self._verifiers.clear()
                self._verifiers[key] = found
            return found

    # -------------------------------------------------------------------------------------- signatures
    def signatures(self, c: Candidate) -> StageResult:
        """Upstream packages: repository signature and author policy (module docstring)."""
        name = "signatures"
        if c.source != "upstream" or c.upstream is None:
            return StageResult(name, Verdict.SKIP, "pushes are checked by the signing stages")
        s = self.settings
        info = c.upstream.repository_signatures
        base = VerificationPolicy.accept(revocation_mode=s.revocation_mode)
        result = self._verifier(effective_policy(base, info)).verify(c.archive, now=c.now)
        c.verification = result
        evidence: dict[str, Any] = {
            "upstream": c.upstream.url,
            "signatures": _signature_json(result),
            "codes": _codes(result),
            "repository_certificates": sorted(e.fingerprint.lower() for e in info.certificates) if info else None,
            "all_repository_signed": info.all_repository_signed if info else None,
        }
        if not result.valid:
            codes = sorted(result.error_codes)
            return StageResult(
                name,
                Verdict.REFUSE,
                f"the package's signatures do not verify as the upstream {c.upstream.url} signs its packages"
                + (f" ({', '.join(codes)})" if codes else ""),
                evidence,
            )
        if info is not None and info.certificates:
            # Stricter than NuGet's client, whose repository allow list only warns (NU3034) in accept mode when the
            # upstream says allRepositorySigned false: every repository signature on a mirrored package must be by a
            # certificate the upstream lists, whatever the flag (issue 16: "must be one the upstream lists").
            listed = {e.fingerprint.lower() for e in info.certificates}
            for sig in result.signatures:
                if sig.kind is not SignatureKind.REPOSITORY:
                    continue
                found = (sig.signer.sha256_fingerprint if sig.signer else "").lower()
                if found not in listed:
                    return StageResult(
                        name,
                        Verdict.REFUSE,
                        f"NU3034: the repository signature ({sig.signer_subject}) is by a certificate the upstream "
                        f"{c.upstream.url} does not list in its RepositorySignatures resource",
                        evidence,
                    )
        if s.author_policy == "none":
            return StageResult(name, Verdict.PASS, "signatures verify; no author signature required", evidence)
        primary = result.primary
        if primary is None or primary.kind is not SignatureKind.AUTHOR:
            return StageResult(
                name,
                Verdict.HOLD,
                f"the author policy '{s.author_policy}' needs an author signature; there is none",
                evidence,
            )
        if not (primary.intact and primary.valid and primary.trusted):
            codes = sorted(c.value for c in primary.codes)
            return StageResult(
                name,
                Verdict.HOLD,
                "the author signature does not verify with a trusted chain"
                + (f" ({', '.join(codes)})" if codes else ""),
                evidence,
            )
        fingerprint = (primary.signer.sha256_fingerprint if primary.signer else "").lower()
        if s.author_policy == "allow-list" and fingerprint not in {f.lower() for f in s.trusted_signers}:
            return StageResult(
                name,
                Verdict.HOLD,
                f"the author certificate {fingerprint} ({primary.signer_subject}) is not a trusted signer of this feed",
                evidence,
            )
        return StageResult(name, Verdict.PASS, f"signatures verify; author {primary.signer_subject}", evidence)

    # -------------------------------------------------------------------------------------- identity
    def identity(self, c: Candidate) -> StageResult:
        """Reserved prefixes and look-alike ids, for ids new to the feed (module docstring)."""
        name = "identity"
        with self.db.read() as session:
            reg = session.get(Registration, c.id_lower)
            owners = set(session.scalars(select(Owner.user_pk).where(Owner.id_lower == c.id_lower)).all())
            reservations = [
                r for r in session.scalars(select(ReservedPrefix)).all() if c.id_lower.startswith(r.prefix_lower)
            ]
            known_owned = (
                set(
                    session.scalars(
                        select(Registration.id)
                        .join(Owner, Owner.id_lower == Registration.id_lower)
                        .where(Owner.user_pk == c.pusher_pk)
                    ).all()
                )
                if c.pusher_pk is not None
                else set()
            )
        if c.source == "push" and reg is not None and owners:
            return StageResult(name, Verdict.PASS, "an existing id")
        if c.source == "upstream" and reg is not None:
            return StageResult(name, Verdict.PASS, "an id already on the feed")
        if reservations:
            prefix_owners = {r.user_pk for r in reservations}
            prefixes = sorted({r.prefix for r in reservations})
            if c.source == "upstream" or c.pusher_pk not in prefix_owners:
                who = "an upstream" if c.source == "upstream" else "this user"
                return StageResult(
                    name,
                    Verdict.REFUSE,
                    f"the id {c.id} is under the reserved prefix {', '.join(prefixes)}, which {who} may not use",
                    {"reserved_prefixes": prefixes},
                )
        hits = [
            h
            for h in self._lookalike_index().check(c.id)
            if h.target is not None and not h.weak and h.target not in known_owned
        ]
        if hits:
            hit = hits[0]
            evidence = {"imitates": hit.target, "rule": hit.rule_id, "detail": hit.detail}
            return StageResult(
                name,
                Verdict.REFUSE if c.source == "push" else Verdict.HOLD,
                f"the id {c.id} looks like {hit.target} ({hit.rule_id}: {hit.detail})",
                evidence,
            )
        return StageResult(name, Verdict.PASS, "a new id; no reserved prefix or look-alike")

    # -------------------------------------------------------------------------------------- scan
    def scan(self, c: Candidate) -> StageResult:
        """The scan engine over the package (module docstring)."""
        name = "scan"
        s = self.settings
        report = scan_package(
            ScanPackage.from_bytes(c.path.read_bytes(), source=f"{c.source}:{c.id}"), self.rules, context=ScanContext()
        )
        findings = report.findings
        evidence: dict[str, Any] = {
            "findings": [finding_evidence(f) for f in findings[:MAX_EVIDENCE_FINDINGS]],
            "more": max(0, len(findings) - MAX_EVIDENCE_FINDINGS) + report.dropped,
            "max_severity": report.max_severity.sarif_level if report.max_severity else None,
            "hold_severity": s.hold_severity.sarif_level if s.hold_severity else "never",
        }
        if c.source == "push" and s.block_rules:
            blocked = [
                f for f in findings if any(fnmatch.fnmatchcase(f.rule_id.upper(), r.upper()) for r in s.block_rules)
            ]
            if blocked:
                f = blocked[0]
                return StageResult(
                    name,
                    Verdict.REFUSE,
                    f"scan rule {f.rule_id} is blocked on this feed: {f.message}"
                    + (f" ({f.location.path}:{f.location.line})" if f.location.path else ""),
                    evidence,
                )
        decisive = [
            f
            for f in findings
            if s.hold_severity is not None
            and f.severity >= s.hold_severity
            and not f.rule_id.startswith(_DECIDED_ELSEWHERE)
        ]
        if decisive:
            f = decisive[0]
            rules = sorted({d.rule_id for d in decisive} - {f.rule_id})
            more = f" (also {', '.join(rules)})" if rules else ""
            where = f" in {f.location.path}" if f.location.path else ""
            return StageResult(
                name, Verdict.HOLD, f"{f.rule_id} {f.severity.sarif_level}{where}: {f.message}{more}", evidence
            )
        return StageResult(name, Verdict.PASS, f"{len(findings)} finding(s), none at the hold threshold", evidence)

    # -------------------------------------------------------------------------------------- known bad
    def known_bad(self, c: Candidate) -> StageResult:
        """OSV: malicious versions refused for good, vulnerable ones passed with their advisories."""
        name = "known-bad"
        info = self.vulnerabilities
        if info is None:
            return StageResult(name, Verdict.SKIP, "no OSV data configured (--osv)")
        found = info.known_bad(c.id, c.nuspec.version)

        def listed(advisories: Sequence[Advisory]) -> list[dict[str, Any]]:
            return [
                {
                    "id": a.id,
                    "summary": a.summary,
                    "severity": a.severity_label,
                    "ranges": a.describe(),
                    "aliases": list(a.aliases),
                }
                for a in advisories
            ]

        evidence = {"malicious": listed(found.malicious), "vulnerable": listed(found.vulnerable)}
        if found.malicious:
            return StageResult(
                name,
                Verdict.REFUSE,
                f"{c.id} {c.version} is a known malicious version ({', '.join(a.id for a in found.malicious)})",
                {**evidence, "for_good": True},
            )
        if found.vulnerable:
            return StageResult(
                name,
                Verdict.PASS,
                f"served; known vulnerabilities: {', '.join(a.id for a in found.vulnerable)}",
                evidence,
            )
        return StageResult(name, Verdict.PASS, "no advisory names this version")

    # -------------------------------------------------------------------------------------- cooldown
    def cooldown_until(self, id_lower: str, version_lower: str, published: datetime | None) -> datetime | None:
        """When a version published upstream at ``published`` may appear (None: now; no cooldown, overridden, or
        the date is unknown)."""
        age = self.settings.min_release_age
        if age <= timedelta(0) or published is None:
            return None
        until = _utc(published) + age
        if until <= self.clock():
            return None
        if self.overridden(id_lower, version_lower):
            return None
        return until

    def overridden(self, id_lower: str, version_lower: str) -> bool:
        with self.db.read() as session:
            found = session.scalar(
                select(CooldownOverride.id_lower).where(
                    CooldownOverride.id_lower == id_lower, CooldownOverride.version_lower.in_(["", version_lower])
                )
            )
        return found is not None

    def cooldown(self, c: Candidate) -> StageResult:
        name = "cooldown"
        if c.source != "upstream" or c.upstream is None:
            return StageResult(name, Verdict.SKIP, "pushes have no cooldown")
        published = c.upstream.published
        until = self.cooldown_until(c.id_lower, c.version_lower, published)
        evidence = {
            "published": _utc(published).isoformat() if published else None,
            "min_release_age_seconds": self.settings.min_release_age.total_seconds(),
        }
        if until is None:
            return StageResult(name, Verdict.PASS, "old enough (or no cooldown)", evidence)
        return StageResult(
            name,
            Verdict.HOLD,
            f"published upstream {_utc(published).isoformat() if published else '?'}; appears at {until.isoformat()}",
            evidence,
            release_at=until,
        )

    # -------------------------------------------------------------------------------------- continuity
    def accepted_signers(self, id_lower: str) -> dict[str, SignerIdentity]:
        """The author signers accepted for an id: ``accepted_signers`` rows and the author certificates of its
        published versions, by SHA-256."""
        with self.db.read() as session:
            rows = session.scalars(select(AcceptedSigner).where(AcceptedSigner.id_lower == id_lower)).all()
            certs = session.scalars(
                select(Certificate)
                .join(PackageSignature, PackageSignature.certificate_pk == Certificate.pk)
                .join(Package, Package.pk == PackageSignature.package_pk)
                .where(Package.id_lower == id_lower, PackageSignature.kind == "author")
            ).all()
        out = {r.fingerprint: SignerIdentity(r.fingerprint, r.subject, r.issuer) for r in rows}
        for cert in certs:
            out.setdefault(cert.fingerprint, SignerIdentity(cert.fingerprint, cert.subject, cert.issuer))
        return out

    def continuity(self, c: Candidate) -> StageResult:
        """Signer continuity (module docstring)."""
        name = "continuity"
        if c.verification is None:
            c.verification = read_signatures(c.archive, c.now)
        signer = author_signer(c.verification)
        accepted = self.accepted_signers(c.id_lower)
        evidence: dict[str, Any] = {
            "signer": signer.to_json() if signer else None,
            "accepted": [a.to_json() for a in accepted.values()],
        }
        if not accepted:
            return StageResult(
                name,
                Verdict.PASS,
                "no signer accepted yet for this id" + (" (this one will be)" if signer else ""),
                evidence,
            )
        if signer is None:
            return StageResult(
                name,
                Verdict.HOLD,
                f"{c.id} {c.version} is not author-signed, but earlier versions are (by "
                + "; ".join(a.subject for a in accepted.values())
                + ")",
                evidence,
            )
        if signer.fingerprint in accepted:
            # the same certificate is only the same signer if the signature is intact (a copied certificate on a
            # forged signature is not): the engine's typed result says (the push pipeline's signing stages may be off)
            result = c.verification
            assert result is not None  # the package is signed: read above
            primary = result.primary
            if primary is None or not primary.intact:
                codes = sorted(x.value for x in primary.codes) if primary is not None else []
                evidence["codes"] = _codes(result)
                return StageResult(
                    name,
                    Verdict.HOLD,
                    f"the author signature names the accepted signer {signer.subject} but does not verify"
                    + (f" ({', '.join(codes)})" if codes else ""),
                    evidence,
                )
            return StageResult(name, Verdict.PASS, f"signed by the accepted signer {signer.subject}", evidence)
        before = next(iter(accepted.values()))
        return StageResult(
            name,
            Verdict.HOLD,
            f"the author signer changed: {signer.subject} (issuer {signer.issuer}, SHA-256 {signer.fingerprint}) "
            f"instead of {before.subject} (issuer {before.issuer}, SHA-256 {before.fingerprint})",
            evidence,
        )


@functools.cache
def _store(path: str | None, purpose: CertificatePurpose) -> TrustStore:
    return TrustStore.from_pem_file(path) if path else TrustStore.discover(purpose)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def outcome_state(results: Sequence[StageResult]) -> str:
    """``refused`` when a stage refused, else ``held`` when one held, else ``accepted``."""
    if any(r.verdict is Verdict.REFUSE for r in results):
        return "refused"
    if any(r.verdict is Verdict.HOLD for r in results):
        return "held"
    return "accepted"


def ingest_settings(config: Any) -> IngestSettings:
    """The checks' settings from a :class:`~nuseal.feed.config.FeedConfig` (its ``ingest`` and the signing trust
    bundles).

    Raises:
        ConfigError: an invalid combination (see :class:`IngestSettings`).
    """
    ingest = config.ingest
    return IngestSettings(
        hold_severity=None if ingest.hold_severity == "never" else Severity.parse(ingest.hold_severity),
        block_rules=tuple(ingest.block_rules),
        author_policy=ingest.author_policy,
        trusted_signers=tuple(f.replace(":", "").lower() for f in ingest.trusted_signers),
        min_release_age=timedelta(seconds=ingest.min_release_age_seconds),
        osv_path=ingest.osv_path,
        osv_refresh_seconds=ingest.osv_refresh_seconds,
        popular_id_files=tuple(ingest.popular_id_files),
        rules_files=tuple(ingest.rules_files),
        revocation_mode=RevocationMode(ingest.revocation_mode),
        code_signing_roots=config.signing.trust_bundle,
        timestamping_roots=config.signing.timestamp_trust_bundle,
        push_continuity=ingest.push_signer_continuity,
    )
