"""packages.lock.json (nuseal.client.lockfile): NuGet's text form (checked against dotnet's own output in
test_lockfile_dotnet.py), parsing, the project-match check that decides NU1004, and unchanged files left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.client.lockfile import (
    DependencyType,
    LockedPackage,
    LockFile,
    LockTarget,
    direct_mismatches,
    legacy_short,
    load_lock_file,
    parse_lock_file,
    render_lock_file,
    write_lock_file,
)
from nuseal.errors import RestoreError
from nuseal.package.version import NuGetVersion
from nuseal.package.version_range import VersionRange

#: What dotnet restore 3.1 wrote for a one-package project (whitespace, order and no final newline as it is).
DOTNET_TEXT = """{
  "version": 1,
  "dependencies": {
    ".NETCoreApp,Version=v3.1": {
      "A": {
        "type": "Direct",
        "requested": "[1.0.0, )",
        "resolved": "1.0.0",
        "contentHash": "Fr+IVRO3olmpLHTFslvjicoCenz2YpqSKgS50yia0GETDJcsdM3NHjS70xjumSqwOUiyDR/ChxiCYD1hC8f2Og==",
        "dependencies": {
          "B": "1.0.0"
        }
      },
      "B": {
        "type": "Transitive",
        "resolved": "2.0.0",
        "contentHash": "y5xiqNE7w7HUM6Gnhjs3q8VusvdBclMmpc19s1JuqMgE1t4/zmTDzxYC1ZoIGaFsvwc8LXYr2Ugdrl2Qe4fr5w=="
      }
    }
  }
}"""


def test_parse_then_render_gives_dotnets_bytes_back() -> None:
    lock = parse_lock_file(DOTNET_TEXT.encode())
    assert render_lock_file(lock) == DOTNET_TEXT
    [target] = lock.targets
    a = target.get("a")
    assert (
        a is not None
        and a.type is DependencyType.DIRECT
        and a.requested is not None
        and a.requested.normalized == "[1.0.0, )"
    )


def test_render_orders_by_type_then_id_and_dependencies_by_id() -> None:
    def pkg(pid: str, kind: DependencyType, deps: dict[str, str] | None = None) -> LockedPackage:
        return LockedPackage(pid, kind, NuGetVersion.parse("1.0"), None, "h", deps or {})

    target = LockTarget(
        ".NETStandard,Version=v2.0",
        (
            pkg("zeta", DependencyType.TRANSITIVE),
            pkg("Beta", DependencyType.DIRECT, {"z": "1.0.0", "B": "[1.0.0, 2.0.0)", "a": "1.0.0"}),
            pkg("alpha", DependencyType.TRANSITIVE),
            pkg("Alpha.Direct", DependencyType.DIRECT),
        ),
    )
    text = render_lock_file(LockFile(1, (target,)))
    assert text.index('"Alpha.Direct"') < text.index('"Beta"') < text.index('"alpha"') < text.index('"zeta"')
    assert text.index('"B": "[1.0.0, 2.0.0)"') < text.index('"a": "1.0.0"') < text.index('"z": "1.0.0"')


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("1.0", "1.0.0"),
        ("[1.0]", "[1.0.0]"),
        ("[1.0, 2.0)", "[1.0.0, 2.0.0)"),
        ("(, 2.0]", "(, 2.0.0]"),
        ("1.*", "1.0.0"),
    ],
)
def test_legacy_short_form(text: str, short: str) -> None:
    assert legacy_short(VersionRange.parse(text)) == short


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"version": 7, "dependencies": {}}',
        b'{"version": 1}',
        b'{"version": 1, "dependencies": {"net6.0": {"A": {"type": "Weird", "resolved": "1.0.0"}}}}',
        b'{"version": 1, "dependencies": {"net6.0": {"A": {"type": "Direct", "resolved": "x.y"}}}}',
    ],
)
def test_bad_lock_files_are_nu1004(data: bytes) -> None:
    with pytest.raises(RestoreError) as info:
        parse_lock_file(data, where="packages.lock.json")
    assert info.value.code is not None and info.value.code.value == "NU1004"


def test_direct_mismatches_name_what_changed() -> None:
    target = parse_lock_file(DOTNET_TEXT.encode()).targets[0]
    key = ".NETCoreApp,Version=v3.1"
    assert direct_mismatches(target, key, [("A", VersionRange.parse("1.0.0"))]) == []
    changed = direct_mismatches(target, key, [("A", VersionRange.parse("2.0.0")), ("C", VersionRange.parse("1.0"))])
    assert any("A: the project requests [2.0.0, )" in p for p in changed)
    assert any("C [1.0.0, ) is referenced but not locked" in p for p in changed)
    assert direct_mismatches(target, key, []) == ["A is locked as a direct dependency but no longer referenced"]
    assert direct_mismatches(None, key, []) == [f"the lock file has no target for {key}"]


def test_unchanged_lock_file_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "packages.lock.json"
    lock = parse_lock_file(DOTNET_TEXT.encode())
    assert write_lock_file(lock, path) is True
    mtime = path.stat().st_mtime_ns
    assert write_lock_file(lock, path) is False
    assert path.stat().st_mtime_ns == mtime
    assert load_lock_file(path).targets == lock.targets
