"""Download counts, buffered per process and added to the database in batches.

Counting each ``.nupkg`` GET with its own write transaction would put the database on the download path
(and serialize downloads on SQLite's writer lock). Each worker process instead keeps a small dict of counts
and adds it to the database every few seconds and at shutdown; nothing else depends on it, so any number
of workers can count independently.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["DownloadCounter", "MAX_PENDING_KEYS"]

#: Distinct (id, version) pairs kept before counts are dropped until the next flush (bounds memory).
MAX_PENDING_KEYS = 100_000


class DownloadCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Counter[tuple[str, str]] = Counter()

    def add(self, id_lower: str, version_lower: str) -> None:
        key = (id_lower, version_lower)
        with self._lock:
            if key in self._pending or len(self._pending) < MAX_PENDING_KEYS:
                self._pending[key] += 1

    def take(self) -> dict[tuple[str, str], int]:
        """The counts since the last call, and reset."""
        with self._lock:
            out = dict(self._pending)
            self._pending.clear()
        return out

    def give_back(self, counts: dict[tuple[str, str], int]) -> None:
        """Return counts whose flush failed, to be tried again."""
        with self._lock:
            for key, n in counts.items():
                if key in self._pending or len(self._pending) < MAX_PENDING_KEYS:
                    self._pending[key] += n
