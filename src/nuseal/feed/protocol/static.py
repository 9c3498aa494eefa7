"""Serving the storage: the V3 read side as static files, straight from ASGI.

This path runs for every restore request, so it bypasses routing: a GET or HEAD below ``/v3/`` (other than
search and autocomplete) becomes a :meth:`Storage.version <nuseal.feed.store.storage.Storage.version>`, an
``If-None-Match`` check and one read through :meth:`Storage.open <nuseal.feed.store.storage.Storage.open>` (no
file path is seen here; the local backend's ``version`` is one ``os.stat``). Responses carry the storage's strong
``ETag`` (local: modification time and size, as nginx derives it), ``Last-Modified``, the
content type of the document kind, and ``Cache-Control``: immutable for ``.nupkg``/``.nuspec`` (a version's
bytes never change), ``no-cache`` (revalidate with the ETag) for indexes and registrations, which change
with every push. Small values are kept in a cache of this application instance keyed by the storage's version
token (local: inode, modification time and size) and checked with one ``stat`` per request, so a worker never
serves a replaced document. Large ones are streamed from a worker thread.

The security headers are not set here: the router wraps this layer in :class:`nuseal.feed.http.headers.SecureHeaders`,
which serves every file other than a JSON document (a user's ``.nupkg`` or ``.nuspec``) as a sandboxed attachment.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from email.utils import formatdate

import anyio
from starlette.types import Receive, Scope, Send

from nuseal.errors import UsageError
from nuseal.feed.protocol.documents import JSON_CONTENT_TYPE
from nuseal.feed.store.storage import Storage, StoredInfo, StoredObject

__all__ = ["CACHE_IMMUTABLE", "CACHE_REVALIDATE", "StaticDocuments"]

CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "public, no-cache"
CACHE_SERVICE_INDEX = "public, max-age=300"
#: Files up to this size are read in one call on the event loop; larger ones stream from a worker thread.
INLINE_READ_LIMIT = 256 * 1024
CHUNK_SIZE = 256 * 1024
#: Cache of small responses, one per application (validated by ``stat`` on every request, so never stale).
MAX_CACHE_BYTES = 64 * 1024 * 1024
MAX_CACHE_ENTRIES = 4096
#: Longest request path considered.
MAX_PATH_LENGTH = 1024

_TYPES = {
    ".json": JSON_CONTENT_TYPE.encode(),
    ".nupkg": b"application/octet-stream",
    ".nuspec": b"application/xml",
    ".crt": b"application/pkix-cert",  # repository-signing certificates (RepositorySignatures contentUrl)
}


@dataclass(frozen=True, slots=True)
class _Entry:
    """A stored value's response, valid while the storage reports the same version."""

    version: Hashable  # StoredInfo.version
    size: int
    headers: list[tuple[bytes, bytes]]  # content-length last
    body: bytes | None  # None: too large to keep, streamed
    download: tuple[str, str] | None  # (id, version) when this is a flat-container .nupkg


def _not_found(method: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = b"Not found\n"
    return (
        404,
        [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"),
        ],
        (b"" if method == "HEAD" else body),
    )


class StaticDocuments:
    """ASGI callable serving the value of ``storage`` at the key ``<path>`` for ``/v3/...`` requests.

    ``on_download(id_lower, version_lower)`` is called for each successful ``.nupkg`` GET.
    """

    def __init__(self, storage: Storage, on_download: Callable[[str, str], None] | None = None) -> None:
        self.storage = storage
        self.inline = storage.inline_reads
        self.on_download = on_download
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._cache_bytes = 0

    def resolve(self, path: str) -> str | None:
        """The storage key for a request path, or None when the path is not a safe storage key (temporaries, whose
        names start with a dot, are never served)."""
        if len(path) > MAX_PATH_LENGTH or "\\" in path or "\x00" in path:
            return None
        rel = path.lstrip("/").lower()  # every stored key is lower-case; NuGet lower-cases its requests too
        parts = rel.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return None
        return rel

    def _headers(self, path: str, key: str, info: StoredInfo) -> list[tuple[bytes, bytes]]:
        ext = os.path.splitext(key)[1]
        if ext in (".nupkg", ".nuspec"):
            cache = CACHE_IMMUTABLE
        elif path == "/v3/index.json":
            cache = CACHE_SERVICE_INDEX
        else:
            cache = CACHE_REVALIDATE
        return [
            (b"content-type", _TYPES.get(ext, b"application/octet-stream")),
            (b"etag", f'"{info.etag}"'.encode()),
            (b"last-modified", formatdate(info.modified, usegmt=True).encode()),
            (b"cache-control", cache.encode()),
            (b"access-control-allow-origin", b"*"),
            (b"content-length", str(info.size).encode()),
        ]

    def _remember(self, key: str, entry: _Entry) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cache_bytes -= len(old.body or b"")
        self._cache[key] = entry
        self._cache_bytes += len(entry.body or b"")
        while self._cache_bytes > MAX_CACHE_BYTES or len(self._cache) > MAX_CACHE_ENTRIES:
            _, dropped = self._cache.popitem(last=False)
            self._cache_bytes -= len(dropped.body or b"")

    def _load(self, path: str, key: str) -> _Entry | None:
        """Open the value and (when small) read it, so headers and body describe the same stored version even if
        a writer replaces it meanwhile."""
        try:
            found = self.storage.open(key)
            if found is None:
                return None
            with found as value:
                info = value.info
                body = value.read(info.size + 1) if info.size <= INLINE_READ_LIMIT else None
        except (OSError, UsageError):
            return None
        if body is not None and len(body) != info.size:
            return None  # changed while we read; the caller answers 404 and the client retries
        download = None
        if key.endswith(".nupkg"):
            parts = key.split("/")
            if len(parts) == 5 and parts[1] == "flatcontainer":
                download = (parts[2], parts[3])
        return _Entry(info.version, info.size, self._headers(path, key, info), body, download)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path: str = scope["path"]
        key = self.resolve(path)
        entry = None
        if key is not None:
            try:
                if self.inline:
                    version = self.storage.version(key)
                else:
                    version = await anyio.to_thread.run_sync(self.storage.version, key)
            except (OSError, UsageError):  # UsageError: a key the storage refuses (e.g. over its length limit)
                version = None
            if version is not None:
                entry = self._cache.get(key)
                if entry is None or entry.version != version:
                    entry = (
                        self._load(path, key) if self.inline else await anyio.to_thread.run_sync(self._load, path, key)
                    )
                    if entry is not None and entry.body is not None:
                        self._remember(key, entry)  # on the event loop only
        if entry is None or key is None:
            status, headers, body = _not_found(method)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        etag = entry.headers[1][1]
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if value.strip() == b"*" or etag in [v.strip().removeprefix(b"W/") for v in value.split(b",")]:
                    await send({"type": "http.response.start", "status": 304, "headers": entry.headers[:-1]})
                    await send({"type": "http.response.body", "body": b""})
                    return
                break
        if method == "HEAD":
            await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if entry.body is not None:
            await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
            await send({"type": "http.response.body", "body": entry.body})
        elif not await self._stream(key, entry, send):
            return
        if entry.download is not None and self.on_download is not None:
            self.on_download(*entry.download)

    async def _stream(self, key: str, entry: _Entry, send: Send) -> bool:
        """Stream a large value from a worker thread. False when it vanished or changed before it was opened."""
        try:
            f: StoredObject | None = await anyio.to_thread.run_sync(self.storage.open, key)
        except OSError:
            f = None
        if f is None or f.info.version != entry.version:
            if f is not None:
                f.close()
            status, headers, body = _not_found("GET")
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
            remaining = entry.size
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(f.read, min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
            if remaining > 0:  # truncated underneath us: end the body; the length mismatch tells the client
                await send({"type": "http.response.body", "body": b""})
        finally:
            f.close()
        return True
