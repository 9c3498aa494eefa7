"""Benchmark: ``nuseal restore`` (resolve, download, verify, scan, extract as NuGet) against a plain download + unzip
of the same packages from the same loopback feed, measured in the same run.

Run by hand: ``.venv/bin/python bench/restore.py [--rounds N]``. The feed is a V3 flat container served by Python's
``ThreadingHTTPServer`` on 127.0.0.1 from the real nuget.org vectors in ../shared/vectors/nuget.org (the client is
what is measured; the server answers from memory). Prints wall-clock and CPU seconds (best of ``--rounds``) for

* baseline: GET every ``.nupkg`` (httpx, 16 at a time) and unzip it into a fresh folder - no verification, no scan,
  no NuGet layout;
* ``nuseal restore`` of a ``packages.config`` listing all the vectors (no resolution): download, the gate
  (signature verification under ``accept`` with offline revocation, then the scan), extraction as NuGet's
  ``PackageExtractor``, into an empty global-packages folder;
* ``nuseal restore`` of a project referencing the vectors that resolve among themselves for netcoreapp3.1
  (resolution with .nuspec downloads, lock file written);

and the ratio of each restore to the baseline. The issue's target: the gate costs at most 2x plain download +
extract. Network: loopback only; the HTTP cache is off so every run downloads.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from nuseal.client.feedclient import HttpSettings
from nuseal.client.restore import RestoreOptions, restore
from nuseal.package import PackageArchive

ROOT = Path(__file__).resolve().parents[1]
VECTORS = sorted((ROOT.parent / "shared" / "vectors" / "nuget.org").glob("*.nupkg"))
RESOLVABLE = [
    "Newtonsoft.Json",
    "RestSharp",
    "System.Buffers",
    "SQLitePCLRaw.core",
    "System.Security.Principal.Windows",
    "ILMerge",
    "NUnitTestAdapter",
    "DockPanelSuite",
    "InTheHand.BluetoothLE",
]


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    wall = cpu = float("inf")
    for _ in range(rounds):
        t, c = time.perf_counter(), cpu_seconds()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, cpu_seconds() - c)
    return wall, cpu


def serve(packages: dict[tuple[str, str], bytes]) -> tuple[ThreadingHTTPServer, str]:
    """A read-only V3 feed (service index + flat container) on 127.0.0.1."""
    state: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            body: bytes | None = None
            if self.path == "/v3/index.json":
                resources = [{"@id": f"{state['base']}/flat/", "@type": "PackageBaseAddress/3.0.0"}]
                body = json.dumps({"version": "3.0.0", "resources": resources}).encode()
            elif len(parts) == 3 and parts[0] == "flat" and parts[2] == "index.json":
                versions = sorted(v for i, v in packages if i == parts[1])
                body = json.dumps({"versions": versions}).encode() if versions else None
            elif len(parts) == 4 and parts[0] == "flat":
                data = packages.get((parts[1], parts[2]))
                if data is not None and parts[3].endswith(".nupkg"):
                    body = data
                elif data is not None and parts[3].endswith(".nuspec"):
                    with zipfile.ZipFile(io.BytesIO(data)) as z:
                        body = z.read(next(n for n in z.namelist() if "/" not in n and n.endswith(".nuspec")))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["base"] = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state["base"]


def baseline(base: str, identities: list[tuple[str, str]], out: Path) -> None:
    async def run() -> None:
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=100) as client:

            async def one(pid: str, ver: str) -> None:
                async with limit:
                    r = await client.get(f"{base}/flat/{pid}/{ver}/{pid}.{ver}.nupkg")
                r.raise_for_status()
                target = out / pid / ver
                target.mkdir(parents=True)
                with zipfile.ZipFile(io.BytesIO(r.content)) as z:
                    z.extractall(target)

            await asyncio.gather(*(one(p, v) for p, v in identities))

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("NUGET_CERT_REVOCATION_MODE", "offline")
    packages: dict[tuple[str, str], bytes] = {}
    ids: dict[str, tuple[str, str]] = {}
    for path in VECTORS:
        spec = PackageArchive.from_path(path).nuspec()
        key = (spec.id.lower(), spec.version.normalized.lower())
        packages[key] = path.read_bytes()
        ids[spec.id.lower()] = (spec.id, spec.version.normalized)
    server, base = serve(packages)
    total_mb = sum(len(d) for d in packages.values()) / 1e6
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        os.environ["HOME"] = str(tmp / "home")
        config = (
            '<configuration><packageSources><clear/><add key="bench" value="'
            f'{base}/v3/index.json"/></packageSources></configuration>'
        )
        pc = tmp / "pc"
        pc.mkdir()
        (pc / "nuget.config").write_text(config)
        (pc / "packages.config").write_text(
            "<packages>" + "".join(f'<package id="{i}" version="{v}" />' for i, v in ids.values()) + "</packages>"
        )
        proj = tmp / "proj"
        proj.mkdir()
        (proj / "nuget.config").write_text(config)
        refs = "".join(
            f'<PackageReference Include="{ids[n.lower()][0]}" Version="{ids[n.lower()][1]}" />' for n in RESOLVABLE
        )
        (proj / "App.csproj").write_text(
            '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>netcoreapp3.1</TargetFramework>'
            f"<RestorePackagesWithLockFile>true</RestorePackagesWithLockFile></PropertyGroup><ItemGroup>{refs}"
            "</ItemGroup></Project>"
        )
        counter = iter(range(10**6))

        def fresh() -> Path:
            return tmp / f"out{next(counter)}"

        def run_restore(path: Path) -> None:
            result, _ = restore(RestoreOptions(path=path, packages=fresh(), http=HttpSettings(cache_dir=None)))
            assert result.ok, [str(e) for e in result.errors]
            lock = path / "packages.lock.json"
            if lock.exists():
                lock.unlink()

        run_restore(pc)  # warm-up: imports, trust stores, scan rules
        base_wall, base_cpu = timed(lambda: baseline(base, list(packages), fresh()), args.rounds)
        pc_wall, pc_cpu = timed(lambda: run_restore(pc), args.rounds)
        pr_wall, pr_cpu = timed(lambda: run_restore(proj), args.rounds)
    server.shutdown()
    n = len(packages)
    print(f"{n} packages, {total_mb:.1f} MB, best of {args.rounds} rounds, loopback feed")
    print(
        f"  baseline download + unzip      : {base_wall:6.2f} s wall  {base_cpu:6.2f} s CPU  {n / base_wall:6.1f} pkg/s"
    )
    print(
        f"  nuseal restore packages.config : {pc_wall:6.2f} s wall  {pc_cpu:6.2f} s CPU  {n / pc_wall:6.1f} pkg/s"
        f"  ratio {pc_wall / base_wall:5.2f}x wall, {pc_cpu / base_cpu:5.2f}x CPU"
    )
    print(
        f"  nuseal restore project (10 pkg): {pr_wall:6.2f} s wall  {pr_cpu:6.2f} s CPU"
        f"  ratio {pr_wall / base_wall:5.2f}x wall of the 12-package baseline"
    )


if __name__ == "__main__":
    main()
