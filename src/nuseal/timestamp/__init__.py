"""RFC 3161 timestamps: token parsing and NuGet's token checks (NUGET-SIGNING.md §3.6).

:class:`Timestamp` (:mod:`nuseal.timestamp.token`) parses a TimeStampToken and runs NuGet's checks on it.
:func:`timestamps_of` / :func:`timestamp_errors_of` read the tokens a parsed signature carries
(:attr:`nuseal.signature.Signature.timestamp_tokens`), each token parsed once. The RFC 3161 HTTP client is
:mod:`nuseal.timestamp.client`, imported only by those who request timestamps (``import nuseal.timestamp`` loads
no HTTP client).
"""

from __future__ import annotations

import threading
import weakref

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import TimestampError
from nuseal.signature.model import MAX_TIMESTAMPS, Signature
from nuseal.timestamp.token import BASELINE_POLICY_ACCURACY, MIN_RSA_KEY_BITS, Timestamp

__all__ = ["BASELINE_POLICY_ACCURACY", "MIN_RSA_KEY_BITS", "Timestamp", "timestamp_errors_of", "timestamps_of"]

_READ: weakref.WeakKeyDictionary[Signature, tuple[tuple[Timestamp, ...], tuple[Issue, ...]]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def _read(signature: Signature) -> tuple[tuple[Timestamp, ...], tuple[Issue, ...]]:
    """Every token of ``signature`` parsed, in order, and the issues of those that could not be (NU3003
    undecodable, NU3021 not TSTInfo), then NU3000 when the signer has more than :data:`MAX_TIMESTAMPS` tokens;
    remembered per signature object (NC ``Signature.GetTimestamps``)."""
    with _LOCK:
        found = _READ.get(signature)
    if found is not None:
        return found
    stamps: list[Timestamp] = []
    errors: list[Issue] = []
    for value in signature.timestamp_tokens:
        try:
            stamps.append(Timestamp.parse(value))
        except TimestampError as exc:
            errors.append(Issue(exc.code or NuCode.NU3000, Level.ERROR, exc.message))
    if signature.too_many_timestamps:
        errors.append(
            Issue(NuCode.NU3000, Level.ERROR, f"More than {MAX_TIMESTAMPS} timestamps; the rest were not read.")
        )
    found = (tuple(stamps), tuple(errors))
    with _LOCK:
        _READ[signature] = found
    return found


def timestamps_of(signature: Signature) -> tuple[Timestamp, ...]:
    """The timestamps of ``signature`` that parsed, in order (several values and several attributes; NuGet uses
    the first). Never raises: tokens that do not parse are in :func:`timestamp_errors_of`."""
    return _read(signature)[0]


def timestamp_errors_of(signature: Signature) -> tuple[Issue, ...]:
    """Why tokens of ``signature`` could not be read. NuGet throws on the first such token, so ``nuseal.verify``
    treats any as fatal like a load error."""
    return _read(signature)[1]
