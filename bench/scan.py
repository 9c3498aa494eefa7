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

Each line gives wall-clock and CPU time (this process plus its worker processes, ``getrusage``): on a shared,
loaded machine the wall clock measures the other processes as much as the scan, CPU time does not. The copies
are identical, so the compiled-code analyser's per-run cache (assemblies by SHA-256) hits on every copy after
the first: "no assembly cache" is the figure for distinct packages (every assembly parsed).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import tempfile
import time
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from nuseal._internal.workers import wait_for_closed_workers
from nuseal.scan import compiled
from nuseal.scan.engine import Analyser, ScanContext, Scanner
from nuseal.scan.package import ScanPackage
from nuseal.scan.parallel import ScanSpec, scan_sources
from nuseal.scan.rules import RuleSet, load_rules
from nuseal.scan.sources import PackageSource

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VECTORS = sorted((SHARED / "vectors").glob("*/*.nupkg"))


def cpu_seconds() -> float:
    """User + system CPU of this process and of its waited-for children (worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of ``rounds`` calls."""
    wall = cpu = float("inf")
    for _ in range(rounds):
        t, c = time.perf_counter(), cpu_seconds()
        fn()
        elapsed = time.perf_counter() - t
        wait_for_closed_workers()  # a closed pool does not wait for its worker; its CPU counts once reaped
        wall, cpu = min(wall, elapsed), min(cpu, cpu_seconds() - c)
    return wall, cpu


def hash_only(paths: list[Path]) -> None:
    for p in paths:
        hashlib.sha256(p.read_bytes()).digest()


def report(
    label: str, seconds: tuple[float, float], count: int, size: int, baseline: tuple[float, float] | None
) -> None:
    wall, cpu = seconds
    ratio = f"{cpu / baseline[1]:6.2f}x hash-only (CPU)" if baseline else "   (baseline)"
    print(
        f"{label:<44} wall {count / wall:8.1f} pkg/s {size / wall / 1e6:7.1f} MB/s | "
        f"CPU {count / cpu:8.1f} pkg/s {size / cpu / 1e6:7.1f} MB/s {1000 * cpu / count:7.2f} ms/pkg  {ratio}"
    )


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


def without_cache(analysers: tuple[Analyser, ...]) -> tuple[Analyser, ...]:
    """The same analysers, the compiled-code one without its per-run assembly cache."""
    return tuple(
        partial(compiled.analyse, cache=None) if getattr(a, "__module__", "").endswith(".compiled") else a
        for a in analysers
    )


def fresh_cache(rules: RuleSet, analysers: tuple[Analyser, ...]) -> Scanner:
    """A scanner with the same analysers but an empty assembly cache (as at the start of a run)."""
    new = compiled.analysers(ScanContext())[0]
    return Scanner(
        rules,
        analysers=tuple(new if getattr(a, "__module__", "").endswith(".compiled") else a for a in analysers),
    )


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
        print(
            f"{len(paths)} packages, {size / 1e6:.1f} MB, best of {args.rounds}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print("analysers:", ", ".join(getattr(a, "__module__", "?").rsplit(".", 1)[-1] for a in scanner.analysers))
        scan_paths(scanner, paths[: len(VECTORS)])  # warm-up: grammar, rules, data
        rounds, few = args.rounds, max(1, args.rounds // 2)
        base = timed(lambda: hash_only(paths), rounds)
        report("hash-only (SHA-256 of each file)", base, len(paths), size, None)
        one = timed(lambda: scan_paths(scanner, paths), rounds)
        report("scan, 1 process (assemblies seen before)", one, len(paths), size, base)
        per_run = timed(lambda: scan_paths(fresh_cache(rules, scanner.analysers), paths), rounds)
        report("scan, 1 process (cache from empty)", per_run, len(paths), size, base)
        uncached = Scanner(rules, analysers=without_cache(scanner.analysers))
        distinct = timed(lambda: scan_paths(uncached, paths), rounds)
        report("scan, 1 process, no assembly cache", distinct, len(paths), size, base)
        for analyser in without_cache(scanner.analysers):
            only = Scanner(rules, analysers=(analyser,))
            name = getattr(analyser, "func", analyser).__module__  # functools.partial: the function's module
            t = timed(lambda only=only: scan_paths(only, paths), few)
            report(f"  only {name.rsplit('.', 1)[-1]} (no cache; + package view)", t, len(paths), size, base)
        view = Scanner(rules, analysers=())
        t = timed(lambda: scan_paths(view, paths), few)
        report("  package view only (no analyser)", t, len(paths), size, base)
        sources = [PackageSource("file", str(p), str(p)) for p in paths]
        two = timed(lambda: list(scan_sources(ScanSpec(), sources, jobs=2)), few)
        report("scan, 2 workers (incl. start-up)", two, len(paths), size, base)
        print(
            f"2 workers: wall speed-up {per_run[0] / two[0]:.2f}x over 1 process (the machine's other load decides "
            f"it); CPU per package {1000 * two[1] / len(paths):.2f} ms vs {1000 * per_run[1] / len(paths):.2f} ms "
            f"in 1 process; on 2 idle cores: about {len(paths) / (two[1] / 2):.0f} pkg/s "
            f"({len(paths) / (distinct[1] / 2):.0f} pkg/s for distinct packages)"
        )
        big = Path(tmp) / "Big.Package.1.0.0.nupkg"
        big.write_bytes(big_package(args.big_mb))
        big_size = big.stat().st_size
        found = scan_paths(scanner, [big])
        b = timed(lambda: hash_only([big]), rounds)
        report(f"hash-only, {big_size / 1e6:.0f} MB package", b, 1, big_size, None)
        s = timed(lambda: scan_paths(scanner, [big]), rounds)
        report(f"scan, {big_size / 1e6:.0f} MB package ({found} findings)", s, 1, big_size, b)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
