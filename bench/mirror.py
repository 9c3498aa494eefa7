"""Benchmark the read-through mirror (issue 16): what the checks cost on a first request, and what the mirror
layer costs on cached downloads, in the same run, on loopback.

* An upstream: ``nuseal serve --no-signing`` holding the real nuget.org vectors (../shared/vectors/nuget.org) byte
  for byte. A mirror in front of it: ``nuseal serve --upstream UPSTREAM --allow-insecure-upstream`` (offline
  revocation, the vectors' trust roots).
* First-request latency per vector: a direct GET of the ``.nupkg`` from the upstream, against the mirror's first GET
  (download, verification, scan, known-bad, cooldown, continuity, publish, serve) and its second GET (a static
  file); medians and the first/direct ratio.
* Cached download throughput of one ``.nupkg`` (microsoft.data.sqlite 6.0.9): the mirror (its read-through layer in
  front of the static layer), the upstream (a feed without ``--upstream``: the static layer alone) and nginx serving
  the mirror's storage folder; requests/s and the ratios to nginx (bench/feed.py measures the plain feed's ratio).

Usage: .venv/bin/python bench/mirror.py [--duration 5] [--connections 64] [--workers 1] [--json out.json]
Needs nginx and wrk for the throughput part (an httpx load generator replaces wrk when it is missing). Every
server it starts is stopped by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feed import load, load_run_arguments, new_feed, push, start_feed, start_nginx, stop
from nuseal.package import PackageArchive

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VECTORS = SHARED / "vectors" / "nuget.org"
THROUGHPUT_ID, THROUGHPUT_VERSION = "microsoft.data.sqlite", "6.0.9"


def nupkg(package_id: str, version: str) -> str:
    i, v = package_id.lower(), version.lower()
    return f"/v3/flatcontainer/{i}/{v}/{i}.{v}.nupkg"


def timed_get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    r = httpx.get(url, timeout=120)
    elapsed = time.perf_counter() - start
    if r.status_code != 200:
        raise SystemExit(f"GET {url}: {r.status_code} {r.text[:200]}")
    return elapsed, r.content


def main() -> None:
    args = load_run_arguments(__doc__, duration=5, workers=1)

    work = Path(tempfile.mkdtemp(prefix="nuseal-bench-mirror-"))
    os.chmod(work, 0o755)
    key = new_feed(work / "upstream")
    new_feed(work / "mirror")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upstream, up_base = start_feed(work / "upstream", args.workers)
        procs.append(upstream)
        vectors: list[tuple[str, str, bytes]] = []
        with httpx.Client(base_url=up_base, timeout=120) as c:
            for path in sorted(VECTORS.glob("*.nupkg")):
                data = path.read_bytes()
                nuspec = PackageArchive.from_bytes(data).nuspec()
                push(c, key, data)
                vectors.append((nuspec.id, nuspec.version.normalized, data))
        mirror, mirror_base = start_feed(
            work / "mirror",
            args.workers,
            "--upstream",
            f"bench={up_base}/v3/index.json",
            "--allow-insecure-upstream",
            "--upstream-revocation-mode",
            "offline",
            "--trust-bundle",
            str(SHARED / "trust" / "codesignctl.pem"),
            "--timestamp-trust-bundle",
            str(SHARED / "trust" / "timestampctl.pem"),
        )
        procs.append(mirror)

        rows = []
        for package_id, version, data in vectors:
            path = nupkg(package_id, version)
            direct, body = timed_get(up_base + path)
            assert body == data
            first, body = timed_get(mirror_base + path)
            assert body == data, f"{package_id}: the mirror's bytes differ from the upstream's"
            cached, _ = timed_get(mirror_base + path)
            rows.append((package_id, version, len(data), direct, first, cached))
            print(
                f"{package_id} {version} ({len(data) / 1e6:.2f} MB): direct {direct * 1e3:.1f} ms, "
                f"mirror first {first * 1e3:.1f} ms, cached {cached * 1e3:.1f} ms"
            )
        direct_med = statistics.median(r[3] for r in rows)
        first_med = statistics.median(r[4] for r in rows)
        cached_med = statistics.median(r[5] for r in rows)
        results: dict[str, object] = {
            "machine_cpus": os.cpu_count(),
            "workers": args.workers,
            "packages": len(rows),
            "first_request_direct_median_ms": round(direct_med * 1e3, 1),
            "first_request_mirror_median_ms": round(first_med * 1e3, 1),
            "cached_request_mirror_median_ms": round(cached_med * 1e3, 1),
            "first_request_ratio_median": round(statistics.median(r[4] / r[3] for r in rows), 1),
            "per_package": [
                {
                    "id": r[0],
                    "version": r[1],
                    "bytes": r[2],
                    "direct_ms": round(r[3] * 1e3, 1),
                    "mirror_first_ms": round(r[4] * 1e3, 1),
                    "mirror_cached_ms": round(r[5] * 1e3, 1),
                }
                for r in rows
            ],
        }

        nginx, nginx_base, _ = start_nginx(work / "mirror" / "storage", work, args.workers)
        procs.append(nginx)
        path = nupkg(THROUGHPUT_ID, THROUGHPUT_VERSION)
        rps = {}
        for name, base in (("mirror", mirror_base), ("upstream_feed", up_base), ("nginx", nginx_base)):
            rps[name] = load(base + path, args.duration, args.connections, args.threads)
            results[f"cached_nupkg_{name}_rps"] = round(rps[name])
        results["cached_nupkg_mirror_ratio"] = round(rps["mirror"] / rps["nginx"], 3)
        results["cached_nupkg_feed_ratio"] = round(rps["upstream_feed"] / rps["nginx"], 3)
        results["load_tool"] = "wrk" if shutil.which("wrk") else "httpx"
        results["loadavg"] = os.getloadavg()
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: v for k, v in results.items() if k != "per_package"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
