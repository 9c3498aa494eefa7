"""Feed errors: each one maps to one HTTP status and carries a message NuGet clients can show.

Every stage of the push pipeline and every request handler raises these; the HTTP layer turns them into a
response whose body (``text/plain``) and ``X-NuGet-Warning`` header carry the message. NuGet clients print
``X-NuGet-Warning`` values (NuGet.Client ``ProtocolConstants.ServerWarningHeader``), which is how a push
failure explains itself in ``nuget push`` output. The same message, made safe by :func:`reason_phrase`, is the
response's HTTP reason phrase, as nuget.org sends it, so the client's error line says why too
(``Response status code does not indicate success: 409 (...)``; docs/adr/0006-reason-phrase.md).
"""

from __future__ import annotations

from nuseal.codes import NuCode
from nuseal.errors import NusealError

__all__ = [
    "AuthenticationError",
    "BadPackageError",
    "BadRequestError",
    "DuplicatePackageError",
    "FeedError",
    "ForbiddenError",
    "NotFoundError",
    "PackageTooLargeError",
    "REASON_PHRASE_HEADER",
    "reason_phrase",
]

#: Private response header through which the application hands a reason phrase to the HTTP layer
#: (:mod:`nuseal.feed.http.protocol`), which removes it and puts its value in the status line of a 4xx/5xx answer.
REASON_PHRASE_HEADER = "x-nuseal-reason-phrase"
#: Longest reason phrase (characters, ASCII), the ``...`` included.
MAX_REASON_PHRASE = 300


def reason_phrase(message: str, *, limit: int = MAX_REASON_PHRASE) -> str:
    """``message`` as an HTTP reason phrase: one line of printable ASCII, at most ``limit`` characters.

    Runs of whitespace (CR, LF and tabs included) become one space; other control characters and non-ASCII
    characters are written as Python escapes (``\\x07``, ``\\u0435``), so a look-alike letter stays visible
    and nothing can end the status line or start a header. A longer text is cut and ends with ``...``. RFC 9112
    section 4 allows HTAB, SP, VCHAR and obs-text in a reason phrase; this keeps to SP and VCHAR.
    """
    text = " ".join(message.split())
    out = []
    for ch in text:
        code = ord(ch)
        if 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    if sum(map(len, out)) <= limit:
        return "".join(out)
    kept, size = [], 0
    for piece in out:  # cut between characters, never inside an escape
        if size + len(piece) > limit - 3:
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept).rstrip() + "..."


class FeedError(NusealError):
    """A request the feed refuses. ``status`` is the HTTP status code sent back."""

    status: int = 500

    def __init__(self, message: str, *, code: NuCode | None = None, status: int | None = None) -> None:
        super().__init__(message, code=code)
        if status is not None:
            self.status = status


class BadRequestError(FeedError):
    """The request itself is malformed (no package part, bad query parameter)."""

    status = 400


class BadPackageError(FeedError):
    """The uploaded bytes are not an acceptable package (not a zip, no nuspec, bad id or version...)."""

    status = 400


class AuthenticationError(FeedError):
    """No API key, or one that is unknown, revoked or expired.

    401 when the key is missing; 403 otherwise, as nuget.org answers a bad key (a 401 makes NuGet clients
    try credential providers instead of reporting the problem).
    """

    status = 403


class ForbiddenError(FeedError):
    """A valid key that may not do this: out of scope, outside its globs, or not an owner of the id."""

    status = 403


class NotFoundError(FeedError):
    status = 404


class DuplicatePackageError(FeedError):
    """The id and version already exist (listed or not): NuGet versions are immutable."""

    status = 409


class PackageTooLargeError(FeedError):
    """The upload exceeds the feed's size cap."""

    status = 413
