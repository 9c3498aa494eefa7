"""``nuseal verify`` in-process: exit codes, output, JSON, nuget.config, folders and parallel workers."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from asn1crypto import cms

from nuseal.cli.main import main
from nuseal.package import PackageArchive
from support.trust import CLI_TRUST_ARGS as TRUST
from support.trust import VECTORS as VECTOR_DIR

pytestmark = pytest.mark.usefixtures("vector_clock")  # the real vectors, judged at VECTOR_NOW (support/clock.py)

AUTHOR_SIGNED = VECTOR_DIR / "system.memory.4.5.3.nupkg"


def _first_cert_sha256(path: Path) -> str:
    """SHA-256 of the certificate whose subject says Microsoft Corporation (the author signer here)."""
    signed = cms.ContentInfo.load(zipfile.ZipFile(path).read(".signature.p7s"))["content"]
    for choice in signed["certificates"]:
        cert = choice.chosen
        if "Microsoft Corporation" in cert.subject.human_friendly and not cert.ca:
            return hashlib.sha256(cert.dump()).hexdigest().upper()
    raise AssertionError("no Microsoft leaf certificate")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_folder_of_vectors_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(VECTOR_DIR), *TRUST, "--jobs", "2")
    assert code == 0
    assert out.count("Successfully verified package") == 12
    assert "Verified 12 packages: 12 passed, 0 failed, 0 warnings" in out


def test_tampered_package_fails_with_nu3008(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray(AUTHOR_SIGNED.read_bytes())
    archive = PackageArchive.from_bytes(bytes(data))
    record = next(r for r in archive.records if r.name.endswith(".dll"))
    data[record.local_header_offset + 200] ^= 0xFF
    bad = tmp_path / "bad.nupkg"
    bad.write_bytes(bytes(data))
    code, out, _ = run(capsys, str(bad), *TRUST)
    assert code == 1
    assert "error NU3008: The package integrity check failed." in out
    assert "Package signature validation failed." in out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(AUTHOR_SIGNED), *TRUST, "--json")
    assert code == 0
    doc = json.loads(out)
    (result,) = doc["results"]
    assert result["valid"] and result["package"] == {"id": "System.Memory", "version": "4.5.3"}
    assert [s["type"] for s in result["signatures"]] == ["Author", "Repository"]
    assert result["contentHash"] == PackageArchive.from_path(AUTHOR_SIGNED).content_hash()
    # the typed facts, next to the fields earlier versions wrote
    assert [(s["kind"], s["placement"]) for s in result["signatures"]] == [
        ("author", "primary"),
        ("repository", "countersignature"),
    ]
    for sig in result["signatures"]:
        assert (sig["intact"], sig["valid"], sig["trusted"], sig["checked"]) == (True, True, True, True)
        assert sig["signer"]["sha256Fingerprint"] == sig["fingerprints"]["SHA256"]
        assert sig["revocation"] in {"good", "unknown"}
        (stamp,) = sig["timestampDetails"]
        assert stamp["genTime"] == sig["timestamps"][0]["genTime"] and stamp["trusted"]
        assert stamp["authority"]["subject"] == sig["timestamps"][0]["authority"]
    assert result["structure"] == []


def test_detailed_output_shows_signers_and_timestamps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(AUTHOR_SIGNED), *TRUST, "-v", "detailed")
    assert code == 0
    assert "Primary signature: Author" in out and "Repository countersignature: Repository" in out
    assert f"SHA256 fingerprint:  {_first_cert_sha256(AUTHOR_SIGNED)}" in out
    assert "Timestamp:  2019-" in out
    # the typed facts of both signatures and both timestamps (offline revocation: unknown)
    assert out.count("Status:  intact, valid, trusted; revocation unknown") == 4, out
    assert "Signature Hash Algorithm: SHA256" in out
    assert "Content hash (SHA512):" in out


def test_certificate_fingerprint_option(capsys: pytest.CaptureFixture[str]) -> None:
    good = _first_cert_sha256(AUTHOR_SIGNED)
    assert run(capsys, str(AUTHOR_SIGNED), *TRUST, "--certificate-fingerprint", good)[0] == 0
    code, out, _ = run(capsys, str(AUTHOR_SIGNED), *TRUST, "--certificate-fingerprint", "AB" * 32)
    assert code == 1 and "error NU3034" in out
    code, _, err = run(capsys, str(AUTHOR_SIGNED), *TRUST, "--certificate-fingerprint", "abc")
    assert code == 2 and "NU3043" in err


def _config(tmp_path: Path, body: str, mode: str | None = None) -> Path:
    extra = f'<config><add key="signatureValidationMode" value="{mode}" /></config>' if mode else ""
    path = tmp_path / "nuget.config"
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?><configuration>{extra}<trustedSigners>{body}'
                    "</trustedSigners></configuration>")
    return path


def test_trusted_signers_from_configfile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fp = _first_cert_sha256(AUTHOR_SIGNED)
    ok = _config(tmp_path, f'<author name="microsoft"><certificate fingerprint="{fp}" hashAlgorithm="SHA256" '
                           'allowUntrustedRoot="false" /></author>', mode="require")
    assert run(capsys, str(AUTHOR_SIGNED), *TRUST, "--configfile", str(ok))[0] == 0
    other = _config(tmp_path, '<author name="x"><certificate fingerprint="' + "CD" * 32 + '" hashAlgorithm="SHA256" '
                              'allowUntrustedRoot="false" /></author>')
    code, out, _ = run(capsys, str(AUTHOR_SIGNED), *TRUST, "--configfile", str(other))
    assert code == 1 and "error NU3034: This package is signed but not by a trusted signer." in out


def test_require_mode_fails_unsigned_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unsigned = tmp_path / "System.Memory.4.5.3.nupkg"
    unsigned.write_bytes(PackageArchive.from_path(AUTHOR_SIGNED).without_signature())
    config = _config(tmp_path, "", mode="require")
    code, out, _ = run(capsys, str(unsigned), *TRUST, "--configfile", str(config))
    assert code == 1 and "error NU3004" in out


def test_nuget_config_is_found_from_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, "", mode="require")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, out, _ = run(capsys, str(AUTHOR_SIGNED), *TRUST)
    assert code == 1 and "no trusted signers were specified" in out


def test_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "missing.nupkg"), *TRUST)
    assert code == 2 and err.strip() == f"error: package not found: {tmp_path / 'missing.nupkg'}"
    bad = tmp_path / "nuget.config"
    bad.write_text("<configuration><trustedSigners><author name='a'><certificate hashAlgorithm='SHA256'/>"
                   "</author></trustedSigners></configuration>")
    code, _, err = run(capsys, str(AUTHOR_SIGNED), *TRUST, "--configfile", str(bad))
    assert code == 2 and "fingerprint" in err and "Traceback" not in err


def test_not_a_zip_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.nupkg"
    junk.write_text("not a package")
    good = tmp_path / "good.nupkg"
    shutil.copy(AUTHOR_SIGNED, good)
    code, out, _ = run(capsys, str(tmp_path), *TRUST)
    assert code == 1
    assert "not a valid package file" in out
    assert "Verified 2 packages: 1 passed, 1 failed" in out
