"""Fuzz target: the scan engine's MSBuild reader (``nuseal.scan.msbuild.analyse``: defusedxml with line
numbers, imports, UsingTask/inline code, Exec commands through the PowerShell analysis, property functions).

The input is the package's ``build/Fuzz.targets``; the other MSBuild files of the made-up package hold the
same bytes, so the input's ``Import`` elements can reach them. ``analyse`` reports a file that does not parse
as NS9007 and is not expected to raise: any exception is a finding.
"""

from __future__ import annotations

import importlib.util

from fuzz._harness import Target, fuzz_main

NAME = "msbuild"
MAX_LEN = 16 * 1024


def available() -> bool:
    """Whether the scan engine's MSBuild reader exists and imports here."""
    if importlib.util.find_spec("nuseal.scan.msbuild") is None:
        return False
    importlib.import_module("nuseal.scan.msbuild")
    return True


def build() -> Target:
    from nuseal.scan.model import PackageRef
    from nuseal.scan.msbuild import analyse
    from nuseal.scan.package import EntryReadError, ScanPackage
    from nuseal.scan.rules import load_rules

    rules = load_rules()
    paths = (
        "build/Fuzz.targets",
        "buildTransitive/net8.0/Fuzz.props",
        "build/imported.targets",
        "build/tasks/Task.cs",
        "tools/install.ps1",
    )

    def one_input(data: bytes) -> None:
        def reader(path: str, limit: int) -> bytes:
            if path not in paths:
                raise EntryReadError(path, f"the package has no entry {path!r}")
            return data[:limit]

        package = ScanPackage(
            ref=PackageRef("Fuzz", "1.0.0", "fuzz"),
            nuspec=None,
            paths=paths,
            sizes=dict.fromkeys(paths, len(data)),
            reader=reader,
            stored_size=len(data),
        )
        for finding in analyse(package, rules):
            assert finding.rule_id, finding

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
