"""The shared worker engine of verify, scan and audit (nuseal._internal.workers.OrderedPool): every item once,
results in input order, errors raised at their item's turn, a dead worker reported instead of a hang."""

from __future__ import annotations

import os
import threading
import time

import pytest

from nuseal._internal.workers import OrderedPool, WorkerError, wait_for_closed_workers
from nuseal.errors import UsageError


def _pid_and_square(offset: int, item: int) -> tuple[int, int]:
    time.sleep(0.002)  # long enough that a worker starts before this process has taken every item
    return os.getpid(), item * item + offset


def _fail_on_13(_context: object, item: int) -> int:
    if item == 13:
        raise UsageError(f"item {item} cannot be read")
    return item


def _die_on_7(_context: object, item: int) -> int:
    if item == 7 and os.getpid() != PARENT:
        os._exit(3)
    return item


PARENT = os.getpid()


def _setup_square() -> object:
    return _pid_and_square


def test_two_jobs_share_the_items_and_keep_input_order_over_several_calls() -> None:
    items = list(range(60))
    with OrderedPool(2, _pid_and_square, max_chunk=4) as pool:
        first = list(pool.map(items, 1))
        second = list(pool.map(list(reversed(items)), 2))
    assert [value for _, value in first] == [i * i + 1 for i in items]
    assert [value for _, value in second] == [i * i + 2 for i in reversed(items)]
    pids = {pid for pid, _ in first + second}
    assert PARENT in pids and len(pids) == 2  # this process and one worker both took items


def test_an_error_is_raised_at_its_items_turn_after_the_results_before_it() -> None:
    got: list[int] = []
    with pytest.raises(UsageError, match="item 13"), OrderedPool(2, _fail_on_13) as pool:
        for value in pool.map(list(range(40))):  # the items before it arrive first
            got.append(value)
    assert got == list(range(13))


def test_a_worker_that_dies_is_reported_not_waited_for() -> None:
    pool = OrderedPool(1, _die_on_7)  # one job: the worker alone takes every item
    with pytest.raises(WorkerError, match="exit code 3"):
        list(pool.map(list(range(20))))
    pool.terminate()


def test_with_other_threads_running_a_pool_with_setup_spawns() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with OrderedPool(2, _pid_and_square, setup=(_setup_square, ())) as pool:
            assert not pool.forked
            got = [value for _, value in pool.map(list(range(30)), 0)]
    finally:
        stop.set()
        other.join()
    assert got == [i * i for i in range(30)]


def test_a_closed_pools_worker_exits_by_itself_and_is_reaped() -> None:
    pool = OrderedPool(2, _pid_and_square, max_chunk=4)
    got = list(pool.map(list(range(30)), 0))
    workers = list(pool._procs)
    pool.close()  # tells the worker to stop; does not wait for it
    assert [value for _, value in got] == [i * i for i in range(30)]
    wait_for_closed_workers(timeout=10)
    assert [proc.exitcode for proc in workers] == [0]  # it left on its own (not killed), and has been reaped
    with pytest.raises(RuntimeError, match="closed"):
        list(pool.map([1]))
