"""The scan's view of one package: its identity, its nuspec, its entries and a bounded reader of their bytes.

Analysers never touch files or ZIP framing; they receive a :class:`ScanPackage`:

* ``pkg.ref`` -- the :class:`~nuseal.scan.model.PackageRef` (id and normalized version from the nuspec, or
  ``None`` when it could not be read; ``source`` is the file, folder or URL it came from);
* ``pkg.nuspec`` -- the parsed :class:`~nuseal.package.nuspec.Nuspec`, or ``None``;
* ``pkg.paths`` -- every entry path, forward slashes, as stored (NuGet's packaging files
  ``[Content_Types].xml``, ``_rels/``, ``package/services/`` and ``.signature.p7s`` included);
* ``pkg.size(path)`` -- its uncompressed size in bytes (as declared, before reading);
* ``pkg.read(path, limit=...)`` -- its bytes, at most ``limit`` (default :data:`DEFAULT_READ_LIMIT`);
  raises :class:`EntryReadError` (too large, corrupt, missing): analysers turn that into an NS9xxx finding
  with :meth:`ScanPackage.read_problem` or skip the entry, never crash;
* ``pkg.read_prefix(path, size)`` -- its first ``size`` bytes without inflating or reading the rest (headers of
  large files; not CRC-checked);
* ``pkg.sha256(path)`` -- hex SHA-256 of the entry's bytes (for ``Finding.file_sha256``; cached);
* ``pkg.lower_paths`` -- ``{path.lower(): path}`` for NuGet's case-insensitive look-ups;
* ``pkg.problems`` -- what went wrong building the view (``(rule_id, message, path)``), reported by the
  engine as findings: NS9001 unreadable package, NS9002 ZIP structure problem, NS9003 nuspec problem,
  NS9004 entry too large / unreadable, NS9005 a folder entry that is a link or not a regular file, NS9009 a nuspec
  field over nuget.org's length limits (the nuspec is still used: read with ``enforce_limits=False``).

Build it with :meth:`ScanPackage.from_bytes` (a .nupkg's bytes: nuseal's hardened
:class:`~nuseal.package.archive.PackageArchive`, nothing written anywhere) or :meth:`ScanPackage.from_folder`
(an extracted package as NuGet's global-packages folder holds it: ``<id>/<version>/`` with the nuspec, the
extracted files and NuGet's own ``.nupkg``/``.sha512``/``.nupkg.metadata``, which are not package content).
Neither executes or loads what it reads.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nuseal.errors import PackageFormatError
from nuseal.package.archive import SIGNATURE_ENTRY_NAME, PackageArchive
from nuseal.package.nuspec import MAX_NUSPEC_SIZE, Nuspec, find_nuspec_name
from nuseal.package.version import NuGetVersion
from nuseal.scan.model import Location, PackageRef

if TYPE_CHECKING:
    from nuseal.package._zip import CentralDirectoryRecord

__all__ = [
    "DEFAULT_READ_LIMIT",
    "MAX_FOLDER_ENTRIES",
    "EntryReadError",
    "PackageProblem",
    "ScanPackage",
]

#: Default bound of :meth:`ScanPackage.read` (bytes): text files analysers parse are far smaller.
DEFAULT_READ_LIMIT = 16 << 20
#: Most files read from one extracted folder.
MAX_FOLDER_ENTRIES = 100_000
#: Files NuGet writes next to an extracted package in the global-packages folder (not package content).
_NUGET_FOLDER_FILES = (".nupkg.metadata", ".signature.p7s")
_NUGET_FOLDER_SUFFIXES = (".nupkg", ".nupkg.sha512")


class EntryReadError(Exception):
    """An entry could not be read within its bound; ``path`` names it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class PackageProblem:
    """Something that went wrong building the view, reported as a finding of ``rule_id`` (NS9xxx)."""

    rule_id: str
    message: str
    path: str | None = None


@dataclass(eq=False)
class ScanPackage:
    """One package as analysers see it (see the module docstring). Build with :meth:`from_bytes` or
    :meth:`from_folder`; the constructor is for tests that supply their own reader."""

    ref: PackageRef
    nuspec: Nuspec | None
    paths: tuple[str, ...]
    sizes: dict[str, int]
    reader: Callable[[str, int], bytes]
    problems: list[PackageProblem] = field(default_factory=list)
    #: Total bytes of the package as stored (the .nupkg's size, or the sum of the folder's files).
    stored_size: int = 0
    #: ``True`` when built from an extracted folder: locations are file paths under ``ref.source``.
    extracted: bool = False
    #: ``(path, size) -> the first size bytes`` without reading the rest (``None``: :meth:`read_prefix` reads
    #: the whole entry).
    prefix_reader: Callable[[str, int], bytes] | None = None
    _hashes: dict[str, str] = field(default_factory=dict)
    _cache: dict[str, bytes] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> ScanPackage:
        """The view of a .nupkg held in memory; never raises for bad bytes (problems become NS9xxx)."""
        try:
            archive = PackageArchive.from_bytes(data, source=source)
        except PackageFormatError as exc:
            return cls(
                ref=PackageRef(None, None, source),
                nuspec=None,
                paths=(),
                sizes={},
                reader=_no_reader,
                problems=[PackageProblem("NS9001", f"not a readable .nupkg: {exc.message}")],
                stored_size=len(data),
            )
        problems = [PackageProblem("NS9002", p.message) for p in archive.structure_problems]
        by_path: dict[str, int] = {}
        sizes: dict[str, int] = {}
        records = archive.records
        for i, rec in enumerate(records):
            path = rec.name.replace("\\", "/")
            if path.endswith("/") or path in by_path:
                continue  # folder entries; duplicates are already a structure problem
            by_path[path] = i
            sizes[path] = rec.uncompressed_size

        def reader(path: str, limit: int) -> bytes:
            index = by_path.get(path)
            if index is None:
                raise EntryReadError(path, f"the package has no entry {path!r}")
            try:
                return archive.read_record(records[index], limit=limit)
            except PackageFormatError as exc:
                raise EntryReadError(path, exc.message) from exc

        def prefix_reader(path: str, size: int) -> bytes:
            index = by_path.get(path)
            if index is None:
                raise EntryReadError(path, f"the package has no entry {path!r}")
            return _archive_prefix(archive.data, records[index], path, size)

        nuspec = _read_nuspec(tuple(by_path), reader, problems)
        ref = PackageRef(
            nuspec.id if nuspec else None, nuspec.version.normalized if nuspec else None, source
        )
        return cls(
            ref=ref,
            nuspec=nuspec,
            paths=tuple(by_path),
            sizes=sizes,
            reader=reader,
            problems=problems,
            stored_size=len(data),
            prefix_reader=prefix_reader,
        )

    @classmethod
    def from_folder(cls, folder: Path, *, source: str | None = None) -> ScanPackage:
        """The view of an extracted package folder (global-packages layout ``<id>/<version>/``).

        Links and special files are not followed (NS9005); NuGet's own files next to the content
        (``*.nupkg``, ``*.nupkg.sha512``, ``.nupkg.metadata``, ``.signature.p7s``) are left out. Reads happen
        lazily through :meth:`read`, bounded like archive entries.
        """
        root = Path(folder)
        label = source or str(root)
        problems: list[PackageProblem] = []
        sizes: dict[str, int] = {}
        total = 0
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            base = Path(dirpath)
            for d in list(dirnames):
                if (base / d).is_symlink():
                    rel = (base / d).relative_to(root).as_posix()
                    problems.append(PackageProblem("NS9005", f"{rel} is a link; not followed", rel))
                    dirnames.remove(d)
            dirnames.sort()
            for name in sorted(filenames):
                full = base / name
                rel = full.relative_to(root).as_posix()
                if "/" not in rel and (name in _NUGET_FOLDER_FILES or name.lower().endswith(_NUGET_FOLDER_SUFFIXES)):
                    continue
                st = full.lstat()
                if not stat.S_ISREG(st.st_mode):
                    problems.append(PackageProblem("NS9005", f"{rel} is a link or not a regular file", rel))
                    continue
                sizes[rel] = st.st_size
                total += st.st_size
                if len(sizes) > MAX_FOLDER_ENTRIES:
                    problems.append(PackageProblem("NS9004", f"more than {MAX_FOLDER_ENTRIES} files; rest skipped"))
                    break
            if len(sizes) > MAX_FOLDER_ENTRIES:
                break

        def reader(path: str, limit: int) -> bytes:
            if path not in sizes:
                raise EntryReadError(path, f"the folder has no file {path!r}")
            full = root / path
            try:
                with full.open("rb") as fh:
                    data = fh.read(limit + 1)
            except OSError as exc:
                raise EntryReadError(path, f"cannot read {path}: {exc.strerror or exc}") from exc
            if len(data) > limit:
                raise EntryReadError(path, f"{path} is over {limit} bytes")
            return data

        def prefix_reader(path: str, size: int) -> bytes:
            if path not in sizes:
                raise EntryReadError(path, f"the folder has no file {path!r}")
            try:
                with (root / path).open("rb") as fh:
                    return fh.read(size)
            except OSError as exc:
                raise EntryReadError(path, f"cannot read {path}: {exc.strerror or exc}") from exc

        nuspec = _read_nuspec(tuple(sizes), reader, problems)
        ref = PackageRef(nuspec.id if nuspec else None, nuspec.version.normalized if nuspec else None, label)
        return cls(
            ref=ref,
            nuspec=nuspec,
            paths=tuple(sizes),
            sizes=sizes,
            reader=reader,
            problems=problems,
            stored_size=total,
            extracted=True,
            prefix_reader=prefix_reader,
        )

    # ------------------------------------------------------------------ access
    @property
    def id(self) -> str | None:
        """The package id from the nuspec (``None`` when unreadable)."""
        return self.ref.id

    @property
    def version(self) -> NuGetVersion | None:
        """The nuspec's version (``None`` when unreadable)."""
        return self.nuspec.version if self.nuspec else None

    @property
    def lower_paths(self) -> dict[str, str]:
        """``{path.lower(): path}`` (first wins) for NuGet's case-insensitive look-ups."""
        cached = self.__dict__.get("_lower")
        if cached is None:
            cached = {}
            for p in self.paths:
                cached.setdefault(p.lower(), p)
            self.__dict__["_lower"] = cached
        return cached

    def content_paths(self) -> tuple[str, ...]:
        """:attr:`paths` without NuGet's packaging files (``[Content_Types].xml``, ``_rels/``,
        ``package/services/``, ``.signature.p7s``) and the root nuspec."""
        out = []
        for p in self.paths:
            low = p.lower()
            if low in ("[content_types].xml", SIGNATURE_ENTRY_NAME) or low.startswith(("_rels/", "package/services/")):
                continue
            if "/" not in p and low.endswith(".nuspec"):
                continue
            out.append(p)
        return tuple(out)

    def size(self, path: str) -> int:
        """Declared uncompressed size of ``path`` (bytes). Raises ``KeyError`` for an unknown path."""
        return self.sizes[path]

    def read(self, path: str, *, limit: int = DEFAULT_READ_LIMIT) -> bytes:
        """The bytes of ``path``, at most ``limit`` bytes, CRC-checked for archives.

        Raises:
            EntryReadError: no such entry, larger than ``limit``, or corrupt.
        """
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        declared = self.sizes.get(path)
        if declared is not None and declared > limit:
            raise EntryReadError(path, f"{path} is {declared} bytes; at most {limit} are analysed")
        data = self.reader(path, limit)
        if len(data) <= 1 << 20:
            self._cache[path] = data
        if path not in self._hashes:
            self._hashes[path] = hashlib.sha256(data).hexdigest()
        return data

    def read_prefix(self, path: str, size: int) -> bytes:
        """The first ``size`` bytes of ``path`` (fewer when it is shorter), without inflating or reading the rest:
        for headers of files too large to read whole. Not CRC-checked (the check needs every byte).

        Raises:
            EntryReadError: no such entry, or it cannot be read.
        """
        cached = self._cache.get(path)
        if cached is not None:
            return cached[:size]
        if self.prefix_reader is None:
            declared = self.sizes.get(path, 0)
            return self.read(path, limit=max(size, declared))[:size]
        return self.prefix_reader(path, size)

    def sha256(self, path: str, *, limit: int = 1 << 30) -> str | None:
        """Hex SHA-256 of ``path``'s bytes, or ``None`` when it cannot be read within ``limit``."""
        found = self._hashes.get(path)
        if found is None:
            try:
                data = self.reader(path, limit)
            except EntryReadError:
                return None
            found = hashlib.sha256(data).hexdigest()
            self._hashes[path] = found
        return found

    def location(self, path: str | None, line: int | None = None, column: int | None = None) -> Location:
        """A :class:`Location` for ``path`` (an entry path) inside this package."""
        return Location(path=path, line=line, column=column)

    def read_problem(self, error: EntryReadError) -> PackageProblem:
        """The NS9004 problem for an entry an analyser could not read (append to :attr:`problems`)."""
        problem = PackageProblem("NS9004", f"not analysed: {error.message}", error.path)
        self.problems.append(problem)
        return problem


def _read_nuspec(
    paths: tuple[str, ...], reader: Callable[[str, int], bytes], problems: list[PackageProblem]
) -> Nuspec | None:
    """The root nuspec, parsed without nuget.org's field-length limits: a field over them is an NS9009 problem
    (one per field) and the package keeps its identity; anything else wrong is NS9003 and ``None``."""
    try:
        name = find_nuspec_name(paths)
        nuspec = Nuspec.parse(reader(name, MAX_NUSPEC_SIZE), enforce_limits=False)
    except PackageFormatError as exc:
        problems.append(PackageProblem("NS9003", exc.message))
        return None
    except EntryReadError as exc:
        problems.append(PackageProblem("NS9003", f"the nuspec cannot be read: {exc.message}", exc.path))
        return None
    problems.extend(PackageProblem("NS9009", problem, name) for problem in nuspec.limit_problems)
    return nuspec


def _archive_prefix(data: bytes, record: CentralDirectoryRecord, path: str, size: int) -> bytes:
    """The first ``size`` bytes of an archive entry: its local header (APPNOTE 4.3.7) checked against the central
    directory record, then at most ``size`` bytes inflated (stored entries sliced)."""
    at = record.local_header_offset
    if at < 0 or at + 30 > len(data) or data[at : at + 4] != b"PK\x03\x04":
        raise EntryReadError(path, f"{path}: no local file header at offset {at}")
    name_len, extra_len = struct.unpack_from("<HH", data, at + 26)
    if data[at + 30 : at + 30 + name_len] != record.name_bytes:
        raise EntryReadError(path, f"{path}: local header and central directory disagree on the name")
    start = at + 30 + name_len + extra_len
    end = start + record.compressed_size
    if end > len(data):
        raise EntryReadError(path, f"{path}: data runs past the end of the file")
    raw = memoryview(data)[start:end]
    if record.method == 0:
        return bytes(raw[:size])
    if record.method != 8:
        raise EntryReadError(path, f"{path}: unsupported compression method {record.method}")
    try:
        return zlib.decompressobj(-15).decompress(raw, size)
    except zlib.error as exc:
        raise EntryReadError(path, f"{path}: corrupt deflate data ({exc})") from exc


def _no_reader(path: str, limit: int) -> bytes:
    raise EntryReadError(path, "the package could not be read")
