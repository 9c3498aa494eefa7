"""Container-hardening findings as typed values: nuseal's own structure codes (NuGet has no code for these).

:attr:`nuseal.package.PackageArchive.structure_problems` returns :class:`StructureProblem` values; consumers branch
on :attr:`StructureProblem.code`, never on the message. The message keeps the wording reports print.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["StructureCode", "StructureProblem"]


class StructureCode(enum.StrEnum):
    """What is wrong with a package's ZIP container (``PackageArchive.structure_problems``).

    The values are stable identifiers (they appear in ``nuseal verify --format json`` as ``structure[].code``).
    """

    ZIP64 = "zip64"  # ZIP64 records (NuGet packages must not use ZIP64)
    ENTRY_COUNT_MISMATCH = "entry-count-mismatch"  # the end record's counts differ from the central directory's
    MULTI_DISK = "multi-disk"  # a multi-disk archive
    EMPTY_NAME = "empty-name"
    NAME_TOO_LONG = "name-too-long"  # longer than MAX_NAME_LENGTH bytes
    NAME_NUL = "name-nul"  # a NUL character in a name
    ABSOLUTE_PATH = "absolute-path"
    DRIVE_QUALIFIED_PATH = "drive-qualified-path"
    PATH_ESCAPE = "path-escape"  # a '..' segment
    DUPLICATE_NAME = "duplicate-name"  # the same name twice (other than the signature entry: NU3005)
    EXTRACTION_COLLISION = "extraction-collision"  # two names extract to one file (case, backslash, Unicode form)
    ENCRYPTED = "encrypted"
    UNSUPPORTED_METHOD = "unsupported-method"  # not stored or deflate
    STORED_SIZE_MISMATCH = "stored-size-mismatch"  # stored entry whose compressed and uncompressed sizes differ
    ENTRY_TOO_LARGE = "entry-too-large"  # over MAX_ENTRY_SIZE uncompressed
    COMPRESSION_RATIO = "compression-ratio"  # an entry over MAX_COMPRESSION_RATIO:1
    LOCAL_HEADER_UNREADABLE = "local-header-unreadable"
    LOCAL_HEADER_NAME_MISMATCH = "local-header-name-mismatch"
    LOCAL_HEADER_METHOD_MISMATCH = "local-header-method-mismatch"
    DATA_OUT_OF_BOUNDS = "data-out-of-bounds"  # data runs into the central directory or past the file
    TOTAL_TOO_LARGE = "total-too-large"  # entries add up to more than MAX_TOTAL_UNCOMPRESSED
    TOTAL_COMPRESSION_RATIO = "total-compression-ratio"  # the whole archive over MAX_COMPRESSION_RATIO:1
    OVERLAPPING_ENTRIES = "overlapping-entries"


@dataclass(frozen=True, slots=True)
class StructureProblem:
    """One container-hardening finding: its code, the entry it concerns (``None`` for the whole archive) and
    the message reports print (``str()`` gives the message)."""

    code: StructureCode
    message: str
    entry: str | None = None

    def __str__(self) -> str:
        return self.message
