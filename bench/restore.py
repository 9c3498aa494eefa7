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
* the same project restored by the real ``dotnet restore`` (.NET Core SDK 3.1, NuGet 5.4, through
  ../shared/tools/dotnet-sdk/dotnet.sh; skipped with a note when the SDK is not installed) from the same feed into a
  cold global-packages folder and HTTP cache, against the ``nuseal restore`` command (a process too, cold as well):
  dotnet verifies no signature on Linux and scans nothing, nuseal does both;

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
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from nuseal.client.feedclient import HttpSettings
from nuseal.client.restore import RestoreOptions, restore
from nuseal.package import PackageArchive

ROOT = Path(__file__).resolve().parents[1]
DOTNET = ROOT.parent / "shared" / "tools" / "dotnet-sdk" / "dotnet.sh"
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


def dotnet_ready() -> str | None:
    """``None`` when ``dotnet.sh`` runs the SDK here, else why not."""
    if not DOTNET.is_file():
        return f"{DOTNET} is missing"
    run = subprocess.run(["bash", str(DOTNET), "setup"], capture_output=True, text=True, timeout=900, check=False)
    return None if run.returncode == 0 else f"dotnet.sh setup failed: {run.stderr.strip()[-300:]}"


def cold_restore(command: list[str], project: Path, root: Path, env: dict[str, str]) -> None:
    """Run a restore ``command`` on a fresh copy of ``project`` with a new, empty global-packages folder and HTTP
    cache (``NUGET_PACKAGES``, ``NUGET_HTTP_CACHE_PATH``); the copy is made before the clock starts by the caller."""
    gpf, cache = root / "gpf", root / "http-cache"
    full = {**env, "NUGET_PACKAGES": str(gpf), "NUGET_HTTP_CACHE_PATH": str(cache), "HOME": str(root / "home")}
    run = subprocess.run(command, cwd=project, env=full, capture_output=True, text=True, timeout=900, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{command[:3]} failed ({run.returncode}):\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    installed = len(list(gpf.glob("*/*/.nupkg.metadata")))
    if installed != len(RESOLVABLE) + 1:  # the references and System.Memory
        raise SystemExit(f"{command[:3]} installed {installed} packages, not {len(RESOLVABLE) + 1}")


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
            result, _ = restore(RestoreOptions(path=path, packages=fresh(), http=HttpSettings(cache_dir=None)),
                                now=datetime.now(UTC))
            assert result.ok, [str(e) for e in result.errors]
            lock = path / "packages.lock.json"
            if lock.exists():
                lock.unlink()

        run_restore(pc)  # warm-up: imports, trust stores, scan rules
        base_wall, base_cpu = timed(lambda: baseline(base, list(packages), fresh()), args.rounds)
        pc_wall, pc_cpu = timed(lambda: run_restore(pc), args.rounds)
        pr_wall, pr_cpu = timed(lambda: run_restore(proj), args.rounds)
        dotnet_note = dotnet_ready()
        if dotnet_note is None:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "DOTNET_CLI_TELEMETRY_OPTOUT": "1",
                "DOTNET_SKIP_FIRST_TIME_EXPERIENCE": "1",
                "DOTNET_NOLOGO": "1",
                "MSBUILDDISABLENODEREUSE": "1",
                "NUGET_CERT_REVOCATION_MODE": "offline",
            }
            if os.environ.get("DOTNET31_HOME"):
                env["DOTNET31_HOME"] = os.environ["DOTNET31_HOME"]
            else:  # dotnet.sh's default install location, under the real HOME (the runs get their own HOME)
                env["DOTNET31_HOME"] = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"))
                env["DOTNET31_HOME"] += "/dotnet-sdk31"
            commands = {
                "dotnet": ["bash", str(DOTNET), "restore", "App.csproj"],
                "nuseal": [sys.executable, "-m", "nuseal.cli.main", "restore", ".", "--no-http-cache"],
            }

            def one(tool: str) -> Callable[[], None]:
                def go() -> None:
                    cold_restore(commands[tool], copies[tool], tmp / f"{tool}-{next(counter)}", env)

                return go

            copies: dict[str, Path] = {}

            def setup(tool: str) -> None:
                copy = tmp / f"{tool}-proj-{next(counter)}"
                shutil.copytree(proj, copy)
                copies[tool] = copy

            results: dict[str, tuple[float, float]] = {}
            for tool in ("dotnet", "nuseal"):
                setup(tool)
                one(tool)()  # warm-up (first MSBuild run, imports), not timed
                best = (float("inf"), float("inf"))
                for _ in range(args.rounds):
                    setup(tool)
                    wall, cpu = timed(one(tool), 1)
                    best = (min(best[0], wall), min(best[1], cpu))
                results[tool] = best
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
    if dotnet_note is not None:
        print(f"  dotnet restore: skipped ({dotnet_note})")
        return
    (d_wall, d_cpu), (c_wall, c_cpu) = results["dotnet"], results["nuseal"]
    print("  same project, each a process, cold global-packages folder and HTTP cache:")
    print(f"    dotnet restore (NuGet 5.4)   : {d_wall:6.2f} s wall  {d_cpu:6.2f} s CPU  (no verification, no scan)")
    print(
        f"    nuseal restore (command)     : {c_wall:6.2f} s wall  {c_cpu:6.2f} s CPU"
        f"  ratio nuseal/dotnet {c_wall / d_wall:5.2f}x wall, {c_cpu / d_cpu:5.2f}x CPU"
    )


if __name__ == "__main__":
    main()
