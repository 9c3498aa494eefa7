"""``nuseal sign`` / ``nuseal repo-sign`` in-process: folders of packages, output folders, strict trust,
revocation modes, every hash algorithm, and files that are replaced whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.cli.main import main

from .conftest import REPO_URL, Pki, hash_property, signed_data, unsigned_package

EXIT_USAGE = 2


def _pfx(pki: Pki, name: str = "author") -> list[str]:
    return ["--certificate-path", str(pki.dev.pfx_path(name)), "--certificate-password", pki.dev.pfx_password]


def test_sign_a_folder_into_an_output_folder_then_repo_sign(pki: Pki, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in"
    source.mkdir()
    originals = {f"{name}.1.0.0.nupkg": unsigned_package(name) for name in ("A.One", "B.Two")}
    for file_name, data in originals.items():
        (source / file_name).write_bytes(data)
    out = tmp_path / "out"
    assert main(["sign", str(source), *_pfx(pki), "--timestamper", pki.dev.tsa_url, "--hash-algorithm", "SHA512",
                 "--timestamp-hash-algorithm", "SHA384", "--trust-bundle", str(pki.dev.root_pem_path),
                 "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["A.One.1.0.0.nupkg", "B.Two.1.0.0.nupkg"]
    assert {p.name: p.read_bytes() for p in source.iterdir()} == originals  # the inputs are untouched
    assert main(["repo-sign", str(out), "--certificate-path", str(pki.dev.chain_pem_path("repository")),
                 "--certificate-key-path", str(pki.dev.key_path("repository")), "--timestamper", pki.dev.tsa_url,
                 "--v3-service-index-url", REPO_URL, "--package-owners", "alice, bob",
                 "--trust-bundle", str(pki.dev.root_pem_path)]) == 0
    capsys.readouterr()
    for package in out.iterdir():
        data = package.read_bytes()
        assert hash_property(data)[0] == "2.16.840.1.101.3.4.2.3"  # SHA-512 content hash
        result = pki.verify(data)
        assert result.valid and not result.warnings, [str(i) for i in result.issues]
        assert [s.type for s in result.signatures] == ["Author", "Repository"]
        assert result.signatures[1].package_owners == ("alice", "bob")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_strict_trust_refuses_and_leaves_the_file_alone(pki: Pki, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "P.1.0.0.nupkg"
    original = unsigned_package("P")
    package.write_bytes(original)
    code = main(["sign", str(package), *_pfx(pki, "untrusted-signer"), "--trust-bundle", str(pki.dev.root_pem_path)])
    assert code == EXIT_USAGE
    assert "NU3018" in capsys.readouterr().err
    assert package.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P.1.0.0.nupkg"]  # no temporary file left behind
    # without a bundle, the root that comes with the certificate is trusted
    assert main(["sign", str(package), *_pfx(pki, "untrusted-signer")]) == 0
    assert signed_data(package.read_bytes())["signer_infos"][0]["sid"].name == "subject_key_identifier"


def test_already_signed_needs_overwrite(pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "P.1.0.0.nupkg"
    package.write_bytes(unsigned_package("P"))
    assert main(["sign", str(package), *_pfx(pki)]) == 0
    assert "NU3002" in capsys.readouterr().err
    signed = package.read_bytes()
    assert main(["sign", str(package), *_pfx(pki, "repository")]) == EXIT_USAGE
    assert "NU3001" in capsys.readouterr().err
    assert package.read_bytes() == signed
    assert main(["sign", str(package), *_pfx(pki, "repository"), "--overwrite", "--timestamper",
                 pki.dev.tsa_url]) == 0
    assert pki.verify(package.read_bytes()).signatures[0].signer_subject == "O=nuseal development PKI, " \
        "CN=nuseal dev repository"


def test_offline_revocation_mode_does_not_ask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nuseal.devpki import DevPki  # noqa: PLC0415

    dev = DevPki.create(tmp_path / "pki")  # not served: online revocation would warn
    package = tmp_path / "P.1.0.0.nupkg"
    package.write_bytes(unsigned_package("P"))
    args = ["sign", str(package), "--certificate-path", str(dev.pfx_path("author")), "--certificate-password",
            dev.pfx_password, "--trust-bundle", str(dev.root_pem_path), "--overwrite"]
    assert main([*args, "--revocation-mode", "offline"]) == 0
    err = capsys.readouterr().err
    assert "NU3002" in err and "NU3018" not in err
    assert main(args) == 0
    assert "NU3018: RevocationStatusUnknown" in capsys.readouterr().err


def test_usage_errors(pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "P.1.0.0.nupkg"
    original = unsigned_package("P")
    package.write_bytes(original)
    assert main(["sign", str(package), "--certificate-path", str(pki.dev.cert_path("author"))]) == EXIT_USAGE
    assert "--certificate-key-path" in capsys.readouterr().err
    assert main(["sign", str(package), *_pfx(pki), "--timestamper", "ftp://tsa.example/"]) == EXIT_USAGE
    assert "http(s)" in capsys.readouterr().err
    assert main(["repo-sign", str(package), *_pfx(pki, "repository"), "--v3-service-index-url",
                 "http://not-https.example/index.json"]) == EXIT_USAGE
    capsys.readouterr()
    assert package.read_bytes() == original
