"""Benchmark: nuseal scan against a hash-only pass over the same files, measured in the same run.

Run by hand: ``.venv/bin/python bench/scan.py [--rounds N] [--repeat N] [--big-mb 100]``. Prints packages/s and
MB/s for

* hash-only: read each file and SHA-256 it (the least any scanner must do);
* scan, one process: every analyser the engine loads (PowerShell, MSBuild, files, compiled code, look-alike
  ids, OSV when given), reading each .nupkg from disk;
* scan, two worker processes (the ``nuseal scan --jobs 2`` code path, start-up included);
* a generated ~100 MB stored package (incompressible content plus a library and an install script).

The packages are the real vectors in ../shared/vectors (nuget.org and install-time), copied ``--repeat`` times.
Ratios are against hash-only in the same run. Network: none.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from nuseal.scan.engine import Scanner
from nuseal.scan.package import ScanPackage
from nuseal.scan.parallel import ScanSpec, scan_sources
from nuseal.scan.rules import load_rules
from nuseal.scan.sources import PackageSource

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VECTORS = sorted((SHARED / "vectors").glob("*/*.nupkg"))


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
    print(f"{label:<36} {count / seconds:9.1f} pkg/s {size / seconds / 1e6:9.1f} MB/s  {ratio}")


def big_package(megabytes: int) -> bytes:
    """A stored package of about ``megabytes`` MB: random blobs, one small library and an install script."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(
            "Big.Package.nuspec",
            "<package><metadata><id>Big.Package</id><version>1.0.0</version>"
            "<authors>bench</authors><description>bench</description></metadata></package>",
        )
        z.writestr("tools/install.ps1", "param($installPath, $toolsPath, $package, $project)\nWrite-Host 'hi'\n")
        z.writestr("build/Big.Package.targets", "<Project><Target Name='X' AfterTargets='Build' /></Project>")
        chunk = 16 << 20
        for i in range(max(1, megabytes // 16)):
            z.writestr(f"content/blob{i}.bin", os.urandom(chunk))
    return buf.getvalue()


def scan_paths(scanner: Scanner, paths: list[Path]) -> int:
    findings = 0
    for p in paths:
        findings += len(scanner.scan(ScanPackage.from_bytes(p.read_bytes(), source=str(p))).findings)
    return findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=10, help="copies of the vectors (default: 10)")
    parser.add_argument("--big-mb", type=int, default=100)
    args = parser.parse_args()
    rules = load_rules()
    scanner = Scanner(rules)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pkgs"
        folder.mkdir()
        for i in range(args.repeat):
            for v in VECTORS:
                (folder / f"{i}-{v.name}").write_bytes(v.read_bytes())
        paths = sorted(folder.iterdir())
        size = sum(p.stat().st_size for p in paths)
        print(f"{len(paths)} packages, {size / 1e6:.1f} MB, best of {args.rounds}, {os.cpu_count()} CPUs")
        print("analysers:", ", ".join(getattr(a, "__module__", "?").rsplit(".", 1)[-1] for a in scanner.analysers))
        scan_paths(scanner, paths[: len(VECTORS)])  # warm-up: grammar, rules, data
        base = timed(lambda: hash_only(paths), args.rounds)
        report("hash-only (SHA-256 of each file)", base, len(paths), size, None)
        one = timed(lambda: scan_paths(scanner, paths), args.rounds)
        report("scan, 1 process", one, len(paths), size, base)
        for analyser in scanner.analysers:
            only = Scanner(rules, analysers=(analyser,))
            name = getattr(analyser, "__module__", "?").rsplit(".", 1)[-1]
            t = timed(lambda only=only: scan_paths(only, paths), max(1, args.rounds // 2))
            report(f"  only {name} (+ package view)", t, len(paths), size, base)
        no_compiled = Scanner(rules, analysers=tuple(
            a for a in scanner.analysers if not getattr(a, "__module__", "").endswith(".compiled")))
        t = timed(lambda: scan_paths(no_compiled, paths), max(1, args.rounds // 2))
        report("  every analyser but compiled", t, len(paths), size, base)
        view = Scanner(rules, analysers=())
        t = timed(lambda: scan_paths(view, paths), max(1, args.rounds // 2))
        report("  package view only (no analyser)", t, len(paths), size, base)
        sources = [PackageSource("file", str(p), str(p)) for p in paths]
        two = timed(lambda: list(scan_sources(ScanSpec(), sources, jobs=2)), max(1, args.rounds // 2))
        report("scan, 2 workers (incl. start-up)", two, len(paths), size, base)
        print(f"parallel speed-up: {one / two:.2f}x")
        big = Path(tmp) / "Big.Package.1.0.0.nupkg"
        big.write_bytes(big_package(args.big_mb))
        big_size = big.stat().st_size
        found = scan_paths(scanner, [big])
        b = timed(lambda: hash_only([big]), args.rounds)
        report(f"hash-only, {big_size / 1e6:.0f} MB package", b, 1, big_size, None)
        s = timed(lambda: scan_paths(scanner, [big]), args.rounds)
        report(f"scan, {big_size / 1e6:.0f} MB package ({found} findings)", s, 1, big_size, b)


if __name__ == "__main__":
    main()
