"""Helpers for the scan tests: packages built in memory, the real vectors, scanning with every analyser."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from nuseal.scan.engine import Scanner, ScanReport
from nuseal.scan.files import analyse as files_analyse
from nuseal.scan.model import Finding, Severity
from nuseal.scan.msbuild import analyse as msbuild_analyse
from nuseal.scan.package import ScanPackage
from nuseal.scan.powershell import analyse as powershell_analyse
from nuseal.scan.rules import RuleSet, load_rules
from support.packages import XML_DECLARATION, nupkg, nuspec_xml

SHARED = Path(__file__).resolve().parents[3] / "shared"
VECTORS = sorted((SHARED / "vectors").glob("*/*.nupkg"))
INSTALL_TIME = SHARED / "vectors" / "install-time"
SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


def nuspec(package_id: str, version: str) -> bytes:
    return nuspec_xml(package_id, version, description="a package built by the scan tests",
                      declaration=XML_DECLARATION + "\n", compact=True)


def make_nupkg(package_id: str, version: str = "1.0.0", files: Mapping[str, bytes | str] | None = None) -> bytes:
    """A .nupkg with a nuspec and ``files`` (str content is UTF-8 encoded)."""
    return nupkg([(f"{package_id}.nuspec", nuspec(package_id, version)), *(files or {}).items()])


def scan_bytes(data: bytes, rules: RuleSet | None = None, *, source: str = "test.nupkg") -> ScanReport:
    """Scan with only this helper's analysers (PowerShell, MSBuild): the identity helper's ones are tested apart."""
    scanner = Scanner(rules or load_rules(), analysers=(powershell_analyse, msbuild_analyse, files_analyse))
    return scanner.scan(ScanPackage.from_bytes(data, source=source))


def by_rule(report: ScanReport) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in report.findings:
        out.setdefault(f.rule_id, []).append(f)
    return out


def worst(report: ScanReport) -> Severity | None:
    return report.max_severity
