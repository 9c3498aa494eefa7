"""No false alarms on real packages: every vector in ../shared/vectors (nuget.org and install-time) scans without an
error, and this helper's analysers (PowerShell, MSBuild, files, the scan itself) say nothing above note; the notes
explain what each install-time package runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.scan.engine import Scanner
from nuseal.scan.model import Severity
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import load_rules

from .scan_support import INSTALL_TIME, VECTORS, by_rule, scan_bytes

MY_AREAS = ("NS1", "NS2", "NS3", "NS9")


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_real_package_has_no_error_and_no_warning_from_code_rules(path: Path) -> None:
    report = scan_bytes(path.read_bytes(), source=str(path))
    assert report.package.id is not None
    above_note = [f for f in report.findings if f.severity > Severity.NOTE]
    assert above_note == []


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_real_package_has_no_error_with_every_analyser(path: Path) -> None:
    report = Scanner(load_rules()).scan(ScanPackage.from_bytes(path.read_bytes(), source=str(path)))
    assert [f for f in report.findings if f.severity is Severity.ERROR] == []
    assert [f for f in report.findings if f.rule_id.startswith(MY_AREAS) and f.severity > Severity.NOTE] == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("jQuery.1.10.2.nupkg", {"NS1001"}),
        ("Newtonsoft.Json.6.0.4.nupkg", {"NS1001", "NS1140"}),  # install.ps1 opens the project page
        ("EntityFramework.5.0.0.nupkg", {"NS1001", "NS3003"}),
        ("psake.4.9.0.nupkg", {"NS1001"}),
        ("Fody.2.2.1.0.nupkg", {"NS1001", "NS2001", "NS2402", "NS2601"}),  # weaver task after compile
        ("Microsoft.CodeDom.Providers.DotNetCompilerPlatform.1.0.8.nupkg", {"NS1001", "NS2001", "NS2101", "NS2402"}),
        ("xunit.runner.visualstudio.2.4.1.nupkg", {"NS2001"}),
        ("NUnit3TestAdapter.3.10.0.nupkg", {"NS2001"}),
    ],
)
def test_install_time_packages_are_explained(name: str, expected: set[str]) -> None:
    found = by_rule(scan_bytes((INSTALL_TIME / name).read_bytes()))
    assert expected <= set(found)
    assert all(f.severity is Severity.NOTE for fs in found.values() for f in fs)


def test_codedom_inline_task_is_a_note_not_an_alarm() -> None:
    """Its CodeTaskFactory task enumerates and kills VBCSCompiler: code, but no process start, network or loading."""
    data = (INSTALL_TIME / "Microsoft.CodeDom.Providers.DotNetCompilerPlatform.1.0.8.nupkg").read_bytes()
    found = by_rule(scan_bytes(data))
    assert set(found) & {"NS2102", "NS2103", "NS2104", "NS2105", "NS2106", "NS2110"} == set()
