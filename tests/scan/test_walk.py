"""The walk over files one file pulls in (nuseal.scan._walk), shared by the MSBuild and PowerShell analysers."""

from __future__ import annotations

import hashlib

from nuseal.scan._walk import FileWalk
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import load_rules

from .scan_support import make_nupkg

FILES = {
    "build/a.targets": "a -> b c",
    "build/b.targets": "b -> a d",
    "build/c.targets": "c -> a",
    "build/d.targets": "d",
    "build/big.targets": "x" * 200,
}


def _links(data: bytes) -> list[str]:
    _, _, targets = data.decode().partition("->")
    return [f"build/{t}.targets" for t in targets.split()]


def _walk(pkg: ScanPackage, entries: list[str], **kwargs: int) -> list[tuple[str, str | None]]:
    walk = FileWalk(pkg, entries, limit=100, **kwargs)
    seen = []
    for file in walk:
        assert file.sha256 == hashlib.sha256(file.data).hexdigest()
        seen.append((file.path, file.via))
        walk.follow(_links(file.data), file.path)
    return seen


def test_breadth_first_each_file_once_through_a_cycle() -> None:
    pkg = ScanPackage.from_bytes(make_nupkg("Walk", files=FILES), source="walk.nupkg")
    assert _walk(pkg, ["build/a.targets"]) == [
        ("build/a.targets", None),
        ("build/b.targets", "build/a.targets"),
        ("build/c.targets", "build/a.targets"),
        ("build/d.targets", "build/b.targets"),
    ]
    assert pkg.problems == []


def test_an_unreadable_file_is_ns9004_and_the_walk_goes_on() -> None:
    pkg = ScanPackage.from_bytes(make_nupkg("Walk", files=FILES), source="walk.nupkg")
    seen = _walk(pkg, ["build/big.targets", "build/missing.targets", "build/d.targets"])
    assert seen == [("build/d.targets", None)]
    assert [(p.rule_id, p.path) for p in pkg.problems] == [
        ("NS9004", "build/big.targets"),
        ("NS9004", "build/missing.targets"),
    ]
    assert "at most 100" in pkg.problems[0].message


def test_max_files_bounds_the_paths_taken_unreadable_ones_included() -> None:
    pkg = ScanPackage.from_bytes(make_nupkg("Walk", files=FILES), source="walk.nupkg")
    assert _walk(pkg, ["build/missing.targets", "build/a.targets"], max_files=3) == [
        ("build/a.targets", None),
        ("build/b.targets", "build/a.targets"),
    ]


def test_a_whole_file_finding_names_the_file_and_its_hash() -> None:
    pkg = ScanPackage.from_bytes(make_nupkg("Walk", files=FILES), source="walk.nupkg")
    walk = FileWalk(pkg, ["build/d.targets"], limit=100)
    (file,) = list(walk)
    finding = walk.finding(load_rules(), "NS2001", "imported", file)
    assert (finding.location.path, finding.location.line) == ("build/d.targets", None)
    assert (finding.evidence, finding.file_sha256) == ("build/d.targets", hashlib.sha256(b"d").hexdigest())
    assert finding.package == pkg.ref
    assert walk.finding(load_rules(), "NS9007", "bad", file, evidence="why").evidence == "why"
