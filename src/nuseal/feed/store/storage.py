"""Storage for packages and the static V3 documents, laid out exactly as they are served.

Keys are URL paths below the feed root (``v3/flatcontainer/newtonsoft.json/12.0.3/newtonsoft.json.12.0.3.nupkg``),
so the folder can be copied to object storage or a CDN unchanged and served by any static file server
(``bench/feed.py`` serves it with nginx). Every write lands under a temporary name in the same folder and
is renamed into place, so a reader sees the old bytes or the new bytes, never a torn file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Protocol

from nuseal.errors import UsageError

__all__ = ["LocalStorage", "Storage", "safe_key"]

#: Longest storage key (bytes of its UTF-8 form).
MAX_KEY_LENGTH = 1024


def safe_key(key: str) -> str:
    """Check a storage key: relative, ``/``-separated, no empty, ``.`` or ``..`` segments, no backslash or NUL.

    Raises:
        UsageError: the key would escape the storage root or is malformed.
    """
    if not key or len(key.encode("utf-8")) > MAX_KEY_LENGTH or "\\" in key or "\x00" in key:
        raise UsageError(f"invalid storage key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"invalid storage key {key!r}")
    return key


class Storage(Protocol):
    """Where packages and documents live. Implementations must make :meth:`put_*` atomic per key."""

    def put_bytes(self, key: str, data: bytes, *, durable: bool = False) -> None:
        """Write ``data`` at ``key``; ``durable`` asks for it to reach the disk before returning."""

    def list_keys(self, prefix: str) -> list[str]:
        """Keys below the folder ``prefix`` (a key prefix ending in ``/``), sorted."""

    def put_file(self, key: str, source: Path) -> None:
        """Copy (or hard-link) ``source`` to ``key``; ``source`` stays, unchanged."""

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it does not exist."""

    def exists(self, key: str) -> bool: ...

    def path_of(self, key: str) -> Path | None:
        """A local file path for ``key`` when the storage is local, else ``None``."""

    def read_bytes(self, key: str) -> bytes | None:
        """The bytes at ``key``, or ``None`` when there are none."""

    def list_temporaries(self, prefix: str) -> list[str]:
        """Keys of files that interrupted writes left below the folder ``prefix`` (never served), sorted. Only
        the caller knows when no writer is still using them
        (:meth:`nuseal.feed.publish.publisher.FeedService.recover`)."""


class LocalStorage:
    """:class:`Storage` in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*safe_key(key).split("/"))

    def _temp_beside(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")

    def put_bytes(self, key: str, data: bytes, *, durable: bool = False) -> None:
        target = self._path(key)
        tmp = self._temp_beside(target)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def put_file(self, key: str, source: Path) -> None:
        target = self._path(key)
        tmp = self._temp_beside(target)
        try:
            try:
                os.link(source, tmp)  # same filesystem: no copy
            except OSError:
                with open(source, "rb") as src, open(tmp, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                    dst.flush()
                    os.fsync(dst.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        # prune now-empty folders up to the root, best effort (another writer may be filling them)
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
        )

    def path_of(self, key: str) -> Path | None:
        return self._path(key)

    def list_temporaries(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in folder.rglob(".*.tmp")
            if p.is_file() and p.name.startswith(".")
        )

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
