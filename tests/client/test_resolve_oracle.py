"""Differential tests of the version rules restore uses against NuGet.Versioning / NuGet.Frameworks 6.14.3
(``../shared/tools/nuget-oracle`` ``versions --batch`` and ``frameworks --batch``): the version a range picks from a
list (``FindBestMatch``, stable-only unless the range has prerelease bounds, floats taking the highest match), the
legacy short form the lock file writes, the pretty-printed range in NU messages, and the dependency group picked for
the project frameworks restore supports."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nuseal.client.lockfile import legacy_short
from nuseal.client.resolve import best_match, pretty_print, select_group
from nuseal.package.version import NuGetVersion
from nuseal.package.version_range import VersionRange

pytestmark = pytest.mark.oracle

SCRIPT = Path(__file__).resolve().parents[3] / "shared" / "tools" / "nuget-oracle" / "run-oracle.sh"

RANGES = [
    "1.0",
    "1.0.0-beta",
    "[1.0]",
    "[1.0,2.0)",
    "[1.0,2.0]",
    "(1.0,2.0)",
    "(,2.0]",
    "(,2.0-beta]",
    "[1.5-alpha,2.0)",
    "1.*",
    "1.0.*",
    "1.*-*",
    "1.0.0-*",
    "1.0.0-beta*",
    "*",
    "*-*",
    "[1.*, 2.0)",
    "2.0",
    "3.0",
    "[0.5, 1.0)",
]
VERSION_SETS = [
    ["0.9.0", "1.0.0", "1.0.1", "1.5.0", "2.0.0", "2.1.0"],
    ["1.0.0-alpha", "1.0.0-beta", "1.0.0-beta.2", "1.1.0-rc.1", "1.2.0", "2.0.0-beta"],
    ["1.0.1", "1.0.2-beta", "1.1.0", "1.9.9", "2.0.0-beta", "3.0.0"],
    ["1.6.0-preview", "1.7.0-preview", "2.0.0"],
    ["0.1.0", "0.5.0", "0.9.0-rc"],
    ["1.0.0.1", "1.0.0.2", "1.0.0"],
]


def _batch(kind: str, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    run = subprocess.run(
        ["bash", str(SCRIPT), kind, "--batch", "-"],
        input="\n".join(json.dumps(x) for x in lines),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if run.returncode != 0:
        pytest.fail(f"oracle {kind} failed: {run.stderr[-2000:]}")
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def test_best_match_legacy_short_and_pretty_print_agree_with_nuget() -> None:
    queries = [{"op": "range", "range": r, "versions": vs} for r, vs in itertools.product(RANGES, VERSION_SETS)]
    answers = _batch("versions", queries)
    assert len(answers) == len(queries)
    checked = 0
    for q, a in zip(queries, answers, strict=True):
        assert a["valid"], a
        vr = VersionRange.parse(q["range"])
        ours = best_match(vr, [NuGetVersion.parse(v) for v in q["versions"]])
        theirs = a["bestMatch"]
        assert (ours.normalized if ours else None) == theirs, (q, a)
        assert legacy_short(vr) == a["legacyShort"], q["range"]
        assert pretty_print(vr) == a["prettyPrint"], q["range"]
        checked += 1
    assert checked == len(RANGES) * len(VERSION_SETS)


#: Dependency group frameworks as real nuspecs write them (Newtonsoft.Json, System.Memory, RestSharp ...).
GROUPS = [
    ["net20", "net35", "net40", "net45", ".NETStandard1.0", ".NETStandard1.3", ".NETStandard2.0"],
    [".NETFramework4.5", ".NETCoreApp2.1", ".NETStandard1.1", ".NETStandard2.0", "MonoAndroid10", "Xamarin.iOS10"],
    ["", ".NETStandard2.0"],
    [".NETFramework4.6.1"],
    ["net6.0", "netstandard2.1", "netstandard2.0"],
    [".NETPortable0.0-Profile259", "uap10.0"],
]
PROJECTS = ["netcoreapp3.1", "netstandard2.0", "netstandard2.1", "net6.0", "net472", "netcoreapp2.1"]


def test_dependency_group_choice_agrees_with_nuget_get_nearest() -> None:
    queries = [
        {"op": "nearest", "project": p, "candidates": [g or "any" for g in groups]}
        for p, groups in itertools.product(PROJECTS, GROUPS)
    ]
    answers = _batch("frameworks", queries)
    for q, a, (_p, groups) in zip(queries, answers, itertools.product(PROJECTS, GROUPS), strict=True):
        ours = select_group(q["project"], groups)
        theirs_input = a.get("nearestInput")
        theirs = None if theirs_input is None else groups[q["candidates"].index(theirs_input)]
        if ours is None and theirs is None:
            continue
        if theirs is None and q["project"].startswith(("netcoreapp3", "net6")):
            continue  # restore adds the SDK's AssetTargetFallback (net461..net48) when nothing else fits
        assert ours == theirs, (q, a)
