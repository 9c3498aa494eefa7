"""Quarantine (issue 16): versions held for a person to decide, and versions refused, with their evidence.

A held version is not a ``packages`` row: clients cannot see it anywhere (version lists, registrations, search and
the V2 listing are written from committed package rows; its ``.nupkg`` is not in the served storage). Its bytes wait
in ``DATA/quarantine/<id>/<version>/<sha512 hex>.nupkg`` (written and fsynced before the ``ingest_holds`` row
commits; a file without a held row is a leftover and is removed with the next decision on that version).

**Release** publishes exactly the held bytes through :meth:`FeedService.publish`, the push path (pending entry,
commit, settle: ``docs/feed.md`` "Crash consistency"), and marks the hold ``released`` with its audit row inside the
publish transaction (a publish hook): the version becomes visible in one commit, or not at all. **Reject** marks it
``rejected`` (the bytes are removed). A ``refused`` record (a known-malicious version) stays refused. Every
decision writes an audit row: ``quarantine.held``, ``quarantine.released``, ``quarantine.rejected``,
``ingest.refused``, ``signer.accepted``, ``cooldown.overridden``, ``prefix.reserved``, ``prefix.unreserved``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nuseal.errors import PackageFormatError
from nuseal.feed.accounts.keys import Principal, Scope
from nuseal.feed.errors import BadRequestError, DuplicatePackageError, ForbiddenError, NotFoundError
from nuseal.feed.mirror.checks import SignerIdentity, StageResult, Verdict, author_signer
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.publish.signatures import read_signatures
from nuseal.feed.publish.submission import PublishedPackage, Submission, read_archive
from nuseal.feed.publish.upload import StagedUpload, package_sha512
from nuseal.feed.store import audit
from nuseal.feed.store.models import (
    AcceptedSigner,
    CooldownOverride,
    IngestHold,
    IngestStageResult,
    Owner,
    Package,
    User,
)
from nuseal.feed.store.storage import link_or_copy
from nuseal.package import NuGetVersion, Nuspec, find_nuspec_name
from nuseal.package.nuspec import MAX_NUSPEC_SIZE
from nuseal.verify import SignatureKind, VerificationResult

__all__ = [
    "QUARANTINE_FOLDER",
    "HoldView",
    "Quarantine",
    "publish_hook",
    "record_results",
    "sweep",
    "sweep_hook",
]

log = logging.getLogger(__name__)

#: Under the data folder: the bytes of held versions.
QUARANTINE_FOLDER = "quarantine"
#: Quarantine files younger than this (seconds) are never swept: their hold may still be committing.
SWEEP_GRACE_SECONDS = 3600
#: ``Submission.facts`` keys this module reads and writes.
FACT_RESULTS = "ingest_results"
FACT_RELEASE = "ingest_release"
FACT_ORIGIN = "origin"
FACT_PUBLISHED = "published"


@dataclass(frozen=True)
class HoldView:
    """One quarantine record as the CLI and the admin page show it."""

    id: str
    version: str
    source: str
    upstream_url: str
    state: str
    reasons: tuple[dict[str, Any], ...]
    size: int
    sha512: str
    pushed_by: str | None
    created_at: datetime
    release_at: datetime | None
    decided_at: datetime | None
    decided_by: str
    decision_note: str

    @property
    def summary(self) -> str:
        return "; ".join(f"{r['stage']}: {r['summary']}" for r in self.reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "source": self.source,
            "upstream": self.upstream_url or None,
            "state": self.state,
            "reasons": list(self.reasons),
            "size": self.size,
            "sha512": self.sha512,
            "pushed_by": self.pushed_by,
            "created_at": self.created_at.isoformat(),
            "release_at": self.release_at.isoformat() if self.release_at else None,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decided_by": self.decided_by or None,
            "decision_note": self.decision_note or None,
        }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _version_lower(version: str) -> str:
    try:
        return NuGetVersion.parse(version).normalized.lower()
    except PackageFormatError as exc:
        raise NotFoundError(f"{version!r} is not a NuGet version") from exc


def record_results(
    session: Session, id_lower: str, version_lower: str, results: Sequence[StageResult], *, now: datetime
) -> None:
    """Store the stages' results of one version (replacing an earlier run's), in the caller's transaction."""
    session.execute(
        delete(IngestStageResult).where(
            IngestStageResult.id_lower == id_lower, IngestStageResult.version_lower == version_lower
        )
    )
    for n, r in enumerate(results):
        session.add(
            IngestStageResult(
                id_lower=id_lower,
                version_lower=version_lower,
                stage=r.stage,
                position=n,
                verdict=r.verdict.value,
                summary=r.summary,
                evidence=json.dumps(r.to_json()["evidence"], sort_keys=True, default=str),
                at=now,
            )
        )


def stage_results(session: Session, id_lower: str, version_lower: str) -> list[dict[str, Any]]:
    """The recorded stage results of one version, in stage order (``stage``, ``verdict``, ``summary``,
    ``evidence``)."""
    rows = session.scalars(
        select(IngestStageResult)
        .where(IngestStageResult.id_lower == id_lower, IngestStageResult.version_lower == version_lower)
        .order_by(IngestStageResult.position)
    ).all()
    return [
        {"stage": r.stage, "verdict": r.verdict, "summary": r.summary, "evidence": json.loads(r.evidence)} for r in rows
    ]


def _for_good(row: IngestHold) -> bool:
    """A refusal that stands for every later attempt (a known-malicious version), not one a retry may clear (a
    package damaged on the way)."""
    return any(r.get("evidence", {}).get("for_good") for r in json.loads(row.reasons))


def _reasons(results: Sequence[StageResult]) -> list[dict[str, Any]]:
    return [r.to_json() for r in results if r.verdict in (Verdict.HOLD, Verdict.REFUSE)]


def _signature_facts(result: VerificationResult | None) -> list[Any]:
    """The signing stages' facts of held bytes (their author and repository signatures, from the engine's typed
    ``result``), so the publish hook records the same ``package_signatures`` rows a push would."""
    from nuseal.feed.signing.stages import verified_facts  # noqa: PLC0415 - the signing stack

    if result is None:
        return []
    return [
        verified_facts(s)
        for s in result.signatures
        if s.kind in (SignatureKind.AUTHOR, SignatureKind.REPOSITORY) and s.signer is not None
    ]


class Quarantine:
    """The quarantine of one feed (``service``). The service must run :meth:`publish_hook` in its publish
    transaction (the composition root, :mod:`nuseal.feed.compose`, lists it) so releases and accepted versions
    record their results."""

    def __init__(self, service: FeedService) -> None:
        self.service = service

    @property
    def folder(self) -> Path:
        return self.service.config.data_dir / QUARANTINE_FOLDER

    # -------------------------------------------------------------------------------------- holding
    def hold(
        self,
        *,
        path: Path,
        nuspec: Nuspec,
        source: str,
        results: Sequence[StageResult],
        state: str = "held",
        pushed_by: int | None = None,
        upstream_url: str = "",
        upstream_published: datetime | None = None,
        actor: str = audit.FEED_ACTOR,
    ) -> HoldView:
        """Record a held (bytes kept) or refused (bytes dropped) version with the stages' evidence, under the id's
        lock. A version already published or already held answers 409; a rejected one may be held again.

        Raises:
            DuplicatePackageError: the version is published, held, or refused for good.
        """
        service = self.service
        now = service.clock()
        id_lower = nuspec.id.lower()
        ver_lower = nuspec.version.normalized.lower()
        data = path.read_bytes()
        sha512 = package_sha512(data)
        stored = ""
        target: Path | None = None
        if state == "held":
            folder = self.folder / id_lower / ver_lower
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{base64.b64decode(sha512).hex()[:32]}.{secrets.token_hex(6)}.nupkg"
            link_or_copy(path, target)
            with open(target, "rb") as fh:
                os.fsync(fh.fileno())
            stored = str(target.relative_to(self.folder))
        release_at = max((r.release_at for r in results if r.release_at is not None), default=None)
        reasons = _reasons(results)
        committed = False
        try:
            with service.db.write() as session:
                service._lock_any(session, id_lower)
                if session.scalar(
                    select(Package.pk).where(Package.id_lower == id_lower, Package.version_lower == ver_lower)
                ):
                    raise DuplicatePackageError(
                        f"a package with id {nuspec.id!r} and version {nuspec.version.normalized!r} already exists"
                    )
                row = session.scalar(
                    select(IngestHold).where(IngestHold.id_lower == id_lower, IngestHold.version_lower == ver_lower)
                )
                if row is not None and (row.state == "held" or (row.state == "refused" and _for_good(row))):
                    raise DuplicatePackageError(
                        f"{nuspec.id} {nuspec.version.normalized} is already {row.state} by this feed: "
                        + "; ".join(r["summary"] for r in json.loads(row.reasons))
                    )
                if row is None:
                    row = IngestHold(id_lower=id_lower, version_lower=ver_lower, created_at=now)
                    session.add(row)
                row.id = nuspec.id
                row.version = nuspec.version.normalized
                row.source = source
                row.upstream_url = upstream_url
                row.state = state
                row.reasons = json.dumps(reasons, sort_keys=True, default=str)
                row.size = len(data)
                row.sha512 = sha512
                row.stored_key = stored
                row.pushed_by = pushed_by
                row.upstream_published_at = upstream_published
                row.release_at = release_at
                row.created_at = now
                row.decided_at = now if state != "held" else None
                row.decided_by = actor if state != "held" else ""
                row.decision_note = ""
                record_results(session, id_lower, ver_lower, results, now=now)
                audit.record(
                    session,
                    at=now,
                    actor=actor,
                    action="quarantine.held" if state == "held" else "ingest.refused",
                    target=f"package:{id_lower}/{ver_lower}",
                    source=source,
                    upstream=upstream_url or None,
                    sha512=sha512,
                    reasons=reasons,
                    release_at=release_at,
                )
                session.flush()
                view = self._view(session, row)
            committed = True
        finally:
            if not committed and target is not None:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
        log.warning("%s %s %s: %s", state, nuspec.id, nuspec.version.normalized, view.summary)
        return view

    # -------------------------------------------------------------------------------------- reading
    def _view(self, session: Session, row: IngestHold) -> HoldView:
        pusher = session.get(User, row.pushed_by) if row.pushed_by is not None else None
        return HoldView(
            id=row.id,
            version=row.version,
            source=row.source,
            upstream_url=row.upstream_url,
            state=row.state,
            reasons=tuple(json.loads(row.reasons)),
            size=row.size,
            sha512=row.sha512,
            pushed_by=pusher.name if pusher else None,
            created_at=_utc(row.created_at) or row.created_at,
            release_at=_utc(row.release_at),
            decided_at=_utc(row.decided_at),
            decided_by=row.decided_by,
            decision_note=row.decision_note,
        )

    def holds(self, *, states: Sequence[str] = ("held",), id_lower: str | None = None) -> list[HoldView]:
        """Quarantine records in the given states (all when empty), oldest first."""
        with self.service.db.read() as session:
            query = select(IngestHold).order_by(IngestHold.created_at, IngestHold.pk)
            if states:
                query = query.where(IngestHold.state.in_(list(states)))
            if id_lower is not None:
                query = query.where(IngestHold.id_lower == id_lower)
            return [self._view(session, r) for r in session.scalars(query).all()]

    def get(self, package_id: str, version: str) -> HoldView | None:
        with self.service.db.read() as session:
            row = self._row(session, package_id, version)
            return self._view(session, row) if row is not None else None

    def state_of(self, id_lower: str, version_lower: str) -> str | None:
        """``held``, ``refused``, ``rejected`` or ``released`` (None: never recorded)."""
        with self.service.db.read() as session:
            return session.scalar(
                select(IngestHold.state).where(
                    IngestHold.id_lower == id_lower, IngestHold.version_lower == version_lower
                )
            )

    def hidden_versions(self, id_lower: str) -> dict[str, str]:
        """Versions of an id clients must not see (lower-case normalized -> state): held, refused, rejected."""
        with self.service.db.read() as session:
            rows = session.execute(
                select(IngestHold.version_lower, IngestHold.state).where(
                    IngestHold.id_lower == id_lower, IngestHold.state.in_(["held", "refused", "rejected"])
                )
            ).all()
        return {str(v): str(s) for v, s in rows}

    def stage_results(self, package_id: str, version: str) -> list[dict[str, Any]]:
        with self.service.db.read() as session:
            return stage_results(session, package_id.lower(), _version_lower(version))

    def _row(self, session: Session, package_id: str, version: str) -> IngestHold | None:
        return session.scalar(
            select(IngestHold).where(
                IngestHold.id_lower == package_id.lower(), IngestHold.version_lower == _version_lower(version)
            )
        )

    def _held_row(self, session: Session, package_id: str, version: str) -> IngestHold:
        """The record of ``package_id`` ``version`` while it is held.

        Raises:
            NotFoundError: not in quarantine, or no longer held (its state named).
        """
        row = self._row(session, package_id, version)
        if row is None or row.state != "held":
            state = row.state if row is not None else "not in quarantine"
            raise NotFoundError(f"{package_id} {version} is not held ({state})")
        return row

    # -------------------------------------------------------------------------------------- decisions
    def release(self, package_id: str, version: str, *, actor: str, note: str = "") -> PublishedPackage:
        """Publish a held version (module docstring): the held bytes, through the push path.

        Raises:
            NotFoundError: no held version ``package_id`` ``version``.
            FeedError: the publish step refused it (e.g. the pusher lost the id meanwhile: 403).
        """
        service = self.service
        with service.db.read() as session:
            row = self._held_row(session, package_id, version)
            hold_pk, source, stored = row.pk, row.source, row.stored_key
            published_at = _utc(row.upstream_published_at)
            pusher = session.get(User, row.pushed_by) if row.pushed_by is not None else None
        if source == "push" and pusher is None:
            raise BadRequestError(f"the user who pushed {package_id} {version} no longer exists; reject it instead")
        held = self.folder / stored
        data = held.read_bytes()
        staged = service.config.staging_dir / f"{secrets.token_hex(16)}.release.nupkg"
        staged.write_bytes(data)
        archive = read_archive(data)
        name = find_nuspec_name(archive.names)
        raw = archive.read(name, limit=MAX_NUSPEC_SIZE)
        if pusher is not None:
            principal = Principal(pusher.pk, pusher.name, 0, frozenset(Scope), ("*",))
        else:
            principal = Principal(0, audit.FEED_ACTOR, 0, frozenset(), ())
        now = service.clock()
        submission = Submission(
            upload=StagedUpload(staged, len(data), package_sha512(data)),
            principal=principal,
            now=now,
            archive=archive,
            nuspec=Nuspec.parse(raw),
            nuspec_bytes=raw,
            verification=read_signatures(archive, now),
        )
        submission.facts[FACT_RELEASE] = {"pk": hold_pk, "actor": actor, "note": note}
        if source == "upstream":
            submission.facts[FACT_ORIGIN] = "upstream"
            submission.facts[FACT_PUBLISHED] = published_at
        elif service.config.signing.enabled:
            submission.facts["signatures"] = _signature_facts(submission.verification)
        try:
            published = service.publish(submission)
        finally:
            submission.upload.discard()
        shutil.rmtree(held.parent, ignore_errors=True)
        return published

    def reject(self, package_id: str, version: str, *, actor: str, note: str = "") -> HoldView:
        """Reject a held version: it stays invisible, its bytes are removed.

        Raises:
            NotFoundError: no held version ``package_id`` ``version``.
        """
        service = self.service
        now = service.clock()
        with service.db.write() as session:
            row = self._held_row(session, package_id, version)
            service._lock_any(session, row.id_lower)
            row.state = "rejected"
            row.decided_at = now
            row.decided_by = actor
            row.decision_note = note
            stored = row.stored_key
            row.stored_key = ""
            audit.record(
                session,
                at=now,
                actor=actor,
                action="quarantine.rejected",
                target=f"package:{row.id_lower}/{row.version_lower}",
                note=note,
                reasons=json.loads(row.reasons),
            )
            session.flush()
            view = self._view(session, row)
        if stored:
            shutil.rmtree((self.folder / stored).parent, ignore_errors=True)
        return view

    def accept_signer(
        self, package_id: str, version: str, *, actor: str, principal: Principal | None = None, release: bool = True
    ) -> tuple[SignerIdentity, PublishedPackage | None]:
        """Accept the author signer of a held version for its id (signer continuity), audited; then release the
        version when its only reason was the signer change (``release``). ``principal``: a web user, who must be an
        admin or an owner of the id (None: the CLI, an admin).

        Raises:
            NotFoundError: no held version.
            BadRequestError: the held version is not author-signed.
            ForbiddenError: ``principal`` is neither an admin nor an owner.
        """
        service = self.service
        now = service.clock()
        with service.db.read() as session:
            row = self._held_row(session, package_id, version)
            if principal is not None:
                user = session.get(User, principal.user_pk)
                owners = set(session.scalars(select(Owner.user_pk).where(Owner.id_lower == row.id_lower)).all())
                if not (user is not None and user.is_admin) and principal.user_pk not in owners:
                    raise ForbiddenError(f"only an admin or an owner of {row.id} can accept its signer")
            reasons = json.loads(row.reasons)
            stored, id_lower, display = row.stored_key, row.id_lower, row.id
        signer = author_signer(read_signatures(read_archive((self.folder / stored).read_bytes()), now))
        if signer is None:
            raise BadRequestError(f"{package_id} {version} is not author-signed; there is no signer to accept")
        with service.db.write() as session:
            if session.get(AcceptedSigner, (id_lower, signer.fingerprint)) is None:
                session.add(
                    AcceptedSigner(
                        id_lower=id_lower,
                        fingerprint=signer.fingerprint,
                        subject=signer.subject,
                        issuer=signer.issuer,
                        accepted_by=actor,
                        accepted_at=now,
                    )
                )
            audit.record(
                session,
                at=now,
                actor=actor,
                action="signer.accepted",
                target=f"package:{id_lower}",
                fingerprint=signer.fingerprint,
                subject=signer.subject,
                issuer=signer.issuer,
                version=version,
                id=display,
            )
        published = None
        if release and all(r["stage"] == "continuity" for r in reasons):
            published = self.release(package_id, version, actor=actor, note="signer accepted")
        return signer, published

    def override_cooldown(self, package_id: str, version: str | None, *, actor: str) -> None:
        """Let one version (or, ``version`` None, every version) of an id skip the cooldown; audited. Held versions
        whose only reason was the cooldown are released by the next :meth:`release_due`."""
        service = self.service
        now = service.clock()
        ver_lower = _version_lower(version) if version else ""
        with service.db.write() as session:
            if session.get(CooldownOverride, (package_id.lower(), ver_lower)) is None:
                session.add(
                    CooldownOverride(
                        id_lower=package_id.lower(), version_lower=ver_lower, created_by=actor, created_at=now
                    )
                )
            audit.record(
                session,
                at=now,
                actor=actor,
                action="cooldown.overridden",
                target=f"package:{package_id.lower()}" + (f"/{ver_lower}" if ver_lower else ""),
            )

    def release_due(self) -> list[PublishedPackage]:
        """Release every held version whose only reason is the cooldown and whose time has come (or that an admin
        overrode). Run by the feed's background task; returns what it published."""
        service = self.service
        now = service.clock()
        with service.db.read() as session:
            rows = session.scalars(select(IngestHold).where(IngestHold.state == "held")).all()
            overrides = {(o.id_lower, o.version_lower) for o in session.scalars(select(CooldownOverride)).all()}
        done = []
        for row in rows:
            reasons = json.loads(row.reasons)
            if not reasons or any(r["stage"] != "cooldown" for r in reasons):
                continue
            due = _utc(row.release_at)
            overridden = (row.id_lower, "") in overrides or (row.id_lower, row.version_lower) in overrides
            if not overridden and (due is None or due > now):
                continue
            try:
                done.append(self.release(row.id, row.version, actor=audit.FEED_ACTOR, note="cooldown passed"))
            except (NotFoundError, DuplicatePackageError, FileNotFoundError):
                continue  # another worker released it first
            except Exception:
                log.exception("could not release %s %s after its cooldown", row.id, row.version)
        return done


def publish_hook(submission: Submission, context: Any, session: Session, row: Package) -> None:
    """A :data:`~nuseal.feed.publish.submission.PublishHook`: in every publish transaction, mark a released hold
    (with its ``quarantine.released`` audit row), store the stages' results, and accept the first author signer of
    the id (``accepted_by`` ``feed``). The composition root lists it after the signing hooks."""
    now = submission.now
    release: Mapping[str, Any] | None = submission.facts.get(FACT_RELEASE)
    standing = session.scalar(
        select(IngestHold).where(IngestHold.id_lower == row.id_lower, IngestHold.version_lower == row.version_lower)
    )
    if (
        standing is not None
        and (release is None or standing.pk != release["pk"])
        and (standing.state == "held" or (standing.state == "refused" and _for_good(standing)))
    ):
        # checked again here, under the id's lock: a push that raced a hold of the same version loses
        raise DuplicatePackageError(f"{row.id} {row.version} is {standing.state} in quarantine; it cannot be published")
    if release is not None:
        hold = session.get(IngestHold, release["pk"])
        if hold is not None:
            hold.state = "released"
            hold.decided_at = now
            hold.decided_by = str(release["actor"])
            hold.decision_note = str(release.get("note", ""))
            hold.stored_key = ""
            audit.record(
                session,
                at=now,
                actor=str(release["actor"]),
                action="quarantine.released",
                target=f"package:{row.id_lower}/{row.version_lower}",
                note=release.get("note", ""),
                reasons=json.loads(hold.reasons),
                sha512=row.sha512,
            )
    results: Sequence[StageResult] | None = submission.facts.get(FACT_RESULTS)
    if results is not None:
        record_results(session, row.id_lower, row.version_lower, results, now=now)
    result = submission.verification
    if result is None and submission.archive is not None:
        result = submission.verification = read_signatures(submission.archive, now)  # nothing verified it before
    signer = author_signer(result)
    if signer is not None:
        known = session.scalar(select(AcceptedSigner.fingerprint).where(AcceptedSigner.id_lower == row.id_lower))
        if known is None:
            session.add(
                AcceptedSigner(
                    id_lower=row.id_lower,
                    fingerprint=signer.fingerprint,
                    subject=signer.subject,
                    issuer=signer.issuer,
                    accepted_by=audit.FEED_ACTOR,
                    accepted_at=now,
                )
            )
    session.flush()


def sweep_hook(context: Any) -> None:
    """A :data:`~nuseal.feed.publish.submission.SetupHook` running :func:`sweep` at every start."""
    sweep(context)


def sweep(context: Any) -> int:
    """Remove the quarantine files no held record points to
    (a crash between a release's commit and the removal of its bytes, or before a hold's row committed). Safe while
    other processes run: a hold writes its file before its row commits, so only files older than
    :data:`SWEEP_GRACE_SECONDS` are removed. Returns how many files were removed."""
    folder = context.config.data_dir / QUARANTINE_FOLDER
    if not folder.is_dir():
        return 0
    with context.db.read() as session:
        kept = set(session.scalars(select(IngestHold.stored_key).where(IngestHold.state == "held")).all())
    limit = time.time() - SWEEP_GRACE_SECONDS
    removed = 0
    for path in sorted(folder.glob("*/*/*.nupkg")):
        with contextlib.suppress(OSError):
            if path.relative_to(folder).as_posix() not in kept and path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
    for directory in sorted(folder.glob("*/*"), reverse=True) + sorted(folder.glob("*"), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only empty ones go
    if removed:
        log.warning("removed %d quarantine file(s) that no held version points to", removed)
    return removed
