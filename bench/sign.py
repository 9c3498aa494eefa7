"""Benchmark: packages signed per second against the local dev TSA, and the share of time spent on the TSA.

Run by hand: ``.venv/bin/python bench/sign.py [--count 200] [--size-kb 64]``. Everything stays on loopback.
Prints, measured in the same run: author signing with a timestamp, the same without a timestamp (the
difference is the TSA round trip), repository countersigning with a timestamp, and the raw timestamp rate.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from nuseal.devpki import DevPki, serve
from nuseal.signing import FileSigner, repository_sign_package, sign_package
from nuseal.timestamp.client import TimestampClient


def package(i: int, size_kb: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"Bench.P{i}.nuspec", f"<package><metadata><id>Bench.P{i}</id><version>1.0.0</version>"
                   "<authors>b</authors><description>d</description></metadata></package>")
        z.writestr("lib/net8.0/a.dll", os.urandom(size_kb * 1024))
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size-kb", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = DevPki.create(Path(tmp) / "pki")
        author = FileSigner.from_pfx(pki.pfx_path("author"), pki.pfx_password)
        repo = FileSigner.from_pfx(pki.pfx_path("repository"), pki.pfx_password)
        pkgs = [package(i, args.size_kb) for i in range(args.count)]
        with serve(pki):
            now = datetime.now(UTC)
            t = time.perf_counter()
            signed = [sign_package(p, author, timestamper_url=pki.tsa_url, now=now).data for p in pkgs]
            with_tsa = time.perf_counter() - t
            t = time.perf_counter()
            for p in pkgs:
                sign_package(p, author, timestamper_url=None, now=now)
            without_tsa = time.perf_counter() - t
            t = time.perf_counter()
            for s in signed:
                repository_sign_package(s, repo, v3_service_index_url="https://feed.example/v3/index.json",
                                        owners=["bench"], timestamper_url=pki.tsa_url, now=now)
            countersign = time.perf_counter() - t
            client = TimestampClient(pki.tsa_url)
            t = time.perf_counter()
            for i in range(args.count):
                client.timestamp(i.to_bytes(8, "big") * 32, now=now)
            tsa_only = time.perf_counter() - t
    n = args.count
    print(f"{n} packages of ~{args.size_kb} KB, 1 process, dev TSA on loopback")
    print(f"author sign + timestamp   {n / with_tsa:8.1f} pkg/s")
    print(f"author sign, no timestamp {n / without_tsa:8.1f} pkg/s")
    print(f"repository countersign+ts {n / countersign:8.1f} pkg/s")
    print(f"timestamps alone          {n / tsa_only:8.1f} tokens/s")
    print(f"share of signing time waiting on the TSA: {(with_tsa - without_tsa) / with_tsa:.0%}")


if __name__ == "__main__":
    main()
