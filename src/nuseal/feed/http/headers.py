"""Security headers for every response of the feed, set in one place (issue 11, item 1: origin isolation).

The feed serves bytes its users wrote (``.nupkg`` and ``.nuspec`` files, and metadata inside documents) from the
same origin as its account pages. A nuspec is XML, and an XHTML ``<script>`` in XML runs when a browser renders
the file; on the feed's origin it would act with the signed-in user's session. So every response is put in one of
three classes by :func:`response_class` and gets that class's headers from :class:`SecureHeaders`, the outermost
ASGI layer, which replaces any header of the same name a handler set (no route can forget them or weaken them):

* :data:`PAGE` (a ``text/html`` response, the feed's own templates): a strict CSP without inline script or style
  (:data:`PAGE_CSP`), ``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin`` (not ``no-referrer``: with
  it, browsers send ``Origin: null`` on the pages' own form posts), ``Cross-Origin-Opener-Policy:
  same-origin``, ``X-Content-Type-Options: nosniff``;
* :data:`DOWNLOAD` (a file the static layer serves that is not a JSON document: the flat container's
  ``.nupkg`` and ``.nuspec``, the repository-signing ``.crt``): ``Content-Disposition: attachment`` with the
  file's name (reduced to ``[A-Za-z0-9._-]``), the sandboxing :data:`DOCUMENT_CSP` (``sandbox`` makes the
  document an opaque origin with scripts off, should it be rendered anyway) and ``nosniff``;
* :data:`DOCUMENT` (everything else: JSON documents and API answers, the V2 XML, plain text, redirects, errors):
  :data:`DOCUMENT_CSP`, ``nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin``.

Content types are left as they are: NuGet clients read the bytes of a package or nuspec whatever its type
(NuGet.Protocol ``HttpSource``/``FindPackageByIdResource`` never check it) and ignore ``Content-Disposition``
and CSP. Sources of the header rules: CSP Level 3 (``sandbox``, ``frame-ancestors``, ``base-uri``,
``form-action``), RFC 6266 (``Content-Disposition``), the Fetch standard (``X-Content-Type-Options``,
``Referrer-Policy`` and the ``Origin`` header it governs), RFC 7034 (``X-Frame-Options``).
"""

from __future__ import annotations

import functools
import re
from typing import Final, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DOCUMENT",
    "DOCUMENT_CSP",
    "DOWNLOAD",
    "PAGE",
    "PAGE_CSP",
    "POLICIES",
    "ResponseClass",
    "SecureHeaders",
    "download_filename",
    "policy_headers",
    "response_class",
]

ResponseClass = Literal["page", "download", "document"]
PAGE: Final[ResponseClass] = "page"
DOWNLOAD: Final[ResponseClass] = "download"
DOCUMENT: Final[ResponseClass] = "document"

#: The feed's HTML pages: their stylesheet is a file of the feed (``/static/feed.css``), no script at all; forms
#: post to the feed only; nobody frames them; no ``<base>`` may redirect their relative links.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: Everything that is not a page: nothing may load, and ``sandbox`` turns off scripts, forms, plugins and
#: same-origin access should a browser render the bytes anyway.
DOCUMENT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
#: Distinct (layer, path, status, content type) whose added headers are kept (:func:`_added`).
MAX_CACHED_POLICIES = 8192
#: Longest file name put in ``Content-Disposition``.
MAX_FILENAME = 200
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")

_COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
POLICIES: Final[dict[ResponseClass, tuple[tuple[bytes, bytes], ...]]] = {
    PAGE: (
        *_COMMON,
        (b"content-security-policy", PAGE_CSP.encode()),
        (b"cross-origin-opener-policy", b"same-origin"),
    ),
    DOWNLOAD: (*_COMMON, (b"content-security-policy", DOCUMENT_CSP.encode())),
    DOCUMENT: (*_COMMON, (b"content-security-policy", DOCUMENT_CSP.encode())),
}
#: Headers the policies own: a handler's own value of any of them is dropped.
_OWNED = frozenset({name for headers in POLICIES.values() for name, _ in headers} | {b"content-disposition"})


def download_filename(path: str) -> str:
    """The ``filename`` of a download: the last segment of the request path, every character outside
    ``[A-Za-z0-9._-]`` replaced by ``_``, at most :data:`MAX_FILENAME` characters; ``download`` when empty."""
    name = _UNSAFE_FILENAME.sub("_", path.rsplit("/", 1)[-1])[:MAX_FILENAME].strip(".")
    return name or "download"


def response_class(*, static: bool, path: str, status: int, content_type: bytes) -> ResponseClass:
    """The class of a response (see the module docs).

    Args:
        static: answered by the static layer (:class:`nuseal.feed.protocol.static.StaticDocuments`), which serves the
            stored files, users' packages among them;
        path: the request path;
        status: the response status;
        content_type: the response's ``Content-Type`` value (empty when none).
    """
    if static and status < 400 and not path.lower().endswith(".json"):
        return DOWNLOAD
    media = content_type.split(b";", 1)[0].strip().lower()
    if media in (b"text/html", b"application/xhtml+xml") and not static:
        return PAGE
    return DOCUMENT


def policy_headers(kind: ResponseClass, path: str) -> list[tuple[bytes, bytes]]:
    """The headers :class:`SecureHeaders` adds to a response of class ``kind`` for the request ``path``."""
    headers = list(POLICIES[kind])
    if kind == DOWNLOAD:
        headers.append((b"content-disposition", f'attachment; filename="{download_filename(path)}"'.encode()))
    return headers


@functools.lru_cache(maxsize=MAX_CACHED_POLICIES)
def _added(static: bool, path: str, status: int, content_type: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """:func:`policy_headers` of the response's class, memoized: the static layer answers the same few thousand
    paths over and over (a restore's downloads), and this runs for every response."""
    kind = response_class(static=static, path=path, status=status, content_type=content_type)
    return tuple(policy_headers(kind, path))


class SecureHeaders:
    """ASGI wrapper that adds the policy headers of the response's class to every HTTP response of ``app``,
    dropping any value of those headers the handler set.

    ``static`` tells whether ``app`` is the static layer (its non-JSON files are downloads)."""

    def __init__(self, app: ASGIApp, *, static: bool) -> None:
        self.app = app
        self.static = static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        static = self.static

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                content_type = b""
                owned = False
                for name, value in headers:
                    lower = name.lower()
                    if lower == b"content-type":
                        content_type = value
                    elif lower in _OWNED:
                        owned = True
                if owned:
                    headers = [h for h in headers if h[0].lower() not in _OWNED]
                # a new list: the static layer's cached header lists are shared between responses
                message = {**message, "headers": [*headers, *_added(static, path, message["status"], content_type)]}
            await send(message)

        await self.app(scope, receive, secured)
