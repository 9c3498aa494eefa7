"""Differential checks of nuseal.trust against Microsoft's NuGet.Packaging 6.14 (the oracle, offline revocation).

For every real vector: the statuses NuGet's chain reports ("... certificate chain validation failed with
error(s): RevocationStatusUnknown, OfflineRevocation") equal nuseal's, and certificate subjects print alike.
For a package the oracle signs with a throw-away root: NuGet's NU3042 text equals :func:`untrusted_root_warning`.
"""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal.trust import (
    CertificatePurpose,
    ChainBuilder,
    ChainResult,
    RevocationMode,
    TrustStore,
    dotnet_name,
    untrusted_root_warning,
)
from support.trust import (
    CODESIGN_BUNDLE,
    NOW,
    TIMESTAMP_BUNDLE,
    VECTORS,
    Pki,
    VectorSignature,
    vector_names,
    vector_signatures,
)

pytestmark = pytest.mark.oracle

ORACLE = Path(__file__).resolve().parents[2] / "shared" / "tools" / "nuget-oracle" / "run-oracle.sh"
ORACLE_TIMEOUT = 300
_CHAIN_LINE = re.compile(r"^The (.+?)'s certificate chain validation failed with error\(s\): (.*)$")


def oracle(*args: str) -> dict[str, Any]:
    completed = subprocess.run(
        ["bash", str(ORACLE), *args], capture_output=True, text=True, timeout=ORACLE_TIMEOUT, check=False
    )
    assert completed.stdout, completed.stderr[-2000:]
    return json.loads(completed.stdout)  # type: ignore[no-any-return]


def verify(package: Path) -> dict[str, Any]:
    return oracle(
        "verify",
        str(package),
        "--trust-bundle",
        str(CODESIGN_BUNDLE),
        "--timestamp-bundle",
        str(TIMESTAMP_BUNDLE),
        "--verbose",
    )


def chain_statuses(report: dict[str, Any]) -> dict[str, set[str]]:
    """'author primary signature' / 'repository countersignature' -> NuGet's chain status names."""
    verify_command = next(v for v in report["verification"] if v["policy"] == "verifyCommand")
    found: dict[str, set[str]] = {}
    for result in verify_command["results"]:
        for issue in result["issues"]:
            match = _CHAIN_LINE.match(issue["message"])
            if match:
                found[match.group(1)] = set(match.group(2).split(", "))
    return found


def ours(signature: VectorSignature, store: TrustStore) -> ChainResult:
    builder = ChainBuilder(store, revocation_mode=RevocationMode.OFFLINE)
    return builder.build(
        signature.signer,
        extra_certificates=signature.certificates,
        purpose=CertificatePurpose.CODE_SIGNING,
        at=signature.timestamps[0].gen_time,
        now=NOW,
    )


@pytest.fixture(scope="module")
def code_signing_store() -> TrustStore:
    return TrustStore.from_pem_file(CODESIGN_BUNDLE)


@pytest.mark.parametrize("name", vector_names())
def test_chain_statuses_and_subjects_match_nuget(name: str, code_signing_store: TrustStore) -> None:
    report = verify(VECTORS / name)
    nuget = chain_statuses(report)
    signatures = vector_signatures(name)
    primary = report["primarySignature"]
    assert primary["certificate"]["subject"] == dotnet_name(signatures[0].signer.subject)
    assert primary["timestamps"][0]["signer"]["certificate"]["subject"] == dotnet_name(
        signatures[0].timestamps[0].signer.subject
    )
    friendly = f"{primary['type'].lower()} primary signature"
    assert set(ours(signatures[0], code_signing_store).statuses.dotnet_name.split(", ")) == nuget[friendly]
    if len(signatures) > 1:
        countersignature = ours(signatures[1], code_signing_store)
        assert set(countersignature.statuses.dotnet_name.split(", ")) == nuget["repository countersignature"]


def test_untrusted_root_matches_nuget(tmp_path: Path, code_signing_store: TrustStore) -> None:
    pki = Pki(not_before=NOW.replace(year=2025), not_after=NOW.replace(year=2030))
    root = pki.issue("nuseal Oracle Test Root", ca=True)
    leaf = pki.issue("nuseal Oracle Test Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    (tmp_path / "root.pem").write_bytes(root.cert.public_bytes(Encoding.PEM))
    (tmp_path / "signer.pfx").write_bytes(
        pkcs12.serialize_key_and_certificates(b"signer", leaf.key, leaf.cert, [root.cert], NoEncryption())  # type: ignore[arg-type]
    )
    nuspec = (
        '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
        "<metadata><id>Trust.Oracle</id><version>1.0.0</version><authors>nuseal</authors>"
        "<description>test</description></metadata></package>"
    )
    with zipfile.ZipFile(tmp_path / "in.nupkg", "w") as archive:
        archive.writestr("Trust.Oracle.nuspec", nuspec)
        archive.writestr("content/readme.txt", "hello")
    signed = oracle(
        "sign",
        "--in",
        str(tmp_path / "in.nupkg"),
        "--out",
        str(tmp_path / "signed.nupkg"),
        "--pfx",
        str(tmp_path / "signer.pfx"),
        "--type",
        "author",
        "--extra-certs",
        str(tmp_path / "root.pem"),
        "--trust-bundle",
        str(tmp_path / "root.pem"),
    )
    assert signed["ok"], signed
    report = verify(tmp_path / "signed.nupkg")
    result = ChainBuilder(code_signing_store, revocation_mode=RevocationMode.OFFLINE).build(
        leaf.cert, extra_certificates=[root.cert], purpose=CertificatePurpose.CODE_SIGNING, at=NOW, now=NOW
    )
    assert set(result.statuses.dotnet_name.split(", ")) == chain_statuses(report)["author primary signature"]
    warning = untrusted_root_warning(result)
    assert warning is not None
    verify_command = next(v for v in report["verification"] if v["policy"] == "verifyCommand")
    nuget_nu3042 = [i for r in verify_command["results"] for i in r["issues"] if i["code"] == "NU3042"]
    assert [i["message"] for i in nuget_nu3042] == [warning.message]
    assert "warning:NU3042" in verify_command["codes"]
