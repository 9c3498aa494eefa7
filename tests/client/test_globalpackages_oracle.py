"""Differential tests: nuseal's install into a global-packages folder against NuGet's own ``PackageExtractor``
(``../shared/tools/nuget-oracle`` ``extract``, NuGet.Packaging 6.14.3), on every real vector in accept and require
mode, on a package with NuGet's odd entry names, and on the refusals (NU3008, NU3004, NU3034).

The oracle's answers are cached on disk by package bytes and arguments (its JSON lists every file with its size,
SHA-256, mode and mtime, the exact ``.nupkg.metadata`` bytes and the ``.sha512``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from nuseal.client.gate import GateSettings
from nuseal.client.globalpackages import GlobalPackagesFolder, _file_lock, nuget_lock_path
from nuseal.errors import RestoreError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from nuseal.trust import RevocationMode, fingerprint
from nuseal.verify import AllowListEntry, SignaturePlacement, VerificationPolicy, VerificationTarget
from support import oracle
from support.clock import VECTOR_NOW

from .globalpackages_support import CODESIGN, SCRIPT, SHARED, TIMESTAMP, oracle_tree, our_tree

pytestmark = pytest.mark.oracle

VECTORS = sorted((SHARED / "vectors" / "nuget.org").glob("*.nupkg")) + sorted(
    (SHARED / "vectors" / "install-time").glob("*.nupkg")
)
CACHE = Path(os.environ.get("NUSEAL_TEST_CACHE", Path.home() / ".cache" / "nuseal-tests")) / "oracle-extract"
#: What both installs record as the package's source (``.nupkg.metadata``).
SOURCE = "https://feed.example/v3/index.json"


def _oracle_extract(data: bytes, args: list[str]) -> dict[str, Any]:
    """NuGet's ``extract`` of ``data`` into an empty folder (cached)."""
    reason = oracle.oracle_unavailable_reason()  # installs it on first use, the one step past the network fence
    if reason is not None:
        pytest.fail(f"NuGet's extractor cannot run ({reason}): ../shared must sit beside the checkout")
    key = hashlib.sha256(data)
    key.update("\0".join(args).encode())
    key.update((SHARED / "tools" / "nuget-oracle" / "README.md").read_bytes())
    cached = CACHE / f"{key.hexdigest()}.json"
    if cached.is_file():
        doc: dict[str, Any] = json.loads(cached.read_text())
        return doc
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "in" / "package.nupkg"
        pkg.parent.mkdir()
        pkg.write_bytes(data)
        run = subprocess.run(
            [
                "bash",
                str(SCRIPT),
                "extract",
                str(pkg),
                "--out",
                str(Path(tmp) / "gpf"),
                "--source",
                SOURCE,
                "--trust-bundle",
                str(CODESIGN),
                "--timestamp-bundle",
                str(TIMESTAMP),
                *args,
            ],
            capture_output=True,
            timeout=300,
            check=False,
        )
    if not run.stdout.strip():
        raise RuntimeError(
            f"nuget-oracle extract failed ({run.returncode}): {run.stderr.decode(errors='replace')[-2000:]}"
        )
    doc = json.loads(run.stdout)
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(doc))
    return doc


def _settings(policy: VerificationPolicy) -> GateSettings:
    return GateSettings(policy=policy, code_signing_roots=str(CODESIGN), timestamping_roots=str(TIMESTAMP), scan=False)


def _identity(data: bytes) -> tuple[str, str]:
    spec = PackageArchive.from_bytes(data).nuspec()
    return spec.id, spec.version.normalized


def _install(tmp: Path, data: bytes, policy: VerificationPolicy) -> Path:
    package_id, version = _identity(data)
    outcome = GlobalPackagesFolder(tmp / "gpf").install(
        data, package_id=package_id, version=version, source=SOURCE, gate=_settings(policy),
        now=VECTOR_NOW,
    )
    assert outcome.installed
    return outcome.folder


def _assert_same(doc: dict[str, Any], folder: Path) -> None:
    assert doc["installed"] is True, doc.get("exception")
    theirs, ours = oracle_tree(doc), our_tree(folder)
    assert folder.relative_to(folder.parents[1]).as_posix() == doc["folder"]
    assert ours.files == theirs.files
    assert ours.mtimes == theirs.mtimes
    assert ours.directories == theirs.directories
    assert ours.metadata == theirs.metadata
    assert ours.sha512 == theirs.sha512


def _signer(data: bytes) -> tuple[str, str]:
    """(kind, SHA-256 fingerprint) of the primary signature, read with nuseal (the test's trusted signer)."""
    primary = PrimarySignature.load(PackageArchive.from_bytes(data).read_signature())
    assert primary.signer_certificate is not None
    kind = "author" if primary.type is SignatureType.AUTHOR else "repository"
    return kind, fingerprint(primary.signer_certificate, HashAlgorithm.SHA256)


def _trusted(kind: str, fp: str) -> AllowListEntry:
    if kind == "author":
        return AllowListEntry(fp, HashAlgorithm.SHA256, VerificationTarget.AUTHOR, SignaturePlacement.PRIMARY_SIGNATURE)
    return AllowListEntry(fp, HashAlgorithm.SHA256, VerificationTarget.REPOSITORY, SignaturePlacement.ANY)


def _is_signed(data: bytes) -> bool:
    return PackageArchive.from_bytes(data).is_signed


@pytest.mark.skipif(not SCRIPT.is_file(), reason="nuget-oracle not present")
@pytest.mark.parametrize("vector", VECTORS, ids=lambda p: p.name)
def test_accept_mode_same_folder_as_nuget(vector: Path, tmp_path: Path) -> None:
    data = vector.read_bytes()
    doc = _oracle_extract(data, ["--mode", "accept"])
    folder = _install(tmp_path, data, VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE))
    _assert_same(doc, folder)


@pytest.mark.skipif(not SCRIPT.is_file(), reason="nuget-oracle not present")
@pytest.mark.parametrize("vector", [v for v in VECTORS if _is_signed(v.read_bytes())], ids=lambda p: p.name)
def test_require_mode_with_its_signer_trusted_same_folder_as_nuget(vector: Path, tmp_path: Path) -> None:
    data = vector.read_bytes()
    kind, fp = _signer(data)
    doc = _oracle_extract(data, ["--mode", "require", f"--trusted-{kind}", fp])
    assert doc["installed"] is True, doc.get("exception")
    policy = VerificationPolicy.require(trusted_signers=(_trusted(kind, fp),), revocation_mode=RevocationMode.OFFLINE)
    _assert_same(doc, _install(tmp_path, data, policy))


def _odd_package() -> bytes:
    """NuGet's odd cases: OPC files in and out of the root, %XX names, folder entries, a future date,
    a root .nupkg and nested .nupkg/.nuspec, _rels/ and package/ files that are not OPC parts."""
    nuspec = (
        b'<?xml version="1.0" encoding="utf-8"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/'
        b'nuspec.xsd"><metadata><id>Odd.Pkg</id><version>1.0.0-Beta.1</version><authors>a</authors>'
        b"<description>d</description></metadata></package>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:

        def add(name: str, data: bytes = b"x", dt: tuple[int, int, int, int, int, int] = (2020, 1, 2, 3, 4, 6)) -> None:
            info = zipfile.ZipInfo(name, dt)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)

        add("Odd.Pkg.nuspec", nuspec)
        for name in (
            "[Content_Types].xml",
            "_rels/.rels",
            "_rels/other.txt",
            "package/services/metadata/core-properties/a.psmdcp",
            "package/other.txt",
            "sub/_rels/x.rels",
            "sub/.rels",
            "sub/a.psmdcp",
            "a%20b.txt",
            "pct%2Fslash.txt",
            "pct%25.txt",
            "sub/y.nupkg",
            "y.nupkg",
            "sub/z.nuspec",
            "lib/package/x.txt",
            "X.PSMDCP",
            "x.rels",
            "sub/[Content_Types].xml",
            "sub/.signature.p7s",
            "a.p7s",
            "x.nupkg.sha512",
        ):
            add(name, name.encode())
        add("dir/", b"")
        add("deep/dir2/", b"")
        add("future.txt", dt=(2099, 1, 1, 0, 0, 0))
    return buf.getvalue()


@pytest.mark.skipif(not SCRIPT.is_file(), reason="nuget-oracle not present")
def test_odd_entry_names_same_folder_as_nuget(tmp_path: Path) -> None:
    data = _odd_package()
    doc = _oracle_extract(data, ["--mode", "accept"])
    folder = _install(tmp_path, data, VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE))
    theirs, ours = oracle_tree(doc), our_tree(folder)
    assert ours.files == theirs.files and ours.directories == theirs.directories and ours.metadata == theirs.metadata
    # the future-dated entry keeps the time of extraction on both sides; every other one its DOS time
    assert {k: v for k, v in ours.mtimes.items() if k != "future.txt"} == {
        k: v for k, v in theirs.mtimes.items() if k != "future.txt"
    }
    assert ours.mtimes["future.txt"][:4] == theirs.mtimes["future.txt"][:4] != "2099"


# ---------------------------------------------------------------------------------------------- refusals
def _tampered(data: bytes) -> bytes:
    """One byte of a content entry's compressed data flipped (the signature no longer matches)."""
    archive = PackageArchive.from_bytes(data)
    record = max((r for r in archive.records if r.name != ".signature.p7s"), key=lambda r: r.compressed_size)
    name_len, extra_len = (
        int.from_bytes(data[record.local_header_offset + 26 : record.local_header_offset + 28], "little"),
        int.from_bytes(data[record.local_header_offset + 28 : record.local_header_offset + 30], "little"),
    )
    at = record.local_header_offset + 30 + name_len + extra_len + record.compressed_size // 2
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def _refusal(tmp: Path, data: bytes, policy: VerificationPolicy) -> RestoreError:
    package_id, version = _identity(data)
    gpf = tmp / "gpf"
    with pytest.raises(RestoreError) as info:
        GlobalPackagesFolder(gpf).install(
            data, package_id=package_id, version=version, source=SOURCE, gate=_settings(policy),
            now=VECTOR_NOW,
        )
    assert not gpf.exists() or not any(gpf.iterdir()), "a refused package left files behind"
    return info.value


def _oracle_codes(doc: dict[str, Any]) -> set[str]:
    assert doc["installed"] is False
    exc = doc["exception"]
    return {c.split(":", 1)[-1] for c in exc.get("codes", []) if c.startswith("error")} or {exc.get("code")}


@pytest.mark.skipif(not SCRIPT.is_file(), reason="nuget-oracle not present")
@pytest.mark.parametrize("mode", ["accept", "require"])
def test_tampered_package_refused_with_nu3008_like_nuget(mode: str, tmp_path: Path) -> None:
    data = _tampered((SHARED / "vectors" / "nuget.org" / "Newtonsoft.Json.12.0.3.nupkg").read_bytes())
    kind, fp = _signer(data)
    doc = _oracle_extract(data, ["--mode", mode, f"--trusted-{kind}", fp])
    assert "NU3008" in _oracle_codes(doc)
    policy = (
        VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE)
        if mode == "accept"
        else VerificationPolicy.require(trusted_signers=(_trusted(kind, fp),), revocation_mode=RevocationMode.OFFLINE)
    )
    err = _refusal(tmp_path, data, policy)
    assert err.code is not None and err.code.value == "NU3008"
    assert err.package == "Newtonsoft.Json 12.0.3" and err.source == SOURCE and SOURCE in err.message


@pytest.mark.skipif(not SCRIPT.is_file(), reason="nuget-oracle not present")
def test_unsigned_package_under_require_refused_with_nu3004_like_nuget(tmp_path: Path) -> None:
    data = _odd_package()
    fp = _signer((SHARED / "vectors" / "nuget.org" / "RestSharp.106.11.4.nupkg").read_bytes())[1]
    doc = _oracle_extract(data, ["--mode", "require", "--trusted-repository", fp])
    assert _oracle_codes(doc) == {"NU3004"}
    policy = VerificationPolicy.require(
        trusted_signers=(_trusted("repository", fp),), revocation_mode=RevocationMode.OFFLINE
    )
    err = _refusal(tmp_path, data, policy)
    assert err.code is not None and err.code.value == "NU3004"


@pytest.mark.skipif(not SCRIPT.is_file(), reason="nuget-oracle not present")
def test_signer_outside_trusted_signers_refused_with_nu3034_like_nuget(tmp_path: Path) -> None:
    data = (SHARED / "vectors" / "nuget.org" / "RestSharp.106.11.4.nupkg").read_bytes()
    other = "AA" * 32
    doc = _oracle_extract(data, ["--mode", "require", "--trusted-author", other])
    assert "NU3034" in _oracle_codes(doc)
    policy = VerificationPolicy.require(
        trusted_signers=(_trusted("author", other),), revocation_mode=RevocationMode.OFFLINE
    )
    err = _refusal(tmp_path, data, policy)
    assert err.code is not None and err.code.value == "NU3034"


@pytest.mark.skipif(not SCRIPT.is_file(), reason="nuget-oracle not present")
def test_lock_file_is_the_one_nuget_takes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NuGet leaves its lock file in ``$NUGET_SCRATCH/lock``: nuseal computes the same name (not cached: a real run)."""
    gpf = tmp_path / "gpf"
    run = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "extract",
            str(SHARED / "vectors" / "nuget.org" / "system.buffers.4.4.0.nupkg"),
            "--out",
            str(gpf),
            "--mode",
            "accept",
            "--trust-bundle",
            str(CODESIGN),
            "--timestamp-bundle",
            str(TIMESTAMP),
        ],
        capture_output=True,
        timeout=300,
        check=False,
    )
    doc = json.loads(run.stdout)
    assert doc["installed"] is True
    monkeypatch.setenv("NUGET_SCRATCH", doc["nugetScratch"])
    folder = GlobalPackagesFolder(gpf.resolve())
    lock = nuget_lock_path(folder.nupkg_path("System.Buffers", "4.4.0"))
    assert lock.is_file()
    assert lock.stat().st_mtime >= (gpf / "system.buffers").stat().st_mtime - 5


@pytest.mark.skipif(not SCRIPT.is_file(), reason="nuget-oracle not present")
def test_nuget_waits_for_the_lock_nuseal_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nuseal and NuGet lock the same file the same way (``flock``): while nuseal holds a package's lock, NuGet's
    own extraction of it does not start (a plain run takes ~2 s; the lock is held 15 s), and it proceeds once
    the lock is released."""
    vector = SHARED / "vectors" / "nuget.org" / "system.buffers.4.4.0.nupkg"
    scratch = _oracle_extract(vector.read_bytes(), ["--mode", "accept"])["nugetScratch"]
    monkeypatch.setenv("NUGET_SCRATCH", scratch)
    gpf = (tmp_path / "gpf").resolve()
    folder = GlobalPackagesFolder(gpf)
    lock = nuget_lock_path(folder.nupkg_path("System.Buffers", "4.4.0"))
    with _file_lock(lock):
        child = subprocess.Popen(
            [
                "bash",
                str(SCRIPT),
                "extract",
                str(vector),
                "--out",
                str(gpf),
                "--mode",
                "accept",
                "--trust-bundle",
                str(CODESIGN),
                "--timestamp-bundle",
                str(TIMESTAMP),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert not (gpf / "system.buffers").exists(), "NuGet extracted while nuseal held the lock"
            assert child.poll() is None
            time.sleep(0.2)
    out, _ = child.communicate(timeout=120)
    doc = json.loads(out)
    assert doc["installed"] is True and folder.is_installed("System.Buffers", "4.4.0")
