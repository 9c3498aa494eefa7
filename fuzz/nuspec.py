"""Fuzz target: the nuspec reader (``nuseal.package.nuspec.Nuspec.parse``, defusedxml underneath).

A parsed manifest must satisfy what the reader promises: a valid id and a version whose normalized
form parses back to the same version. Allowed: :class:`nuseal.errors.NusealError` (``PackageFormatError``).
"""

from __future__ import annotations

from fuzz._harness import Target, fuzz_main

NAME = "nuspec"
MAX_LEN = 16 * 1024


def build() -> Target:
    from nuseal.errors import NusealError
    from nuseal.package.nuspec import Nuspec, is_valid_id

    def one_input(data: bytes) -> None:
        try:
            nuspec = Nuspec.parse(data)
        except NusealError:
            return
        assert is_valid_id(nuspec.id), nuspec.id
        assert nuspec.authors and nuspec.description

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
