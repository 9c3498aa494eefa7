"""Run pyhanko-certvalidator's coroutines from synchronous code.

nuseal's trust API is synchronous (the fetch happens before validation, so the coroutines never wait on
I/O). When the calling thread already runs an event loop (a Starlette handler that did not offload to a
thread), the coroutine is run on a short-lived worker thread with its own loop instead.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result (exceptions propagate)."""
    import asyncio  # noqa: PLC0415 - ~17 ms; loaded with pyhanko, only when there is revocation data to judge

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures  # noqa: PLC0415 - only inside a running event loop

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
