"""The .nupkg container: hardened reading, the signature entry, the package hash.

Two views of one immutable buffer:

* NuGet's signed-archive view (:func:`nuseal.package._zip.read_layout`), which decides whether the
  package is signed, where ``.signature.p7s`` is, whether that entry is well-formed (NU3005) and what the
  signature's package hash covers (NU3008). These rules follow NuGet.Client exactly, quirks included
  (``../shared/NUGET-SIGNING.md`` §1-§2), because the verdict must agree with NuGet's.
* nuseal's hardened view (:meth:`PackageArchive.structure_problems`, :meth:`PackageArchive.read`): bounded
  entry count and sizes, local headers that agree with the central directory, no overlapping entries,
  no path tricks, no duplicate names, bounded decompression with CRC checks. NuGet has no codes for these;
  the restore and the feed refuse a package that has any.
"""

from __future__ import annotations

import base64
import itertools
import os
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote

from nuseal.codes import NuCode
from nuseal.errors import PackageFormatError, SigningError, UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.package._zip import (
    CD_HEADER_SIZE,
    LOCAL_HEADER_SIZE,
    UTF8_FLAG,
    CentralDirectoryRecord,
    LocalFileHeader,
    ZipLayout,
    has_zip64_extra,
    read_layout,
    read_local_header,
)
from nuseal.package.nuspec import MAX_NUSPEC_SIZE, Nuspec, find_nuspec_name
from nuseal.package.structure import StructureCode, StructureProblem

__all__ = [
    "MAX_COMPRESSION_RATIO",
    "MAX_ENTRY_SIZE",
    "MAX_PACKAGE_SIZE",
    "MAX_TOTAL_UNCOMPRESSED",
    "SIGNATURE_ENTRY_NAME",
    "PackageArchive",
    "append_signature",
]

SIGNATURE_ENTRY_NAME = ".signature.p7s"
_SIGNATURE_NAME_BYTES = SIGNATURE_ENTRY_NAME.encode("ascii")
#: The largest .nupkg nuseal reads (bytes). ZIP without ZIP64 cannot describe more than 4 GiB.
MAX_PACKAGE_SIZE = 0xFFFFFFFF
#: The largest uncompressed entry nuseal will inflate (bytes).
MAX_ENTRY_SIZE = 1 << 30
#: The largest sum of uncompressed entry sizes (bytes): 8x nuget.org's 250 MB package limit (real packages
#: inflate 1-6x; the largest nuget.org vectors here 5.9x).
MAX_TOTAL_UNCOMPRESSED = 2 << 30
#: Largest uncompressed/compressed ratio accepted (deflate bombs), for each entry over
#: :data:`RATIO_CHECK_THRESHOLD` and for the whole archive (sum of uncompressed sizes / file size) once that sum
#: passes the threshold, so many small highly compressed entries cannot add up to a bomb.
MAX_COMPRESSION_RATIO = 200
#: Uncompressed size (bytes) from which the ratio is checked (smaller data cannot make a bomb).
RATIO_CHECK_THRESHOLD = 1 << 20
#: Longest entry name (bytes).
MAX_NAME_LENGTH = 1024
#: Signing refuses archives that would need ZIP64 for the entry count (NU3039, ``SigningUtility``).
MAX_ENTRIES_TO_SIGN = 0xFFFD

#: A CD record's local header offset field (its last 4 bytes before the name).
_OFFSET = struct.Struct("<I")

_INTEGRITY_MESSAGE = (
    "The package integrity check failed. The package has changed since it was signed. "
    "Try clearing the local http-cache and run nuget operation again."
)


def _nu3005(message: str) -> PackageFormatError:
    return PackageFormatError(message, code=NuCode.NU3005)


@dataclass(frozen=True, slots=True)
class _SignedArchiveMetadata:
    """NuGet's ``SignedFileMetadata``: per-record total sizes and the signature record."""

    start_of_local_headers: int
    start_of_central_directory: int
    end_of_central_directory: int
    signature: CentralDirectoryRecord
    total_size: dict[int, int]  # CD position -> FileEntryTotalSize


class PackageArchive:
    """An immutable .nupkg, parsed once.

    Build with :meth:`from_bytes` or :meth:`from_path`. Construction reads the ZIP framing only (EOCD and
    central directory, as NuGet does); entry data is read on demand.

    Raises (constructors):
        PackageFormatError: the bytes are not a ZIP archive NuGet could read (no ``code``), or the file is
            larger than :data:`MAX_PACKAGE_SIZE`.
    """

    def __init__(self, data: bytes, layout: ZipLayout, source: str | None) -> None:
        self._data = data
        self.layout = layout
        self.source = source
        #: Local headers read so far, by offset (see :meth:`_local_header`).
        self._local_headers: dict[int, LocalFileHeader] = {}

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str | None = None) -> PackageArchive:
        if len(data) > MAX_PACKAGE_SIZE:
            raise PackageFormatError(f"the package is {len(data)} bytes; at most {MAX_PACKAGE_SIZE} are read")
        return cls(bytes(data), read_layout(data), source)

    @classmethod
    def from_path(cls, path: str | Path) -> PackageArchive:
        """Read a .nupkg file.

        Raises:
            PackageFormatError: as :meth:`from_bytes`.
            UsageError: the file cannot be read.
        """
        p = Path(path)
        try:
            with open(p, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > MAX_PACKAGE_SIZE:
                    raise PackageFormatError(f"{p} is {size} bytes; at most {MAX_PACKAGE_SIZE} are read")
                data = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read {p}: {exc.strerror or exc}") from exc
        return cls(data, read_layout(data), str(p))

    # ------------------------------------------------------------------ raw access
    @property
    def data(self) -> bytes:
        """The whole file, as read."""
        return self._data

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def records(self) -> tuple[CentralDirectoryRecord, ...]:
        return self.layout.records

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Entry names in central-directory order (the signature entry included)."""
        return tuple(r.name for r in self.layout.records)

    # ------------------------------------------------------------------ signature entry (NuGet rules)
    @cached_property
    def is_signed(self) -> bool:
        """Whether NuGet considers the package signed: an entry whose full name is ``.signature.p7s``.

        Source: NC ``PackageArchiveReader.IsSignedAsync`` (``ZipArchive.GetEntry``): the UTF-8 flag does
        not matter here, but it does for the signature reader, so such an entry then fails with NU3005.
        """
        return SIGNATURE_ENTRY_NAME in self.names

    def _local_header(self, offset: int) -> LocalFileHeader:
        """:func:`~nuseal.package._zip.read_local_header` at ``offset``, read once: the structure checks, the ZIP64
        check, the signature entry and entry reads all need the same headers.

        Raises:
            PackageFormatError: as ``read_local_header`` (a failure is not remembered: it is raised again).
        """
        lfh = self._local_headers.get(offset)
        if lfh is None:
            lfh = self._local_headers[offset] = read_local_header(self._data, offset)
        return lfh

    def _signature_record(self) -> CentralDirectoryRecord:
        candidates = [
            r
            for r in self.layout.records
            if r.name_bytes == _SIGNATURE_NAME_BYTES and not r.flags & UTF8_FLAG
        ]
        if not candidates:
            raise _nu3005("The package does not contain a valid package signature file.")
        if len(candidates) > 1:
            raise _nu3005("The package contains multiple package signature files.")
        return candidates[0]

    @cached_property
    def _signed_metadata(self) -> _SignedArchiveMetadata:
        """NC ``SignedPackageArchiveIOUtility.ReadSignedArchiveMetadata`` (NUGET-SIGNING.md §2.3 step 1)."""
        sig = self._signature_record()
        recs = self.layout.records
        by_offset = sorted(recs, key=lambda r: r.local_header_offset)
        start_cd = min(r.position for r in recs)
        totals: dict[int, int] = {}
        for here, nxt in zip(by_offset, [*by_offset[1:], None], strict=True):
            end = nxt.local_header_offset if nxt is not None else start_cd
            totals[here.position] = end - here.local_header_offset
        return _SignedArchiveMetadata(
            start_of_local_headers=by_offset[0].local_header_offset,
            start_of_central_directory=start_cd,
            end_of_central_directory=self.layout.end_of_central_directory,
            signature=sig,
            total_size=totals,
        )

    def signature_record(self) -> CentralDirectoryRecord:
        """The ``.signature.p7s`` CD record, checked as NuGet checks it.

        Raises:
            PackageFormatError: NU3005 when there is no such entry, several, or its CD or local header
                break NuGet's rules (NUGET-SIGNING.md §1.2: flags 0, stored, sizes equal, external
                attributes 0; NC ``AssertSignatureEntryMetadata``).
        """
        meta = self._signed_metadata
        sig = meta.signature
        invalid = "The package contains an invalid package signature file."
        if sig.flags != 0 or sig.method != 0 or sig.compressed_size != sig.uncompressed_size:
            raise _nu3005(invalid)
        if sig.external_attributes != 0:
            raise _nu3005(invalid)
        try:
            lfh = self._local_header(sig.local_header_offset)
        except PackageFormatError as exc:
            raise _nu3005(invalid) from exc
        if lfh.name_bytes != _SIGNATURE_NAME_BYTES:
            raise _nu3005("The package does not contain a valid package signature file.")
        if lfh.flags != 0 or lfh.method != 0 or lfh.compressed_size != lfh.uncompressed_size:
            raise _nu3005(invalid)
        return sig

    def read_signature(self) -> bytes:
        """The ``.signature.p7s`` bytes, read as NuGet reads them (CRC not checked, NC ``GetPackageSignatureFile``).

        Raises:
            PackageFormatError: NU3005 as :meth:`signature_record`, or when the data runs past the file.
        """
        sig = self.signature_record()
        lfh = self._local_header(sig.local_header_offset)
        start = lfh.data_offset
        end = start + sig.uncompressed_size
        if end > len(self._data):
            raise _nu3005("The package contains an invalid package signature file.")
        return self._data[start:end]

    # ------------------------------------------------------------------ hashes
    def package_hash(self, algorithm: HashAlgorithm) -> bytes:
        """The hash a signature's ``-Hash:`` property is compared with.

        For a signed package: NuGet's hash over the archive with the signature entry left out
        (NC ``SignedPackageArchiveUtility.VerifySignedPackageIntegrity``, NUGET-SIGNING.md §2.3, quirks kept:
        offsets rebased to 0, bytes before the first local header hashed). For an unsigned package: the
        hash of the whole file (what signing hashes, NC ``SigningUtility.SignAsync``).

        Raises:
            PackageFormatError: NU3008 when the archive's framing defeats the computation (NuGet turns any
                exception there into an integrity failure); NU3005 as :meth:`signature_record`.
        """
        if not self.is_signed:
            return algorithm.digest(self._data)
        meta = self._signed_metadata
        try:
            return _nuget_signed_hash(self._data, self.layout, meta, algorithm)
        except (struct.error, ValueError, IndexError) as exc:
            raise PackageFormatError(_INTEGRITY_MESSAGE, code=NuCode.NU3008) from exc

    def content_hash(self) -> str:
        """NuGet's package content hash: base64 SHA-512 of :meth:`package_hash` (signature excluded).

        This is the ``contentHash`` of ``.nupkg.metadata`` and ``packages.lock.json``
        (NC ``PackageArchiveReader.GetContentHash``, NUGET-SIGNING.md §2.5); it does not change when a
        repository signature is added or replaced. For an unsigned package: SHA-512 of the whole file.
        """
        return base64.b64encode(self.package_hash(HashAlgorithm.SHA512)).decode("ascii")

    @cached_property
    def open_problem(self) -> str | None:
        """Why NuGet could not open this archive at all, or ``None``.

        NuGet opens packages with ``System.IO.Compression.ZipArchive``, which throws ``InvalidDataException``
        when the end record's entry count differs from the records in the central directory (its
        ``NumberOfEntriesDoesNotMatch`` check); NuGet then reports the file as not a valid package, without a
        code (NC ``VerifyCommandRunner``). Archives nuseal cannot read at all fail earlier, in the constructor.
        """
        eocd = self.layout.eocd
        found = len(self.layout.records)
        if eocd.total_entries != found or eocd.entries_on_disk != found:
            return f"the end record counts {eocd.total_entries} entries but the central directory holds {found}"
        return None

    @cached_property
    def uses_zip64(self) -> bool:
        """NC ``SignedPackageArchiveUtility.IsZip64``: a ZIP64 EOCD locator, or a ZIP64 extra field in any CD
        record or local header."""
        if self.layout.has_zip64_locator:
            return True
        for r in self.layout.records:
            if r.extra and has_zip64_extra(r.extra):
                return True
            try:
                extra = self._local_header(r.local_header_offset).extra
            except PackageFormatError:
                continue
            if extra and has_zip64_extra(extra):
                return True
        return False

    # ------------------------------------------------------------------ hardened view
    @cached_property
    def structure_problems(self) -> tuple[StructureProblem, ...]:
        """Container hardening findings (typed, with a :class:`~nuseal.package.structure.StructureCode`); empty
        for a sound package. Never raises.

        Checked: ZIP64 records; entry count against the EOCD; names (empty, too long, NUL, absolute,
        drive-qualified, ``..`` segments, duplicates other than the signature entry, which NuGet reports as
        NU3005, names that extract to one file on a case-insensitive or backslash-separated file system); each
        local header exists and agrees with its CD record on name and method; no
        encryption; methods stored/deflate only; sizes within :data:`MAX_ENTRY_SIZE` and
        :data:`MAX_TOTAL_UNCOMPRESSED`; compression ratio of large entries and of the whole archive
        (:data:`MAX_COMPRESSION_RATIO`); entries inside the file, before the central
        directory and not overlapping.
        """
        problems: list[StructureProblem] = []
        add = problems.append
        S = StructureCode
        layout = self.layout
        recs = layout.records
        if self.uses_zip64:
            add(StructureProblem(S.ZIP64, "the archive uses ZIP64, which NuGet packages must not"))
        if layout.eocd.total_entries != len(recs) or layout.eocd.entries_on_disk != len(recs):
            add(
                StructureProblem(
                    S.ENTRY_COUNT_MISMATCH,
                    f"the end record counts {layout.eocd.total_entries} entries but the central directory "
                    f"holds {len(recs)}",
                )
            )
        if layout.eocd.disk_number != 0 or layout.eocd.cd_disk != 0:
            add(StructureProblem(S.MULTI_DISK, "multi-disk archives are not supported"))
        seen: set[str] = set()
        extracted: dict[str, str] = {}
        total = 0
        spans: list[tuple[int, int, str]] = []
        start_cd = recs[0].position  # read_layout reads the records at increasing positions
        for r in recs:
            name = r.name
            if not _plain_name(name, r.name_bytes):
                problems.extend(
                    StructureProblem(code, f"entry {name!r}: {text}", name)
                    for code, text in _name_problems(name, r.name_bytes)
                )
            if name != SIGNATURE_ENTRY_NAME:
                if name in seen:
                    add(StructureProblem(S.DUPLICATE_NAME, f"entry {name!r} appears more than once", name))
                else:
                    other = extracted.setdefault(_extraction_key(name), name)
                    if other != name:
                        add(
                            StructureProblem(
                                S.EXTRACTION_COLLISION,
                                f"entries {other!r} and {name!r} extract to the same file on a case-insensitive or "
                                "backslash-separated file system",
                                name,
                            )
                        )
                seen.add(name)
            if r.flags & 0x1:
                add(StructureProblem(S.ENCRYPTED, f"entry {name!r} is encrypted", name))
            if r.method not in (0, 8):
                add(
                    StructureProblem(
                        S.UNSUPPORTED_METHOD,
                        f"entry {name!r} uses compression method {r.method} (only stored and deflate)",
                        name,
                    )
                )
            if r.method == 0 and r.compressed_size != r.uncompressed_size:
                add(
                    StructureProblem(
                        S.STORED_SIZE_MISMATCH,
                        f"stored entry {name!r} has different compressed and uncompressed sizes",
                        name,
                    )
                )
            if r.uncompressed_size > MAX_ENTRY_SIZE:
                add(
                    StructureProblem(
                        S.ENTRY_TOO_LARGE,
                        f"entry {name!r} claims {r.uncompressed_size} bytes (limit {MAX_ENTRY_SIZE})",
                        name,
                    )
                )
            elif (
                r.uncompressed_size > RATIO_CHECK_THRESHOLD
                and r.uncompressed_size > MAX_COMPRESSION_RATIO * max(r.compressed_size, 1)
            ):
                add(
                    StructureProblem(
                        S.COMPRESSION_RATIO,
                        f"entry {name!r} has a compression ratio over {MAX_COMPRESSION_RATIO}:1",
                        name,
                    )
                )
            total += r.uncompressed_size
            try:
                lfh = self._local_header(r.local_header_offset)
            except PackageFormatError as exc:
                add(StructureProblem(S.LOCAL_HEADER_UNREADABLE, f"entry {name!r}: {exc.message}", name))
                continue
            if lfh.name_bytes != r.name_bytes:
                add(
                    StructureProblem(
                        S.LOCAL_HEADER_NAME_MISMATCH,
                        f"entry {name!r}: its local header names it {lfh.name_bytes!r}",
                        name,
                    )
                )
            if lfh.method != r.method:
                add(
                    StructureProblem(
                        S.LOCAL_HEADER_METHOD_MISMATCH,
                        f"entry {name!r}: local header and central directory disagree on the method",
                        name,
                    )
                )
            end = lfh.data_offset + r.compressed_size
            if end > start_cd:
                add(
                    StructureProblem(
                        S.DATA_OUT_OF_BOUNDS,
                        f"entry {name!r}: its data runs into the central directory or past the file",
                        name,
                    )
                )
            spans.append((r.local_header_offset, end, name))
        if total > MAX_TOTAL_UNCOMPRESSED:
            add(
                StructureProblem(
                    S.TOTAL_TOO_LARGE, f"entries add up to {total} bytes uncompressed (limit {MAX_TOTAL_UNCOMPRESSED})"
                )
            )
        elif total > RATIO_CHECK_THRESHOLD and total > MAX_COMPRESSION_RATIO * layout.size:
            add(
                StructureProblem(
                    S.TOTAL_COMPRESSION_RATIO,
                    f"entries add up to {total} bytes uncompressed from a {layout.size}-byte archive, a compression "
                    f"ratio over {MAX_COMPRESSION_RATIO}:1",
                )
            )
        spans.sort()
        for (_s1, e1, n1), (s2, _e2, n2) in itertools.pairwise(spans):
            if s2 < e1:
                add(StructureProblem(S.OVERLAPPING_ENTRIES, f"entries {n1!r} and {n2!r} overlap", n2))
        return tuple(problems)

    def entry(self, name: str) -> CentralDirectoryRecord:
        """The CD record of entry ``name`` (exact match).

        Raises:
            PackageFormatError: no such entry, or several.
        """
        found = [r for r in self.layout.records if r.name == name]
        if not found:
            raise PackageFormatError(f"the package has no entry {name!r}")
        if len(found) > 1:
            raise PackageFormatError(f"the package has {len(found)} entries named {name!r}")
        return found[0]

    def read(self, name: str, *, limit: int = MAX_ENTRY_SIZE) -> bytes:
        """The uncompressed bytes of entry ``name``, inflated with a bound and checked against its CRC-32.

        Raises:
            PackageFormatError: no such entry, an unsupported method, data outside the file, more than
                ``limit`` bytes, a size or CRC mismatch, or corrupt deflate data.
        """
        return self.read_record(self.entry(name), limit=limit)

    def read_record(self, record: CentralDirectoryRecord, *, limit: int = MAX_ENTRY_SIZE) -> bytes:
        """As :meth:`read`, for a given CD record."""
        label = repr(record.name)
        if record.uncompressed_size > limit:
            raise PackageFormatError(f"entry {label} is {record.uncompressed_size} bytes (limit {limit})")
        lfh = self._local_header(record.local_header_offset)
        if lfh.name_bytes != record.name_bytes:
            raise PackageFormatError(f"entry {label}: local header and central directory disagree on the name")
        start = lfh.data_offset
        end = start + record.compressed_size
        if end > len(self._data):
            raise PackageFormatError(f"entry {label}: data runs past the end of the file")
        raw = self._data[start:end]
        if record.method == 0:
            out = raw
        elif record.method == 8:
            inflater = zlib.decompressobj(-15)
            try:
                out = inflater.decompress(raw, record.uncompressed_size + 1)
            except zlib.error as exc:
                raise PackageFormatError(f"entry {label}: corrupt deflate data ({exc})") from exc
        else:
            raise PackageFormatError(f"entry {label}: unsupported compression method {record.method}")
        if len(out) != record.uncompressed_size:
            raise PackageFormatError(
                f"entry {label}: {len(out)} bytes inflated, {record.uncompressed_size} declared"
            )
        if zlib.crc32(out) != record.crc32:
            raise PackageFormatError(f"entry {label}: CRC-32 mismatch (the data is corrupt or was changed)")
        return out

    # ------------------------------------------------------------------ signature removal
    def nuspec(self) -> Nuspec:
        """The parsed manifest (the one ``.nuspec`` at the root).

        Raises:
            PackageFormatError: no nuspec, several, unreadable entry, or invalid content.
        """
        name = find_nuspec_name(self.names)
        return Nuspec.parse(self.read(name, limit=MAX_NUSPEC_SIZE))

    def without_signature(self) -> bytes:
        """The package with ``.signature.p7s`` removed, as NC ``RemoveSignature`` does (NUGET-SIGNING.md §2.4).

        Only correct when the signature is the last local entry, which is how NuGet and nuseal write it.

        Raises:
            PackageFormatError: NU3005 as :meth:`signature_record`; no ``code`` when the signature entry is
                not the last local entry.
        """
        sig = self.signature_record()
        meta = self._signed_metadata
        if max(r.local_header_offset for r in self.layout.records) != sig.local_header_offset:
            raise PackageFormatError("the signature entry is not the last entry; it cannot be removed in place")
        d = self._data
        sig_total = meta.total_size[sig.position]
        eocd_at = meta.end_of_central_directory
        e = self.layout.eocd
        out = bytearray()
        out += d[: sig.local_header_offset]
        out += d[sig.local_header_offset + sig_total : sig.position]
        out += d[sig.position + sig.header_size : eocd_at]
        out += d[eocd_at : eocd_at + 8]
        out += struct.pack(
            "<HHII",
            (e.entries_on_disk - 1) & 0xFFFF,
            (e.total_entries - 1) & 0xFFFF,
            (e.cd_size - sig.header_size) & 0xFFFFFFFF,
            (e.cd_offset - sig_total) & 0xFFFFFFFF,
        )
        out += d[eocd_at + 20 :]
        return bytes(out)


def _extraction_key(name: str) -> str:
    """The file an entry becomes when NuGet extracts it on Windows or macOS: ``%XX`` unescaped (NuGet's
    ``PackageExtractor`` does, as the oracle's ``extract`` shows: ``a%20b`` -> ``a b``), ``\\`` a separator (Windows;
    on Linux NuGet keeps it in the file name), names compared without case (NTFS, APFS and HFS+ defaults) and
    without Unicode normalization differences (APFS, HFS+)."""
    if name.isascii() and "%" not in name:  # the same key, the short way: NFC and casefold are lower() on ASCII
        return name.replace("\\", "/").lower()
    path = unquote(name).replace("\\", "/")
    return unicodedata.normalize("NFC", path).casefold()


def _plain_name(name: str, raw: bytes) -> bool:
    """Whether :func:`_name_problems` has nothing to say about ``name``, decided the short way: not empty, not
    too long, no NUL, no leading separator, no drive letter, and no ``..`` at all (so no ``..`` segment)."""
    return (
        bool(raw)
        and len(raw) <= MAX_NAME_LENGTH
        and "\x00" not in name
        and ".." not in name
        and name[0] not in "/\\"
        and name[1:2] != ":"
    )


def _name_problems(name: str, raw: bytes) -> list[tuple[StructureCode, str]]:
    problems: list[tuple[StructureCode, str]] = []
    if not raw:
        return [(StructureCode.EMPTY_NAME, "empty name")]
    if len(raw) > MAX_NAME_LENGTH:
        problems.append((StructureCode.NAME_TOO_LONG, f"name longer than {MAX_NAME_LENGTH} bytes"))
    if "\x00" in name:
        problems.append((StructureCode.NAME_NUL, "name contains a NUL character"))
    normalized = name.replace("\\", "/")
    if normalized.startswith("/"):
        problems.append((StructureCode.ABSOLUTE_PATH, "absolute path"))
    if len(normalized) >= 2 and normalized[1] == ":":
        problems.append((StructureCode.DRIVE_QUALIFIED_PATH, "drive-qualified path"))
    if any(part == ".." for part in normalized.split("/")):
        problems.append((StructureCode.PATH_ESCAPE, "path escapes the package ('..' segment)"))
    return problems


def _nuget_signed_hash(
    data: bytes, layout: ZipLayout, meta: _SignedArchiveMetadata, algorithm: HashAlgorithm
) -> bytes:
    """NUGET-SIGNING.md §2.3 steps 2-3, byte for byte."""
    view = memoryview(data)
    size = len(data)
    h = algorithm.new()
    sig = meta.signature
    others = sorted(
        (r for r in layout.records if r.position != sig.position), key=lambda r: r.local_header_offset
    )
    change: dict[int, int] = {}
    prev_end = 0
    for r in others:
        total = meta.total_size[r.position]
        change[r.position] = prev_end - r.local_header_offset
        prev_end = r.local_header_offset + total + change[r.position]

    def check(start: int, end: int) -> None:
        if start < 0 or end < start or end > size:
            raise ValueError(f"range {start}..{end} outside the file")

    # The bytes before the first local header, then each other entry's local header and data, in file order. The
    # entries tile the file up to the central directory, so adjacent ranges are merged: one update per run.
    runs: list[list[int]] = []
    for start, end in itertools.chain(
        ((0, meta.start_of_local_headers),),
        ((r.local_header_offset, r.local_header_offset + meta.total_size[r.position]) for r in others),
    ):
        check(start, end)
        if runs and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    for start, end in runs:
        h.update(view[start:end])
    # Each other CD record, in CD order, with its local header offset rebased. read_layout reads the records back to
    # back, so they are the bytes from the first record to the end of the last, less the signature's record.
    cd_start = layout.records[0].position
    check(cd_start, meta.end_of_central_directory)
    cd = bytearray(data[cd_start : meta.end_of_central_directory])
    for r in reversed(layout.records):  # from the end: removing the signature's record moves only later ones
        at = r.position - cd_start
        if r.position == sig.position:
            del cd[at : at + r.header_size]
        else:
            _OFFSET.pack_into(cd, at + CD_HEADER_SIZE - 4, (r.local_header_offset + change[r.position]) & 0xFFFFFFFF)
    h.update(cd)
    eocd = meta.end_of_central_directory
    n1, n2, cd_size, cd_off = struct.unpack_from("<HHII", data, eocd + 8)
    check(eocd, eocd + 8)
    h.update(view[eocd : eocd + 8])
    h.update(
        struct.pack(
            "<HHII",
            (n1 - 1) & 0xFFFF,
            (n2 - 1) & 0xFFFF,
            (cd_size - sig.header_size) & 0xFFFFFFFF,
            (cd_off - meta.total_size[sig.position]) & 0xFFFFFFFF,
        )
    )
    check(eocd + 20, size)
    h.update(view[eocd + 20 : size])
    return h.digest()


def _dos_datetime(when: datetime) -> tuple[int, int]:
    year = min(max(when.year, 1980), 2107)
    dos_time = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
    dos_date = ((year - 1980) << 9) | (when.month << 5) | when.day
    return dos_time, dos_date


def append_signature(unsigned: bytes, signature: bytes, *, when: datetime) -> bytes:
    """Append ``.signature.p7s`` to an unsigned package exactly as NuGet writes it.

    NC ``SignedPackageArchiveIOUtility.WriteSignatureIntoZip`` (NUGET-SIGNING.md §1.4): the local entry
    (version 20, flags 0, stored, DOS time of ``when``, CRC, no extra) goes at the old start of the central
    directory, its CD record (version made by 20, attributes 0) after the existing records, and the EOCD gets
    counts +1, CD size +60, CD offset + 44 + len(signature); comment and trailing bytes are copied. Every byte
    before the old central directory is untouched.

    Raises:
        SigningError: NU3001 the package is already signed; NU3006 it uses ZIP64; NU3039 it has more than
            0xFFFD entries; no code when it is not a readable ZIP.
    """
    try:
        archive = PackageArchive.from_bytes(unsigned)
    except PackageFormatError as exc:
        raise SigningError(f"cannot sign: {exc.message}") from exc
    if archive.is_signed:
        raise SigningError("The package is already signed.", code=NuCode.NU3001)
    layout = archive.layout
    if archive.uses_zip64:
        raise SigningError("Signed Zip64 packages are not supported.", code=NuCode.NU3006)
    if layout.eocd.total_entries > MAX_ENTRIES_TO_SIGN:
        raise SigningError(
            "The package cannot be signed as it would require the Zip64 format.", code=NuCode.NU3039
        )
    cd_start = layout.eocd.cd_offset
    cd_end = layout.end_of_central_directory
    if layout.eocd.position != cd_end:
        raise SigningError("cannot sign: the end-of-central-directory record does not follow the central directory")
    dos_time, dos_date = _dos_datetime(when)
    crc = zlib.crc32(signature)
    n = len(signature)
    name = _SIGNATURE_NAME_BYTES
    lfh = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, dos_time, dos_date, crc, n, n, len(name), 0) + name
    cdh = (
        struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02", 20, 20, 0, 0, dos_time, dos_date, crc, n, n, len(name), 0, 0, 0, 0, 0, cd_start,
        )
        + name
    )
    e = layout.eocd
    new_count = e.total_entries + 1
    eocd = unsigned[cd_end : cd_end + 8] + struct.pack(
        "<HHII",
        (e.entries_on_disk + 1) & 0xFFFF,
        new_count & 0xFFFF,
        (e.cd_size + len(cdh)) & 0xFFFFFFFF,
        (e.cd_offset + len(lfh) + n) & 0xFFFFFFFF,
    )
    assert len(lfh) == LOCAL_HEADER_SIZE + len(name)
    return b"".join(
        (unsigned[:cd_start], lfh, signature, unsigned[cd_start:cd_end], cdh, eocd, unsigned[cd_end + 20 :])
    )
