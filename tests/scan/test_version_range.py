"""NuGet version ranges (nuseal.package.version_range), checked against NuGet.Versioning itself."""

from __future__ import annotations

import json
import subprocess

import pytest

from nuseal.errors import PackageFormatError
from nuseal.package.version import NuGetVersion
from nuseal.package.version_range import FloatBehavior, FloatRange, VersionRange
from support import oracle

PROBES = [
    "0.9",
    "1.0",
    "1.0.0-alpha",
    "1.0.0-beta.2",
    "1.0.0",
    "1.0.1",
    "1.5",
    "1.5.0-rc.1",
    "2.0.0-beta",
    "2.0",
    "2.0.0+meta",
    "2.0.1",
    "10.0.0",
    "1.2.3.4",
    "1.2.3.4-pre",
]

CASES = [
    "1.0",
    "1.0.0",
    " 1.0 ",
    "[1.0]",
    "[1.0,]",
    "(1.0,)",
    "(1.0, )",
    "(,1.0]",
    "(,1.0)",
    "[1.0,2.0)",
    "[1.0, 2.0]",
    "(1.0,2.0)",
    "[1.0.0-beta,2.0.0)",
    "[1.0+meta, 2.0]",
    "[1.0.0-Beta, 1.0.0-beta]",
    "1.*",
    "1.0.*",
    "1.0.0.*",
    "*",
    "*-*",
    "1.0.0-*",
    "1.0.0-beta*",
    "1.0.0-beta.*",
    "1.0.0-beta-*",
    "1.*-*",
    "1.0.*-rc*",
    "1.2.3.*-alpha.*",
    "*-rc*",
    "[1.*, 2.0)",
    "[1.0.*, 1.0.5]",
    "1*",
    "1.2.3.4",
    # invalid
    "",
    "(1.0)",
    "[1.0)",
    "(1.0]",
    "(,)",
    "[,]",
    "[2.0, 1.0]",
    "[1.0, 1.0)",
    "[1.0, 2.0, 3.0]",
    "1.0.0.0.0",
    "1.*.0",
    "[1.0, 2.*]",
    "1.0+*",
    "**",
    "a.b",
    "[1.0",
    "1.0]",
    "1.0.0-",
    "[1.0.0-*, 2.0.0-*)",
]


def test_common_forms() -> None:
    r = VersionRange.parse("[1.0,2.0)")
    assert r.normalized == "[1.0.0, 2.0.0)"
    assert (r.satisfies("1.0"), r.satisfies("1.9.9"), r.satisfies("2.0"), r.satisfies("0.9")) == (
        True,
        True,
        False,
        False,
    )
    assert VersionRange.parse("1.0").normalized == "[1.0.0, )"
    assert VersionRange.parse("[1.0]").satisfies("1.0.0+build") is True
    assert VersionRange.parse("(1.0,)").satisfies("1.0") is False
    exact = VersionRange.parse("[1.0.0-BETA]")
    assert exact.satisfies("1.0.0-beta")


def test_floating() -> None:
    r = VersionRange.parse("1.*")
    assert r.is_floating and r.normalized == "[1.*, )"
    assert r.float_range is not None and r.float_range.behavior is FloatBehavior.MINOR
    assert r.satisfies("2.0")  # bounds only, as NuGet's Satisfies
    assert r.float_range.satisfies(NuGetVersion.parse("1.9")) and not r.float_range.satisfies(NuGetVersion.parse("2.0"))
    pre = VersionRange.parse("1.0.0-*")
    assert pre.min_version == NuGetVersion.parse("1.0.0-0") and pre.normalized == "[1.0.0-*, )"
    fr = FloatRange.parse("1.0.0-beta*")
    assert fr is not None and fr.satisfies(NuGetVersion.parse("1.0.0-beta.5"))
    assert not fr.satisfies(NuGetVersion.parse("1.0.0-alpha"))
    with pytest.raises(PackageFormatError, match="not a valid NuGet version range"):
        VersionRange.parse("1.*", allow_floating=False)


@pytest.mark.parametrize("text", ["(1.0)", "[1.0)", "(,)", "[2.0, 1.0]", "[1.0, 1.0)", "1.*.0", "[1.0, 2.*]", ""])
def test_invalid(text: str) -> None:
    assert VersionRange.try_parse(text) is None
    with pytest.raises(PackageFormatError):
        VersionRange.parse(text)


@pytest.mark.oracle
def test_against_nuget_versioning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    reason = oracle.oracle_unavailable_reason()
    if reason:
        pytest.skip(reason)
    batch = tmp_path / "ranges.jsonl"
    batch.write_text("".join(json.dumps({"op": "range", "range": c, "versions": PROBES}) + "\n" for c in CASES))
    run = subprocess.run(
        ["bash", str(oracle.RUN_SCRIPT), "versions", "--batch", str(batch)],
        capture_output=True,
        timeout=300,
        check=True,
    )
    answers = [json.loads(line) for line in run.stdout.decode().splitlines() if line.strip()]
    assert len(answers) == len(CASES)
    mismatches = []
    for case, answer in zip(CASES, answers, strict=True):
        ours = VersionRange.try_parse(case)
        valid = bool(answer.get("valid")) and "error" not in answer
        if (ours is not None) != valid:
            mismatches.append((case, "valid", ours is not None, valid, answer.get("error") or answer.get("message")))
            continue
        if ours is None:
            continue
        if ours.normalized != answer["normalized"]:
            mismatches.append((case, "normalized", ours.normalized, answer["normalized"]))
        if ours.is_floating != answer["isFloating"]:
            mismatches.append((case, "isFloating", ours.is_floating, answer["isFloating"]))
        theirs = {s["version"]: s["satisfies"] for s in answer["satisfies"]}
        for probe in PROBES:
            if ours.satisfies(probe) != theirs[probe]:
                mismatches.append((case, probe, ours.satisfies(probe), theirs[probe]))
    assert mismatches == []
