"""Parallel verification: forked workers fed batches give the verdicts of one process, in input order."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nuseal.errors import UsageError
from nuseal.trust import RevocationMode
from nuseal.verify import VerificationPolicy, VerificationResult
from nuseal.verify.parallel import (
    MAX_BATCH,
    MIN_PACKAGES_FOR_POOL,
    MIN_PACKAGES_PER_WORKER,
    VerifierPool,
    VerifierSpec,
    batch_size,
    default_jobs,
    verify_paths,
)
from support.clock import VECTOR_NOW

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTORS = sorted((SHARED / "vectors" / "nuget.org").glob("*.nupkg"))
SPEC = VerifierSpec(
    VerificationPolicy.verify(revocation_mode=RevocationMode.OFFLINE),
    str(SHARED / "trust" / "codesignctl.pem"),
    str(SHARED / "trust" / "timestampctl.pem"),
)

pytestmark = pytest.mark.skipif(not VECTORS, reason="no vectors in ../shared/vectors/nuget.org")


def _verdict(result: VerificationResult) -> tuple[object, ...]:
    return result.source, result.valid, result.issues, result.package_id, result.signatures


def _mixed(tmp_path: Path) -> list[str]:
    """The vectors twice, interleaved with a tampered copy and a file that is not a package, so verdicts differ."""
    tampered = tmp_path / "tampered.nupkg"
    data = bytearray(VECTORS[0].read_bytes())
    data[40] ^= 0xFF  # inside the first entry: the package hash no longer matches (NU3008)
    tampered.write_bytes(bytes(data))
    junk = tmp_path / "junk.nupkg"
    junk.write_bytes(b"not a zip")
    paths = [str(v) for v in VECTORS]
    return [*paths, str(tampered), *reversed(paths), str(junk)]


def test_two_workers_give_one_process_verdicts_in_input_order(tmp_path: Path) -> None:
    paths = _mixed(tmp_path)
    local = SPEC.build()
    expected = [_verdict(local.verify_path(p, now=VECTOR_NOW)) for p in paths]
    got = [_verdict(r) for r in verify_paths(SPEC, paths, now=VECTOR_NOW, jobs=2)]
    assert got == expected
    assert [v[1] for v in got].count(False) == 2  # the tampered copy and the junk file


def test_a_pool_is_started_once_and_fed_several_runs(tmp_path: Path) -> None:
    paths = _mixed(tmp_path)
    # Alone, pytest runs no other thread here and the workers inherit this process's verifier; in a full run an
    # earlier test may have left a daemon thread behind, and then the pool must spawn instead of fork.
    forkable = threading.active_count() == 1
    with VerifierPool(SPEC, 2) as pool:
        assert pool.forked == forkable
        first = [_verdict(r) for r in pool.verify(paths, now=VECTOR_NOW)]
        second = [_verdict(r) for r in pool.verify(list(reversed(paths)), now=VECTOR_NOW)]
    assert second == list(reversed(first))


def test_an_unreadable_file_is_a_usage_error_from_the_workers(tmp_path: Path) -> None:
    paths = [str(v) for v in VECTORS] + [str(tmp_path / "missing.nupkg")]
    with pytest.raises(UsageError):
        list(verify_paths(SPEC, paths, now=VECTOR_NOW, jobs=2))


def test_default_jobs_keeps_a_handful_of_packages_in_process() -> None:
    assert default_jobs(1, cpus=8) == 1
    assert default_jobs(MIN_PACKAGES_FOR_POOL - 1, cpus=8) == 1
    assert default_jobs(MIN_PACKAGES_FOR_POOL, cpus=8) == MIN_PACKAGES_FOR_POOL // MIN_PACKAGES_PER_WORKER
    assert default_jobs(10_000, cpus=8) == 8
    assert default_jobs(10_000, cpus=1) == 1


def test_batches_leave_every_worker_several_and_stay_small() -> None:
    assert batch_size(120, 2) == 15
    assert batch_size(10_000, 2) == MAX_BATCH
    assert batch_size(3, 2) == 1


@pytest.mark.slow
def test_with_other_threads_running_workers_are_spawned_and_build_their_own_verifier(tmp_path: Path) -> None:
    paths = _mixed(tmp_path)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with VerifierPool(SPEC, 1) as pool:
            assert not pool.forked
            got = [_verdict(r) for r in pool.verify(paths, now=VECTOR_NOW)]
    finally:
        stop.set()
        other.join()
    local = SPEC.build()
    assert got == [_verdict(local.verify_path(p, now=VECTOR_NOW)) for p in paths]
