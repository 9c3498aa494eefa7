"""Known-bad versions from OSV records (nuseal.scan.osv): MAL-* as errors, GHSA-* as warnings by severity."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from nuseal.errors import ConfigError
from nuseal.scan.engine import ScanContext, Scanner
from nuseal.scan.model import Severity
from nuseal.scan.osv import OsvDatabase, analysers
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import load_rules
from support.vulnerability_info import GHSA_NEWTONSOFT, write_osv
from support.vulnerability_info import MAL_ALL as MAL

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"
NEWTONSOFT_12 = VECTORS / "nuget.org" / "Newtonsoft.Json.12.0.3.nupkg"


def ghsa(gid: str, name: str, events: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": "NuGet", "name": name}}
    if events:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": events}]
    if "versions" in extra:
        affected["versions"] = extra.pop("versions")
    return {"schema_version": "1.4.0", "id": gid, "modified": "2024-01-01T00:00:00Z", "affected": [affected], **extra}


def nupkg(package_id: str, version: str) -> bytes:
    nuspec = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata>'
        f"<id>{package_id}</id><version>{version}</version><authors>a</authors><description>d</description>"
        "</metadata></package>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.nuspec", nuspec.encode("utf-8"))
    return buf.getvalue()


def scan(data: bytes, osv: Path) -> list[tuple[str, Severity, str]]:
    rules = load_rules()
    report = Scanner(rules, analysers=analysers(ScanContext(osv_path=str(osv)))).scan(
        ScanPackage.from_bytes(data, source="t.nupkg")
    )
    return [(f.rule_id, f.severity, f.message) for f in report.findings if f.rule_id.startswith("NS6")]


def test_malicious_record_is_an_error_for_every_version_any_case(tmp_path: Path) -> None:
    osv = write_osv(tmp_path, [MAL])
    for pid, version in [("a\u0440provalt\u0435sts", "1.0.0"), ("A\u0420PROVALT\u0415STS", "99.1.0-beta")]:
        [(rule, severity, message)] = scan(nupkg(pid, version), osv)
        assert (rule, severity) == ("NS6001", Severity.ERROR)
        assert "MAL-2024-4013" in message
    assert scan(nupkg("ApprovalTests", "1.0.0"), osv) == []


def test_ghsa_on_the_real_newtonsoft_12_vector(tmp_path: Path) -> None:
    osv = write_osv(tmp_path, [GHSA_NEWTONSOFT, MAL])
    [(rule, severity, message)] = scan(NEWTONSOFT_12.read_bytes(), osv)
    assert (rule, severity) == ("NS6002", Severity.WARNING)
    assert "GHSA-5crp-9r3c-p9vr" in message and "HIGH" in message and "13.0.1" in message
    assert scan(nupkg("Newtonsoft.Json", "13.0.1"), osv) == []
    assert scan(nupkg("newtonsoft.json", "13.0.0.1"), osv)  # 4-part versions order before 13.0.1


def test_ranges_last_affected_versions_and_reopened() -> None:
    db = OsvDatabase.from_records(
        [
            ghsa("GHSA-aaaa-aaaa-aaaa", "Contoso.Lib", [{"introduced": "1.2"}, {"last_affected": "1.4.0"}]),
            ghsa("GHSA-bbbb-bbbb-bbbb", "Contoso.Lib", [], versions=["2.0", "2.1.0-Beta"]),
            ghsa(
                "GHSA-cccc-cccc-cccc",
                "Contoso.Lib",
                # unsorted on purpose: evaluation sorts by NuGet order
                [{"fixed": "3.5.0"}, {"introduced": "4.0.0-rc.1"}, {"introduced": "3.0"}, {"fixed": "4.0.2"}],
            ),
        ]
    )

    def ids(version: str) -> list[str]:
        return sorted(a.id[5:9] for a in db.match("CONTOSO.LIB", version))

    assert ids("1.1.9") == []
    assert ids("1.2.0") == ["aaaa"]
    assert ids("1.4") == ["aaaa"]
    assert ids("1.4.0.1") == []
    assert ids("2.0.0") == ["bbbb"]
    assert ids("2.1.0-beta") == ["bbbb"]
    assert ids("2.1.0") == []
    assert ids("3.0.0") == ["cccc"]
    assert ids("3.5.0") == []
    assert ids("4.0.0-beta") == []  # before the reopening: prerelease sorts before rc.1
    assert ids("4.0.0-rc.2") == ["cccc"]
    assert ids("4.0.2") == []
    assert db.match("Contoso.Lib", "not a version") == []


def test_severity_low_is_a_note_and_cvss_only_records(tmp_path: Path) -> None:
    low = ghsa("GHSA-llll-llll-llll", "Contoso.Low", [{"introduced": "0"}], database_specific={"severity": "LOW"})
    cvss_low = ghsa(
        "GHSA-cvss-cvss-cvss",
        "Contoso.Cvss",
        [{"introduced": "0"}],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}],
    )
    critical = ghsa(
        "GHSA-crit-crit-crit",
        "Contoso.Crit",
        [{"introduced": "0"}],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    )
    osv = write_osv(tmp_path, [low, cvss_low, critical])
    assert [s for _, s, _ in scan(nupkg("Contoso.Low", "1.0.0"), osv)] == [Severity.NOTE]
    assert [s for _, s, _ in scan(nupkg("Contoso.Cvss", "1.0.0"), osv)] == [Severity.NOTE]
    [(_, severity, message)] = scan(nupkg("Contoso.Crit", "1.0.0"), osv)
    assert severity == Severity.WARNING and "CVSS 9.8" in message


def test_zip_and_folder_give_the_same_index(tmp_path: Path) -> None:
    other = {**GHSA_NEWTONSOFT, "id": "GHSA-npm0-0000-0000"}
    other["affected"] = [{"package": {"ecosystem": "npm", "name": "left-pad"}, "versions": ["1.0.0"]}]
    records = [MAL, GHSA_NEWTONSOFT, other]
    zpath = tmp_path / "all.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for r in records:
            z.writestr(f"{r['id']}.json", json.dumps(r))
        z.writestr("broken.json", "{not json")
        z.writestr("README.md", "not a record")
    from_zip = OsvDatabase.load(zpath)
    from_folder = OsvDatabase.load(write_osv(tmp_path / "folder", records))
    assert from_zip.records == 3 and len(from_zip) == 2
    assert sorted(from_zip.by_id) == sorted(from_folder.by_id) == ["a\u0440provalt\u0435sts", "newtonsoft.json"]
    assert any("broken.json" in p and "not JSON" in p for p in from_zip.problems)
    assert [a.id for a in from_zip.match("Newtonsoft.Json", "12.0.3")] == ["GHSA-5crp-9r3c-p9vr"]


def test_withdrawn_records_are_ignored() -> None:
    db = OsvDatabase.from_records([{**MAL, "withdrawn": "2024-09-01T00:00:00Z"}])
    assert db.match("a\u0440provalt\u0435sts", "1.0.0") == []


def test_bad_osv_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or folder"):
        analysers(ScanContext(osv_path=str(tmp_path / "missing")))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a folder or a zip"):
        OsvDatabase.load(tmp_path / "f.txt")
    assert analysers(ScanContext()) == ()


def test_engine_runs_the_identity_and_compiled_analysers_by_default(tmp_path: Path) -> None:
    """No analysers passed: the engine's module list finds compiled, lookalike and osv (the wiring)."""
    osv = write_osv(tmp_path, [MAL])
    pid = "a\u0440provalt\u0435sts"  # Cyrillic look-alike of ApprovalTests, listed as malicious
    data = nupkg(pid, "2.0.0")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in entries.items():
            z.writestr(name, content)
        z.writestr("content/update.exe", b"MZ" + bytes(100))
    report = Scanner(load_rules(), ScanContext(osv_path=str(osv))).scan(
        ScanPackage.from_bytes(buf.getvalue(), source="t")
    )
    found = {(f.rule_id, f.severity) for f in report.findings}
    assert {("NS6001", Severity.ERROR), ("NS5002", Severity.ERROR), ("NS5001", Severity.WARNING)} <= found
    assert {("NS4001", Severity.WARNING), ("NS4004", Severity.WARNING)} <= found
