"""Benchmark: online revocation that never stalls a run (issue 17), offline time as the baseline of the same run.

Run by hand: ``.venv/bin/python bench/revocation.py [--packages 50] [--rounds 3] [--no-oracle] [--no-before]``.

1. The 12 real vectors (../shared/vectors/nuget.org) under the .NET SDK's trust bundles. Their OCSP/CRL URLs name
   public responders this machine cannot reach (on this machine their names fail to resolve), so online mode
   here is "every responder unreachable":

   * offline (``--revocation-mode offline``), best of N;
   * online in a revocation run (``nuseal verify``'s path since issue 17: host view, per-package deadline, a
     fresh cache folder each round), best of N;
   * online as before issue 17 (no run: every certificate asks every URL again), once (``--no-before`` skips it);
   * NuGet's own online path: the oracle's ``extract --revocation-mode online`` (``PackageExtractor``, what
     restore runs), one process per package as restore verifies them, against the same with ``offline``
     (``--no-oracle`` skips both).

2. ``--packages`` packages author-signed and timestamped under a development PKI (nuseal.devpki) served on
   127.0.0.1, whose responders count the requests: offline; online with an empty cache (every answer fetched);
   online again with the cache the first run filled (must ask nothing, and stay within 1.2x of offline); and the
   same packages under a PKI whose responder port is a tarpit (accepts, never answers), with a 1 s deadline.

Ratios are against measurements of the same run; absolute numbers move with the machine's load (printed).
Network: loopback only, except the name lookups of the vectors' responder hosts that online mode (nuseal's and
NuGet's) attempts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from nuseal.devpki import DevPki, serve
from nuseal.signing import SigningTrust, sign_package
from nuseal.signing.signer import FileSigner
from nuseal.trust import RevocationMode, TrustStore
from nuseal.trust.online import HttpRevocationFetcher
from nuseal.trust.revocation_cache import RevocationStore, revocation_run
from nuseal.verify import VerificationPolicy, VerificationResult, Verifier

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VECTORS = sorted((SHARED / "vectors" / "nuget.org").glob("*.nupkg"))
CODESIGN = SHARED / "trust" / "codesignctl.pem"
TIMESTAMP = SHARED / "trust" / "timestampctl.pem"
ORACLE = SHARED / "tools" / "nuget-oracle" / "run-oracle.sh"


def best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def verify_all(
    paths: list[bytes],
    store_pem: tuple[TrustStore, TrustStore],
    mode: RevocationMode,
    fetcher: HttpRevocationFetcher | None = None,
) -> list[VerificationResult]:
    verifier = Verifier(
        VerificationPolicy.verify(revocation_mode=mode),
        code_signing_roots=store_pem[0],
        timestamping_roots=store_pem[1],
        fetcher=fetcher,
    )
    now = datetime.now(UTC)
    return [verifier.verify_bytes(p, now=now) for p in paths]


def in_run(
    packages: list[bytes],
    stores: tuple[TrustStore, TrustStore],
    cache: Path,
    *,
    mode: RevocationMode = RevocationMode.ONLINE,
    timeout: float = 5.0,
) -> list[VerificationResult]:
    with revocation_run(online=True, package_timeout=timeout, store=RevocationStore(cache)):
        return verify_all(packages, stores, mode)


def warnings(results: list[VerificationResult]) -> int:
    return sum(len(r.warnings) for r in results)


def oracle_extract(paths: list[Path], mode: str, work: Path) -> float | None:
    if not ORACLE.is_file():
        return None
    started = time.perf_counter()
    for i, path in enumerate(paths):
        out = work / f"gpf-{mode}-{i}"
        run = subprocess.run(
            ["bash", str(ORACLE), "extract", str(path), "--out", str(out), "--trust-bundle", str(CODESIGN),
             "--timestamp-bundle", str(TIMESTAMP), "--revocation-mode", mode],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if run.returncode != 0 and not run.stdout.strip().startswith("{"):
            print(f"  oracle failed on {path.name}: {run.stderr[-300:]}")
            return None
        json.loads(run.stdout)
        shutil.rmtree(out, ignore_errors=True)
    return time.perf_counter() - started


class Tarpit:
    """Accepts connections on 127.0.0.1 and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def _nupkg(i: int) -> bytes:
    nuspec = (
        '<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
        f"<metadata><id>Bench.Rev{i}</id><version>1.0.0</version><authors>b</authors><description>b</description>"
        "</metadata></package>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"Bench.Rev{i}.nuspec", nuspec)
        archive.writestr("lib/net8.0/a.txt", os.urandom(512))
    return buffer.getvalue()


def sign_many(dev: DevPki, count: int, *, tsa: str | None) -> list[bytes]:
    signer = FileSigner.from_pfx(dev.pfx_path("author"), dev.pfx_password)
    trust = SigningTrust.from_pem_files(dev.root_pem_path, revocation_mode=RevocationMode.OFFLINE)
    now = datetime.now(UTC)
    return [sign_package(_nupkg(i), signer, timestamper_url=tsa, now=now, trust=trust).data for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-oracle", action="store_true")
    parser.add_argument("--no-before", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="nuseal-bench-rev-"))
    try:
        # ------------------------------------------------------------------ 1. the vectors
        stores = (TrustStore.from_pem_file(CODESIGN), TrustStore.from_pem_file(TIMESTAMP))
        vectors = [p.read_bytes() for p in VECTORS]
        print(f"\n1. {len(vectors)} vectors (every responder unreachable from here)")
        verify_all(vectors, stores, RevocationMode.OFFLINE)  # warm-up: parsed certificates, trust store indexes
        offline = best(lambda: verify_all(vectors, stores, RevocationMode.OFFLINE), args.rounds)
        counter = iter(range(1_000_000))
        online = best(lambda: in_run(vectors, stores, work / f"vcache{next(counter)}"), args.rounds)
        online_results = in_run(vectors, stores, work / "vcache-final")
        print(f"  offline                         {offline:8.3f} s")
        print(f"  online, issue 17 (run)          {online:8.3f} s  ({online / offline:.1f}x offline), "
              f"{warnings(online_results)} warnings")  # fmt: skip
        if not args.no_before:
            t = time.perf_counter()
            before = verify_all(vectors, stores, RevocationMode.ONLINE, HttpRevocationFetcher())
            before_s = time.perf_counter() - t
            print(f"  online, before issue 17         {before_s:8.3f} s  ({before_s / offline:.1f}x offline), "
                  f"{warnings(before)} warnings")  # fmt: skip
        if not args.no_oracle:
            nuget_offline = oracle_extract(VECTORS, "offline", work)
            nuget_online = oracle_extract(VECTORS, "online", work)
            if nuget_offline is not None and nuget_online is not None:
                print(f"  NuGet extract offline (oracle)  {nuget_offline:8.3f} s  (one process per package)")
                print(f"  NuGet extract online (oracle)   {nuget_online:8.3f} s  "
                      f"(+{nuget_online - nuget_offline:.3f} s for revocation)")  # fmt: skip
            else:
                print("  NuGet oracle not available")

        # ------------------------------------------------------------------ 2. a served dev PKI
        print(f"\n2. {args.packages} packages under a dev PKI on 127.0.0.1 (author + timestamp chains)")
        dev = DevPki.create(work / "pki")
        with serve(dev) as server:
            packages = sign_many(dev, args.packages, tsa=dev.tsa_url)
            roots = TrustStore.from_pem_file(dev.root_pem_path)
            pki_stores = (roots, roots)
            verify_all(packages, pki_stores, RevocationMode.OFFLINE)  # warm-up
            asked = lambda: sum(1 for _, path, _ in server.requests if not path.startswith("/tsa"))  # noqa: E731
            p_offline = best(lambda: verify_all(packages, pki_stores, RevocationMode.OFFLINE), args.rounds)
            n0 = asked()
            t = time.perf_counter()
            first = in_run(packages, pki_stores, work / "pcache")
            first_s = time.perf_counter() - t
            n1 = asked()
            cached = best(lambda: in_run(packages, pki_stores, work / "pcache"), args.rounds)
            n2 = asked()
            again = in_run(packages, pki_stores, work / "pcache")
            same = [(r.valid, [str(i) for i in r.issues]) for r in first] == [
                (r.valid, [str(i) for i in r.issues]) for r in again
            ]
        print(f"  offline                         {p_offline:8.3f} s")
        print(f"  online, empty cache             {first_s:8.3f} s  ({n1 - n0} OCSP/CRL requests)")
        print(f"  online, cached (2nd+ run)       {cached:8.3f} s  ({cached / p_offline:.2f}x offline, "
              f"{n2 - n1} requests; same results: {same})")  # fmt: skip

        pit = Tarpit()
        try:
            dark = DevPki.create(work / "dark", port=pit.port)
            dark_packages = sign_many(dark, args.packages, tsa=None)
            dark_roots = TrustStore.from_pem_file(dark.root_pem_path)
            d_offline = best(lambda: verify_all(dark_packages, (dark_roots, dark_roots), RevocationMode.OFFLINE), 1)
            t = time.perf_counter()
            in_run(dark_packages, (dark_roots, dark_roots), work / "dcache", timeout=1.0)
            dark_s = time.perf_counter() - t
        finally:
            pit.close()
        print(f"  tarpit responder, 1 s deadline  {dark_s:8.3f} s  (offline {d_offline:.3f} s; "
              f"{pit.connections} connection(s) to the tarpit)")  # fmt: skip
        verdict = "PASS" if cached <= 1.2 * p_offline and n2 == n1 else "FAIL"
        print(f"\n{verdict}: second online run asks nothing and is within 1.2x of offline ({cached / p_offline:.2f}x)")
        verdict = "PASS" if dark_s <= 1.0 + d_offline + 1.0 else "FAIL"
        print(f"{verdict}: tarpit costs at most one deadline plus the offline time (+1 s slack)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
