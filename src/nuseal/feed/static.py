"""Serving the storage folder: the V3 read side as static files, straight from ASGI.

This path runs for every restore request, so it bypasses routing: a GET or HEAD below ``/v3/`` (other than
search and autocomplete) becomes a ``stat``, an ``If-None-Match`` check and one read. Responses carry a
strong ``ETag`` (inode change time and size, as nginx derives it from mtime and size), ``Last-Modified``, the
content type of the document kind, and ``Cache-Control``: immutable for ``.nupkg``/``.nuspec`` (a version's
bytes never change), ``no-cache`` (revalidate with the ETag) for indexes and registrations, which change
with every push.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import anyio
from starlette.types import Receive, Scope, Send

from nuseal.feed.documents import JSON_CONTENT_TYPE

__all__ = ["CACHE_IMMUTABLE", "CACHE_REVALIDATE", "StaticDocuments"]

CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "public, no-cache"
CACHE_SERVICE_INDEX = "public, max-age=300"
#: Files up to this size are read in one call on the event loop; larger ones stream from a worker thread.
INLINE_READ_LIMIT = 256 * 1024
CHUNK_SIZE = 256 * 1024
#: Longest request path considered.
MAX_PATH_LENGTH = 1024

_TYPES = {
    ".json": JSON_CONTENT_TYPE.encode(),
    ".nupkg": b"application/octet-stream",
    ".nuspec": b"application/xml",
}


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

    def resolve(self, path: str) -> str | None:
        """The file for a request path, or None when the path is not a safe storage key."""
        if len(path) > MAX_PATH_LENGTH or "\\" in path or "\x00" in path:
            return None
        rel = path.lstrip("/").lower()  # every stored key is lower-case; NuGet lower-cases its requests too
        parts = rel.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return None
        return os.path.join(self.root, *parts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path: str = scope["path"]
        full = self.resolve(path)
        st = None
        if full is not None:
            try:
                st = os.stat(full)
            except OSError:
                st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            status, headers, body = _not_found(method)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        assert full is not None
        ext = os.path.splitext(full)[1]
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'.encode()
        if ext in (".nupkg", ".nuspec"):
            cache = CACHE_IMMUTABLE
        elif path == "/v3/index.json":
            cache = CACHE_SERVICE_INDEX
        else:
            cache = CACHE_REVALIDATE
        headers = [
            (b"content-type", _TYPES.get(ext, b"application/octet-stream")),
            (b"etag", etag),
            (b"last-modified", formatdate(st.st_mtime, usegmt=True).encode()),
            (b"cache-control", cache.encode()),
            (b"access-control-allow-origin", b"*"),
        ]
        inm = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                inm = value
                break
        if inm is not None and (
            inm.strip() == b"*" or etag in [v.strip().removeprefix(b"W/") for v in inm.split(b",")]
        ):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(st.st_size).encode()))
        if method == "HEAD":
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if st.st_size <= INLINE_READ_LIMIT:
            try:
                with open(full, "rb") as f:
                    body = f.read()
            except OSError:
                status, nf_headers, nf_body = _not_found(method)
                await send({"type": "http.response.start", "status": status, "headers": nf_headers})
                await send({"type": "http.response.body", "body": nf_body})
                return
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body[: st.st_size]})
        else:
            await self._stream(full, st.st_size, headers, send)
        if ext == ".nupkg" and self.on_download is not None:
            parts = path.lower().strip("/").split("/")
            if len(parts) == 5 and parts[1] == "flatcontainer":
                self.on_download(parts[2], parts[3])

    async def _stream(self, full: str, size: int, headers: list[tuple[bytes, bytes]], send: Send) -> None:
        # the file may be replaced by a rename while we read; the open descriptor keeps the old inode
        f = await anyio.to_thread.run_sync(open, full, "rb")
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            remaining = size
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
