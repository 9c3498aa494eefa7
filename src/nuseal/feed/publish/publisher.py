"""The feed's write side: publishing, unlisting, relisting and (re)writing the static documents.

What clients see is exactly what the database committed (``../shared/DESIGN.md``: "a push is all or nothing";
``docs/feed.md``, Crash consistency). A ``.nupkg`` reaches its served key only after its row is committed, and
every document is written from committed rows, under the id's lock. A push:

1. one write transaction: lock the id (insert its ``registrations`` row if missing; PostgreSQL: an advisory lock
   on the id; SQLite: the ``BEGIN IMMEDIATE`` writer lock), re-check ownership, scopes and duplicates under that
   lock (409 for a duplicate), insert the package row (publish hooks add the signature rows), then hard-link the
   staged bytes to ``DATA/pending/<id>/<version>/<sha512 hex>.<token>.nupkg`` (not served: the pending entry is
   the write-ahead record that this push may have committed); commit;
2. :meth:`FeedService.settle` the id: a second transaction takes the id's lock again, links every pending entry
   whose row is committed with that SHA-512 to its served key and writes its ``.nuspec``, rewrites the id's
   documents from the committed rows, then removes the id's pending entries (the rest belong to transactions
   that never committed).

Unlisting, relisting and revocation mark the version (an empty ``DATA/pending/<id>/<version>`` folder) in their
transaction and settle the id after the commit; :meth:`FeedService.replace_stored_package` keeps the old bytes as
a pending entry until its transaction has ended.

A crash before the commit leaves a pending entry and no row: nothing was ever served, the restart removes the entry,
and the version can be pushed again (with any bytes). A crash after the commit leaves the row and its pending entry:
the restart (:meth:`FeedService.recover`) or the next push of the id finishes step 2 with the committed bytes, so
a push of that version keeps answering 409 and the bytes behind its immutable URL never change. Pending entries are
written and removed only under the id's lock, so several worker processes, and a worker recovering at its start
while others publish, never remove an entry a live push still needs.
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
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.errors import ConfigError, PackageFormatError
from nuseal.feed.accounts.keys import Principal, owners_of
from nuseal.feed.config import FeedConfig, SigningConfig
from nuseal.feed.errors import BadRequestError, DuplicatePackageError, ForbiddenError, NotFoundError
from nuseal.feed.protocol import documents as docs
from nuseal.feed.publish.submission import PublishedPackage, PublishHook, SetupHook, StageContext, Submission
from nuseal.feed.publish.upload import package_sha512
from nuseal.feed.store import audit
from nuseal.feed.store.database import Database, migrate
from nuseal.feed.store.faults import crash_point, current_push
from nuseal.feed.store.models import Certificate, FeedSetting, Owner, Package, PackageSignature, Registration, User
from nuseal.feed.store.storage import Storage, link_or_copy, open_storage
from nuseal.package import NuGetVersion, Nuspec, PackageArchive, find_nuspec_name
from nuseal.package.nuspec import MAX_NUSPEC_SIZE

__all__ = ["FeedService", "record_from_row", "stored_signing_config"]

log = logging.getLogger(__name__)

#: Characters of the description kept in the search text.
MAX_SEARCH_DESCRIPTION = 4000
_BASE_URL_SETTING = "documents.base_url"
_SCHEMA_SETTING = "documents.layout"
_SIGNING_SETTING = "documents.signing"
#: The signing configuration of the last ``nuseal serve`` start (``nuseal admin revalidate`` and ``rebuild`` use it).
SIGNING_CONFIG_SETTING = "signing.config"
#: Staging files older than this (seconds) belong to no live upload.
STALE_UPLOAD_SECONDS = 6 * 3600
#: Bump when the document shapes change, so a start rewrites every document.
DOCUMENT_LAYOUT_VERSION = "1"
#: Under the data folder: entries of pushes that may have committed (see the module docstring).
PENDING_FOLDER = "pending"
#: Under the data folder: held (``flock``) shared by every running ``nuseal serve``; a start that gets it
#: exclusively knows every staging upload belongs to a dead process.
DATA_LOCK_FILE = "feed.lock"
#: Under the data folder: ``<id>/<version>`` holds the SHA-512 of a ``.nupkg`` that a feed before the crash-
#: consistent publish served without committing it; that version can be pushed again only with those bytes.
RETIRED_FOLDER = "retired"


def _sha_hex(sha512_b64: str) -> str:
    """Hex of a base64 SHA-512 (``Package.sha512``), as pending entries are named."""
    return base64.b64decode(sha512_b64).hex()


def _read_nuspec(package: Path) -> bytes | None:
    """The ``.nuspec`` of a package that passed the push pipeline (None, logged, if it cannot be read)."""
    try:
        archive = PackageArchive.from_path(package)
        return archive.read(find_nuspec_name(archive.names), limit=MAX_NUSPEC_SIZE)
    except (PackageFormatError, OSError) as exc:
        log.error("cannot read the nuspec of %s: %s", package, exc)
        return None


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def record_from_row(row: Package, signatures: Sequence[docs.SignatureRecord] | None = None) -> docs.PackageRecord:
    """The document view of a package row; ``signatures`` (None: not tracked) go into the registration leaf."""
    groups = tuple((tfm, tuple((i, r) for i, r in deps)) for tfm, deps in json.loads(row.dependencies))
    return docs.PackageRecord(
        id=row.id,
        version=NuGetVersion.parse(row.version_full),
        listed=row.listed,
        published=_utc(row.published_at),
        description=row.description,
        title=row.title,
        summary=row.summary,
        authors=tuple(a.strip() for a in row.authors.split(",") if a.strip()),
        tags=tuple(row.tags.split()),
        project_url=row.project_url,
        icon_url=row.icon_url,
        license_url=row.license_url,
        license_expression=row.license_expression,
        require_license_acceptance=row.require_license_acceptance,
        min_client_version=row.min_client_version,
        language=row.language,
        package_types=tuple(t for t in row.package_types.split(",") if t),
        dependency_groups=groups,
        downloads=row.downloads,
        signatures=tuple(signatures) if signatures is not None else None,
        signature_status=row.signature_status,
    )


def _signature_records(session: Session, package_pks: Sequence[int]) -> dict[int, list[docs.SignatureRecord]]:
    """The signatures of the given packages, primary first."""
    out: dict[int, list[docs.SignatureRecord]] = {pk: [] for pk in package_pks}
    if not package_pks:
        return out
    rows = session.execute(
        select(PackageSignature, Certificate)
        .join(Certificate, Certificate.pk == PackageSignature.certificate_pk)
        .where(PackageSignature.package_pk.in_(package_pks))
        .order_by(PackageSignature.package_pk, PackageSignature.placement.desc())
    ).all()
    for sig, cert in rows:
        out[sig.package_pk].append(
            docs.SignatureRecord(
                kind=sig.kind,
                placement=sig.placement,
                subject=cert.subject,
                issuer=cert.issuer,
                fingerprint=cert.fingerprint,
                timestamp=_utc(sig.timestamp_at) if sig.timestamp_at else None,
                timestamp_authority=sig.timestamp_authority,
                status=sig.status,
                certificate_status=cert.status,
                certificate_revocation_time=_utc(cert.revocation_time) if cert.revocation_time else None,
                certificate_checked_at=_utc(cert.status_checked_at) if cert.status_checked_at else None,
                certificate_status_detail=cert.status_detail or "",
            )
        )
    return out


def _package_row(nuspec: Nuspec, *, size: int, sha512: str, now: datetime, user_pk: int | None) -> Package:
    """The row of a pushed version, from the nuspec the pipeline parsed (``read_manifest``): no second XML parse."""
    m = nuspec.metadata
    search = " ".join(
        [
            nuspec.id,
            m.get("title", ""),
            " ".join(nuspec.tags),
            " ".join(nuspec.authors),
            nuspec.description[:MAX_SEARCH_DESCRIPTION],
        ]
    ).lower()
    return Package(
        id_lower=nuspec.id.lower(),
        id=nuspec.id,
        version=nuspec.version.normalized,
        version_lower=nuspec.version.normalized.lower(),
        version_full=nuspec.version.full,
        is_prerelease=nuspec.version.is_prerelease,
        is_semver2=nuspec.version.is_semver2,
        listed=True,
        size=size,
        sha512=sha512,
        title=nuspec.title or "",
        description=nuspec.description,
        summary=m.get("summary", ""),
        authors=", ".join(nuspec.authors),
        tags=" ".join(nuspec.tags),
        project_url=m.get("projectUrl", ""),
        icon_url=m.get("iconUrl", ""),
        license_url=m.get("licenseUrl", ""),
        license_expression=nuspec.license_expression,
        require_license_acceptance=m.get("requireLicenseAcceptance", "").lower() == "true",
        min_client_version=nuspec.min_client_version,
        language=m.get("language", ""),
        package_types=",".join(nuspec.package_types),
        dependencies=json.dumps([[tfm, [list(d) for d in deps]] for tfm, deps in nuspec.dependency_groups]),
        search_text=search,
        downloads=0,
        published_at=now,
        pushed_by=user_pk,
    )


def stored_signing_config(db: Database) -> SigningConfig | None:
    """The signing configuration the feed last started with (None: never started since migration 0002).

    Raises:
        ConfigError: the stored value is damaged.
    """
    with db.read() as session:
        row = session.get(FeedSetting, SIGNING_CONFIG_SETTING)
    if row is None:
        return None
    try:
        return SigningConfig(**json.loads(row.value))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the stored signing configuration is damaged: {exc}") from exc


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FeedService:
    """One feed: configuration, database, storage and a clock (injected for tests), and the hooks the composition
    root (:mod:`nuseal.feed.compose`) gives it. Stages and hooks see only :attr:`context`."""

    def __init__(
        self,
        config: FeedConfig,
        db: Database,
        storage: Storage,
        *,
        clock: Callable[[], datetime] = _utc_now,
        publish_hooks: Sequence[PublishHook] = (),
        setup_hooks: Sequence[SetupHook] = (),
    ) -> None:
        self.config = config
        self.db = db
        self.storage = storage
        self.clock = clock
        #: The narrow view stages and hooks get (configuration, database, storage, clock).
        self.context = StageContext(config, db, storage, clock)
        self.urls = self.context.urls
        #: Run in the publish transaction after the package row is inserted, in this order.
        self.publish_hooks: tuple[PublishHook, ...] = tuple(publish_hooks)
        #: Run by :meth:`setup` after the schema is migrated, in this order (issue 5: repository certificates).
        self.setup_hooks: tuple[SetupHook, ...] = tuple(setup_hooks)
        self._data_lock: int | None = None  # descriptor of DATA_LOCK_FILE, held while this service lives

    @property
    def pending_dir(self) -> Path:
        """``DATA/pending``: one entry per push that may have committed and is not yet published."""
        return self.config.data_dir / PENDING_FOLDER

    @property
    def retired_dir(self) -> Path:
        return self.config.data_dir / RETIRED_FOLDER

    @classmethod
    def open(
        cls,
        config: FeedConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        publish_hooks: Sequence[PublishHook] = (),
        setup_hooks: Sequence[SetupHook] = (),
    ) -> FeedService:
        """Open the feed's database and storage (creating folders); does not migrate (see :meth:`setup`). The
        hooks come from the composition root (:func:`nuseal.feed.compose.open_feed`); a bare service (admin
        commands, tests of the publisher alone) has none.

        Raises:
            ConfigError: bad database URL.
        """
        config.data_dir.mkdir(parents=True, exist_ok=True)
        config.staging_dir.mkdir(parents=True, exist_ok=True)
        db = Database(config.effective_database_url)
        storage = open_storage(config)
        return cls(
            config, db, storage, clock=clock or _utc_now, publish_hooks=publish_hooks, setup_hooks=setup_hooks
        )

    # ------------------------------------------------------------------------------------------ start-up
    def setup(self) -> None:
        """Migrate the schema, write the service index, and rewrite every document if the base URL or the
        document layout changed since they were written. Run once per start, before serving.

        Raises:
            ConfigError: the database cannot be migrated.
        """
        migrate(self.db)
        self._clean_staging()
        self.recover()
        for hook in self.setup_hooks:
            hook(self.context)
        index = docs.service_index(
            self.urls,
            repository_signatures=self.config.advertises_repository_signatures,
            vulnerability_info=self.config.ingest.osv_path is not None,  # its documents: a setup hook wrote them
        )
        self.storage.put_bytes("v3/index.json", docs.dump(index), durable=True)
        wanted = {
            _BASE_URL_SETTING: self.config.base_url,
            _SCHEMA_SETTING: DOCUMENT_LAYOUT_VERSION,
            _SIGNING_SETTING: "on" if self.config.signing.enabled else "off",
        }
        with self.db.write() as session:
            session.merge(FeedSetting(key=SIGNING_CONFIG_SETTING, value=json.dumps(asdict(self.config.signing))))
        with self.db.read() as session:
            current = {s.key: s.value for s in session.scalars(select(FeedSetting)).all()}
        if any(current.get(k) != v for k, v in wanted.items()):
            self.rebuild()
            with self.db.write() as session:
                for k, v in wanted.items():
                    session.merge(FeedSetting(key=k, value=v))

    def _clean_staging(self) -> None:
        """Remove uploads left by processes that died mid-push. When no other ``nuseal serve`` holds the data
        folder's lock (:data:`DATA_LOCK_FILE`), every staging file is such a leftover; otherwise only files older
        than :data:`STALE_UPLOAD_SECONDS` are, so uploads that other running processes are receiving stay. The
        shared lock is then held for as long as this service lives."""
        alone = self._hold_data_lock()
        limit = time.time() - STALE_UPLOAD_SECONDS
        for path in self.config.staging_dir.glob("*"):
            with contextlib.suppress(OSError):
                if path.is_file() and (alone or path.stat().st_mtime < limit):
                    path.unlink()

    def _hold_data_lock(self) -> bool:
        """Take the data folder's lock shared; True when it was free to take exclusively first (no other live
        process uses this folder). Without ``fcntl`` (Windows): False."""
        try:
            import fcntl  # noqa: PLC0415 - POSIX only
        except ImportError:  # pragma: no cover - not on the platforms the feed runs on
            return False
        if self._data_lock is None:
            self._data_lock = os.open(self.config.data_dir / DATA_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._data_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        fcntl.flock(self._data_lock, fcntl.LOCK_SH)
        return alone

    # ------------------------------------------------------------------------------------------ recovery
    def recover(self) -> int:
        """Bring storage back to what the database committed, after a crash at any point. Run at every start
        (:meth:`setup`); safe while other processes publish. For every id with a pending entry, with files or
        registration leaves of versions that have no committed row (a feed before this protocol left those), a
        committed version whose files or flat-container entry are missing, or leftovers of an interrupted write:
        :meth:`settle` it with ``sweep``. Returns how many ids were repaired."""
        damaged = sorted(self._damaged_ids())
        for id_lower in damaged:
            log.warning("repairing the stored files and documents of %s after an interrupted write", id_lower)
            self.settle(id_lower, sweep=True)
        return len(damaged)

    def recover_pending(self) -> int:
        """:meth:`settle` every id with a pending entry (what a worker process that died mid-push leaves). Cheap
        when there is none: one directory listing. Returns how many ids."""
        ids = sorted(p.name for p in self.pending_dir.glob("*") if p.is_dir())
        for id_lower in ids:
            self.settle(id_lower, sweep=True)
        return len(ids)

    def _damaged_ids(self) -> set[str]:
        """Ids whose stored files or documents may differ from the committed rows (see :meth:`recover`). One query
        and one listing of the flat container and of each registration view; one read of each flat index."""
        damaged = {p.name for p in self.pending_dir.glob("*") if p.is_dir()}
        with self.db.read() as session:
            rows = session.execute(select(Package.id_lower, Package.version_lower, Package.is_semver2)).all()
        want: dict[str, set[str]] = {}
        semver2: dict[str, set[str]] = {}
        for id_lower, version, is_semver2 in rows:
            want.setdefault(id_lower, set()).add(version)
            if is_semver2:
                semver2.setdefault(id_lower, set()).add(version)
        found: dict[str, set[str]] = {}
        for key in self.storage.list_keys("v3/flatcontainer/"):
            parts = key.split("/")
            versions = found.setdefault(parts[2], set())
            if len(parts) == 5:
                versions.add(parts[3])
        for id_lower in found.keys() | want.keys():
            expected = want.get(id_lower, set())
            if found.get(id_lower, set()) != expected:
                damaged.add(id_lower)
                continue
            raw = self.storage.read_bytes(docs.flat_index_key(id_lower))
            try:
                listed = set(json.loads(raw)["versions"]) if raw is not None else set()
            except (ValueError, KeyError, TypeError):
                listed = None
            if listed != expected:
                damaged.add(id_lower)
        for view, with_semver2 in docs.REGISTRATION_VIEWS:
            leaves: dict[str, set[str]] = {}
            for key in self.storage.list_keys(f"v3/{view}/"):
                parts = key.split("/")
                if len(parts) < 4:
                    continue
                names = leaves.setdefault(parts[2], set())
                if len(parts) == 4 and parts[3] != "index.json" and parts[3].endswith(".json"):
                    names.add(parts[3][: -len(".json")])
            for id_lower in leaves.keys() | want.keys():
                expected = want.get(id_lower, set()) - (set() if with_semver2 else semver2.get(id_lower, set()))
                if leaves.get(id_lower, set()) != expected or id_lower not in want:
                    damaged.add(id_lower)
        for key in self.storage.list_temporaries("v3/"):
            parts = key.split("/")
            if len(parts) >= 4 and parts[1] in ("flatcontainer", *(view for view, _ in docs.REGISTRATION_VIEWS)):
                damaged.add(parts[2])
        return damaged

    def settle(
        self,
        id_lower: str,
        *,
        leaves_for: frozenset[str] | None = None,
        sweep: bool = False,
        nuspecs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Publish what the database committed for one id, under its lock: link every pending entry whose row is
        committed with the entry's SHA-512 to its served keys, rewrite the id's documents from the committed rows
        (the leaves of ``leaves_for`` and of the versions with a pending entry; ``None``: all), then remove the id's
        pending entries. ``nuspecs`` (by lower-case version) saves reading a ``.nuspec`` back from its package.
        ``sweep`` also removes files, registration leaves and temporaries of versions with no committed row
        (recording in ``DATA/retired`` the hash of any ``.nupkg`` removed, see :data:`RETIRED_FOLDER`) and
        rewrites every leaf. Idempotent; a crash inside leaves the pending entries for the next call.

        Raises:
            SQLAlchemyError, OSError: the database or the storage failed (nothing committed is lost).
        """
        with self.db.write() as session:
            self._lock_any(session, id_lower)
            rows = {
                r.version_lower: r for r in session.scalars(select(Package).where(Package.id_lower == id_lower)).all()
            }
            # versions with a pending entry or marker: their leaves may lag the database
            touched = {p.name for p in (self.pending_dir / id_lower).glob("*") if p.is_dir()}
            self._place_pending(id_lower, rows, nuspecs)
            if sweep:
                self._sweep(id_lower, rows)
                missing = [v for v in rows if not self.storage.exists(docs.nupkg_key(id_lower, v))]
                if missing:
                    log.error("committed versions of %s have no .nupkg and no pending entry: %s", id_lower, missing)
            leaves = None if sweep or leaves_for is None else leaves_for | touched
            self._write_documents(session, id_lower, leaves_for=leaves, rows=list(rows.values()))
            crash_point("settle.documents")
            shutil.rmtree(self.pending_dir / id_lower, ignore_errors=True)

    def _mark_pending(self, id_lower: str, ver_lower: str) -> None:
        """Record (must hold the id's lock) that the documents of one version may lag the database until
        :meth:`settle` runs: an empty pending folder for the version, which a restart settles."""
        folder = self.pending_dir / id_lower / ver_lower
        folder.mkdir(parents=True, exist_ok=True)

    def _lock_any(self, session: Session, id_lower: str) -> Registration | None:
        """Take the id's lock whether or not its registration row exists; returns the row (locked) or None."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:id, 0))"), {"id": id_lower})
        return session.scalar(select(Registration).where(Registration.id_lower == id_lower).with_for_update())

    def _stage_pending(self, id_lower: str, ver_lower: str, source: Path, sha512: str) -> Path:
        """Write a pending entry (must hold the id's lock): a hard link to ``source`` (the staged upload, fsynced
        when it was received). Returns the entry's path."""
        folder = self.pending_dir / id_lower / ver_lower
        folder.mkdir(parents=True, exist_ok=True)
        package = folder / f"{_sha_hex(sha512)}.{secrets.token_hex(8)}.nupkg"
        link_or_copy(source, package)
        return package

    def _stage_pending_bytes(self, id_lower: str, ver_lower: str, data: bytes, sha512: str) -> Path:
        """Write a pending entry holding ``data`` (must hold the id's lock), fsynced, under its final name only
        once complete (a crash leaves a dot-named temporary, which :meth:`settle` removes with the folder)."""
        folder = self.pending_dir / id_lower / ver_lower
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{_sha_hex(sha512)}.{secrets.token_hex(8)}.nupkg"
        tmp = folder / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        package = folder / name
        os.replace(tmp, package)
        return package

    def _place_pending(
        self, id_lower: str, rows: Mapping[str, Package], nuspecs: Mapping[str, bytes] | None = None
    ) -> set[str]:
        """Link the pending entries whose row is committed with their SHA-512 to their served keys (the caller
        holds the id's lock), and write each one's ``.nuspec`` (from ``nuspecs`` by version, else read from the
        package when it is not stored yet). Returns the versions placed."""
        placed: set[str] = set()
        for package in sorted((self.pending_dir / id_lower).glob("*/*.nupkg")):
            version = package.parent.name
            row = rows.get(version)
            if row is None or version in placed or package.name.split(".", 1)[0] != _sha_hex(row.sha512):
                continue
            self.storage.put_file(docs.nupkg_key(id_lower, version), package)
            crash_point("settle.nupkg", f"{id_lower}/{version}")
            nuspec_key = docs.nuspec_key(id_lower, version)
            nuspec = (nuspecs or {}).get(version)
            if nuspec is None and not self.storage.exists(nuspec_key):
                nuspec = _read_nuspec(package)
            if nuspec is not None:
                self.storage.put_bytes(nuspec_key, nuspec, durable=True)
            crash_point("settle.nuspec", f"{id_lower}/{version}")
            with contextlib.suppress(FileNotFoundError):
                (self.retired_dir / id_lower / version).unlink()
            placed.add(version)
        return placed

    def _sweep(self, id_lower: str, rows: Mapping[str, Package]) -> None:
        """Remove files, leaves and temporaries of the id that no committed row accounts for (the caller holds
        the id's lock, so no writer of this id is running)."""
        prefixes = [f"v3/flatcontainer/{id_lower}/"] + [f"v3/{view}/{id_lower}/" for view, _ in docs.REGISTRATION_VIEWS]
        for prefix in prefixes:
            for key in self.storage.list_temporaries(prefix):
                self.storage.delete(key)
        for key in self.storage.list_keys(prefixes[0]):
            parts = key.split("/")
            if len(parts) == 5 and parts[3] not in rows:
                if key.endswith(".nupkg"):
                    self._retire(id_lower, parts[3], key)
                self.storage.delete(key)
        for view, with_semver2 in docs.REGISTRATION_VIEWS:
            prefix = f"v3/{view}/{id_lower}/"
            for key in self.storage.list_keys(prefix):
                name = key[len(prefix) :]
                if "/" in name or name == "index.json" or not name.endswith(".json"):
                    continue
                row = rows.get(name[: -len(".json")])
                if row is None or (row.is_semver2 and not with_semver2):
                    self.storage.delete(key)

    def _retire(self, id_lower: str, ver_lower: str, key: str) -> None:
        """Record the SHA-512 of an uncommitted ``.nupkg`` that was served, before it is removed."""
        data = self.storage.read_bytes(key)
        if data is None:
            return
        log.warning("removing %s: no committed row; a push of this version must bring the same bytes", key)
        folder = self.retired_dir / id_lower
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ver_lower).write_text(package_sha512(data), encoding="ascii")

    def _retired_sha(self, id_lower: str, ver_lower: str) -> str | None:
        try:
            return (self.retired_dir / id_lower / ver_lower).read_text(encoding="ascii").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def rebuild(self, id_lower: str | None = None) -> int:
        """Rewrite every document (all leaves included) of one id, or of all ids. Returns how many ids."""
        with self.db.read() as session:
            ids = [id_lower] if id_lower else list(session.scalars(select(Registration.id_lower)).all())
        for one in ids:
            with self.db.write() as session:
                self._lock_id(session, one)
                self._write_documents(session, one, leaves_for=None)
        return len(ids)

    # ------------------------------------------------------------------------------------------ publishing
    def _lock_id(self, session: Session, id_lower: str, display_id: str | None = None) -> tuple[Registration, bool]:
        """Lock (creating when ``display_id`` is given) the id's registration row. Returns (row, created)."""
        created = False
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            # an advisory lock also covers ids whose registration row does not exist (yet, or any more)
            session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:id, 0))"), {"id": id_lower})
        if display_id is not None:
            values = {"id_lower": id_lower, "id": display_id, "created_at": self.clock()}
            stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Registration).values(values)
            result = session.execute(stmt.on_conflict_do_nothing(index_elements=["id_lower"]))
            created = bool(getattr(result, "rowcount", 0))
        reg = session.scalar(select(Registration).where(Registration.id_lower == id_lower).with_for_update())
        if reg is None:
            raise NotFoundError(f"no package with the id {id_lower!r}")
        return reg, created

    def publish(self, submission: Submission) -> PublishedPackage:
        """Publish a submission that passed the pipeline's stages. See the module docstring.

        Raises:
            ForbiddenError: the id belongs to other owners, or the key's scope/globs do not allow it.
            DuplicatePackageError: the version exists (409), or a feed before the crash-consistent publish served
                other bytes for it (see :data:`RETIRED_FOLDER`).
        """
        nuspec = submission.require_nuspec()
        token = current_push.set(f"{nuspec.id.lower()}/{nuspec.version.normalized.lower()}")
        try:
            return self._publish(submission, nuspec)
        finally:
            current_push.reset(token)

    def _publish(self, submission: Submission, nuspec: Nuspec) -> PublishedPackage:
        raw_nuspec = submission.nuspec_bytes or b""
        id_lower = nuspec.id.lower()
        ver_lower = nuspec.version.normalized.lower()
        principal = submission.principal
        #: An upstream package that passed ingestion (:mod:`nuseal.feed.mirror`): stored like a push, without owners.
        upstream = submission.facts.get("origin") == "upstream"
        pending: Path | None = None
        committed = False
        try:
            with self.db.write() as session:
                reg, _created = self._lock_id(session, id_lower, nuspec.id)
                owners = set(session.scalars(select(Owner.user_pk).where(Owner.id_lower == id_lower)).all())
                new_id = not owners
                if upstream:  # mirrored (issue 16): no owners; a local id always wins over an upstream one
                    if owners:
                        raise ForbiddenError(
                            f"the package id {reg.id!r} is a local id; upstream versions are not added"
                        )
                    new_id = False
                else:
                    principal.require(nuspec.id, new_id=new_id)
                if not upstream and not new_id and principal.user_pk not in owners:
                    raise ForbiddenError(f"the package id {reg.id!r} belongs to other owners")
                exists = session.scalar(
                    select(Package.pk).where(Package.id_lower == id_lower, Package.version_lower == ver_lower)
                )
                if exists is not None:
                    raise DuplicatePackageError(
                        f"a package with id {reg.id!r} and version {nuspec.version.normalized!r} already exists "
                        "and cannot be modified"
                    )
                retired = self._retired_sha(id_lower, ver_lower)
                if retired is not None and retired != submission.upload.sha512:
                    raise DuplicatePackageError(
                        f"version {nuspec.version.normalized!r} of {reg.id!r} was served before with other bytes "
                        "(by a push that a crash interrupted); it can only be pushed again with the same bytes"
                    )
                if new_id:
                    session.add(Owner(id_lower=id_lower, user_pk=principal.user_pk))
                row = _package_row(
                    nuspec,
                    size=submission.upload.size,
                    sha512=submission.upload.sha512,
                    now=self.clock(),
                    user_pk=None if upstream else principal.user_pk,
                )
                row.id = reg.id  # one casing per id: the first push's
                if upstream:
                    row.origin = "upstream"
                    published = submission.facts.get("published")
                    if isinstance(published, datetime):
                        row.published_at = published
                session.add(row)
                try:
                    session.flush()
                except IntegrityError as exc:  # the unique constraint is the last word on duplicates
                    raise DuplicatePackageError(
                        f"a package with id {reg.id!r} and version {nuspec.version.normalized!r} already exists"
                    ) from exc
                for hook in self.publish_hooks:
                    hook(submission, self.context, session, row)
                crash_point("publish.row")
                pending = self._stage_pending(id_lower, ver_lower, submission.package_path, submission.upload.sha512)
                crash_point("publish.pending")
            committed = True
        finally:
            if not committed and pending is not None:
                # whether the commit happened (a lost connection during COMMIT) only the database knows: settle
                # the id from what it holds, which removes the entry unless the row is there
                try:
                    self.settle(id_lower)
                except Exception:  # the original error matters more; the next start settles the id
                    log.exception("could not settle %s after a failed publish", id_lower)
        crash_point("publish.committed")
        self.settle(id_lower, leaves_for=frozenset({ver_lower}), nuspecs={ver_lower: raw_nuspec})
        crash_point("publish.done")
        return PublishedPackage(reg.id, nuspec.version.normalized, submission.upload.size, submission.upload.sha512)

    def _write_documents(
        self,
        session: Session,
        id_lower: str,
        *,
        leaves_for: frozenset[str] | None,
        rows: Sequence[Package] | None = None,
    ) -> None:
        """Rewrite the id's flat-container index and registration documents from what ``session`` sees (``rows``:
        the id's package rows, when the caller has just read them). Must be called with the id locked. Deletes
        documents of views or pages that no longer exist."""
        if rows is None:
            rows = session.scalars(select(Package).where(Package.id_lower == id_lower)).all()
        if self.config.signing.enabled:
            signatures = _signature_records(session, [r.pk for r in rows])
            records = [record_from_row(r, signatures[r.pk]) for r in rows]
        else:
            records = [record_from_row(r) for r in rows]
        produced: dict[str, bytes] = {}
        if records:
            produced[docs.flat_index_key(id_lower)] = docs.dump(docs.flat_index(records))
            produced.update(
                docs.registration_documents(
                    self.urls, records, commit_id=str(uuid.uuid4()), commit_time=self.clock(), leaves_for=leaves_for
                )
            )
        for n, (key, data) in enumerate(produced.items()):
            self.storage.put_bytes(key, data)
            if n == 0:
                crash_point("documents.partial")
        for view, _ in docs.REGISTRATION_VIEWS:
            index_key = docs.registration_index_key(view, id_lower)
            if index_key not in produced:
                self.storage.delete(index_key)
            for key in self.storage.list_keys(f"v3/{view}/{id_lower}/page/"):
                if key not in produced:
                    self.storage.delete(key)
        if not records:
            self.storage.delete(docs.flat_index_key(id_lower))

    # ------------------------------------------------------------------------------------------ unlist / relist
    def set_listed(self, principal: Principal, package_id: str, version: str, *, listed: bool) -> None:
        """Unlist (``listed=False``) or relist a version. Idempotent.

        Raises:
            NotFoundError: no such id or version.
            ForbiddenError: the key lacks the unlist scope or a matching glob, or the user is not an owner.
        """
        id_lower = package_id.lower()
        try:
            ver_lower = NuGetVersion.parse(version).normalized.lower()
        except Exception as exc:
            raise NotFoundError(f"no version {version!r} of {package_id!r}") from exc
        with self.db.write() as session:
            reg, _ = self._lock_id(session, id_lower)
            principal.require(reg.id, new_id=False, action="unlist")
            owners = set(session.scalars(select(Owner.user_pk).where(Owner.id_lower == id_lower)).all())
            if principal.user_pk not in owners:
                raise ForbiddenError(f"the package id {reg.id!r} belongs to other owners")
            row = session.scalar(
                select(Package).where(Package.id_lower == id_lower, Package.version_lower == ver_lower)
            )
            if row is None:
                raise NotFoundError(f"no version {version!r} of {reg.id!r}")
            changed = row.listed != listed
            if changed:
                row.listed = listed
                session.flush()
                self._mark_pending(id_lower, ver_lower)
        if changed:  # documents only from what is committed
            crash_point("listing.committed", f"{id_lower}/{ver_lower}")
            self.settle(id_lower, leaves_for=frozenset({ver_lower}))

    # ------------------------------------------------------------------------------------------ owners
    def change_owner(self, principal: Principal, package_id: str, user_name: str, *, add: bool) -> list[str]:
        """An owner adds or removes an owner of ``package_id``; returns the owners afterwards.

        Owners decide whose registered certificates may sign the id, so this is an account setting: it needs a
        full-scope key (:meth:`Principal.require_account`), as nuget.org's scoped keys cannot manage owners
        either; a stolen push key for ``Contoso.*`` must not be able to add its thief as an owner. The last
        owner cannot be removed.

        Raises:
            NotFoundError: no such id or user.
            ForbiddenError: a scoped key, or the caller is not an owner.
            BadRequestError: removing the last owner.
        """
        principal.require_account()
        id_lower = package_id.lower()
        with self.db.write() as session:
            reg, _ = self._lock_id(session, id_lower)
            principal.require(reg.id, new_id=False)
            owners = set(session.scalars(select(Owner.user_pk).where(Owner.id_lower == id_lower)).all())
            if principal.user_pk not in owners:
                raise ForbiddenError(f"only an owner of {reg.id!r} can change its owners")
            user = session.scalar(select(User).where(User.name == user_name))
            if user is None:
                raise NotFoundError(f"no user named {user_name!r}")
            if add and user.pk not in owners:
                session.add(Owner(id_lower=id_lower, user_pk=user.pk))
            elif not add and user.pk in owners:
                if len(owners) == 1:
                    raise BadRequestError(f"{user_name!r} is the last owner of {reg.id!r}")
                session.execute(delete(Owner).where(Owner.id_lower == id_lower, Owner.user_pk == user.pk))
            session.flush()
            return owners_of(session, id_lower)

    # ------------------------------------------------------------------------------------------ downloads
    def add_downloads(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add buffered download counts ((id_lower, version_lower) -> n) in one transaction."""
        if not counts:
            return
        with self.db.write() as session:
            for (id_lower, ver_lower), n in counts.items():
                session.execute(
                    update(Package)
                    .where(Package.id_lower == id_lower, Package.version_lower == ver_lower)
                    .values(downloads=Package.downloads + n)
                )

    def staging_path(self) -> Path:
        return self.config.staging_dir

    # ------------------------------------------------------------------------------------------ revalidation
    def revoke_author_signature(
        self, signature_pk: int, *, now: datetime, actor: str, evidence: Mapping[str, object]
    ) -> tuple[str, str] | None:
        """Mark one author signature revoked: its version gets ``signature_status="revoked"`` and is unlisted, a
        ``package.revoked`` audit row records ``evidence`` (plus whether the version was listed), and the id's
        documents are rewritten (registration leaf, index and pages) in the same transaction, under the id lock
        (:mod:`nuseal.feed.signing.revalidation`; nuget.org's ``SignatureDeciderFactory`` decides, the caller applied
        it).

        Returns ``(id, version)`` when the signature was revoked now; ``None`` when it already was, or it is gone
        (idempotent: a second call writes nothing).
        """
        with self.db.read() as session:
            found = session.execute(
                select(Package.id_lower, PackageSignature.status)
                .join(PackageSignature, PackageSignature.package_pk == Package.pk)
                .where(PackageSignature.pk == signature_pk)
            ).first()
        if found is None or found[1] == "revoked":
            return None
        id_lower = found[0]
        with self.db.write() as session:
            try:
                self._lock_id(session, id_lower)
            except NotFoundError:
                return None
            sig = session.scalar(select(PackageSignature).where(PackageSignature.pk == signature_pk).with_for_update())
            if sig is None or sig.status == "revoked":
                return None
            row = session.get(Package, sig.package_pk)
            if row is None:
                return None
            was_listed = row.listed
            sig.status = "revoked"
            row.signature_status = "revoked"
            row.listed = False
            audit.record(
                session,
                at=now,
                actor=actor,
                action="package.revoked",
                target=f"package:{row.id_lower}/{row.version_lower}",
                unlisted=was_listed,
                **dict(evidence),
            )
            session.flush()
            self._mark_pending(id_lower, row.version_lower)
            done = row.id, row.version
        self.settle(id_lower, leaves_for=frozenset({done[1].lower()}))  # documents only from what is committed
        return done

    def replace_stored_package(
        self,
        id_lower: str,
        version_lower: str,
        data: bytes,
        *,
        expect_sha512: str,
        change: Callable[[Session, Package], None],
    ) -> bool:
        """Swap the stored ``.nupkg`` of one version for ``data`` (the same package with other signatures:
        ``nuseal admin repository-sign``), in one transaction under the id lock: the row's size and SHA-512 are
        set to the new bytes', then ``change`` updates the rest of the database for them (signature rows, audit;
        it sees the new values), the file is replaced atomically and the id's documents rewritten; if the
        transaction then fails, the old file is put back. The old bytes are kept as a pending entry until the
        outcome is settled, so a crash before the commit is undone by the next start (:meth:`recover`).

        Returns False, changing nothing, when the version is gone, was revoked meanwhile, or its stored file is no
        longer the one hashed ``expect_sha512`` (base64 SHA-512, as ``Package.sha512``) that the caller read.

        Raises:
            SQLAlchemyError, OSError: the database or the storage failed (the old file is back in place).
        """
        key = docs.nupkg_key(id_lower, version_lower)
        old: bytes | None = None
        staged = committed = False
        try:
            with self.db.write() as session:
                try:
                    self._lock_id(session, id_lower)
                except NotFoundError:
                    return False
                row = session.scalar(
                    select(Package).where(Package.id_lower == id_lower, Package.version_lower == version_lower)
                )
                if row is None or row.sha512 != expect_sha512 or row.signature_status == "revoked":
                    return False
                old = self.storage.read_bytes(key)
                if old is not None:
                    # a crash before the commit: the restart puts these bytes back (they match the row then)
                    self._stage_pending_bytes(id_lower, version_lower, old, expect_sha512)
                    staged = True
                row.size = len(data)
                row.sha512 = package_sha512(data)
                change(session, row)
                session.flush()
                self.storage.put_bytes(key, data, durable=True)
                self._write_documents(session, id_lower, leaves_for=frozenset({version_lower}))
            committed = True
        finally:
            if not committed and old is not None:
                self.storage.put_bytes(key, old, durable=True)
            # drops the pending entry; after a failure also rewrites the documents from the rolled-back row
            try:
                if staged:
                    self.settle(id_lower, leaves_for=frozenset({version_lower}))
            except Exception:
                if committed:
                    raise
                log.exception("could not settle %s after a failed replacement; the next start does", id_lower)
        return True

    def rewrite_documents(self, id_lower: str, versions: Iterable[str] | None = None) -> None:
        """Rewrite the id's documents under its lock: its index and pages, and the leaves of ``versions``
        (lower-cased normalized; ``None``: every leaf). Nothing happens for an id that no longer exists."""
        with self.db.write() as session:
            try:
                self._lock_id(session, id_lower)
            except NotFoundError:
                return
            self._write_documents(session, id_lower, leaves_for=None if versions is None else frozenset(versions))

    def signature_records(self, session: Session, package_pks: Sequence[int]) -> dict[int, list[docs.SignatureRecord]]:
        """The signatures of the given package rows (primary first), as the registration leaf and web page show
        them; every pk maps to a list (empty: unsigned and not repository-signed)."""
        return _signature_records(session, package_pks)
