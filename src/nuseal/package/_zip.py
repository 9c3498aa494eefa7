"""ZIP framing as NuGet's signed-archive reader sees it.

A port of the *rules* (not the code) of NuGet.Client
``src/NuGet.Core/NuGet.Packaging/Signing/Archive/{SignedPackageArchiveIOUtility,EndOfCentralDirectoryRecord,
CentralDirectoryHeader,LocalFileHeader}.cs``: the end-of-central-directory (EOCD) record is the first
``PK\\x05\\x06`` found scanning backward from the end of the file; central-directory (CD) records are read
from the EOCD's CD offset for as long as the next four bytes are ``PK\\x01\\x02`` (the EOCD entry count is
not used). Only 32-bit fields are read: ZIP64 is not supported (NuGet refuses it for signing, nuget.org
for everything).

Everything here works on one immutable ``bytes``-like buffer and bounds every loop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from nuseal.errors import PackageFormatError

__all__ = [
    "CD_HEADER_SIZE",
    "CD_SIGNATURE",
    "EOCD_SIGNATURE",
    "EOCD_SIZE",
    "LFH_SIGNATURE",
    "LOCAL_HEADER_SIZE",
    "MAX_ENTRIES",
    "CentralDirectoryRecord",
    "EndOfCentralDirectory",
    "LocalFileHeader",
    "ZipLayout",
    "read_layout",
    "decode_name",
    "read_local_header",
]

EOCD_SIGNATURE = b"PK\x05\x06"
CD_SIGNATURE = b"PK\x01\x02"
LFH_SIGNATURE = b"PK\x03\x04"
ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
EOCD_SIZE = 22
CD_HEADER_SIZE = 46
LOCAL_HEADER_SIZE = 30
ZIP64_EXTRA_ID = 0x0001
#: More CD records than a non-ZIP64 archive can count (NuGet signs at most 0xFFFD entries).
MAX_ENTRIES = 0xFFFF
UTF8_FLAG = 0x0800

_CD = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LFH = struct.Struct("<4sHHHHHIIIHH")
_EOCD = struct.Struct("<4sHHHHIIH")


class CentralDirectoryRecord(NamedTuple):
    """One CD record. ``position`` is its byte offset in the file; ``header_size`` = 46 + name + extra + comment.

    Immutable. A named tuple rather than a frozen dataclass: a package has up to :data:`MAX_ENTRIES` of them and
    a frozen dataclass costs one ``object.__setattr__`` per field to build (ten times a tuple).
    """

    position: int
    version_made_by: int
    version_needed: int
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc32: int
    compressed_size: int
    uncompressed_size: int
    name_bytes: bytes
    extra: bytes
    comment: bytes
    disk_start: int
    internal_attributes: int
    external_attributes: int
    local_header_offset: int
    #: The entry name decoded as ZIP says: UTF-8 when flag bit 11 is set, else CP437 (:func:`decode_name`),
    #: decoded once when the record is read.
    name: str

    @property
    def header_size(self) -> int:
        return CD_HEADER_SIZE + len(self.name_bytes) + len(self.extra) + len(self.comment)


def decode_name(name_bytes: bytes, flags: int) -> str:
    """An entry name decoded as ZIP says (APPNOTE 4.4.4 bit 11): UTF-8 (invalid bytes replaced) when flag bit 11
    is set, else CP437. Both agree with ASCII on bytes below 0x80, so an ASCII name takes the short way."""
    if name_bytes.isascii():
        return name_bytes.decode("ascii")
    if flags & UTF8_FLAG:
        return name_bytes.decode("utf-8", errors="replace")
    return name_bytes.decode("cp437")


class LocalFileHeader(NamedTuple):
    """A local file header at ``position``; ``data_offset`` is where the entry's (compressed) data starts.

    Immutable (a named tuple, as :class:`CentralDirectoryRecord`)."""

    position: int
    version_needed: int
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc32: int
    compressed_size: int
    uncompressed_size: int
    name_bytes: bytes
    extra: bytes

    @property
    def data_offset(self) -> int:
        return self.position + LOCAL_HEADER_SIZE + len(self.name_bytes) + len(self.extra)


@dataclass(frozen=True, slots=True)
class EndOfCentralDirectory:
    """The EOCD record at ``position`` (32-bit fields only)."""

    position: int
    disk_number: int
    cd_disk: int
    entries_on_disk: int
    total_entries: int
    cd_size: int
    cd_offset: int
    comment_length: int


@dataclass(frozen=True, slots=True)
class ZipLayout:
    """The EOCD and the CD records in CD order, as NuGet's signed-archive reader finds them."""

    size: int
    eocd: EndOfCentralDirectory
    records: tuple[CentralDirectoryRecord, ...]
    has_zip64_locator: bool

    @property
    def end_of_central_directory(self) -> int:
        """``EndOfCentralDirectory`` as NuGet computes it: the end of the last CD record."""
        last = self.records[-1]
        return last.position + last.header_size


def _corrupt(message: str) -> PackageFormatError:
    return PackageFormatError(f"the package is not a valid ZIP archive: {message}")


def read_layout(data: bytes | memoryview) -> ZipLayout:
    """Read the EOCD and the CD records the way NuGet's signed-archive reader does.

    Raises:
        PackageFormatError: no EOCD, a CD outside the file, a truncated record, too many records
            (more than :data:`MAX_ENTRIES`), or no record at all. ``code`` is ``None``: NuGet has no
            code for an unreadable archive (it fails to open it).
    """
    buf = memoryview(data)
    size = len(buf)
    if size < EOCD_SIZE:
        raise _corrupt(f"{size} bytes is too short to hold an end-of-central-directory record")
    raw = bytes(buf) if not isinstance(data, bytes) else data
    pos = raw.rfind(EOCD_SIGNATURE, 0, size - EOCD_SIZE + 4)
    while pos >= 0 and pos + EOCD_SIZE > size:
        pos = raw.rfind(EOCD_SIGNATURE, 0, pos)
    if pos < 0:
        raise _corrupt("no end-of-central-directory record")
    _sig, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment_len = _EOCD.unpack_from(buf, pos)
    eocd = EndOfCentralDirectory(pos, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment_len)
    has_locator = pos >= 20 and raw[pos - 20 : pos - 16] == ZIP64_LOCATOR_SIGNATURE
    if cd_offset >= pos:
        raise _corrupt(f"central directory offset {cd_offset} is not before the end record at {pos}")
    records: list[CentralDirectoryRecord] = []
    append = records.append
    make_record = CentralDirectoryRecord._make
    unpack = _CD.unpack_from
    at = cd_offset
    while at + 4 <= size and raw.startswith(CD_SIGNATURE, at):
        if len(records) >= MAX_ENTRIES:
            raise _corrupt(f"more than {MAX_ENTRIES} central directory records")
        if at + CD_HEADER_SIZE > size:
            raise _corrupt(f"central directory record at {at} is truncated")
        f = unpack(raw, at)
        name_start = at + CD_HEADER_SIZE
        extra_start = name_start + f[10]
        comment_start = extra_start + f[11]
        end = comment_start + f[12]
        if end > size:
            raise _corrupt(f"central directory record at {at} runs past the end of the file")
        name_bytes = raw[name_start:extra_start]
        # Fields in record order: position, f[1:10] (version made by ... uncompressed size), name, extra, comment,
        # f[13:17] (disk start ... local header offset), the decoded name.
        append(
            make_record(
                (
                    at,
                    *f[1:10],
                    name_bytes,
                    raw[extra_start:comment_start],
                    raw[comment_start:end],
                    *f[13:17],
                    name_bytes.decode("ascii") if name_bytes.isascii() else decode_name(name_bytes, f[3]),
                )
            )
        )
        at = end
    if not records:
        raise _corrupt("the central directory holds no entry")
    return ZipLayout(size=size, eocd=eocd, records=tuple(records), has_zip64_locator=has_locator)


def read_local_header(data: bytes | memoryview, position: int) -> LocalFileHeader:
    """Read the local file header at ``position``.

    Raises:
        PackageFormatError: the offset is outside the file, the signature is not ``PK\\x03\\x04``,
            or the header runs past the end of the file.
    """
    size = len(data)
    if position < 0 or position + LOCAL_HEADER_SIZE > size:
        raise _corrupt(f"local file header offset {position} is outside the file")
    f = _LFH.unpack_from(data, position)
    if f[0] != LFH_SIGNATURE:
        raise _corrupt(f"no local file header at offset {position}")
    start = position + LOCAL_HEADER_SIZE
    extra_start = start + f[9]
    end = extra_start + f[10]
    if end > size:
        raise _corrupt(f"local file header at {position} runs past the end of the file")
    # Fields: position, f[1:9] (version needed ... uncompressed size), name, extra. bytes() of a bytes slice is that
    # slice (no second copy); of a memoryview slice, a copy.
    return LocalFileHeader._make((position, *f[1:9], bytes(data[start:extra_start]), bytes(data[extra_start:end])))


def has_zip64_extra(extra: bytes) -> bool:
    """Whether an extra field block carries a ZIP64 extended-information field (id 0x0001)."""
    at = 0
    while at + 4 <= len(extra):
        field_id, length = struct.unpack_from("<HH", extra, at)
        if field_id == ZIP64_EXTRA_ID:
            return True
        at += 4 + length
    return False
