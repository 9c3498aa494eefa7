"""Per-version file locks shared by the feed's worker processes (issue 16, point 1: one upstream download however
many clients ask at once, also under ``nuseal serve --workers N``).

The read-through mirror (:mod:`nuseal.feed.mirror.readthrough`) takes :meth:`VersionLocks.hold` for a version
around "stored, held or refused already? -> download -> ingest": an exclusive advisory ``flock`` on
``DATA/locks/mirror/<id>/<version>.lock`` (lower-case id and normalized version). A process that gets the lock
after another finished finds the version published (or held or refused) and downloads nothing. The lock is waited
for in a worker thread, in short slices, so the event loop never blocks and a cancelled request leaves no lock
behind; a process that dies releases its locks (the kernel closes its files).

Limits: the lock serialises the processes of one machine that share the data folder (``flock`` on a local
filesystem; not over NFS). Several machines sharing S3 storage and one database each take their own lock: two of
them may both download a version, but only one publishes it (the database's unique constraint on id and version
decides; the other ingestion answers ``accepted`` and serves the stored bytes, waiting for them a few seconds when
the winner has committed and not yet written storage: :meth:`ReadThroughMirror.await_stored
<nuseal.feed.mirror.readthrough.ReadThroughMirror.await_stored>`), so a duplicate download may happen, never a
duplicate or partial publish. The lock files stay (empty, one per version ever fetched): removing one safely
would need the lock it stands for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock across processes (the database still decides)
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_TIMEOUT_SECONDS", "VersionLocks"]

log = logging.getLogger(__name__)

#: Seconds a process waits for another's download and ingestion of the same version before it goes ahead without
#: the lock (the default upstream download timeout, 600 s, plus time for the checks).
LOCK_TIMEOUT_SECONDS = 900.0
#: Seconds one worker-thread call polls for the lock before handing back to the event loop.
_SLICE_SECONDS = 0.5
_POLL_SECONDS = 0.02


class VersionLocks:
    """Exclusive file locks per ``(id, version)`` under ``folder`` (``DATA/locks/mirror``), created on demand.

    Args:
        folder: where the lock files go (one sub-folder per lower-case id).
        timeout: seconds :meth:`hold` waits before it goes ahead unlocked (logged as a warning).
    """

    def __init__(self, folder: Path, *, timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        self.folder = folder
        self.timeout = timeout

    def path(self, id_lower: str, version_lower: str) -> Path:
        """The lock file of one version (the arguments are a request's checked id and version characters)."""
        return self.folder / id_lower / f"{version_lower}.lock"

    @contextlib.asynccontextmanager
    async def hold(self, id_lower: str, version_lower: str) -> AsyncIterator[bool]:
        """Hold the version's lock for the body. Yields True when another process held it first (it may have done
        the work meanwhile), False when it was free. After :attr:`timeout` seconds of waiting, or without
        ``fcntl``, the body runs unlocked (yields True: look before downloading).

        Raises:
            OSError: the lock file cannot be created or opened.
        """
        if fcntl is None:  # pragma: no cover - Windows
            yield True
            return
        path = self.path(id_lower, version_lower)
        fd = await anyio.to_thread.run_sync(_open, path)
        try:
            waited = False
            deadline = time.monotonic() + self.timeout
            while not await anyio.to_thread.run_sync(_try_lock, fd, _SLICE_SECONDS):
                waited = True
                if time.monotonic() >= deadline:
                    log.warning("mirror: %s still locked after %.0f s; going ahead without it", path, self.timeout)
                    break
            yield waited
        finally:
            os.close(fd)  # closing releases the flock


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _try_lock(fd: int, seconds: float) -> bool:
    """Poll for the exclusive lock on ``fd`` for up to ``seconds``; True once held."""
    assert fcntl is not None
    end = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= end:
                return False
            time.sleep(_POLL_SECONDS)
