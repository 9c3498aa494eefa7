"""Feed errors: each one maps to one HTTP status and carries a message NuGet clients can show.

Every stage of the push pipeline and every request handler raises these; the HTTP layer turns them into a
response whose body (``text/plain``) and ``X-NuGet-Warning`` header carry the message. NuGet clients print
``X-NuGet-Warning`` values (NuGet.Client ``ProtocolConstants.ServerWarningHeader``), which is how a push
failure explains itself in ``nuget push`` output.
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
]


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
