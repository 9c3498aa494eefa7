"""Benchmark: ``nuseal audit`` packages/s over a global-packages folder, against a hash-only pass in the same run.

Run by hand: ``.venv/bin/python bench/audit.py [--small N] [--rounds N]``. Builds a global-packages folder with
nuseal's own install (gate in accept mode, offline revocation, the .NET SDK's trust bundles) holding

* the real vectors of ../shared/vectors (nuget.org and install-time: 20 packages, 0.1-5 MB each, most signed);
* ``--small`` generated packages shaped like the bulk of a real folder (nuspec, a 40 KB library, its XML doc,
  a build .targets; unsigned),

then measures, best of ``--rounds``:

* hash-only: walk every version folder and SHA-512 every file in it (the least an audit must do);
* audit, one process (``nuseal audit --jobs 1``): hashes, every extracted file against its entry, signature,
  scan;
* audit, two processes (``--jobs 2``: this one and one forked worker, start-up included), taking turns with
  ``--jobs 1`` round by round, with the CPU time of each process.

Target (issue 15): at least 50 packages/s on 2 cores. Network: none.
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
from datetime import UTC, datetime
from pathlib import Path

from nuseal.client.audit import audit_folder, find_package_folders
from nuseal.client.gate import GateSettings
from nuseal.client.globalpackages import GlobalPackagesFolder
from nuseal.package import PackageArchive
from nuseal.trust import RevocationMode
from nuseal.verify import VerificationPolicy

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VECTORS = sorted((SHARED / "vectors").glob("*/*.nupkg"))
TARGETS = '<Project><Target Name="Hello" AfterTargets="Build"><Message Text="hello" /></Target></Project>\n'


def small_package(n: int) -> bytes:
    package_id = f"Bench.Small{n:04d}"
    nuspec = (
        '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/'
        f'nuspec.xsd"><metadata><id>{package_id}</id><version>1.{n}.0</version><authors>bench</authors>'
        "<description>a generated package</description></metadata></package>"
    )
    rng = hashlib.sha256(str(n).encode()).digest()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{package_id}.nuspec", nuspec)
        z.writestr(f"lib/net8.0/{package_id}.dll", (rng * 1250)[:40_000])
        z.writestr(f"lib/net8.0/{package_id}.xml", "<doc>" + "<member name='M:x'/>" * 400 + "</doc>")
        z.writestr(f"build/{package_id}.targets", TARGETS)
    return buf.getvalue()


def build(root: Path, small: int, gate: GateSettings) -> int:
    gpf = GlobalPackagesFolder(root)
    items = [p.read_bytes() for p in VECTORS] + [small_package(n) for n in range(small)]
    for data in items:
        spec = PackageArchive.from_bytes(data).nuspec()
        gpf.install(data, package_id=spec.id, version=spec.version, source="https://bench/v3/index.json", gate=gate,
                    now=datetime.now(UTC))
    return len(items)


def hash_only(root: Path) -> None:
    for folder in find_package_folders(root):
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as fh:
                    hashlib.sha512(fh.read()).digest()


def timed(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def race(fns: list[Callable[[], object]], rounds: int) -> list[tuple[float, float, float]]:
    """Best wall seconds of each function, and the CPU seconds (this process, its worker processes) of its round
    with the least CPU in all; timed taking turns round by round so that load from other processes falls on each
    alike."""
    out = [(float("inf"), float("inf"), 0.0)] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            here, kids = _cpu()
            t = time.perf_counter()
            fn()
            wall = time.perf_counter() - t
            here2, kids2 = _cpu()
            best = out[i]
            cpu = (here2 - here, kids2 - kids) if here2 - here + kids2 - kids < best[1] + best[2] else best[1:]
            out[i] = (min(best[0], wall), *cpu)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--small", type=int, default=200, help="generated small packages (default 200)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gate = GateSettings(
        policy=VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE),
        code_signing_roots=str(SHARED / "trust" / "codesignctl.pem"),
        timestamping_roots=str(SHARED / "trust" / "timestampctl.pem"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, small in (("real vectors only", 0), (f"vectors + {args.small} small", args.small)):
            root = Path(tmp) / f"gpf-{small}"
            count = build(root, small, gate)
            size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
            print(
                f"\n{label}: {count} packages, {size / 1e6:.1f} MB on disk, best of {args.rounds}, "
                f"{os.cpu_count()} CPUs"
            )
            base = timed(lambda r=root: hash_only(r), args.rounds)  # type: ignore[misc]
            t_one, t_two = race(
                [
                    lambda r=root: audit_folder(r, gate, jobs=1, now=datetime.now(UTC)),  # type: ignore[misc]
                    lambda r=root: audit_folder(r, gate, jobs=2, now=datetime.now(UTC)),  # type: ignore[misc]
                ],
                args.rounds,
            )
            one, two = t_one[0], t_two[0]
            for name, seconds in (("hash-only", base), ("audit --jobs 1", one), ("audit --jobs 2", two)):
                print(f"  {name:<16} {count / seconds:8.1f} pkg/s  {seconds / base:6.2f}x hash-only")
            print(
                f"  --jobs 2 over --jobs 1: {one / two:.2f}x wall; CPU: this process {t_two[1]:.3f} s + worker "
                f"{t_two[2]:.3f} s = {(t_two[1] + t_two[2]) / t_one[1]:.2f}x one process ({t_one[1]:.3f} s), on 2 idle "
                f"cores (each process takes half) about {2 * t_one[1] / (t_two[1] + t_two[2]):.2f}x (load average "
                f"{os.getloadavg()[0]:.1f})"
            )
            findings = sum(len(a.report.findings) for a in audit_folder(root, gate, jobs=1, now=datetime.now(UTC)))
            print(f"  findings on the fresh folder: {findings} (expected 0); target >= 50 pkg/s on 2 cores")


if __name__ == "__main__":
    main()
