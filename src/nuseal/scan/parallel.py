"""Scanning many packages on every core: worker processes, started once per run and fed batches of packages,
load, scan and return packages in input order. With ``fork`` (where available) the parent builds the
:class:`~nuseal.scan.engine.Scanner` once and the workers inherit it; with ``spawn`` each worker builds its own.

Loading (reading the file, walking the folder, downloading) happens in the worker too, so the parent only
sends small :class:`~nuseal.scan.sources.PackageSource` descriptors. A source that cannot be loaded comes back
as a :class:`LoadFailure` (the CLI reports it as unreadable input).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nuseal.errors import NusealError
from nuseal.scan.engine import ScanContext, Scanner, ScanReport
from nuseal.scan.rules import load_rules
from nuseal.scan.sources import PackageSource, load_source

__all__ = ["MIN_PACKAGES_FOR_POOL", "LoadFailure", "ScanSpec", "default_jobs", "scan_sources"]

#: Below this many packages the scan runs in this process (a pool costs more than it saves).
MIN_PACKAGES_FOR_POOL = 16


@dataclass(frozen=True)
class ScanSpec:
    """What a worker needs: the user rules files and the analysers' context."""

    rules_files: tuple[str, ...] = ()
    context: ScanContext = field(default_factory=ScanContext)


@dataclass(frozen=True)
class LoadFailure:
    """A source that could not be read (the message is one line)."""

    source: PackageSource
    message: str


_worker_scanner: Scanner | None = None


def _init_worker(spec: ScanSpec) -> None:
    global _worker_scanner  # noqa: PLW0603 - one scanner per worker process
    _worker_scanner = Scanner(load_rules([Path(p) for p in spec.rules_files]), spec.context)


def _scan_one(source: PackageSource) -> ScanReport | LoadFailure:
    assert _worker_scanner is not None
    try:
        pkg = load_source(source)
    except NusealError as exc:
        return LoadFailure(source, str(exc))
    return _worker_scanner.scan(pkg)


def default_jobs(count: int) -> int:
    """Workers for ``count`` packages: 1 below :data:`MIN_PACKAGES_FOR_POOL`, else the CPU count."""
    if count < MIN_PACKAGES_FOR_POOL:
        return 1
    return max(1, min(os.cpu_count() or 1, count // 8))


def scan_sources(
    spec: ScanSpec, sources: Sequence[PackageSource], *, jobs: int | None = None, scanner: Scanner | None = None
) -> Iterator[ScanReport | LoadFailure]:
    """Scan ``sources``, yielding results in input order. ``jobs`` 1 (or few packages) scans here with
    ``scanner`` (built from ``spec`` when ``None``)."""
    workers = jobs if jobs is not None else default_jobs(len(sources))
    if workers <= 1 or len(sources) <= 1:
        local = scanner or Scanner(load_rules([Path(p) for p in spec.rules_files]), spec.context)
        for source in sources:
            try:
                pkg = load_source(source)
            except NusealError as exc:
                yield LoadFailure(source, str(exc))
                continue
            yield local.scan(pkg)
        return
    global _worker_scanner  # noqa: PLW0603 - inherited by forked workers
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    chunk = max(1, min(16, len(sources) // (workers * 4) or 1))
    if method == "fork":
        # Built once here and inherited (copy-on-write) by every worker: the rules, the popular-id index and the
        # PowerShell grammar are not rebuilt per worker (~0.1-0.2 s of CPU each).
        _worker_scanner = scanner or Scanner(load_rules([Path(p) for p in spec.rules_files]), spec.context)
        try:
            with ctx.Pool(workers) as pool:
                yield from pool.imap(_scan_one, sources, chunksize=chunk)
        finally:
            _worker_scanner = None
        return
    with ctx.Pool(workers, initializer=_init_worker, initargs=(spec,)) as pool:
        yield from pool.imap(_scan_one, sources, chunksize=chunk)
