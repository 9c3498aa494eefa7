"""The frozen clock for tests that judge certificate validity on the real nuget.org vectors.

The vectors (``../shared/vectors/nuget.org``) carry certificates that expire: their signing certificates ended
between 2021 and 2024 and their timestamping (TSA) certificates end between 2028-04-01 (system.buffers 4.4.0)
and 2034. NuGet judges a timestamped signature's certificate at the timestamp's time, but the timestamp's own
TSA certificate and the roots at the verification time, so a test that passes ``datetime.now()`` would start
failing on a date. Tests pass ``VECTOR_NOW`` (or the ``vector_now`` fixture) instead.

``VECTOR_NOW`` lies after the latest timestamp of any vector (inthehand.bluetoothle 4.0.35, 2023-11-28) and
inside every TSA certificate's validity; ``tests/test_support_toolkit.py`` checks that against the vectors
themselves, so adding a vector outside that window fails there, not on some later day.

Commands run by a test (``nuseal verify``, ``restore``, ``audit``, ``revocation prefetch``; in-process or in a
subprocess) are given the same instant through ``NUSEAL_TEST_NOW`` (``TEST_NOW_ENV``; the ``vector_clock``
fixture sets it), which only ``nuseal.cli._clock`` reads, at the command's edge. A ``nuseal serve`` started with
``VECTOR_ENV`` gives its feed a clock that starts at ``VECTOR_NOW`` and advances with real time (the feed's clock
also orders sessions, key expiry, cooldowns and TTLs, so it is not frozen): the feed tests that push or mirror the
vectors start their servers so; in-process and threaded feeds are given a clock directly. Tests of 2FA codes keep
the wall clock (authenticator codes are computed from it).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["TEST_NOW_ENV", "VECTOR_ENV", "VECTOR_NOW", "Clock"]

VECTOR_NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
"""The instant every real-vector verification in the tests is judged at (timezone-aware, UTC)."""

TEST_NOW_ENV = "NUSEAL_TEST_NOW"
"""Environment variable a CLI run reads as its clock (ISO 8601 with an offset), for tests only."""

VECTOR_ENV = {TEST_NOW_ENV: VECTOR_NOW.isoformat()}
"""Environment for a ``nuseal`` subprocess judging the vectors: ``verify``/``restore``/``audit`` judge at
``VECTOR_NOW``; ``serve``'s feed clock starts there and advances (``nuseal.cli._clock.feed_clock``)."""


class Clock:
    """A clock the test moves: ``clock()`` is ``clock.now`` (a feed built with ``clock=`` judges at it)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
