"""Verifying many packages on every core: worker processes started once, fed batches, results in input order.

``jobs`` processes verify: this one and ``jobs - 1`` workers (:class:`nuseal._internal.workers.OrderedPool`,
the engine ``scan`` and ``audit`` share). The parent makes one :class:`~nuseal.verify.Verifier` (the trust
stores are indexed, not parsed: ~15 ms for the .NET SDK's two bundles) and, where the platform can ``fork``
(Linux), the workers inherit it, with whatever certificates, names and chains it has already cached, instead of
loading their own. Elsewhere (``spawn``) each worker builds its verifier from the :class:`VerifierSpec` once.
Each process takes the next packages from a shared counter (workers in batches of at most :func:`batch_size`,
this process one at a time); results are yielded in input order as soon as the next one in order is ready.

A pool costs a few milliseconds to start (more under ``spawn``) and each worker fills its own caches on its
first packages, so :func:`default_jobs` verifies fewer than :data:`MIN_PACKAGES_FOR_POOL` packages in this
process and never starts more workers than there are batches of :data:`MIN_PACKAGES_PER_WORKER` packages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from nuseal.trust import CertificatePurpose, RevocationFetcher, TrustStore
from nuseal.trust.revocation_cache import current_run
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import VerificationResult
from nuseal.verify.verifier import Verifier

if TYPE_CHECKING:
    from nuseal._internal.workers import OrderedPool

__all__ = [
    "MAX_BATCH",
    "MIN_PACKAGES_FOR_POOL",
    "MIN_PACKAGES_PER_WORKER",
    "VerifierPool",
    "VerifierSpec",
    "batch_size",
    "default_jobs",
    "verify_paths",
]

#: Below this many packages ``default_jobs`` verifies in this process. Measured on 2 cores: a pool (one forked
#: worker next to this process) starts and stops in 6-12 ms (multiprocessing.Pool with two workers: ~20 ms), and a
#: worker's first packages cost 1.5-1.8x a warm one while its caches fill (certificates, names, chains); with 3-6 ms
#: per small package, a pool gains little below about 16.
MIN_PACKAGES_FOR_POOL = 16
#: ``default_jobs`` starts at most one worker per this many packages.
MIN_PACKAGES_PER_WORKER = 8
#: Most packages handed to a worker at once (small enough that workers finish together, large enough that
#: the per-batch message costs nothing next to verification).
MAX_BATCH = 16


@dataclass(frozen=True)
class VerifierSpec:
    """What a worker needs to build its verifier: the policy and the trust bundle paths (``None``: discover
    them as the .NET SDK does on Linux, :meth:`nuseal.trust.TrustStore.discover`). ``online``: the caller asks
    for revocation data over HTTP (the CLI in online revocation mode); otherwise nothing is fetched."""

    policy: VerificationPolicy
    code_signing_roots: str | None = None
    timestamping_roots: str | None = None
    with_content_hash: bool = False
    online: bool = False

    def build(self) -> Verifier:
        """Load the trust stores and make a verifier. Inside a :func:`~nuseal.trust.revocation_cache.revocation_run`
        it uses the run's fetcher and cache; elsewhere (a spawned worker) an HTTP fetcher when ``online``.

        Raises:
            UsageError: a bundle cannot be read or holds no certificate.
        """

        def store(path: str | None, purpose: CertificatePurpose) -> TrustStore:
            return TrustStore.from_pem_file(path) if path else TrustStore.discover(purpose)

        fetcher: RevocationFetcher | None = None
        if self.online and current_run() is None:
            from nuseal.trust.online import HttpRevocationFetcher  # noqa: PLC0415 - the HTTP client only when asked

            fetcher = HttpRevocationFetcher()
        return Verifier(
            self.policy,
            code_signing_roots=store(self.code_signing_roots, CertificatePurpose.CODE_SIGNING),
            timestamping_roots=store(self.timestamping_roots, CertificatePurpose.TIMESTAMPING),
            fetcher=fetcher,
            with_content_hash=self.with_content_hash,
        )


def default_jobs(count: int, cpus: int | None = None) -> int:
    """Processes (this one included) for ``count`` packages when the user did not say: 1 (no pool) below
    :data:`MIN_PACKAGES_FOR_POOL`, else the CPU count, at most one per :data:`MIN_PACKAGES_PER_WORKER` packages."""
    available = cpus if cpus is not None else (os.cpu_count() or 1)
    if count < MIN_PACKAGES_FOR_POOL:
        return 1
    return max(1, min(available, count // MIN_PACKAGES_PER_WORKER))


def batch_size(count: int, jobs: int) -> int:
    """Packages per batch: about four batches per worker (so a slow package does not leave the other workers
    idle at the end), at most :data:`MAX_BATCH`."""
    return max(1, min(MAX_BATCH, -(-count // (jobs * 4))))


def _verify_one(verifier: Verifier, now: datetime, path: str) -> VerificationResult:
    return verifier.verify_path(path, now=now)


def _spawned(spec: VerifierSpec) -> Callable[[datetime, str], VerificationResult]:
    """A spawned worker's work function: its own verifier, built once from ``spec``."""
    return partial(_verify_one, spec.build())


class VerifierPool:
    """``jobs`` processes verifying packages: this one and ``jobs - 1`` workers started once (a pool of one job
    has one worker and leaves this process free); use as a context manager. The engine is
    :class:`nuseal._internal.workers.OrderedPool`: packages are taken from a shared counter in batches of at
    most :func:`batch_size`, shrinking towards the end, and results are yielded in input order.

    ``verifier``: the verifier used here and inherited by the workers under ``fork`` (default: built from
    ``spec``, once). Under ``spawn`` (no ``fork``, or other threads running) each worker builds its own from
    ``spec``. :meth:`verify` may be called several times; the workers and their caches live until :meth:`close`.
    """

    def __init__(self, spec: VerifierSpec, jobs: int, *, verifier: Verifier | None = None) -> None:
        if jobs < 1:
            raise ValueError("a pool needs at least one worker")
        self.jobs = jobs
        # multiprocessing (~10 ms of imports) only when there are workers: not for one package (issue 13)
        from nuseal._internal.workers import OrderedPool  # noqa: PLC0415

        local = verifier or spec.build()
        self._pool: OrderedPool[str, VerificationResult] = OrderedPool(
            jobs, partial(_verify_one, local), setup=(_spawned, (spec,))
        )
        self.forked = self._pool.forked

    def verify(self, paths: Iterable[str], *, now: datetime) -> Iterator[VerificationResult]:
        """Results for ``paths`` verified at moment ``now`` (timezone-aware), in input order, each yielded as soon
        as it and those before it are done.

        Raises:
            UsageError: (from a worker or this process) a file cannot be read; the pool is stopped.
            nuseal._internal.workers.WorkerError: a worker process died.
        """
        items = list(paths)
        return self._pool.map(items, now, max_chunk=batch_size(len(items), self.jobs))

    def close(self) -> None:
        """Stop the workers (waits for them to exit)."""
        self._pool.close()

    def terminate(self) -> None:
        """Stop the workers at once (after an error)."""
        self._pool.terminate()

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


def verify_paths(
    spec: VerifierSpec,
    paths: Iterable[str],
    *,
    now: datetime,
    jobs: int | None = None,
    verifier: Verifier | None = None,
) -> Iterator[VerificationResult]:
    """Verify ``paths`` at moment ``now`` (timezone-aware) with ``jobs`` processes, this one included (``None``:
    :func:`default_jobs`); in this process alone when ``jobs`` is 1 or there is at most one package.
    ``verifier`` (default: built from ``spec``, once, before any worker is forked) is used here and inherited by
    the workers (``fork``).

    Yields results in input order as they complete. Raises :class:`~nuseal.errors.UsageError` when a trust bundle
    or a package file cannot be read.
    """
    items = list(paths)
    workers = default_jobs(len(items)) if jobs is None else jobs
    workers = min(workers, len(items))
    if workers <= 1:
        local = verifier or spec.build()
        for p in items:
            yield local.verify_path(p, now=now)
        return
    with VerifierPool(spec, workers, verifier=verifier) as pool:
        yield from pool.verify(items, now=now)
