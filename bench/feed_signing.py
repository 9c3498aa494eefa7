"""What signing costs a push: `nuseal serve` with signing (embedded defaults: the dev PKI and dev TSA it makes
itself, OCSP/CRL on loopback) against the same server with `--no-signing`, in the same run.

Measures the median push latency (PUT /api/v2/package, one client, sequential) of
  * baseline: an unsigned package on a `--no-signing` feed (issue 4's pipeline);
  * unsigned on the signing feed: the rules, then a repository primary signature (RSA-2048, TSA round trip);
  * author-signed on the signing feed: nuget.org's submission rules through the verifier (chain, OCSP for the
    signer and the TSA certificate, the registered-certificate allow list), then a repository countersignature;
and `nuseal admin repository-sign` throughput over versions stored unsigned (versions/s), all as ratios to the
baseline. Payloads are 100 KB and 10 MB (the signature work is per package; hashing grows with size).

Usage: .venv/bin/python bench/feed_signing.py [--runs 15] [--json out.json]
Every server it starts is stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.cli.admin import admin_group
from nuseal.devpki import DevPki
from nuseal.signing import SigningTrust, sign_package
from nuseal.signing.signer import FileSigner
from nuseal.trust import TrustStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feed import package, push_median, stop


def admin(data: Path, *args: str) -> str:
    result = CliRunner().invoke(admin_group, [*args, "--data", str(data)], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"nuseal admin {' '.join(args)} failed: {result.output}")
    return result.stdout.strip()


def start_feed(data: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    cmd = [sys.executable, "-m", "nuseal.cli.serve", "--data", str(data), "--port", "0", "--workers", "1"]
    cmd += ["--http", *args]  # plain HTTP, as this benchmark measured before the HTTPS default
    with open(data / "server.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"nuseal feed on (http://\S+) ", proc.stdout.readline().decode())
        if m:
            base = m.group(1)
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        return proc, base
                except httpx.HTTPError:
                    time.sleep(0.1)
    stop(proc)
    raise SystemExit("nuseal serve did not start: " + (data / "server.log").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="pushes per case and size")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nuseal-bench-signing-"))
    plain_dir, signing_dir = work / "plain", work / "signing"
    plain_dir.mkdir()
    signing_dir.mkdir()
    keys = {}
    for data in (plain_dir, signing_dir):
        admin(data, "create-user", "bench")
        keys[data] = admin(data, "create-api-key", "bench")
    # unsigned pushes on the signing feed come from a user without registered certificates (an owner with
    # registered certificates may push only packages signed with one of them)
    admin(signing_dir, "create-user", "nocert")
    nocert_key = admin(signing_dir, "create-api-key", "nocert")

    results: dict[str, object] = {"machine_cpus": os.cpu_count(), "runs": args.runs}
    plain, plain_base = start_feed(plain_dir, "--no-signing")
    signing, signing_base = start_feed(signing_dir)  # embedded defaults: dev PKI + dev TSA, signing on
    try:
        dev = DevPki.load(signing_dir / "devpki")
        # register the dev PKI's author certificate for bench (2FA first), as an owner would
        uri = admin(signing_dir, "enable-2fa", "bench").splitlines()[-1]
        totp = pyotp.TOTP(parse_qs(urlsplit(uri).query)["secret"][0])
        admin(signing_dir, "confirm-2fa", "bench", totp.now())
        cer = work / "author.cer"
        cer.write_bytes(dev.cert("author").public_bytes(Encoding.DER))
        time.sleep(30 - time.time() % 30 + 0.5)  # a fresh time step: the confirming code's step is used
        admin(signing_dir, "register-certificate", "bench", str(cer), "--totp", totp.now())
        signer = FileSigner.from_pfx(dev.pfx_path("author"), dev.pfx_password)
        roots = TrustStore.from_certificates((dev.cert("root"),), source="dev root")
        trust = SigningTrust(roots, roots)

        for size, label in ((100_000, "100KB"), (10_000_000, "10MB")):
            unsigned = [package(f"Bench.U{label}", f"1.0.{i}", size) for i in range(args.runs)]
            baseline = push_median(plain_base, keys[plain_dir], unsigned)
            repo_primary = push_median(signing_base, nocert_key, unsigned)
            authored = [
                sign_package(
                    package(f"Bench.A{label}", f"1.0.{i}", size),
                    signer,
                    timestamper_url=dev.tsa_url,
                    now=datetime.now(UTC),
                    trust=trust,
                ).data
                for i in range(args.runs)
            ]
            author = push_median(signing_base, keys[signing_dir], authored)
            results[f"push_{label}_plain_s"] = round(baseline, 4)
            results[f"push_{label}_unsigned_signing_feed_s"] = round(repo_primary, 4)
            results[f"push_{label}_author_signed_s"] = round(author, 4)
            results[f"push_{label}_unsigned_ratio"] = round(repo_primary / baseline, 2)
            results[f"push_{label}_author_signed_ratio"] = round(author / baseline, 2)
    finally:
        stop(plain)
        stop(signing)

    # backfill: the plain feed's stored versions (runs x 100 KB and runs x 10 MB), after one start with signing
    # (which records the configuration the command uses); the command serves the dev TSA/OCSP/CRL itself
    backfill, _ = start_feed(plain_dir)
    stop(backfill)
    t = time.perf_counter()
    signed = json.loads(admin(plain_dir, "repository-sign", "--json"))["signed"]
    elapsed = time.perf_counter() - t
    plain_mix = (float(results["push_100KB_plain_s"]) + float(results["push_10MB_plain_s"])) / 2  # type: ignore[arg-type]
    results["backfill_versions"] = signed
    results["backfill_versions_per_s"] = round(signed / elapsed, 1)
    results["backfill_per_version_vs_plain_push_ratio"] = round((elapsed / signed) / plain_mix, 2) if signed else None
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
