"""The ``--osv`` data taken again while the feed serves: no restart to pick up new OSV records.

``nuseal serve --osv DIR`` reads the OSV records at start (:mod:`nuseal.feed.mirror.vulnerabilities`). An operator
refreshes the folder (OpenSSF malicious-packages and GitHub advisories, e.g. daily); the feed notices it:

* **Cheap change detection** (:func:`folder_stamp`): a SHA-256 over every ``*.json`` file's relative path, size
  and modification time (nanoseconds), as :class:`~nuseal.scan.osv.OsvDatabase` reads the folder (recursively,
  regular files, no symbolic links); for a zip, the zip's own size and time. Same stamp: nothing is read again.
* **Per process** (:class:`OsvData`): every serving process (each ``--workers N`` uvicorn worker has its own
  memory) holds its own snapshot. :meth:`OsvData.current` (the known-bad check of pushes and ingestion asks it)
  looks at the stamp again when ``--osv-refresh`` seconds of the feed's clock have passed since it last looked,
  and the process's :class:`OsvRefreshTask` does it every period in the background, so a change is taken within
  one period in every process. A changed folder is read into a new snapshot, which then replaces the old one in a
  single reference assignment: a check sees the old data or the new, never a mix.
* **A bad folder keeps the data.** When the new read has a file it could not read that the data being served did
  not have (not JSON, not an OSV record, too large: a record being written, or a sync that broke it), or the folder
  is gone or the zip unreadable, nothing is swapped: the process keeps checking against, and serving, the data it
  had, and logs an error naming the files (:attr:`OsvData.problem` keeps the last one). A file already unreadable
  when the data being served was read (logged then) does not stop a refresh. The next change is read again.
* **Documents** (:class:`OsvRefreshTask`): one process rewrites the ``VulnerabilityInfo/6.7.0`` documents, the one
  holding the ``feed_settings`` lease :data:`LEASE_SETTING` (the revalidation task's lease,
  :func:`nuseal.feed.signing.revalidation.try_acquire_lease`, with its own key; renewed at each period, given up at
  shutdown, taken over by another worker once it expires). It writes with
  :func:`~nuseal.feed.mirror.vulnerabilities.write_documents`: the data files first, then the index naming them
  with a new ``@updated`` for each file whose bytes changed (NuGet's cache key), nothing when the bytes are the same.
* **The month turns**: the ``base``/``update`` cut-off is the first instant of the current month, so the first
  refresh of a new month builds the documents again from the data in memory (no read of the folder).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from nuseal.errors import ConfigError
from nuseal.feed.mirror.vulnerabilities import VulnerabilityInfo, write_documents
from nuseal.scan.osv import OsvDatabase

if TYPE_CHECKING:
    from collections.abc import Callable

    from nuseal.feed.publish.publisher import FeedService
    from nuseal.feed.publish.submission import SetupHook, StageContext

__all__ = ["LEASE_SETTING", "OsvData", "OsvRefreshTask", "RefreshResult", "folder_stamp", "setup_hook"]

log = logging.getLogger(__name__)

#: ``feed_settings`` key of the lease electing the process that rewrites the documents.
LEASE_SETTING = "osv.refresh.lease"
#: Seconds the lease outlives the period (its holder renews it at every period).
LEASE_MARGIN_SECONDS = 120.0
#: Unreadable files named in one problem line (the rest are counted).
MAX_NAMED_FILES = 5


def folder_stamp(path: Path | str) -> str:
    """A hex SHA-256 that changes when a record under ``path`` is added, removed, resized or rewritten: over each
    ``*.json`` file's path relative to ``path``, its size and its modification time in nanoseconds (the files
    :meth:`OsvDatabase.load` reads), or the size and time of zip file ``path``. ``"missing"`` when ``path`` is
    neither; a file that disappears while it is listed is left out (the next stamp differs anyway).

    A rewrite that keeps a file's size and its modification time to the nanosecond is not seen (a filesystem
    with coarse timestamps, a tool that restores times): touch the folder's files, or restart.
    """
    root = Path(path)
    digest = hashlib.sha256()
    if root.is_dir():
        for file in sorted(root.rglob("*.json")):
            try:
                st = file.lstat()
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            digest.update(f"{file.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()
    if root.is_file():
        st = root.stat()
        digest.update(f"zip\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()
    return "missing"


@dataclass(frozen=True)
class RefreshResult:
    """What one :meth:`OsvData.refresh` did: ``changed`` (a new snapshot serves now), ``problem`` (the folder changed
    but was not taken, and why; ``None`` otherwise)."""

    changed: bool
    problem: str | None = None


@dataclass(frozen=True)
class _Snapshot:
    stamp: str
    info: VulnerabilityInfo
    unreadable: frozenset[str]


class OsvData:
    """The OSV data of one feed process, taken again when the ``--osv`` folder changes (module docstring).

    Args:
        path: the ``--osv`` folder or zip.
        clock: the feed's clock (aware UTC datetimes): the ``base``/``update`` cut-off and when to look again.
        refresh_seconds: :meth:`current` looks for a change when this many seconds passed since the last look
            (0: never; :meth:`refresh` still does when called).

    Thread-safe: one thread reads the folder at a time; the others keep answering from the snapshot they have.
    """

    def __init__(self, path: Path | str, *, clock: Callable[[], datetime], refresh_seconds: float) -> None:
        self.path = Path(path)
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        #: The last change that was not taken (the files named), until a later change is taken.
        self.problem: str | None = None
        self._snapshot: _Snapshot | None = None
        self._seen: str | None = None  # the last stamp read (taken or not)
        self._looked_at: datetime | None = None
        self._lock = threading.Lock()

    def load(self) -> VulnerabilityInfo:
        """The data, read now if no snapshot was taken yet (the first use in this process).

        Raises:
            ConfigError: the first read failed: ``path`` is neither a folder nor a readable zip (names ``--osv``).
        """
        snapshot = self._snapshot
        if snapshot is not None:
            return snapshot.info
        with self._lock:
            if self._snapshot is None:
                stamp, now = folder_stamp(self.path), self.clock()
                db = OsvDatabase.load(self.path)
                self._take(stamp, db, now)
            assert self._snapshot is not None
            return self._snapshot.info

    def current(self) -> VulnerabilityInfo:
        """The data to check against now: :meth:`load`, after a :meth:`refresh` when one is due by the feed's clock
        (``refresh_seconds`` since the last look; another thread already reading the folder is not waited for).

        Raises:
            ConfigError: as :meth:`load` (only before the first snapshot).
        """
        info = self.load()
        if self.refresh_seconds > 0 and self._due(self.clock()):
            self.refresh(wait=False)
            return self.load()
        return info

    def _due(self, now: datetime) -> bool:
        looked = self._looked_at
        return looked is None or now < looked or now - looked >= timedelta(seconds=self.refresh_seconds)

    def refresh(self, *, wait: bool = True) -> RefreshResult:
        """Look at the folder's stamp and take its records when it changed (or rebuild the documents' partition when
        the month turned); keep the data in place when the new read has new unreadable files or fails.

        ``wait``: wait for another thread's refresh to end (False: return at once, unchanged). Never raises for
        a bad folder (the problem is in the result, in :attr:`problem` and in the log).
        """
        if not self._lock.acquire(blocking=wait):
            return RefreshResult(False)
        try:
            return self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> RefreshResult:
        now = self.clock()
        self._looked_at = now
        snapshot = self._snapshot
        try:
            stamp = folder_stamp(self.path)
        except OSError as exc:
            return self._refuse(f"--osv {self.path}: cannot list the records: {exc}")
        if snapshot is None:  # nothing taken yet in this process: the first read, as load() does
            try:
                self._take(stamp, OsvDatabase.load(self.path), now)
            except (ConfigError, OSError) as exc:
                return self._refuse(str(exc))
            return RefreshResult(True)
        if stamp == self._seen:
            if _month(now) != snapshot.info.base_before:  # same records, new month: base/update cut again
                self._snapshot = _Snapshot(
                    snapshot.stamp, VulnerabilityInfo(snapshot.info.db, as_of=now), snapshot.unreadable
                )
                return RefreshResult(True)
            return RefreshResult(False)
        self._seen = stamp
        try:
            db = OsvDatabase.load(self.path)
        except (ConfigError, OSError) as exc:
            return self._refuse(f"{exc}")
        new_bad = sorted(set(db.unreadable) - snapshot.unreadable)
        if new_bad:
            reasons = {p.split(": ", 1)[0]: p for p in db.problems}
            named = "; ".join(reasons.get(name, f"{name}: unreadable") for name in new_bad[:MAX_NAMED_FILES])
            more = f"; {len(new_bad) - MAX_NAMED_FILES} more unreadable" if len(new_bad) > MAX_NAMED_FILES else ""
            return self._refuse(f"--osv {self.path}: {named}{more}")
        self._take(stamp, db, now)
        self.problem = None
        log.info("OSV: %s changed; now %d NuGet advisories from %d records", self.path, len(db), db.records)
        return RefreshResult(True)

    def _take(self, stamp: str, db: OsvDatabase, now: datetime) -> None:
        info = VulnerabilityInfo(db, as_of=now)
        for problem in info.problems[:20]:
            log.warning("VulnerabilityInfo: %s", problem)
        self._seen = stamp
        self._looked_at = now
        self._snapshot = _Snapshot(stamp, info, frozenset(db.unreadable))  # one assignment: the swap

    def _refuse(self, why: str) -> RefreshResult:
        kept = self._snapshot
        held = f"{len(kept.info.db)} NuGet advisories read before" if kept is not None else "no OSV data"
        self.problem = f"{why}; the change was not taken, the feed keeps {held}"
        log.error("OSV refresh: %s", self.problem)
        return RefreshResult(False, self.problem)


def _month(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def setup_hook(data: OsvData) -> SetupHook:
    """The feed's setup hook for ``--osv``: at each start, read the records (``data``'s first snapshot) and write the
    ``VulnerabilityInfo/6.7.0`` documents (:func:`~nuseal.feed.mirror.vulnerabilities.write_documents`).

    The hook raises ``ConfigError`` when the OSV folder cannot be read (the feed does not start).
    """

    def write(context: StageContext) -> None:
        write_documents(context.storage, context.urls.vulnerability_info, data.load(), now=context.clock())

    return write


class OsvRefreshTask:
    """Background task (:class:`~nuseal.feed.http.app.BackgroundTask`) of every serving process: every
    ``refresh_seconds`` (``--osv-refresh``), :meth:`tick` in a worker thread. Errors are logged and retried at the
    next period; the lease is given up at shutdown."""

    def __init__(self, service: FeedService, data: OsvData) -> None:
        self.service = service
        self.data = data
        self.owner = os.urandom(16).hex()

    async def run(self) -> None:
        period = self.data.refresh_seconds
        if period <= 0:
            return
        try:
            while True:
                await anyio.sleep(period)
                try:
                    await anyio.to_thread.run_sync(self.tick)
                except Exception:
                    log.exception("OSV refresh failed; retrying in %g s", period)
        finally:
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.release)

    def tick(self) -> list[str] | None:
        """Take a change of the folder into this process's data (:meth:`OsvData.refresh`); then, when this process
        holds (or takes) the lease, write the documents of the data it serves. Returns the storage keys written
        (``[]``: the documents were already those), or ``None`` when another process holds the lease.

        Raises:
            SQLAlchemyError, OSError: the database or the storage failed (the task logs it and tries again).
        """
        from nuseal.feed.signing.revalidation import try_acquire_lease  # noqa: PLC0415 - the revocation stack

        self.data.refresh()
        seconds = self.data.refresh_seconds + LEASE_MARGIN_SECONDS
        if not try_acquire_lease(self.service, self.owner, seconds=seconds, key=LEASE_SETTING):
            return None
        context = self.service.context
        return write_documents(context.storage, context.urls.vulnerability_info, self.data.load(), now=context.clock())

    def release(self) -> None:
        """Give the lease up (shutdown), so another worker writes the next change at once."""
        from nuseal.feed.signing.revalidation import release_lease  # noqa: PLC0415

        release_lease(self.service, self.owner, key=LEASE_SETTING)

    def published(self) -> None:
        """Nothing to do when a push is published."""
