"""Run the fuzz targets under libFuzzer with time and memory bounds, and report executions and findings.

Usage (from the repository root)::

    .venv/bin/python -m fuzz.run --seconds 300 --jobs 2            # every target, 5 minutes each
    .venv/bin/python -m fuzz.run --seconds 10 version nuspec       # some targets
    .venv/bin/python -m fuzz.zip_reader path/to/crash-input        # replay one input through a target

Per target, ``<workdir>/seeds/<target>`` is rebuilt from the vectors (``fuzz/seeds.py``),
``<workdir>/corpus/<target>`` keeps what libFuzzer found (so a later run starts from it),
``<workdir>/findings/<target>/`` receives crash/timeout/oom inputs and ``<workdir>/logs/<target>.log`` the
libFuzzer output. Exit status 1 when any target found something, 0 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fuzz.seeds import REPO_ROOT, VECTORS, write_seeds

#: The targets, in the order they run. ``powershell`` and ``msbuild`` join when the scan engine has them.
TARGETS = (
    "zip_reader", "signature", "timestamp", "nuspec", "nuget_config", "version", "version_range", "frameworks",
    "v3documents", "osv",
)
OPTIONAL_TARGETS = ("powershell", "msbuild", "clrmeta")
#: Per-input time bound (seconds): an input running longer is a hang (libFuzzer ``-timeout``).
DEFAULT_TIMEOUT = 10
#: Memory bound (MiB of resident memory, libFuzzer ``-rss_limit_mb``).
DEFAULT_RSS_LIMIT_MB = 1536
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "nuseal-fuzz"

_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.MULTILINE)
_PROGRESS = re.compile(r"^#(\d+)\s+\w+.*?cov: (\d+) ft: (\d+) corp: (\d+)", re.MULTILINE)


@dataclass(frozen=True)
class TargetResult:
    """One target's run. ``findings`` are the inputs libFuzzer saved (crash-, timeout-, oom-, leak-...)."""

    name: str
    returncode: int
    seconds: float
    executions: int
    coverage: int
    features: int
    corpus: int
    seeds: int
    findings: tuple[Path, ...]
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.findings

    def summary(self) -> str:
        state = "ok" if self.ok else f"FOUND {len(self.findings)} (exit {self.returncode})"
        return (
            f"{self.name:13} {self.executions:>10,} execs {self.seconds:7.1f} s "
            f"{self.executions / max(self.seconds, 1e-9):8.0f}/s  cov {self.coverage:5} ft {self.features:6} "
            f"corpus {self.corpus:5} (seeds {self.seeds})  {state}"
        )


def available_targets() -> tuple[str, ...]:
    """The targets whose module imports here (the scan-engine targets need ``nuseal.scan``'s parsers)."""
    names = list(TARGETS)
    for name in OPTIONAL_TARGETS:
        try:
            module = importlib.import_module(f"fuzz.{name}")
            if module.available():
                names.append(name)
        except ImportError:
            continue
    return tuple(names)


def run_target(
    name: str,
    *,
    seconds: int,
    workdir: Path,
    vectors: Path = VECTORS,
    timeout: int = DEFAULT_TIMEOUT,
    rss_limit_mb: int = DEFAULT_RSS_LIMIT_MB,
    extra: tuple[str, ...] = (),
    keep_going: bool = False,
) -> TargetResult:
    """Build the seeds and run target ``name`` for ``seconds`` (libFuzzer ``-max_total_time``); with
    ``keep_going``, restart it after a finding until the time is used up (the long run)."""
    module = importlib.import_module(f"fuzz.{name}")
    max_len = int(module.MAX_LEN)
    seeds_dir = workdir / "seeds" / name
    corpus_dir = workdir / "corpus" / name
    findings_dir = workdir / "findings" / name
    log = workdir / "logs" / f"{name}.log"
    for d in (corpus_dir, findings_dir, log.parent):
        d.mkdir(parents=True, exist_ok=True)
    seeds, dictionary = write_seeds(name, seeds_dir, max_len=max_len, vectors=vectors)
    before = set(findings_dir.iterdir())
    flags = [
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_limit_mb}",
        f"-max_len={max_len}",
        f"-artifact_prefix={findings_dir}{os.sep}",
        "-print_final_stats=1",
        *([f"-dict={dictionary}"] if dictionary else []),
        *extra,
    ]
    started = time.monotonic()
    executions = 0
    returncode = 0
    text = ""
    log.write_bytes(b"")
    with log.open("ab") as out:  # append: the libFuzzer child writes to the same file
        while True:
            remaining = seconds - int(time.monotonic() - started)
            command = [sys.executable, "-m", f"fuzz.{name}", str(corpus_dir), str(seeds_dir),
                       f"-max_total_time={max(1, remaining)}", *flags]  # fmt: skip
            out.write(f"$ {' '.join(command)}\n".encode())
            out.flush()
            mark = log.stat().st_size
            # Bound the whole process too: libFuzzer stops at -max_total_time, plus seed loading and start-up.
            try:
                code = subprocess.run(  # noqa: S603 - our own interpreter and module
                    command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=remaining + 300, check=False
                ).returncode
            except subprocess.TimeoutExpired:
                code = -9
            returncode = returncode or code
            round_text = log.read_bytes()[mark:].decode("utf-8", "replace")
            text += round_text
            stats = dict(_STAT.findall(round_text))
            progress = _PROGRESS.findall(round_text)
            executions += int(stats.get("number_of_executed_units", progress[-1][0] if progress else 0))
            # With keep_going, a finding restarts the target (from the grown corpus) until the time is used up.
            if code == 0 or not keep_going or seconds - (time.monotonic() - started) < 10:
                break
    elapsed = time.monotonic() - started
    progress = _PROGRESS.findall(text)
    last = progress[-1] if progress else ("0", "0", "0", "0")
    return TargetResult(
        name=name,
        returncode=returncode,
        seconds=elapsed,
        executions=executions,
        coverage=int(last[1]),
        features=int(last[2]),
        corpus=len(list(corpus_dir.iterdir())),
        seeds=seeds,
        findings=tuple(sorted(set(findings_dir.iterdir()) - before)),
        log=log,
    )


def run_all(
    names: tuple[str, ...], *, seconds: int, workdir: Path, jobs: int = 1, **options: object
) -> list[TargetResult]:
    """Run ``names`` for ``seconds`` each, ``jobs`` at a time; results in the order of ``names``."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_target, n, seconds=seconds, workdir=workdir, **options) for n in names]  # type: ignore[arg-type]
        return [f.result() for f in futures]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="targets to run (default: every available one)")
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per target (default 60)")
    parser.add_argument("--jobs", type=int, default=1, help="targets run at the same time (default 1)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"default {DEFAULT_WORKDIR}")
    parser.add_argument("--vectors", type=Path, default=VECTORS, help=f"default {VECTORS}")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds one input may take")
    parser.add_argument("--rss-limit-mb", type=int, default=DEFAULT_RSS_LIMIT_MB, help="memory bound (MiB)")
    parser.add_argument("--keep-going", action="store_true", help="restart a target after a finding")
    args = parser.parse_args(argv)
    known = available_targets()
    names = tuple(args.targets) or known
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown or unavailable targets: {', '.join(unknown)} (available: {', '.join(known)})")
    results = run_all(
        names,
        seconds=args.seconds,
        workdir=args.workdir,
        jobs=args.jobs,
        vectors=args.vectors,
        timeout=args.timeout,
        rss_limit_mb=args.rss_limit_mb,
        keep_going=args.keep_going,
    )
    for result in results:
        print(result.summary())
        for finding in result.findings:
            print(f"    finding: {finding}  (log {result.log})")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
