"""Fuzz target: the scan engine's .NET metadata reader (``nuseal.scan.clrmeta``: PE headers, sections, the CLI
header, metadata streams and every table of ECMA-335 II.22, read from untrusted package bytes) and the native
header reader (``nuseal.scan.compiled.inspect_native``: ELF and Mach-O).

The input is a PE file. The target reads its headers, and for a .NET assembly the metadata, every row of
every table, every ``#Strings`` and ``#Blob`` entry the rows point at, then runs the compiled-code analysis
(``inspect_pe``) over the same bytes. Allowed: :class:`nuseal.scan.clrmeta.MetadataError` from the reader
(its one documented error). ``inspect_pe`` documents that it never raises; it turns ``struct.error``,
``IndexError`` and ``ValueError`` into a "malformed" verdict as a last defence, so the target calls the
reader directly to see those as findings: any of them escaping the reader is a missing bounds check.
"""

from __future__ import annotations

import contextlib
import importlib.util

from fuzz._harness import Target, fuzz_main

NAME = "clrmeta"
MAX_LEN = 96 * 1024


def available() -> bool:
    """Whether the scan engine's metadata reader exists and imports here."""
    if importlib.util.find_spec("nuseal.scan.clrmeta") is None:
        return False
    importlib.import_module("nuseal.scan.clrmeta")
    return True


def build() -> Target:
    from nuseal.scan.clrmeta import TABLES, Metadata, MetadataError, PeFile
    from nuseal.scan.compiled import inspect_native, inspect_pe

    def read_everything(data: bytes) -> None:
        pe = PeFile(data)
        assert isinstance(pe.machine, str)
        if not pe.is_dotnet:
            return
        at, size = pe.metadata_span()
        md = Metadata(data, at, size)
        for _number, (table, columns) in TABLES.items():
            count = md.count(table)
            assert count >= 0
            names = tuple(name for name, _kind in columns)
            rows = md.columns(table, *names)
            assert len(rows) == count, (table, len(rows), count)
            for values in rows[:64]:
                for (_name, kind), value in zip(columns, values, strict=True):
                    if kind == "S":
                        with contextlib.suppress(MetadataError):
                            md.string(value)
                    elif kind == "B":
                        with contextlib.suppress(MetadataError):
                            md.blob_bytes(value)
            if count:
                assert md.row(table, 1).keys() == set(names)

    def one_input(data: bytes) -> None:
        with contextlib.suppress(MetadataError):
            read_everything(data)
        info = inspect_pe(data)
        assert info.malformed is None or isinstance(info.malformed, str)
        inspect_native(data[:4096])

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
