"""Benchmark: nuseal verify against a hash-only pass over the same files, measured in the same run.

Run by hand: ``.venv/bin/python bench/verify.py [--rounds N] [--big-mb 100]``. Prints packages/s and MB/s for

* hash-only: read each file and SHA-256 it (the least any verifier must do);
* verify, one process: the full NuGet pipeline (integrity, CMS, timestamps, chains; offline revocation);
* verify, two worker processes (``nuseal verify --jobs 2`` code path);
* a generated ~100 MB stored package, author-signed by NuGet's own signer (the oracle) with a throw-away PKI.

Ratios are against hash-only in the same run. Network: none (offline revocation; the TSA, if used, is loopback).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from nuseal.trust import RevocationMode, TrustStore
from nuseal.verify import VerificationPolicy, Verifier
from nuseal.verify.parallel import VerifierSpec, verify_paths

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VECTORS = sorted((SHARED / "vectors" / "nuget.org").glob("*.nupkg"))
CODESIGN = SHARED / "trust" / "codesignctl.pem"
TIMESTAMP = SHARED / "trust" / "timestampctl.pem"


def timed(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def hash_only(paths: list[Path]) -> None:
    for p in paths:
        hashlib.sha256(p.read_bytes()).digest()


def report(label: str, seconds: float, count: int, size: int, baseline: float | None) -> None:
    ratio = f"{seconds / baseline:6.2f}x hash-only" if baseline else "   (baseline)"
    print(f"{label:<34} {count / seconds:9.1f} pkg/s {size / seconds / 1e6:9.1f} MB/s  {ratio}")


def _big_unsigned(megabytes: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(
            "Big.Package.nuspec",
            "<package><metadata><id>Big.Package</id><version>1.0.0</version>"
            "<authors>bench</authors><description>bench</description></metadata></package>",
        )
        chunk = 16 << 20
        for i in range(max(1, megabytes // 16)):
            z.writestr(f"content/blob{i}.bin", os.urandom(chunk))
    return buf.getvalue()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def big_signed_package(directory: Path, megabytes: int) -> tuple[Path, Path] | None:
    """A stored (incompressible) package of ``megabytes`` MB, author-signed by NuGet's own signer (the oracle in
    ../shared/tools/nuget-oracle) with a throw-away openssl PKI; returns (package, root PEM) or None."""
    oracle = SHARED / "tools" / "nuget-oracle" / "run-oracle.sh"
    if not oracle.is_file():
        print("(100 MB case skipped: NuGet's signer is not available)")
        return None
    pki = directory / "pki"
    pki.mkdir()
    ext = pki / "ext.cnf"
    ext.write_text("[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=codeSigning\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(pki / "ca.key"), "-out",
             str(pki / "ca.pem"), "-days", "30", "-sha256", "-subj", "/CN=Bench Root",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(pki / "a.key"), "-out", str(pki / "a.csr"),
             "-subj", "/CN=Bench Author")
    _openssl("x509", "-req", "-in", str(pki / "a.csr"), "-CA", str(pki / "ca.pem"), "-CAkey", str(pki / "ca.key"),
             "-CAcreateserial", "-out", str(pki / "a.pem"), "-days", "20", "-sha256", "-extfile", str(ext),
             "-extensions", "leaf")
    _openssl("pkcs12", "-export", "-inkey", str(pki / "a.key"), "-in", str(pki / "a.pem"), "-certfile",
             str(pki / "ca.pem"), "-out", str(pki / "a.pfx"), "-passout", "pass:bench")
    unsigned = directory / "Big.Package.1.0.0.unsigned.nupkg"
    unsigned.write_bytes(_big_unsigned(megabytes))
    out = directory / "Big.Package.1.0.0.nupkg"
    subprocess.run(
        ["bash", str(oracle), "sign", "--in", str(unsigned), "--out", str(out), "--pfx", str(pki / "a.pfx"),
         "--password", "bench", "--type", "author", "--extra-certs", str(pki / "ca.pem"),
         "--trust-bundle", str(pki / "ca.pem")],
        check=True, capture_output=True, timeout=600,
    )
    return out, pki / "ca.pem"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=10, help="copies of the 12 vectors (default: 10 -> 120)")
    parser.add_argument("--big-mb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pkgs"
        folder.mkdir()
        for i in range(args.repeat):
            for v in VECTORS:
                (folder / f"{i}-{v.name}").write_bytes(v.read_bytes())
        paths = sorted(folder.iterdir())
        size = sum(p.stat().st_size for p in paths)
        policy = VerificationPolicy.verify(revocation_mode=RevocationMode.OFFLINE)
        verifier = Verifier(
            policy,
            code_signing_roots=TrustStore.from_pem_file(CODESIGN),
            timestamping_roots=TrustStore.from_pem_file(TIMESTAMP),
        )
        now = datetime.now(UTC)
        assert all(verifier.verify_path(str(p), now=now).valid for p in paths[:12])
        print(f"{len(paths)} packages, {size / 1e6:.1f} MB, best of {args.rounds}, {os.cpu_count()} CPUs")
        base = timed(lambda: hash_only(paths), args.rounds)
        report("hash-only (SHA-256 of each file)", base, len(paths), size, None)
        one = timed(lambda: [verifier.verify_path(str(p), now=now) for p in paths], args.rounds)
        report("verify, 1 process", one, len(paths), size, base)
        spec = VerifierSpec(policy, str(CODESIGN), str(TIMESTAMP))
        two = timed(lambda: list(verify_paths(spec, [str(p) for p in paths], jobs=2)), max(1, args.rounds // 2))
        report("verify, 2 workers (incl. start-up)", two, len(paths), size, base)
        print(f"parallel speed-up: {one / two:.2f}x")
        made = big_signed_package(Path(tmp), args.big_mb)
        if made is not None:
            big, root_pem = made
            big_size = big.stat().st_size
            pki_root = TrustStore.from_pem_file(root_pem)
            big_verifier = Verifier(policy, code_signing_roots=pki_root, timestamping_roots=pki_root)
            now = datetime.now(UTC)
            result = big_verifier.verify_path(str(big), now=now)
            print(f"100 MB package verdict: valid={result.valid} errors={[str(i) for i in result.errors]}")
            b = timed(lambda: hash_only([big]), args.rounds)
            report(f"hash-only, {big_size / 1e6:.0f} MB package", b, 1, big_size, None)
            v = timed(lambda: big_verifier.verify_path(str(big), now=now), args.rounds)
            report(f"verify, {big_size / 1e6:.0f} MB package", v, 1, big_size, b)


if __name__ == "__main__":
    main()
