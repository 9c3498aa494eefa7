"""A minimal, bounded reader of PE headers and .NET (ECMA-335) metadata, for :mod:`nuseal.scan.compiled`.

Why our own reader and not ``dnfile``: see ``docs/adr/0005-own-clr-metadata-reader.md`` (dnfile builds Python
objects for every table, row and section: ~12 ms per assembly, 90 % of the scan; this reader decodes only the
few columns the rules look at, with ``struct``, in well under a millisecond for a typical assembly).

What it reads (ECMA-335 6th edition, Partition II):

* the MZ/PE headers and section table (PE/COFF specification; RVA to file offset through the sections);
* the CLI header (II.25.3.3) and the metadata root with its stream headers (II.24.2.1, II.24.2.2);
* the ``#~`` / ``#-`` table stream header (II.24.2.6): row counts of every present table, from which the size of
  every row follows (column schemas below, II.22); then only the rows of the tables asked for;
* the ``#Strings``, ``#Blob`` and ``#US`` heaps (II.24.2.3, II.24.2.4) by index.

Input is untrusted: every offset and count is checked against the bytes given before use, row counts are
bounded by :data:`MAX_ROWS` (a metadata token has 24 bits of row number), streams by :data:`MAX_STREAMS`, and
every problem raises :class:`MetadataError` (one message, never another exception type for bad bytes). Nothing
is loaded or executed; the cost is linear in the rows of the tables read.

The input may be a **prefix** of the file (large files are read only as far as needed): :class:`PeFile` reports
how many bytes the part it needs spans (:attr:`PeFile.metadata_end`) so that the caller can read that much.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "MAX_ROWS",
    "MetadataError",
    "Metadata",
    "PeFile",
    "TABLES",
]

#: Most rows a table may declare (a metadata token's row number has 24 bits, ECMA-335 II.22).
MAX_ROWS = (1 << 24) - 1
#: Most streams a metadata root may declare (real assemblies have 5; ECMA-335 defines 5 names).
MAX_STREAMS = 16
#: Most sections a PE file may declare (the PE/COFF specification's loader limit).
MAX_SECTIONS = 96

_CLR_DIRECTORY = 14
_MACHINES = {
    0x014C: "x86",
    0x8664: "x64",
    0xAA64: "ARM64",
    0x01C0: "ARM",
    0x01C4: "ARMv7 (Thumb-2)",
    0x0200: "IA-64",
    0xA641: "ARM64EC",
    0x5064: "RISC-V 64",
}


class MetadataError(ValueError):
    """The bytes are not a well-formed PE file / .NET metadata (the message says where)."""


# ---------------------------------------------------------------------------------------------- schema
# Coded indexes (II.24.2.6): name -> (tag bits, tables by tag; None for an unused tag).
_CODED: dict[str, tuple[int, tuple[int | None, ...]]] = {
    "TypeDefOrRef": (2, (0x02, 0x01, 0x1B)),
    "HasConstant": (2, (0x04, 0x08, 0x17)),
    "HasCustomAttribute": (
        5,
        (
            0x06,
            0x04,
            0x01,
            0x02,
            0x08,
            0x09,
            0x0A,
            0x00,
            0x0E,
            0x17,
            0x14,
            0x11,
            0x1A,
            0x1B,
            0x20,
            0x23,
            0x26,
            0x27,
            0x28,
            0x2A,
            0x2C,
            0x2B,
        ),
    ),
    "HasFieldMarshal": (1, (0x04, 0x08)),
    "HasDeclSecurity": (2, (0x02, 0x06, 0x20)),
    "MemberRefParent": (3, (0x02, 0x01, 0x1A, 0x06, 0x1B)),
    "HasSemantics": (1, (0x14, 0x17)),
    "MethodDefOrRef": (1, (0x06, 0x0A)),
    "MemberForwarded": (1, (0x04, 0x06)),
    "Implementation": (2, (0x26, 0x23, 0x27)),
    "CustomAttributeType": (3, (None, None, 0x06, 0x0A, None)),
    "ResolutionScope": (2, (0x00, 0x1A, 0x23, 0x01)),
    "TypeOrMethodDef": (1, (0x02, 0x06)),
}

# Column kinds: "2"/"4" fixed bytes, "S"/"G"/"B" a #Strings/#GUID/#Blob index, "t:0xNN" a simple index into table
# NN, "c:Name" a coded index. Tables 0x00-0x2C of II.22 (the ones an assembly can hold), name and columns.
TABLES: dict[int, tuple[str, tuple[tuple[str, str], ...]]] = {
    0x00: ("Module", (("Generation", "2"), ("Name", "S"), ("Mvid", "G"), ("EncId", "G"), ("EncBaseId", "G"))),
    0x01: ("TypeRef", (("ResolutionScope", "c:ResolutionScope"), ("TypeName", "S"), ("TypeNamespace", "S"))),
    0x02: (
        "TypeDef",
        (
            ("Flags", "4"),
            ("TypeName", "S"),
            ("TypeNamespace", "S"),
            ("Extends", "c:TypeDefOrRef"),
            ("FieldList", "t:04"),
            ("MethodList", "t:06"),
        ),
    ),
    0x03: ("FieldPtr", (("Field", "t:04"),)),
    0x04: ("Field", (("Flags", "2"), ("Name", "S"), ("Signature", "B"))),
    0x05: ("MethodPtr", (("Method", "t:06"),)),
    0x06: (
        "MethodDef",
        (("RVA", "4"), ("ImplFlags", "2"), ("Flags", "2"), ("Name", "S"), ("Signature", "B"), ("ParamList", "t:08")),
    ),
    0x07: ("ParamPtr", (("Param", "t:08"),)),
    0x08: ("Param", (("Flags", "2"), ("Sequence", "2"), ("Name", "S"))),
    0x09: ("InterfaceImpl", (("Class", "t:02"), ("Interface", "c:TypeDefOrRef"))),
    0x0A: ("MemberRef", (("Class", "c:MemberRefParent"), ("Name", "S"), ("Signature", "B"))),
    0x0B: ("Constant", (("Type", "2"), ("Parent", "c:HasConstant"), ("Value", "B"))),
    0x0C: ("CustomAttribute", (("Parent", "c:HasCustomAttribute"), ("Type", "c:CustomAttributeType"), ("Value", "B"))),
    0x0D: ("FieldMarshal", (("Parent", "c:HasFieldMarshal"), ("NativeType", "B"))),
    0x0E: ("DeclSecurity", (("Action", "2"), ("Parent", "c:HasDeclSecurity"), ("PermissionSet", "B"))),
    0x0F: ("ClassLayout", (("PackingSize", "2"), ("ClassSize", "4"), ("Parent", "t:02"))),
    0x10: ("FieldLayout", (("Offset", "4"), ("Field", "t:04"))),
    0x11: ("StandAloneSig", (("Signature", "B"),)),
    0x12: ("EventMap", (("Parent", "t:02"), ("EventList", "t:14"))),
    0x13: ("EventPtr", (("Event", "t:14"),)),
    0x14: ("Event", (("EventFlags", "2"), ("Name", "S"), ("EventType", "c:TypeDefOrRef"))),
    0x15: ("PropertyMap", (("Parent", "t:02"), ("PropertyList", "t:17"))),
    0x16: ("PropertyPtr", (("Property", "t:17"),)),
    0x17: ("Property", (("Flags", "2"), ("Name", "S"), ("Type", "B"))),
    0x18: ("MethodSemantics", (("Semantics", "2"), ("Method", "t:06"), ("Association", "c:HasSemantics"))),
    0x19: (
        "MethodImpl",
        (("Class", "t:02"), ("MethodBody", "c:MethodDefOrRef"), ("MethodDeclaration", "c:MethodDefOrRef")),
    ),
    0x1A: ("ModuleRef", (("Name", "S"),)),
    0x1B: ("TypeSpec", (("Signature", "B"),)),
    0x1C: (
        "ImplMap",
        (("MappingFlags", "2"), ("MemberForwarded", "c:MemberForwarded"), ("ImportName", "S"), ("ImportScope", "t:1A")),
    ),
    0x1D: ("FieldRVA", (("RVA", "4"), ("Field", "t:04"))),
    0x1E: ("EncLog", (("Token", "4"), ("FuncCode", "4"))),
    0x1F: ("EncMap", (("Token", "4"),)),
    0x20: (
        "Assembly",
        (
            ("HashAlgId", "4"),
            ("MajorVersion", "2"),
            ("MinorVersion", "2"),
            ("BuildNumber", "2"),
            ("RevisionNumber", "2"),
            ("Flags", "4"),
            ("PublicKey", "B"),
            ("Name", "S"),
            ("Culture", "S"),
        ),
    ),
    0x21: ("AssemblyProcessor", (("Processor", "4"),)),
    0x22: ("AssemblyOS", (("OSPlatformID", "4"), ("OSMajorVersion", "4"), ("OSMinorVersion", "4"))),
    0x23: (
        "AssemblyRef",
        (
            ("MajorVersion", "2"),
            ("MinorVersion", "2"),
            ("BuildNumber", "2"),
            ("RevisionNumber", "2"),
            ("Flags", "4"),
            ("PublicKeyOrToken", "B"),
            ("Name", "S"),
            ("Culture", "S"),
            ("HashValue", "B"),
        ),
    ),
    0x24: ("AssemblyRefProcessor", (("Processor", "4"), ("AssemblyRef", "t:23"))),
    0x25: (
        "AssemblyRefOS",
        (("OSPlatformID", "4"), ("OSMajorVersion", "4"), ("OSMinorVersion", "4"), ("AssemblyRef", "t:23")),
    ),
    0x26: ("File", (("Flags", "4"), ("Name", "S"), ("HashValue", "B"))),
    0x27: (
        "ExportedType",
        (
            ("Flags", "4"),
            ("TypeDefId", "4"),
            ("TypeName", "S"),
            ("TypeNamespace", "S"),
            ("Implementation", "c:Implementation"),
        ),
    ),
    0x28: (
        "ManifestResource",
        (("Offset", "4"), ("Flags", "4"), ("Name", "S"), ("Implementation", "c:Implementation")),
    ),
    0x29: ("NestedClass", (("NestedClass", "t:02"), ("EnclosingClass", "t:02"))),
    0x2A: ("GenericParam", (("Number", "2"), ("Flags", "2"), ("Owner", "c:TypeOrMethodDef"), ("Name", "S"))),
    0x2B: ("MethodSpec", (("Method", "c:MethodDefOrRef"), ("Instantiation", "B"))),
    0x2C: ("GenericParamConstraint", (("Owner", "t:2A"), ("Constraint", "c:TypeDefOrRef"))),
}
_TABLE_IDS = {name: number for number, (name, _cols) in TABLES.items()}
_TABLE_KINDS = {n: tuple(kind for _col, kind in cols) for n, (_name, cols) in TABLES.items()}
_TABLE_COLUMNS = {n: tuple(col for col, _kind in cols) for n, (_name, cols) in TABLES.items()}
_ALL_KINDS = {kind for kinds in _TABLE_KINDS.values() for kind in kinds}
#: Simple index kinds ("t:NN") -> the table indexed; 4 bytes from 2^16 rows on (II.24.2.6).
_SIMPLE_KINDS = {kind: int(kind[2:], 16) for kind in _ALL_KINDS if kind.startswith("t:")}
#: Coded index kinds ("c:Name") -> (rows from which it takes 4 bytes: 2^(16 - tag bits), the tables it can index).
_CODED_KINDS = {
    kind: (1 << (16 - _CODED[kind[2:]][0]), tuple(t for t in _CODED[kind[2:]][1] if t is not None))
    for kind in _ALL_KINDS
    if kind.startswith("c:")
}
#: struct.calcsize of row formats seen (a few hundred possible: widths of at most 6 columns).
_ROW_SIZES: dict[str, int] = {}


def _u16(data: bytes | memoryview, at: int, end: int, what: str) -> int:
    if at < 0 or at + 2 > end:
        raise MetadataError(f"{what} is outside the file")
    return int.from_bytes(data[at : at + 2], "little")


def _u32(data: bytes | memoryview, at: int, end: int, what: str) -> int:
    if at < 0 or at + 4 > end:
        raise MetadataError(f"{what} is outside the file")
    return int.from_bytes(data[at : at + 4], "little")


@dataclass(frozen=True, slots=True)
class _Section:
    """A section header's VirtualSize, VirtualAddress, SizeOfRawData, PointerToRawData (PE/COFF 3.1), in file order."""

    virtual_size: int
    rva: int
    raw_size: int
    raw_offset: int


class PeFile:
    """The headers of a PE file (possibly given only a prefix of it).

    Attributes:
        machine: the COFF machine type's name ("x64", "x86", "ARM64"...; ``"machine 0x...."`` when unknown).
        clr: the CLI header's ``(rva, size)`` when the file is a .NET assembly, else ``None``.

    Raises:
        MetadataError: no MZ header, no PE signature, an optional header or section table outside ``data``.
    """

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data
        end = len(data)
        if end < 0x40 or bytes(data[:2]) != b"MZ":
            raise MetadataError("no MZ header")
        lfanew = _u32(data, 0x3C, end, "e_lfanew")
        if lfanew + 24 > end or bytes(data[lfanew : lfanew + 4]) != b"PE\x00\x00":
            raise MetadataError("no PE signature at e_lfanew")
        machine, sections, _ts, _sym, _nsym, opt_size, _chars = struct.unpack_from("<HHIIIHH", data, lfanew + 4)
        opt = lfanew + 24
        if opt_size < 2 or opt + opt_size > end:
            raise MetadataError("optional header outside the file")
        (magic,) = struct.unpack_from("<H", data, opt)
        if magic == 0x10B:
            dirs_at, count_at = opt + 96, opt + 92
        elif magic == 0x20B:
            dirs_at, count_at = opt + 112, opt + 108
        else:
            raise MetadataError(f"unknown optional header magic 0x{magic:x}")
        self.machine = _MACHINES.get(machine, f"machine 0x{machine:04x}")
        self.clr: tuple[int, int] | None = None
        if count_at + 4 <= opt + opt_size:
            count = _u32(data, count_at, end, "data directory count")
            slot = dirs_at + 8 * _CLR_DIRECTORY
            if count > _CLR_DIRECTORY and slot + 8 <= opt + opt_size:
                rva, size = struct.unpack_from("<II", data, slot)
                if rva and size:
                    self.clr = (rva, size)
        if sections > MAX_SECTIONS:
            raise MetadataError(f"{sections} sections (at most {MAX_SECTIONS})")
        table = opt + opt_size
        if table + 40 * sections > end:
            raise MetadataError("section table outside the file")
        self.sections = tuple(_Section(*struct.unpack_from("<IIII", data, table + 40 * i + 8)) for i in range(sections))

    @property
    def is_dotnet(self) -> bool:
        """``True`` when the optional header has a CLI header data directory (ECMA-335 II.25.2.3.3)."""
        return self.clr is not None

    def offset(self, rva: int, size: int, what: str) -> int:
        """The file offset of ``size`` bytes at ``rva`` (within one section's raw data).

        Raises:
            MetadataError: the range is in no section's raw data.
        """
        for s in self.sections:
            if s.rva <= rva and rva + size <= s.rva + max(s.virtual_size, s.raw_size):
                at = rva - s.rva
                if at + size > s.raw_size:
                    break
                return s.raw_offset + at
        raise MetadataError(f"{what} (RVA 0x{rva:x}, {size} bytes) is in no section of the file")

    def metadata_span(self) -> tuple[int, int]:
        """``(file offset, size)`` of the metadata root, from the CLI header (needs the CLI header's bytes).

        Raises:
            MetadataError: not .NET, or the CLI header / metadata directory points outside the sections.
        """
        if self.clr is None:
            raise MetadataError("no CLI header")
        rva, size = self.clr
        if size < 72:
            raise MetadataError(f"CLI header of {size} bytes (72 expected)")
        at = self.offset(rva, 72, "the CLI header")
        if at + 72 > len(self.data):
            raise MetadataError("the CLI header is outside the bytes read")
        md_rva, md_size = struct.unpack_from("<II", self.data, at + 8)
        if not md_rva or md_size < 20:
            raise MetadataError("the CLI header has no metadata directory")
        return self.offset(md_rva, md_size, "the metadata"), md_size

    def cli_header_end(self) -> int:
        """File offset just past the CLI header (how much of the file :meth:`metadata_span` needs)."""
        if self.clr is None:
            raise MetadataError("no CLI header")
        return self.offset(self.clr[0], 72, "the CLI header") + 72


class Metadata:
    """The metadata of one assembly (ECMA-335 II.24): heaps and row access to any table.

    ``data`` is the file (or a prefix covering the metadata); ``at``/``size`` the metadata root's span.

    Raises:
        MetadataError: any malformed or out-of-bounds structure.
    """

    def __init__(self, data: bytes | memoryview, at: int, size: int) -> None:
        if at < 0 or size < 20 or at + size > len(data):
            raise MetadataError("the metadata is outside the file")
        md = memoryview(data)[at : at + size]
        end = len(md)
        if _u32(md, 0, end, "metadata signature") != 0x424A5342:
            raise MetadataError("no metadata root signature (BSJB)")
        vlen = _u32(md, 12, end, "metadata version length")
        if vlen > 255 or 16 + vlen + 4 > end:
            raise MetadataError(f"metadata version string of {vlen} bytes")
        pos = 16 + ((vlen + 3) & ~3)
        nstreams = _u16(md, pos + 2, end, "stream count")
        if nstreams > MAX_STREAMS:
            raise MetadataError(f"{nstreams} metadata streams (at most {MAX_STREAMS})")
        pos += 4
        streams: dict[str, memoryview] = {}
        for _ in range(nstreams):
            off = _u32(md, pos, end, "stream header")
            ssize = _u32(md, pos + 4, end, "stream header")
            name_end = bytes(md[pos + 8 : min(pos + 8 + 32, end)]).find(b"\x00")
            if name_end < 0:
                raise MetadataError("a stream name is not terminated within 32 bytes")
            name = bytes(md[pos + 8 : pos + 8 + name_end]).decode("ascii", "replace")
            pos += 8 + ((name_end + 4) & ~3)
            if off + ssize > end:
                raise MetadataError(f"stream {name!r} runs past the metadata")
            streams.setdefault(name, md[off : off + ssize])
        tables = streams.get("#~") or streams.get("#-")
        if tables is None:
            raise MetadataError("no #~ table stream")
        self.strings = streams.get("#Strings", memoryview(b""))
        self.blob = streams.get("#Blob", memoryview(b""))
        self.user_strings = streams.get("#US", memoryview(b""))
        self._string_cache: dict[int, str] = {}
        self._strings_bytes = bytes(self.strings)  # one copy: bytes.find is C, memoryview has none
        self._parse_tables(tables)

    def _parse_tables(self, ts: memoryview) -> None:
        end = len(ts)
        if end < 24:
            raise MetadataError("table stream header is truncated")
        heap_sizes = ts[6]
        valid, _sorted = struct.unpack_from("<QQ", ts, 8)
        unknown = valid & ~((1 << 0x2D) - 1)
        if unknown:
            raise MetadataError(f"unknown metadata tables present (mask 0x{unknown:x})")
        present = [n for n in range(0x2D) if valid >> n & 1]
        pos = 24 + 4 * len(present)
        if pos > end:
            raise MetadataError("table row counts are truncated")
        counts = struct.unpack_from(f"<{len(present)}I", ts, 24)
        if counts and max(counts) > MAX_ROWS:
            raise MetadataError(f"a table declares {max(counts)} rows (at most {MAX_ROWS})")
        rows = dict.fromkeys(TABLES, 0)
        rows.update(zip(present, counts, strict=True))
        if heap_sizes & 0x20:  # #- streams: 4 bytes of extra data after the row counts
            pos += 4
        self.rows = rows
        # column kind -> struct code ("H" 2 bytes, "I" 4 bytes) for this assembly's row counts and heap sizes
        codes = {
            "S": "I" if heap_sizes & 1 else "H",
            "G": "I" if heap_sizes & 2 else "H",
            "B": "I" if heap_sizes & 4 else "H",
            "2": "H",
            "4": "I",
        }
        for kind, table in _SIMPLE_KINDS.items():
            codes[kind] = "H" if rows[table] < 1 << 16 else "I"
        for kind, (limit, targets) in _CODED_KINDS.items():
            codes[kind] = "H" if max(map(rows.__getitem__, targets)) < limit else "I"
        self._layout: dict[int, tuple[int, int, str, tuple[str, ...]]] = {}
        for n, count in zip(present, counts, strict=True):  # tables without rows take no room (II.24.2.6)
            fmt = "<" + "".join(map(codes.__getitem__, _TABLE_KINDS[n]))
            row_size = _ROW_SIZES.get(fmt) or _ROW_SIZES.setdefault(fmt, struct.calcsize(fmt))
            if pos + row_size * count > end:
                raise MetadataError(f"table {TABLES[n][0]} runs past the table stream")
            self._layout[n] = (pos, count, fmt, _TABLE_COLUMNS[n])
            pos += row_size * count
        self._tables = ts

    # ------------------------------------------------------------------ access
    def count(self, table: str) -> int:
        """Rows of ``table`` (by its II.22 name)."""
        return self.rows[_TABLE_IDS[table]]

    def _table(self, table: str) -> tuple[int, int, str, tuple[str, ...]]:
        found = self._layout.get(_TABLE_IDS[table])
        if found is None:  # present in the schema, no rows in this assembly
            return 0, 0, "<", _TABLE_COLUMNS[_TABLE_IDS[table]]
        return found

    def columns(self, table: str, *names: str) -> list[tuple[int, ...]]:
        """The raw values of columns ``names`` (in the table's column order) of every row of ``table`` (row 1
        first): heap offsets, raw simple indexes (1-based) and coded indexes (tag in the low bits). Unpacked by
        ``struct`` with the other columns skipped as padding: no Python code runs per row.

        Raises:
            ValueError: ``names`` are not columns of ``table`` in its order (a programming error).
        """
        pos, count, fmt, cols = self._table(table)
        if not count:
            return []
        picks = [cols.index(n) for n in names]
        if picks != sorted(picks):
            raise ValueError(f"columns of {table} must be asked in table order: {names}")
        size = struct.calcsize(fmt)
        pick_fmt = "<" + "".join(
            code if i in picks else ("2x" if code == "H" else "4x") for i, code in enumerate(fmt[1:])
        )
        return list(struct.iter_unpack(pick_fmt, self._tables[pos : pos + size * count]))

    def row(self, table: str, index: int) -> dict[str, int]:
        """Row ``index`` (1-based) of ``table`` as ``{column: raw value}``.

        Raises:
            MetadataError: no such row.
        """
        pos, count, fmt, cols = self._table(table)
        if not 1 <= index <= count:
            raise MetadataError(f"{table} has no row {index}")
        size = struct.calcsize(fmt)
        return dict(zip(cols, struct.unpack_from(fmt, self._tables, pos + size * (index - 1)), strict=True))

    def string(self, index: int) -> str:
        """The ``#Strings`` heap entry at ``index`` (UTF-8, NUL-terminated; bad bytes replaced).

        Raises:
            MetadataError: ``index`` is outside the heap or the string is not terminated.
        """
        found = self._string_cache.get(index)
        if found is not None:
            return found
        heap = self._strings_bytes
        if index >= len(heap):
            raise MetadataError(f"#Strings index {index} is outside the heap")
        stop = heap.find(b"\x00", index)
        if stop < 0:
            raise MetadataError(f"#Strings entry {index} is not terminated")
        text = heap[index:stop].decode("utf-8", "replace")
        self._string_cache[index] = text
        return text

    def blob_bytes(self, index: int) -> bytes:
        """The ``#Blob`` heap entry at ``index`` (its compressed length prefix removed, II.24.2.4).

        Raises:
            MetadataError: ``index`` or the entry's length runs outside the heap.
        """
        return _heap_entry(self.blob, index, "#Blob")


def _heap_entry(heap: memoryview, index: int, what: str) -> bytes:
    end = len(heap)
    if index >= end:
        raise MetadataError(f"{what} index {index} is outside the heap")
    first = heap[index]
    if first & 0x80 == 0:
        length, skip = first, 1
    elif first & 0xC0 == 0x80 and index + 2 <= end:
        length, skip = (first & 0x3F) << 8 | heap[index + 1], 2
    elif first & 0xE0 == 0xC0 and index + 4 <= end:
        length = (first & 0x1F) << 24 | heap[index + 1] << 16 | heap[index + 2] << 8 | heap[index + 3]
        skip = 4
    else:
        raise MetadataError(f"{what} entry {index} has a bad length prefix")
    if index + skip + length > end:
        raise MetadataError(f"{what} entry {index} runs past the heap")
    return bytes(heap[index + skip : index + skip + length])
