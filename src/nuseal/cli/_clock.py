"""The commands' clock: the moment ``verify``, ``restore``, ``audit`` and ``revocation prefetch`` judge
certificates at, and the clock ``serve`` gives the feed.

It is the wall clock, except when the environment variable ``NUSEAL_TEST_NOW`` holds an ISO 8601 time with a
UTC offset (``2026-06-01T12:00:00+00:00``). The variable exists for nuseal's own tests, whose real nuget.org
packages carry certificates that expire (``tests/support/clock.py``); it is read here, at the command's edge, and
nowhere in the library, which always takes ``now`` (or the feed its ``clock``) from its caller. What it means:

* :func:`command_now` (one-shot commands): that moment, frozen.
* :func:`feed_clock` (``serve``, the parent process and each worker): a clock that reads that moment when
  :func:`feed_clock` is called (the process's start) and then advances with real (monotonic) time, because the
  feed's clock also orders events: sessions, key expiry, 2FA codes, cooldowns, metadata TTLs. Each process starts
  its own, so two processes' clocks differ by the seconds between their starts.

Do not set it in production: a clock set in the past accepts certificates that have expired since.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from nuseal.errors import UsageError

TEST_NOW_ENV = "NUSEAL_TEST_NOW"


def command_now() -> datetime:
    """The wall clock (UTC), or the time in ``NUSEAL_TEST_NOW`` when set.

    Raises:
        UsageError: ``NUSEAL_TEST_NOW`` is set but is not an ISO 8601 time with a UTC offset.
    """
    moment = _test_now()
    return datetime.now(UTC) if moment is None else moment


def feed_clock() -> Callable[[], datetime]:
    """The feed's clock for ``serve``: the wall clock (UTC), or, when ``NUSEAL_TEST_NOW`` is set, a clock that
    reads that time now and advances with :func:`time.monotonic` from here on (module docstring).

    Raises:
        UsageError: ``NUSEAL_TEST_NOW`` is set but is not an ISO 8601 time with a UTC offset.
    """
    start = _test_now()
    if start is None:
        return lambda: datetime.now(UTC)
    started = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - started)


def _test_now() -> datetime | None:
    text = os.environ.get(TEST_NOW_ENV)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise UsageError(f"{TEST_NOW_ENV}={text!r} is not an ISO 8601 time") from e
    if moment.tzinfo is None:
        raise UsageError(f"{TEST_NOW_ENV}={text!r} has no UTC offset (e.g. 2026-06-01T12:00:00+00:00)")
    return moment
