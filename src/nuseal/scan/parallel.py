"""Scanning many packages on every core: ``jobs`` processes (this one and ``jobs - 1`` workers started once per
run, :class:`nuseal._internal.workers.OrderedPool`, the engine ``verify`` and ``audit`` share) load, scan and
return packages in input order. With ``fork`` (where available) the parent builds the
:class:`~nuseal.scan.engine.Scanner` once and the workers inherit it; with ``spawn`` each worker builds its own.

Loading (reading the file, walking the folder, downloading) happens in the worker too, so the parent only
sends small :class:`~nuseal.scan.sources.PackageSource` descriptors. A source that cannot be loaded comes back
as a :class:`LoadFailure` (the CLI reports it as unreadable input).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from nuseal._internal.workers import OrderedPool
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


def _scan_one(scanner: Scanner, _context: object, source: PackageSource) -> ScanReport | LoadFailure:
    try:
        pkg = load_source(source)
    except NusealError as exc:
        return LoadFailure(source, str(exc))
    return scanner.scan(pkg)


def _build(spec: ScanSpec) -> Scanner:
    return Scanner(load_rules([Path(p) for p in spec.rules_files]), spec.context)


def _spawned(spec: ScanSpec) -> Callable[[object, PackageSource], ScanReport | LoadFailure]:
    """A spawned worker's work function: its own scanner, built once from ``spec``."""
    return partial(_scan_one, _build(spec))


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
    local = scanner or _build(spec)  # under fork, built once here and inherited by every worker
    if workers <= 1 or len(sources) <= 1:
        for source in sources:
            yield _scan_one(local, None, source)
        return
    # The rules, the popular-id index and the PowerShell grammar are not rebuilt per worker (~0.1-0.2 s of CPU
    # each): the workers inherit this scanner (copy-on-write) where they can be forked.
    # As before the shared engine: forked even while other threads run (the analysers take no lock a thread holds).
    with OrderedPool(
        min(workers, len(sources)), partial(_scan_one, local), setup=(_spawned, (spec,)), fork_with_threads=True
    ) as pool:
        yield from pool.map(sources, max_chunk=max(1, min(16, len(sources) // (workers * 4) or 1)))
