"""Fuzz target: the .nupkg ZIP reader (``nuseal.package``).

Drives what the verifier, the restore and the feed do with an untrusted package: ``read_layout``,
``PackageArchive.from_bytes``, ``structure_problems`` (documented never to raise, so any exception there is
a finding), ``open_problem``, ``uses_zip64``, every entry through the bounded ``read``, the NuGet
signature-entry rules (``signature_record``, ``read_signature``), the package hash, ``without_signature``
and the nuspec. Allowed: :class:`nuseal.errors.NusealError` (the APIs document ``PackageFormatError``).
"""

from __future__ import annotations

from contextlib import suppress

from fuzz._harness import Target, fuzz_main

NAME = "zip_reader"
#: Mutated inputs up to this size (bytes): the miniature seeds fit, real packages (27 KB to 2.6 MB) do not and
#: would make every execution slow (each one hashes and inflates the whole input).
MAX_LEN = 16 * 1024


def build() -> Target:
    from nuseal.errors import NusealError
    from nuseal.hashalg import HashAlgorithm
    from nuseal.package._zip import read_layout
    from nuseal.package.archive import PackageArchive

    def one_input(data: bytes) -> None:
        with suppress(NusealError):
            read_layout(data)
        try:
            archive = PackageArchive.from_bytes(data)
        except NusealError:
            return
        problems = archive.structure_problems  # never raises
        assert isinstance(problems, tuple)
        _ = archive.open_problem, archive.uses_zip64, archive.is_signed
        for record in archive.records:
            with suppress(NusealError):
                archive.read_record(record)
        for step in (
            archive.signature_record,
            archive.read_signature,
            archive.content_hash,
            lambda: archive.package_hash(HashAlgorithm.SHA256),
            archive.nuspec,
        ):
            with suppress(NusealError):
                step()
        try:
            unsigned = archive.without_signature()
        except NusealError:
            return
        with suppress(NusealError):
            assert isinstance(PackageArchive.from_bytes(unsigned).structure_problems, tuple)

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
