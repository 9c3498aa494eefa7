"""Ingestion of upstream packages (issue 16): ``ingest(package file, upstream info) -> accepted | held | refused``.

The read-through mirror calls :meth:`Ingestion.ingest` once per version it fetched (after its single-flight
download). The checks of :mod:`nuseal.feed.mirror.checks` run in order (``signatures``, ``identity``, ``scan``,
``known-bad``, ``cooldown``, ``continuity``; a refusal stops the rest) and every result is recorded
(``ingest_stage_results``). Then:

* **accepted**: the package is published as the push path publishes (:meth:`FeedService.publish`: pending entry,
  commit, settle) with ``origin = upstream``, no owners, the upstream's ``published`` date, and these exact bytes
  (no repository signature is added: the served ``.nupkg`` is byte-identical to the upstream's);
* **held**: kept in quarantine (:mod:`nuseal.feed.mirror.quarantine`) until an admin releases or rejects it, or,
  when the cooldown is the only reason, until ``release_at`` (:meth:`Quarantine.release_due`);
* **refused**: recorded with its evidence and never stored; a known-malicious version stays refused for good,
  other refusals (a package that does not verify) are checked again on a later attempt.

:meth:`Ingestion.visible_versions` filters an upstream version list: versions held, refused or rejected here, and
versions still in their cooldown (by the upstream's published date, without downloading them), are left out.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
import anyio.to_thread
from sqlalchemy import select

from nuseal.errors import NusealError, PackageFormatError
from nuseal.feed.accounts.keys import Principal
from nuseal.feed.errors import DuplicatePackageError, FeedError
from nuseal.feed.mirror.checks import (
    Candidate,
    IngestChecks,
    StageResult,
    UpstreamInfo,
    Verdict,
    ingest_settings,
    outcome_state,
)
from nuseal.feed.mirror.osv_refresh import OsvData
from nuseal.feed.mirror.push import PushChecks
from nuseal.feed.mirror.quarantine import FACT_ORIGIN, FACT_PUBLISHED, FACT_RESULTS, Quarantine
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.publish.submission import Submission, read_archive
from nuseal.feed.publish.upload import StagedUpload, package_sha512
from nuseal.feed.store.models import Package
from nuseal.package import NuGetVersion, Nuspec, PackageArchive, find_nuspec_name
from nuseal.package.nuspec import MAX_NUSPEC_SIZE
from nuseal.trust import RevocationFetcher
from nuseal.verify import VerificationResult

__all__ = ["CooldownReleaseTask", "IngestOutcome", "Ingestion", "UpstreamInfo"]

log = logging.getLogger(__name__)

#: The user name upstream packages are published under (audit rows, ``Submission.principal``).
UPSTREAM_ACTOR = "upstream"


@dataclass(frozen=True)
class IngestOutcome:
    """What ingestion decided about one upstream version.

    ``state``: ``accepted`` (stored, served like a pushed package), ``held`` (in quarantine; ``release_at`` when
    only the cooldown holds it) or ``refused``. ``results``: every stage's result, in order. ``message``: one line
    naming the version and the reasons (for logs, and the mirror's 404/502 bodies).
    """

    state: str
    id: str
    version: str
    results: tuple[StageResult, ...] = ()
    release_at: datetime | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.state == "accepted"

    @property
    def held(self) -> bool:
        return self.state == "held"

    @property
    def refused(self) -> bool:
        return self.state == "refused"

    @property
    def reasons(self) -> tuple[StageResult, ...]:
        return tuple(r for r in self.results if r.verdict in (Verdict.HOLD, Verdict.REFUSE))

    @property
    def message(self) -> str:
        why = "; ".join(f"{r.stage}: {r.summary}" for r in self.reasons) or self.detail
        return f"{self.id} {self.version} {self.state}" + (f": {why}" if why else "")


class Ingestion:
    """The mirror's ingestion API for one feed (see the module docstring). Thread-safe; build once
    (:func:`nuseal.feed.compose.build_feed` does)."""

    def __init__(self, service: FeedService, checks: IngestChecks, quarantine: Quarantine) -> None:
        self.service = service
        self.checks = checks
        self.quarantine = quarantine
        #: The push pipeline's stages built on the same checks (:mod:`nuseal.feed.mirror.push`).
        self.push = PushChecks(checks, quarantine)

    @classmethod
    def for_service(
        cls,
        service: FeedService,
        *,
        osv: OsvData | None = None,
        fetcher: RevocationFetcher | None = None,
    ) -> Ingestion:
        """The ingestion of ``service`` with the settings of its ``config.ingest`` (``osv``: the OSV data the feed's
        ``VulnerabilityInfo`` resource is written from, :mod:`nuseal.feed.mirror.osv_refresh`; else one is made for
        ``--osv``, read on first use; ``fetcher``: the revocation transport of online checks, from the composition
        root).

        Raises:
            ConfigError: invalid ingestion settings.
        """
        checks = IngestChecks(
            service.db,
            ingest_settings(service.config),
            clock=service.clock,
            osv=osv,
            fetcher=fetcher,
        )
        return cls(service, checks, Quarantine(service))

    def stages(self) -> Sequence[Callable[[Candidate], StageResult]]:
        """The checks, in order."""
        c = self.checks
        return (c.signatures, c.identity, c.scan, c.known_bad, c.cooldown, c.continuity)

    def ingest(self, path: Path, upstream: UpstreamInfo) -> IngestOutcome:
        """Check one downloaded upstream package (the ``.nupkg`` at ``path``, left in place) and store, hold or
        refuse it (module docstring). Idempotent: a version already published answers ``accepted``, one already
        held ``held``, one refused for good ``refused``, without running the checks again.

        Never raises for a bad package (it is ``refused``); raises ``SQLAlchemyError``/``OSError`` when the
        database or the storage fails (nothing half-stored).
        """
        service = self.service
        data = path.read_bytes()
        try:
            archive = read_archive(data)
            raw = archive.read(find_nuspec_name(archive.names), limit=MAX_NUSPEC_SIZE)
            nuspec = Nuspec.parse(raw)
        except FeedError as exc:
            return IngestOutcome("refused", "?", "?", detail=f"not a package this feed accepts: {exc}")
        except NusealError as exc:  # PackageFormatError and friends: the bytes are not a readable package
            return IngestOutcome("refused", "?", "?", detail=f"not a readable package: {exc}")
        known = self._known(nuspec)
        if known is not None:
            return known
        candidate = Candidate(
            path=path, archive=archive, nuspec=nuspec, source="upstream", now=service.clock(), upstream=upstream
        )
        results: list[StageResult] = []
        for stage in self.stages():
            result = stage(candidate)
            results.append(result)
            if result.verdict is Verdict.REFUSE:
                break
        state = outcome_state(results)
        version = nuspec.version.normalized
        if state == "accepted":
            return self._publish(data, archive, nuspec, raw, upstream, results, candidate.verification)
        try:
            view = self.quarantine.hold(
                path=path,
                nuspec=nuspec,
                source="upstream",
                results=results,
                state="held" if state == "held" else "refused",
                upstream_url=upstream.url,
                upstream_published=upstream.published,
            )
        except DuplicatePackageError:
            again = self._known(nuspec)
            if again is not None:
                return again
            raise
        return IngestOutcome(state, nuspec.id, version, tuple(results), view.release_at)

    def _known(self, nuspec: Nuspec) -> IngestOutcome | None:
        """The standing decision on a version ingested before (None: none, or one a new attempt may change)."""
        id_lower = nuspec.id.lower()
        ver_lower = nuspec.version.normalized.lower()
        if _exists(self.service, id_lower, ver_lower):
            return IngestOutcome("accepted", nuspec.id, nuspec.version.normalized, detail="already stored")
        view = self.quarantine.get(nuspec.id, nuspec.version.normalized)
        if view is None:
            return None
        results = tuple(
            StageResult(r["stage"], Verdict(r["verdict"]), r["summary"], r.get("evidence", {})) for r in view.reasons
        )
        if view.state == "held":
            return IngestOutcome("held", view.id, view.version, results, view.release_at)
        if view.state == "rejected":
            return IngestOutcome("refused", view.id, view.version, results, detail=f"rejected by {view.decided_by}")
        if view.state == "refused" and any(r.evidence.get("for_good") for r in results):
            return IngestOutcome("refused", view.id, view.version, results)
        return None

    def _publish(
        self,
        data: bytes,
        archive: PackageArchive,
        nuspec: Nuspec,
        raw: bytes,
        upstream: UpstreamInfo,
        results: Sequence[StageResult],
        verification: VerificationResult | None,
    ) -> IngestOutcome:
        service = self.service
        staged = service.config.staging_dir / f"{secrets.token_hex(16)}.upstream.nupkg"
        staged.write_bytes(data)
        submission = Submission(
            upload=StagedUpload(staged, len(data), package_sha512(data)),
            principal=Principal(0, UPSTREAM_ACTOR, 0, frozenset(), ()),
            now=service.clock(),
            archive=archive,
            nuspec=nuspec,
            nuspec_bytes=raw,
            verification=verification,
        )
        submission.facts[FACT_ORIGIN] = "upstream"
        submission.facts[FACT_PUBLISHED] = upstream.published
        submission.facts[FACT_RESULTS] = list(results)
        try:
            published = service.publish(submission)
        except DuplicatePackageError:
            # A concurrent ingestion of the same version won: its row is there. Without a row the version was served
            # before with other bytes (a push a crash interrupted, DATA/retired): not this package, nothing to serve.
            if not _exists(service, nuspec.id.lower(), nuspec.version.normalized.lower()):
                return IngestOutcome(
                    "refused",
                    nuspec.id,
                    nuspec.version.normalized,
                    tuple(results),
                    detail="this feed served the version before with other bytes; a version's bytes never change",
                )
            published = None
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
        version = published.version if published else nuspec.version.normalized
        return IngestOutcome("accepted", nuspec.id, version, tuple(results))

    # -------------------------------------------------------------------------------------- version lists
    def appears_at(self, package_id: str, version: str, published: datetime | None) -> datetime | None:
        """When a version published upstream at ``published`` leaves its cooldown (None: it is visible now, as far
        as the cooldown goes)."""
        ver = NuGetVersion.parse(version).normalized.lower()
        return self.checks.cooldown_until(package_id.lower(), ver, published)

    def visible_versions(self, package_id: str, versions: Iterable[tuple[str, datetime | None]]) -> list[str]:
        """The versions of an upstream list (``(version, published)`` pairs, as given) that clients may see: not
        held, refused or rejected here, and out of their cooldown. Order is kept."""
        hidden = self.quarantine.hidden_versions(package_id.lower())
        out = []
        for version, published in versions:
            try:
                ver = NuGetVersion.parse(version).normalized.lower()
            except PackageFormatError:  # an unparsable upstream version is nothing a client can ask for
                continue
            if ver in hidden:
                continue
            if self.checks.cooldown_until(package_id.lower(), ver, published) is not None:
                continue
            out.append(version)
        return out

    def hold_reason(self, package_id: str, version: str) -> str | None:
        """Why a version is absent (held, refused, rejected), one line for an admin's ``X-NuSeal-Quarantine``
        header; None when it is not in quarantine."""
        try:
            view = self.quarantine.get(package_id, version)
        except FeedError:
            return None
        if view is None or view.state == "released":
            return None
        return f"{view.state}: {view.summary}"[:400]


def _exists(service: FeedService, id_lower: str, ver_lower: str) -> bool:
    with service.db.read() as session:
        return (
            session.scalar(select(Package.pk).where(Package.id_lower == id_lower, Package.version_lower == ver_lower))
            is not None
        )


class CooldownReleaseTask:
    """Background task (:class:`~nuseal.feed.http.app.BackgroundTask`): every
    ``config.ingest.release_check_seconds``, release the held versions whose cooldown ended or was overridden
    (:meth:`Quarantine.release_due`). Errors are logged and retried at the next period."""

    def __init__(self, ingestion: Ingestion) -> None:
        self.ingestion = ingestion

    async def run(self) -> None:
        period = self.ingestion.service.config.ingest.release_check_seconds
        if period <= 0:
            return
        while True:
            await anyio.sleep(period)
            try:
                await anyio.to_thread.run_sync(self.ingestion.quarantine.release_due)
            except Exception:
                log.exception("releasing held versions whose cooldown ended failed; retrying later")

    def published(self) -> None:
        """Nothing to do when a push is published."""
