"""Test-only fault injection: kill the feed process at a named step of the write path.

``NUSEAL_TEST_CRASH_AT="<point>:<id>/<version>"`` (lower-case id, normalized version) makes the process kill
itself with ``SIGKILL`` when the push of that version reaches ``<point>``, one of :data:`CRASH_POINTS` (or, for
the ``settle.*`` points, when any process finishes that version's push). Naming the version rather than counting
arrivals keeps the crash on the push a test chose, whatever else the process does meanwhile (recovering at
start, other pushes). The variable is read once, when this module is imported; nothing a request carries can set
or change it, and without it :func:`crash_point` compares one value with None and returns.
``tests/feed/test_crash_consistency.py`` uses it to stop a real ``nuseal serve`` at every step of a push and
check what a restart makes of the state left behind.
"""

from __future__ import annotations

import os
import signal
from contextvars import ContextVar

__all__ = ["CRASH_ENV_VAR", "CRASH_POINTS", "PUBLISH_POINTS", "crash_point", "current_push"]

CRASH_ENV_VAR = "NUSEAL_TEST_CRASH_AT"

#: The steps of a push :func:`crash_point` is called at, in the order a push reaches them (``docs/feed.md``,
#: Crash consistency).
PUBLISH_POINTS: tuple[str, ...] = (
    "publish.row",  # package row inserted and flushed, transaction open
    "publish.pending",  # bytes and nuspec in DATA/pending, transaction open
    "publish.committed",  # transaction committed, nothing published yet
    "settle.nupkg",  # .nupkg linked to its served key
    "settle.nuspec",  # .nuspec written to its served key
    "documents.partial",  # the first document of the id rewritten, the others not
    "settle.documents",  # every document rewritten, pending entry still there
    "publish.done",  # pending entry removed, response not sent
)
#: Every step :func:`crash_point` is called at.
CRASH_POINTS: tuple[str, ...] = (
    *PUBLISH_POINTS,
    "listing.committed",  # an unlist or relist committed, its documents not rewritten yet
)


def _parse(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    point, _, key = value.partition(":")
    if point not in CRASH_POINTS or key.count("/") != 1:
        raise ValueError(f"{CRASH_ENV_VAR}={value!r}: expected <point>:<id>/<version>, point one of {CRASH_POINTS}")
    return point, key.lower()


_TARGET = _parse(os.environ.get(CRASH_ENV_VAR))
#: ``<id>/<version>`` of the push the current thread is publishing (set by ``FeedService.publish``).
current_push: ContextVar[str | None] = ContextVar("current_push", default=None)


def crash_point(point: str, key: str | None = None) -> None:
    """Kill this process now if :data:`CRASH_ENV_VAR` names ``point`` and ``key`` (default: the push in progress,
    :data:`current_push`)."""
    if _TARGET is None or _TARGET[0] != point:
        return
    if (key if key is not None else current_push.get()) == _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
