"""Serving the storage folder: the V3 read side as static files, straight from ASGI.

This path runs for every restore request, so it bypasses routing: a GET or HEAD below ``/v3/`` (other than
search and autocomplete) becomes a ``stat``, an ``If-None-Match`` check and one read. Responses carry a
strong ``ETag`` (modification time and size, as nginx derives it), ``Last-Modified``, the
content type of the document kind, and ``Cache-Control``: immutable for ``.nupkg``/``.nuspec`` (a version's
bytes never change), ``no-cache`` (revalidate with the ETag) for indexes and registrations, which change
with every push. Small files are kept in a per-process cache keyed by inode, modification time and size and
checked with one ``stat`` per request, so a worker never serves a replaced document.

The security headers are not set here: the router wraps this layer in :class:`nuseal.feed.http.headers.SecureHeaders`,
which serves every file other than a JSON document (a user's ``.nupkg`` or ``.nuspec``) as a sandboxed attachment.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import anyio
from starlette.types import Receive, Scope, Send

from nuseal.feed.protocol.documents import JSON_CONTENT_TYPE

__all__ = ["CACHE_IMMUTABLE", "CACHE_REVALIDATE", "StaticDocuments"]

CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "public, no-cache"
CACHE_SERVICE_INDEX = "public, max-age=300"
#: Files up to this size are read in one call on the event loop; larger ones stream from a worker thread.
INLINE_READ_LIMIT = 256 * 1024
CHUNK_SIZE = 256 * 1024
#: Per-process cache of small responses (validated by ``stat`` on every request, so never stale).
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
    """A file's response, valid while the file keeps its inode, modification time and size."""

    key: tuple[int, int, int]  # (inode, mtime_ns, size)
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
    """ASGI callable serving ``root/<path>`` for ``/v3/...`` requests.

    ``on_download(id_lower, version_lower)`` is called for each successful ``.nupkg`` GET.
    """

    def __init__(self, root: Path, on_download: Callable[[str, str], None] | None = None) -> None:
        self.root = str(Path(root).resolve())
        self.on_download = on_download
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._cache_bytes = 0

    def resolve(self, path: str) -> str | None:
        """The file for a request path, or None when the path is not a safe storage key."""
        if len(path) > MAX_PATH_LENGTH or "\\" in path or "\x00" in path:
            return None
        rel = path.lstrip("/").lower()  # every stored key is lower-case; NuGet lower-cases its requests too
        parts = rel.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return None
        return os.path.join(self.root, *parts)

    def _headers(self, path: str, full: str, st: os.stat_result) -> list[tuple[bytes, bytes]]:
        ext = os.path.splitext(full)[1]
        if ext in (".nupkg", ".nuspec"):
            cache = CACHE_IMMUTABLE
        elif path == "/v3/index.json":
            cache = CACHE_SERVICE_INDEX
        else:
            cache = CACHE_REVALIDATE
        return [
            (b"content-type", _TYPES.get(ext, b"application/octet-stream")),
            (b"etag", f'"{st.st_mtime_ns:x}-{st.st_size:x}"'.encode()),
            (b"last-modified", formatdate(st.st_mtime, usegmt=True).encode()),
            (b"cache-control", cache.encode()),
            (b"access-control-allow-origin", b"*"),
            (b"content-length", str(st.st_size).encode()),
        ]

    def _remember(self, full: str, entry: _Entry) -> None:
        old = self._cache.pop(full, None)
        if old is not None:
            self._cache_bytes -= len(old.body or b"")
        self._cache[full] = entry
        self._cache_bytes += len(entry.body or b"")
        while self._cache_bytes > MAX_CACHE_BYTES or len(self._cache) > MAX_CACHE_ENTRIES:
            _, dropped = self._cache.popitem(last=False)
            self._cache_bytes -= len(dropped.body or b"")

    def _load(self, path: str, full: str) -> _Entry | None:
        """Open, ``fstat`` and (when small) read the file, so headers and body describe the same inode even if a
        writer renames a new version into place meanwhile."""
        try:
            with open(full, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                body = f.read(st.st_size + 1) if st.st_size <= INLINE_READ_LIMIT else None
        except OSError:
            return None
        if body is not None and len(body) != st.st_size:
            return None  # changed while we read; the caller answers 404 and the client retries
        download = None
        if full.endswith(".nupkg"):
            parts = path.lower().strip("/").split("/")
            if len(parts) == 5 and parts[1] == "flatcontainer":
                download = (parts[2], parts[3])
        entry = _Entry((st.st_ino, st.st_mtime_ns, st.st_size), self._headers(path, full, st), body, download)
        if body is not None:
            self._remember(full, entry)
        return entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path: str = scope["path"]
        full = self.resolve(path)
        entry = None
        if full is not None:
            try:
                st = os.stat(full)
            except OSError:
                st = None
            if st is not None:
                entry = self._cache.get(full)
                if entry is None or entry.key != (st.st_ino, st.st_mtime_ns, st.st_size):
                    entry = self._load(path, full)
        if entry is None or full is None:
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
        elif not await self._stream(full, entry, send):
            return
        if entry.download is not None and self.on_download is not None:
            self.on_download(*entry.download)

    async def _stream(self, full: str, entry: _Entry, send: Send) -> bool:
        """Stream a large file from a worker thread. False when it vanished or changed before it was opened."""
        try:
            f = await anyio.to_thread.run_sync(open, full, "rb")
        except OSError:
            f = None
        if f is None or os.fstat(f.fileno()).st_ino != entry.key[0]:
            if f is not None:
                f.close()
            status, headers, body = _not_found("GET")
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
            remaining = entry.key[2]
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
