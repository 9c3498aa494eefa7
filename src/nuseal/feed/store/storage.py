"""Storage for packages and the static V3 documents, laid out exactly as they are served.

Keys are URL paths below the feed root (``v3/flatcontainer/newtonsoft.json/12.0.3/newtonsoft.json.12.0.3.nupkg``),
so the folder can be copied to object storage or a CDN unchanged and served by any static file server
(``bench/feed.py`` serves it with nginx). Every write lands under a temporary name in the same folder and
is renamed into place, so a reader sees the old bytes or the new bytes, never a torn file.

Everything outside this module reaches stored bytes through :class:`Storage` (``read_bytes``, ``open`` for a
handle whose bytes and :class:`StoredInfo` describe the same version, ``stat``, ``exists``, ``delete``,
``list_keys``): no caller sees a file path, so a backend for object storage fits behind the same protocol.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat as stat_module
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple, Protocol

from nuseal.errors import UsageError
from nuseal.feed.config import FeedConfig

__all__ = [
    "CHUNK_SIZE",
    "LocalStorage",
    "Storage",
    "StoredInfo",
    "StoredObject",
    "link_or_copy",
    "open_storage",
    "safe_key",
]

#: Longest storage key (bytes of its UTF-8 form).
MAX_KEY_LENGTH = 1024
#: Keys whose file path :class:`LocalStorage` remembers (then it starts over).
MAX_REMEMBERED_FILES = 65536
#: Default size of the chunks :meth:`StoredObject.chunks` yields (bytes).
CHUNK_SIZE = 256 * 1024


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


class StoredInfo(NamedTuple):
    """What a reader needs to know about one stored version of a key: ``size`` in bytes, ``modified`` (POSIX
    seconds, for ``Last-Modified``), ``etag`` (a strong validator, without quotes, that changes whenever the bytes
    do) and ``version`` (an opaque token, equal for the same stored version, for caches). A named tuple: the read
    side makes one per request."""

    size: int
    modified: float
    etag: str
    version: Hashable


class StoredObject(Protocol):
    """An open stored value: :attr:`info` describes exactly the bytes :meth:`read` returns, even when a writer
    replaces the key meanwhile. Close it (or use it as a context manager)."""

    @property
    def info(self) -> StoredInfo: ...

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); ``b""`` at the end."""

    def chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The rest of the bytes in chunks of at most ``chunk_size``."""

    def close(self) -> None: ...

    def __enter__(self) -> StoredObject: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Storage(Protocol):
    """Where packages and documents live. Implementations must make :meth:`put_bytes` and :meth:`put_file` atomic
    per key: a reader sees the old bytes or the new ones. Keys are checked with :func:`safe_key` (``UsageError``).
    Failures of the backend are raised as ``OSError``. Backends: :class:`LocalStorage` (the default, in the data
    folder) and :class:`nuseal.feed.store.s3.S3Storage`; :func:`open_storage` picks one from the configuration."""

    @property
    def inline_reads(self) -> bool:
        """True when :meth:`stat` and :meth:`open` are quick local calls, fine on an event loop (the static layer
        otherwise runs them in a worker thread)."""

    def put_bytes(self, key: str, data: bytes, *, durable: bool = False) -> None:
        """Write ``data`` at ``key``; ``durable`` asks for it to reach stable storage before returning."""

    def put_file(self, key: str, source: Path) -> None:
        """Store the bytes of the local file ``source`` at ``key`` (durably); ``source`` stays, unchanged."""

    def read_bytes(self, key: str) -> bytes | None:
        """The bytes at ``key``, or ``None`` when there are none."""

    def open(self, key: str) -> StoredObject | None:
        """The value at ``key`` opened for reading (streamed, not loaded), or ``None`` when there is none."""

    def stat(self, key: str) -> StoredInfo | None:
        """Size, modification time and validators of ``key``, or ``None`` when there is none."""

    def version(self, key: str) -> Hashable | None:
        """``stat(key).version`` alone, as cheaply as the backend allows (a cache's per-request check), or
        ``None`` when there is none."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a value."""

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it does not exist."""

    def list_keys(self, prefix: str) -> list[str]:
        """Keys below the folder ``prefix`` (a key prefix ending in ``/``), sorted."""

    def list_temporaries(self, prefix: str) -> list[str]:
        """Keys of values that interrupted writes left below the folder ``prefix`` (never served), sorted; a backend
        whose writes are atomic by themselves has none. Only the caller knows when no writer is still using them
        (:meth:`nuseal.feed.publish.publisher.FeedService.recover`), and removes them with :meth:`delete`."""


class _LocalObject:
    """:class:`StoredObject` of :class:`LocalStorage`: an open file and the ``fstat`` of that same inode."""

    __slots__ = ("_file", "info")

    def __init__(self, file: BinaryIO, info: StoredInfo) -> None:
        self._file = file
        self.info = info

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        while chunk := self._file.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _LocalObject:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _local_info(st: os.stat_result) -> StoredInfo:
    """ETag from modification time and size, as nginx derives it; version adds the inode (a rename into place)."""
    return StoredInfo(
        st.st_size, st.st_mtime, f"{st.st_mtime_ns:x}-{st.st_size:x}", (st.st_ino, st.st_mtime_ns, st.st_size)
    )


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` at ``target`` (same file system: no copy), else copy it in 1 MiB chunks, fsynced."""
    try:
        os.link(source, target)
    except OSError:
        with open(source, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())


class LocalStorage:
    """:class:`Storage` in a local folder, laid out as the keys (the only code that knows the files' paths)."""

    inline_reads = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self._files: dict[str, str] = {}  # key -> file, for keys already checked (the read side's hot path)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*safe_key(key).split("/"))

    def _file(self, key: str) -> str:
        """:meth:`_path` as a string, remembered per key: the read side calls it for every request."""
        found = self._files.get(key)
        if found is None:
            found = os.path.join(self._root, *safe_key(key).split("/"))
            if len(self._files) >= MAX_REMEMBERED_FILES:
                self._files.clear()
            self._files[key] = found
        return found

    def _replace(self, key: str, write: Callable[[Path], None]) -> None:
        """Store ``key`` all at once: ``write`` makes a temporary file beside its file, which then replaces it (a
        reader sees the old object or the new one, never part of one); the temporary file is removed on failure."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            write(tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def put_bytes(self, key: str, data: bytes, *, durable: bool = False) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())

        self._replace(key, write)

    def put_file(self, key: str, source: Path) -> None:
        self._replace(key, lambda tmp: link_or_copy(source, tmp))

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

    def stat(self, key: str) -> StoredInfo | None:
        try:
            st = os.stat(self._file(key))
        except OSError:
            return None
        return _local_info(st) if stat_module.S_ISREG(st.st_mode) else None

    def version(self, key: str) -> Hashable | None:
        try:
            st = os.stat(self._file(key))
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size) if stat_module.S_ISREG(st.st_mode) else None

    def open(self, key: str) -> StoredObject | None:
        try:
            f = open(self._file(key), "rb")  # noqa: SIM115 - closed by the returned object
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            st = os.fstat(f.fileno())
        except BaseException:
            f.close()
            raise
        if not stat_module.S_ISREG(st.st_mode):
            f.close()
            return None
        return _LocalObject(f, _local_info(st))

    def list_keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
        )

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
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None


def open_storage(config: FeedConfig) -> Storage:
    """The feed's storage: ``config.storage_url`` (``s3://...``, :mod:`nuseal.feed.store.s3`), else the ``storage``
    folder of the data folder.

    Raises:
        ConfigError: a malformed storage URL, or boto3 missing for S3.
    """
    if config.storage_url:
        from nuseal.feed.store.s3 import S3Storage  # noqa: PLC0415 - boto3 only for this backend

        return S3Storage.from_url(config.storage_url)
    return LocalStorage(config.storage_dir)
