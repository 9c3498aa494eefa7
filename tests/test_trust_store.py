"""TrustStore: PEM bundles and the .NET SDK's discovery rules on Linux (NUGET-SIGNING.md §4.7)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from nuseal.errors import UsageError
from nuseal.trust import CertificatePurpose, TrustStore
from nuseal.trust.certificate import facts
from nuseal.trust.store import MAX_BUNDLE_BYTES, _default_dotnet_roots
from support.trust import CODESIGN_BUNDLE, NOW, TIMESTAMP_BUNDLE, Pki, rsa_key

SIGN = CertificatePurpose.CODE_SIGNING
STAMP = CertificatePurpose.TIMESTAMPING


def pem(*subjects: str) -> bytes:
    pki = Pki()
    return b"\n".join(pki.issue(s, ca=True).cert.public_bytes(Encoding.PEM) for s in subjects)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sdk(root: Path, version: str, name: str, data: bytes) -> Path:
    return write(root / "sdk" / version / "trustedroots" / name, data)


def test_from_pem_bytes_skips_bad_blocks_and_duplicates() -> None:
    good = pem("A", "B")
    garbage = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    store = TrustStore.from_pem_bytes(b"comment\n" + good + b"\n" + garbage + good, source="test")
    assert len(store) == 2
    assert store.skipped == 1
    assert store.source == "test"
    assert all(cert in store for cert in store.certificates)
    assert "not a certificate" not in store  # type: ignore[comparison-overlap]


def test_from_pem_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read trust bundle"):
        TrustStore.from_pem_file(tmp_path / "missing.pem")
    with pytest.raises(UsageError, match="no readable certificate"):
        TrustStore.from_pem_file(write(tmp_path / "empty.pem", b"nothing here"))
    with pytest.raises(UsageError, match="larger than"):
        TrustStore.from_pem_file(write(tmp_path / "huge.pem", b"\n" * (MAX_BUNDLE_BYTES + 1)))
    store = TrustStore.from_pem_file(CODESIGN_BUNDLE)
    assert store.path == CODESIGN_BUNDLE
    assert store.source == str(CODESIGN_BUNDLE)


def test_discover_prefers_system_bundle_for_code_signing(tmp_path: Path) -> None:
    system = write(tmp_path / "objsign-ca-bundle.pem", pem("System Root"))
    dotnet = tmp_path / "dotnet"
    sdk(dotnet, "8.0.100", "codesignctl.pem", pem("SDK Root"))
    sdk(dotnet, "8.0.100", "timestampctl.pem", pem("SDK TSA Root"))
    store = TrustStore.discover(SIGN, environ={}, dotnet_roots=[dotnet], system_bundles=[system])
    assert store.path == system
    # Timestamping never uses the system bundle.
    stamp = TrustStore.discover(STAMP, environ={}, dotnet_roots=[dotnet], system_bundles=[system])
    assert stamp.path == dotnet / "sdk" / "8.0.100" / "trustedroots" / "timestampctl.pem"


def test_discover_falls_back_to_newest_sdk(tmp_path: Path) -> None:
    dotnet = tmp_path / "dotnet"
    sdk(dotnet, "7.0.400", "codesignctl.pem", pem("Old"))
    sdk(dotnet, "8.0.100-rc.1", "codesignctl.pem", pem("Preview"))
    newest = sdk(dotnet, "8.0.100", "codesignctl.pem", pem("New"))
    (dotnet / "sdk" / "NuGetFallbackFolder").mkdir()
    empty_system = write(tmp_path / "empty-system.pem", b"")
    store = TrustStore.discover(SIGN, environ={}, dotnet_roots=[dotnet], system_bundles=[empty_system])
    assert store.path == newest
    assert len(store) == 1


def test_discover_uses_dotnet_root_and_path(tmp_path: Path) -> None:
    by_env = tmp_path / "env-dotnet"
    expected = sdk(by_env, "9.0.100", "timestampctl.pem", pem("Env"))
    store = TrustStore.discover(STAMP, environ={"DOTNET_ROOT": str(by_env), "PATH": ""}, system_bundles=[])
    assert store.path == expected
    # `dotnet` on PATH, through a symlink as distribution packages install it.
    install = tmp_path / "lib" / "dotnet"
    expected = sdk(install, "8.0.404", "timestampctl.pem", pem("Path"))
    executable = install / "dotnet"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(executable, bin_dir / "dotnet")
    store = TrustStore.discover(STAMP, environ={"PATH": str(bin_dir)}, system_bundles=[])
    assert store.path == expected


def test_discover_nothing_is_an_empty_store_saying_so(tmp_path: Path) -> None:
    store = TrustStore.discover(SIGN, environ={}, dotnet_roots=[tmp_path / "none"], system_bundles=[tmp_path / "x.pem"])
    assert len(store) == 0
    assert store.path is None
    assert store.source.startswith("no code signing trust store found")
    assert str(tmp_path / "x.pem") in store.source


def test_shared_bundles_are_what_an_sdk_ships(tmp_path: Path) -> None:
    dotnet = tmp_path / "dotnet"
    sdk(dotnet, "8.0.100", "codesignctl.pem", CODESIGN_BUNDLE.read_bytes())
    sdk(dotnet, "8.0.100", "timestampctl.pem", TIMESTAMP_BUNDLE.read_bytes())
    assert len(TrustStore.discover(SIGN, environ={}, dotnet_roots=[dotnet], system_bundles=[])) == 305
    assert len(TrustStore.discover(STAMP, environ={}, dotnet_roots=[dotnet], system_bundles=[])) == 327


def test_default_dotnet_roots_order(tmp_path: Path) -> None:
    roots = _default_dotnet_roots({"DOTNET_ROOT": str(tmp_path / "env"), "HOME": str(tmp_path), "PATH": ""})
    assert roots[0] == tmp_path / "env"
    assert roots[-1] == tmp_path / ".dotnet"
    assert Path("/usr/share/dotnet") in roots
    assert Path("/usr/lib/dotnet") in roots


def _self_signed(subject: x509.Name) -> x509.Certificate:
    key = rsa_key("unusual-name-root")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_a_pem_store_finds_each_root_by_its_subject_as_a_parsed_store_does() -> None:
    # The PEM store reads subject names from the DER without parsing the roots; names cryptography could encode
    # differently (several attributes in one RDN, BMPString, non-ASCII bytes) are parsed at load instead.
    cn, org = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME
    unusual = [
        x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(org, "Zeta"), x509.NameAttribute(cn, "Multi")])]),
        x509.Name([x509.NameAttribute(cn, "Bmp Root", _type=_ASN1Type.BMPString)]),
        x509.Name([x509.NameAttribute(cn, "Zoë T61 Root", _type=_ASN1Type.T61String)]),
        x509.Name([x509.NameAttribute(cn, "Zoë UTF-8 Root"), x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]),
    ]
    roots = [_self_signed(subject) for subject in unusual]
    bundle = CODESIGN_BUNDLE.read_bytes() + b"\n".join(root.public_bytes(Encoding.PEM) for root in roots)
    lazy = TrustStore.from_pem_bytes(bundle, source="test")
    parsed = TrustStore.from_certificates(lazy.certificates)
    assert len(lazy) == len(parsed) == len(TrustStore.from_pem_file(CODESIGN_BUNDLE)) + len(roots)
    for root in parsed.certificates:
        assert lazy.with_subject(root.subject) == parsed.with_subject(root.subject)
        assert root in lazy.with_subject(root.subject)
    for root in roots:  # self-issued: each is its own issuer candidate
        found = [[known.der for known in store.issuer_candidates(facts(root))] for store in (lazy, parsed)]
        assert found == [[facts(root).der]] * 2
