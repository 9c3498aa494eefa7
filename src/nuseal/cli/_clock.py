"""The commands' clock: the moment ``verify``, ``restore``, ``audit`` and ``revocation prefetch`` judge
certificates at.

It is the wall clock, except when the environment variable ``NUSEAL_TEST_NOW`` holds an ISO 8601 time with a
UTC offset (``2026-06-01T12:00:00+00:00``): then that moment. The variable exists for nuseal's own tests, whose
real nuget.org packages carry certificates that expire (``tests/support/clock.py``); it is read here, at the
command's edge, and nowhere in the library, which always takes ``now`` from its caller. Do not set it in
production: a fixed clock accepts certificates that have expired since.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from nuseal.errors import UsageError

TEST_NOW_ENV = "NUSEAL_TEST_NOW"


def command_now() -> datetime:
    """The wall clock (UTC), or the time in ``NUSEAL_TEST_NOW`` when set.

    Raises:
        UsageError: ``NUSEAL_TEST_NOW`` is set but is not an ISO 8601 time with a UTC offset.
    """
    text = os.environ.get(TEST_NOW_ENV)
    if not text:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise UsageError(f"{TEST_NOW_ENV}={text!r} is not an ISO 8601 time") from e
    if moment.tzinfo is None:
        raise UsageError(f"{TEST_NOW_ENV}={text!r} has no UTC offset (e.g. 2026-06-01T12:00:00+00:00)")
    return moment
