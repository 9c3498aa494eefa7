"""Benchmark `nuseal serve` against nginx serving the same storage folder, in the same run.

Measures, on loopback:
  * requests/s for a flat-container .nupkg download and for a registration index (wrk, or an httpx load
    generator when wrk is missing), for the feed and for nginx serving the feed's storage folder statically;
  * push latency (PUT /api/v2/package) for a 1 MB and a 50 MB package (median of several pushes);
  * the same downloads over HTTPS (issue 19): `nuseal serve` on embedded defaults (the dev PKI's TLS certificate,
    TLS 1.2+) against nginx serving the same files over HTTPS with the same certificate and key (TLS 1.2/1.3,
    the same cipher list), in the same run; keep-alive connections, so this is mostly bulk encryption.

Usage: .venv/bin/python bench/feed.py [--duration 10] [--connections 64] [--workers 2] [--json out.json]
Needs nginx and wrk (scripts/ci-feed-deps.sh installs them). Every server it starts is stopped by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from nuseal.feed.accounts.keys import create_api_key, create_user
from nuseal.feed.config import FeedConfig
from nuseal.feed.http.tls import TLS12_CIPHERS
from nuseal.feed.publish.publisher import FeedService

ROOT = Path(__file__).resolve().parents[1]
VECTOR = ROOT.parent / "shared" / "vectors" / "nuget.org" / "microsoft.data.sqlite.6.0.9.nupkg"
REG_VERSIONS = 20
#: httpx ``verify`` per HTTPS base URL (a context trusting the dev root)
VERIFY: dict[str, ssl.SSLContext] = {}


def package(pid: str, version: str, payload: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            f"{pid}.nuspec",
            f'<?xml version="1.0"?><package><metadata><id>{pid}</id><version>{version}</version>'
            f"<authors>bench</authors><description>benchmark package</description></metadata></package>",
        )
        z.writestr(f"lib/netstandard2.0/{pid}.dll", b"\0" * 4096)
        if payload:
            z.writestr("content/payload.bin", os.urandom(payload), compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def new_feed(data: Path) -> str:
    """Migrate a feed in ``data`` with a user; its API key."""
    data.mkdir(parents=True)
    service = FeedService.open(FeedConfig(data_dir=data, base_url="http://127.0.0.1:1"))
    service.setup()
    now = datetime.now(UTC)
    with service.db.write() as s:
        create_user(s, "bench", now=now)
        key = create_api_key(s, "bench", now=now).key
    service.db.dispose()
    return key


def start_feed(data: Path, workers: int, *args: str, https: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """``nuseal serve --no-signing`` on ``data`` with ``args`` added, on a free loopback port; (process, base URL).
    A server that does not start or answer is stopped."""
    cmd = [sys.executable, "-m", "nuseal.cli.serve", "--data", str(data), "--port", "0", "--workers", str(workers)]
    cmd.append("--no-signing")  # the read and push paths of issue 4, without repository signing
    if not https:
        cmd.append("--http")
    cmd += args
    with open(data / ("server-https.log" if https else "server.log"), "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    assert proc.stdout is not None
    for _ in range(50):
        line = proc.stdout.readline().decode()
        m = re.search(r"nuseal feed on (https?://\S+) ", line)
        if m:
            base = m.group(1)
            if https:  # the dev root, made by `nuseal serve` before it prints its URL
                VERIFY[base] = ssl.create_default_context(cafile=str(data / "devpki" / "root.crt.pem"))
            break
    else:
        stop(proc)
        raise SystemExit("nuseal serve did not start: " + (data / "server.log").read_text())
    for _ in range(100):
        try:
            if httpx.get(base + "/health", timeout=1, verify=VERIFY.get(base, True)).status_code == 200:
                time.sleep(0.5 * workers)  # let every worker come up
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    stop(proc)
    raise SystemExit("nuseal serve did not answer")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


def start_nginx(
    root: Path, work: Path, workers: int, tls: tuple[Path, Path] | None = None
) -> tuple[subprocess.Popen[bytes], str, str | None]:
    """nginx serving ``root`` on http, and with ``tls`` = (chain, key) also on https; (process, http, https)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with socketless_port() as port:
        pass
    with socketless_port() as tls_port:
        pass
    tls_server = (
        f"""  server {{
    listen 127.0.0.1:{tls_port} ssl;
    ssl_certificate {tls[0]};
    ssl_certificate_key {tls[1]};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {TLS12_CIPHERS};
    ssl_prefer_server_ciphers on;
    ssl_session_cache shared:SSL:10m;
    root {root};
    etag on;
  }}
"""
        if tls
        else ""
    )
    user = "user root;" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(
        f"""{user}
worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  types {{ application/json json; application/octet-stream nupkg; application/xml nuspec; }}
  server {{
    listen 127.0.0.1:{port};
    root {root};
    etag on;
  }}
{tls_server}}}
"""
    )
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(work)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/v3/index.json", timeout=1)
            return proc, base, f"https://127.0.0.1:{tls_port}" if tls else None
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("nginx did not start: " + (work / "nginx-error.log").read_text())


class socketless_port:
    def __enter__(self) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


def wrk(url: str, duration: int, connections: int, threads: int) -> float:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or "Non-2xx" in out:
        raise SystemExit("wrk failed:\n" + out)
    return float(m.group(1))


async def _httpx_load(url: str, duration: int, connections: int) -> float:
    done = 0
    deadline = time.monotonic() + duration
    verify = VERIFY.get(url.split("/v3/", maxsplit=1)[0], True)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections), verify=verify) as c:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                r = await c.get(url)
                r.raise_for_status()
                done += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done / (time.monotonic() - start)


def load(url: str, duration: int, connections: int, threads: int) -> float:
    if shutil.which("wrk"):
        return wrk(url, duration, connections, threads)
    return asyncio.run(_httpx_load(url, duration, connections))


def push(c: httpx.Client, key: str, data: bytes) -> None:
    """PUT /api/v2/package with ``data``; anything but 201 ends the run."""
    r = c.put("/api/v2/package", files={"package": ("p.nupkg", data)}, headers={"X-NuGet-ApiKey": key})
    if r.status_code != 201:
        raise SystemExit(f"push failed: {r.status_code} {r.text}")


def push_median(base: str, key: str, packages: Iterable[bytes]) -> float:
    """Median seconds of pushing each of ``packages`` in turn (PUT /api/v2/package, one client)."""
    times = []
    with httpx.Client(base_url=base, timeout=300) as c:
        for data in packages:
            t = time.perf_counter()
            push(c, key, data)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def push_latency(base: str, key: str, size: int, runs: int) -> float:
    return push_median(base, key, (package(f"Bench.Push{size}", f"1.0.{i}", payload=size) for i in range(runs)))


def load_run_arguments(doc: str | None, *, duration: int, workers: int) -> argparse.Namespace:
    """The command line of a benchmark of load runs against feeds and nginx: ``--duration`` (seconds per load run),
    ``--connections``, ``--threads`` (wrk), ``--workers`` (of each feed and of nginx), ``--json`` (results file)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=duration, help="seconds per load run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--workers", type=int, default=workers, help="worker processes of each feed and of nginx")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    return ap.parse_args()


def main() -> None:
    args = load_run_arguments(__doc__, duration=10, workers=2)

    work = Path(tempfile.mkdtemp(prefix="nuseal-bench-"))
    os.chmod(work, 0o755)
    data = work / "feed"
    key = new_feed(data)

    feed, base = start_feed(data, args.workers)
    nginx = tls_feed = None
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            push(c, key, VECTOR.read_bytes())
            for i in range(REG_VERSIONS):
                push(c, key, package("Bench.Reg", f"1.{i}.0"))
        nupkg_path = "/v3/flatcontainer/microsoft.data.sqlite/6.0.9/microsoft.data.sqlite.6.0.9.nupkg"
        reg_path = "/v3/registration-semver2/bench.reg/index.json"
        reg_size = (data / "storage" / reg_path.lstrip("/")).stat().st_size
        # the same feed on HTTPS (a second `nuseal serve` on the same data, the dev certificate), then nginx with both
        devpki = data / "devpki"
        tls_feed, tls_base = start_feed(data, args.workers, https=True)
        tls_files = (devpki / "tls-server.chain.pem", devpki / "tls-server.key.pem")
        nginx, nginx_base, nginx_tls = start_nginx(data / "storage", work, args.workers, tls_files)
        assert nginx_tls is not None
        trusting = VERIFY[nginx_tls] = VERIFY[tls_base]
        results: dict[str, object] = {
            "machine_cpus": os.cpu_count(),
            "feed_workers": args.workers,
            "load_tool": "wrk" if shutil.which("wrk") else "httpx",
            "connections": args.connections,
            "duration_s": args.duration,
            "nupkg_bytes": VECTOR.stat().st_size,
            "registration_index_bytes": reg_size,
        }
        for name, path in (("nupkg", nupkg_path), ("registration", reg_path)):
            # same bytes from both: the feed serves the storage folder nginx serves
            assert httpx.get(base + path).content == httpx.get(nginx_base + path).content
            feed_rps = load(base + path, args.duration, args.connections, args.threads)
            nginx_rps = load(nginx_base + path, args.duration, args.connections, args.threads)
            results[f"{name}_feed_rps"] = round(feed_rps)
            results[f"{name}_nginx_rps"] = round(nginx_rps)
            results[f"{name}_ratio"] = round(feed_rps / nginx_rps, 3)
        for name, path in (("https_nupkg", nupkg_path), ("https_registration", reg_path)):
            served = httpx.get(tls_base + path, verify=trusting).content
            assert served == httpx.get(nginx_tls + path, verify=trusting).content == httpx.get(base + path).content
            feed_rps = load(tls_base + path, args.duration, args.connections, args.threads)
            nginx_rps = load(nginx_tls + path, args.duration, args.connections, args.threads)
            results[f"{name}_feed_rps"] = round(feed_rps)
            results[f"{name}_nginx_rps"] = round(nginx_rps)
            results[f"{name}_ratio"] = round(feed_rps / nginx_rps, 3)
            results[f"{name}_feed_MBps"] = round(feed_rps * len(served) / 1e6, 1)
            results[f"{name}_nginx_MBps"] = round(nginx_rps * len(served) / 1e6, 1)
        results["https_vs_http_feed_nupkg"] = round(
            int(results["https_nupkg_feed_rps"]) / int(results["nupkg_feed_rps"]),
            3,  # type: ignore[call-overload]
        )
        results["load_average_1m"] = round(os.getloadavg()[0], 2)
        results["push_1MB_s"] = round(push_latency(base, key, 1_000_000, 7), 4)
        results["push_50MB_s"] = round(push_latency(base, key, 50_000_000, 3), 3)
    finally:
        stop(feed)
        if tls_feed is not None:
            stop(tls_feed)
        if nginx is not None:
            stop(nginx)
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(k) for k in results)
    for k, v in results.items():
        print(f"{k:<{width}}  {v}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
