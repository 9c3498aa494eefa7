"""Verifying many packages on every core: one :class:`~nuseal.verify.Verifier` per worker process.

Trust stores are loaded once per worker (parsing a ~300-root bundle costs tens of milliseconds); packages are
handed out in chunks and results come back in input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from nuseal.trust import CertificatePurpose, TrustStore
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import VerificationResult
from nuseal.verify.verifier import Verifier

__all__ = ["VerifierSpec", "verify_paths"]

#: Below this many packages a pool costs more than it saves.
MIN_PACKAGES_FOR_POOL = 4
_CHUNK = 8


@dataclass(frozen=True)
class VerifierSpec:
    """What a worker needs to build its verifier: the policy and the trust bundle paths (``None``: discover
    them as the .NET SDK does on Linux, :meth:`nuseal.trust.TrustStore.discover`)."""

    policy: VerificationPolicy
    code_signing_roots: str | None = None
    timestamping_roots: str | None = None
    with_content_hash: bool = False

    def build(self) -> Verifier:
        """Load the trust stores and make a verifier (online revocation uses the default HTTP fetcher)."""

        def store(path: str | None, purpose: CertificatePurpose) -> TrustStore:
            return TrustStore.from_pem_file(path) if path else TrustStore.discover(purpose)

        return Verifier(
            self.policy,
            code_signing_roots=store(self.code_signing_roots, CertificatePurpose.CODE_SIGNING),
            timestamping_roots=store(self.timestamping_roots, CertificatePurpose.TIMESTAMPING),
            with_content_hash=self.with_content_hash,
        )


_worker: Verifier | None = None


def _init_worker(spec: VerifierSpec) -> None:
    global _worker  # noqa: PLW0603 - one verifier per worker process
    _worker = spec.build()


def _verify_in_worker(path: str) -> VerificationResult:
    if _worker is None:  # pragma: no cover - the pool initializer sets it
        raise RuntimeError("worker not initialised")
    return _worker.verify_path(path, now=datetime.now(UTC))


def verify_paths(spec: VerifierSpec, paths: Iterable[str], *, jobs: int) -> Iterator[VerificationResult]:
    """Verify ``paths`` with ``jobs`` worker processes (in this process when ``jobs`` is 1 or the list is short).

    Yields results in input order as they complete. Raises :class:`~nuseal.errors.UsageError` (from the worker)
    when a file cannot be read.
    """
    items = list(paths)
    if jobs <= 1 or len(items) < MIN_PACKAGES_FOR_POOL:
        verifier = spec.build()
        for p in items:
            yield verifier.verify_path(p, now=datetime.now(UTC))
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(spec,)) as pool:
        yield from pool.map(_verify_in_worker, items, chunksize=_CHUNK)
