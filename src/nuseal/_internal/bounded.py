"""A response body read with a size cap and a deadline: the revocation fetcher (OCSP, CRL), the timestamp client
and ``nuseal scan``'s downloads read their HTTP answers through :func:`read_bounded`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

__all__ = ["read_bounded"]


def read_bounded(
    chunks: Iterable[bytes],
    limit: int,
    *,
    too_large: Callable[[], Exception],
    deadline: float | None = None,
    too_late: Callable[[], Exception] | None = None,
) -> bytes:
    """``chunks`` joined, checked after each chunk: more than ``limit`` bytes raises ``too_large()``; past
    ``deadline`` (``time.monotonic()`` seconds; none when ``None``) raises ``too_late()``.

    Raises:
        Exception: the one ``too_large`` or ``too_late`` makes (the caller's error type and message).
    """
    out: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large()
        if deadline is not None and too_late is not None and time.monotonic() > deadline:
            raise too_late()
        out.append(chunk)
    return b"".join(out)
