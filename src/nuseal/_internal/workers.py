"""Work through many items on every core, results in input order: the engine of ``verify``, ``scan`` and ``audit``.

:class:`OrderedPool` runs ``jobs`` processes on the items of each :meth:`OrderedPool.map` call: this process and
``jobs - 1`` worker processes started once (a pool of one job still starts one worker). Where the platform can
``fork`` and no other thread runs, the workers are forked and inherit the work function with everything it has
loaded (trust stores, caches, rules); the parent calls :func:`gc.freeze` first, so that a garbage collection in a
worker does not write to (and copy) every page of the inherited heap. Elsewhere they are spawned and build their
work function once from a picklable ``setup`` (a module-level function and its arguments).

Scheduling: the item list goes to every worker once per call; each process then takes the next items from a
shared counter, workers in chunks that shrink towards the end (at most ``max_chunk``, at most the remaining
items over twice the job count, so all finish together), this process one item at a time, so it can hand results
on as soon as they are due. Results are yielded in input order as soon as they and all before them are done.

Measured on 2 cores (``bench/verify.py``): ``multiprocessing.Pool`` with two workers spent ~0.03 s of CPU more
than one process on 120 packages (three helper threads, a task queue behind a lock, a pickled task per batch) and
left this process idle; this design adds ~5 ms.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar, cast

__all__ = ["MAX_CHUNK", "OrderedPool", "WorkerError", "can_fork", "wait_for_closed_workers"]

T = TypeVar("T")
R = TypeVar("R")

#: Most items a worker takes at once (the results go back in one message).
MAX_CHUNK = 16

Work = Callable[[Any, Any], Any]
"""``work(context, item) -> result``: ``context`` is what :meth:`OrderedPool.map` was given for the call."""


class WorkerError(RuntimeError):
    """A worker process stopped without answering (killed, out of memory, crashed)."""


def can_fork() -> bool:
    """``fork`` is offered and safe here: no other thread could hold a lock the child would inherit locked."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


_FROZEN_POOLS = 0
_FREEZE_LOCK = threading.Lock()


def _freeze() -> None:
    global _FROZEN_POOLS  # noqa: PLW0603 - gc.freeze is process-wide
    with _FREEZE_LOCK:
        _FROZEN_POOLS += 1
        gc.freeze()


def _unfreeze() -> None:
    """The heap frozen for the workers is collected again once no pool that relies on it is left."""
    global _FROZEN_POOLS  # noqa: PLW0603 - gc.freeze is process-wide
    with _FREEZE_LOCK:
        _FROZEN_POOLS -= 1
        if _FROZEN_POOLS == 0:
            gc.unfreeze()


def _take(counter: Any, lock: Any, total: int, jobs: int, limit: int) -> tuple[int, int]:
    """Claim the next items: ``(start, end)``, empty when none are left."""
    with lock:
        start = counter.value
        size = max(1, min(limit, (total - start) // (2 * jobs)))
        end = min(total, start + size)
        counter.value = end
    return start, end


def _child(conn: Connection, counter: Any, lock: Any, jobs: int, work: Work | None, setup: Any) -> None:
    """A worker's life: build or inherit the work function, then run calls until told to stop."""
    with contextlib.suppress(ValueError):  # Ctrl-C is the parent's to handle; it stops the workers
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if work is None:
        function, args = setup
        work = function(*args)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        items, context, limit = message
        total = len(items)
        while True:
            start, end = _take(counter, lock, total, jobs, limit)
            if start >= end:
                break
            done: list[Any] = []
            try:
                for index in range(start, end):
                    done.append(work(context, items[index]))
            except Exception as exc:
                conn.send(("r", start, done))
                conn.send(("e", start + len(done), _picklable(exc)))
                break
            conn.send(("r", start, done))
        conn.send(("d",))


def _picklable(exc: BaseException) -> BaseException:
    import pickle  # noqa: PLC0415 - only on the error path

    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - bytes made on the line, not received
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


#: Workers told to exit and not waited for (:meth:`OrderedPool.close`).
_EXITING: list[Any] = []


def _reap() -> None:
    """Forget the told-to-exit workers that have exited (``exitcode`` polls ``waitpid(WNOHANG)``, reaping them)."""
    _EXITING[:] = [proc for proc in _EXITING if proc.exitcode is None]


def wait_for_closed_workers(timeout: float = 5.0) -> None:
    """Wait until the workers of closed pools have exited (at most ``timeout`` seconds each, then they are
    killed): for a caller that must account for their CPU time (``getrusage(RUSAGE_CHILDREN)`` counts a child
    once it is reaped) or must know no worker is left."""
    for proc in _EXITING:
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join()
    _EXITING.clear()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class OrderedPool(Generic[T, R]):
    """``jobs`` processes (this one and ``max(1, jobs - 1)`` workers) mapping ``work`` over items, in order.

    ``work(context, item)`` runs here and, under ``fork``, in the workers (inherited, not pickled). Under
    ``spawn`` (no ``fork``, or other threads running) each worker calls ``setup[0](*setup[1])`` once to make
    its own work function; without ``setup``, or with ``fork_with_threads`` where ``fork`` exists, the pool forks
    even with other threads running (the caller knows they hold no lock the work needs). Use as a context
    manager; :meth:`map` may be called several times, one call at a time; the workers live until :meth:`close`.
    """

    def __init__(
        self,
        jobs: int,
        work: Callable[[Any, T], R],
        *,
        setup: tuple[Callable[..., Callable[[Any, T], R]], tuple[Any, ...]] | None = None,
        max_chunk: int = MAX_CHUNK,
        fork_with_threads: bool = False,
    ) -> None:
        if jobs < 1:
            raise ValueError("a pool needs at least one worker")
        self.jobs = jobs
        self._work = work
        self._limit = max(1, max_chunk)
        #: Whether this process takes items too (not with a single job: then the one worker does all).
        self.parent_works = jobs > 1
        forkable = "fork" in multiprocessing.get_all_start_methods()
        self.forked = setup is None or can_fork() or (forkable and fork_with_threads)
        context: Any = multiprocessing.get_context("fork" if self.forked else "spawn")
        self._counter = context.RawValue("q", 0)
        self._lock = context.Lock()
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._busy = False
        self._frozen = False
        _reap()
        if self.forked:
            _freeze()  # the inherited heap: no collection in a worker (or here) writes to it while the pool lives
            self._frozen = True
        try:
            for _ in range(max(1, jobs - 1)):
                mine, theirs = context.Pipe()
                proc = context.Process(
                    target=_child,
                    args=(
                        theirs,
                        self._counter,
                        self._lock,
                        jobs,
                        work if self.forked else None,
                        None if self.forked else setup,
                    ),
                    daemon=True,
                )
                proc.start()
                theirs.close()
                self._conns.append(mine)
                self._procs.append(proc)
        except BaseException:
            self.terminate()
            raise

    def map(self, items: Sequence[T], context: Any = None, *, max_chunk: int | None = None) -> Iterator[R]:
        """``work(context, item)`` for each item, yielded in input order as soon as each is ready; a worker takes
        at most ``max_chunk`` items at once (default: the pool's).

        An exception raised by ``work`` is raised here when its item's turn comes (the earlier results are
        yielded first); the pool is then stopped. Stopping the iteration early also stops the pool.

        Raises:
            WorkerError: a worker process died.
            RuntimeError: the pool is closed or already mapping.
        """
        if self._busy or not self._procs:
            raise RuntimeError("the pool is closed or already mapping")
        items = list(items)
        if not items:
            return
        self._busy = True
        finished = False
        try:
            yield from self._run(items, context, max(1, max_chunk or self._limit))
            finished = True
        finally:
            self._busy = False
            if not finished:
                self.terminate()

    def _run(self, items: list[T], context: Any, limit: int) -> Iterator[R]:
        total = len(items)
        self._counter.value = 0
        message = (items, context, limit)
        for conn in self._conns:
            conn.send(message)
        ready: dict[int, Any] = {}
        running = set(self._conns)
        next_out = 0
        own_work_left = self.parent_works
        while next_out < total:
            if own_work_left:
                start, end = _take(self._counter, self._lock, total, 1, 1)
                if start < end:
                    try:
                        ready[start] = self._work(context, items[start])
                    except Exception as exc:
                        ready[start] = _Failed(exc)
                        own_work_left = False
                else:
                    own_work_left = False
            if running:  # drained after every own item, so no worker waits on a full pipe for long
                block = not own_work_left and next_out not in ready
                for waiting in wait(list(running), None if block else 0):
                    self._receive(cast(Connection, waiting), ready, running)
            while next_out in ready:
                result = ready.pop(next_out)
                if isinstance(result, _Failed):
                    raise result.error
                yield result
                next_out += 1
            if next_out < total and not own_work_left and not running:
                raise WorkerError("the worker processes stopped before every item was done")
        while running:  # every worker says it is done before the next call may reset the counter
            for waiting in wait(list(running)):
                self._receive(cast(Connection, waiting), ready, running)

    def _receive(self, conn: Connection, ready: dict[int, Any], running: set[Connection]) -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError) as exc:
            proc = self._procs[self._conns.index(conn)]
            proc.join(1)
            raise WorkerError(f"a worker process stopped unexpectedly (exit code {proc.exitcode})") from exc
        kind = message[0]
        if kind == "r":
            start = message[1]
            for offset, result in enumerate(message[2]):
                ready[start + offset] = result
        elif kind == "e":
            ready[message[1]] = _Failed(message[2])
        else:
            running.discard(conn)

    def close(self) -> None:
        """Stop the workers: each is told to exit and is not waited for (tearing down a forked copy of this
        process's memory takes ~3 ms on 2 cores, which this process spends on what it does next); it is reaped by
        a later pool or at interpreter exit."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        _EXITING.extend(self._procs)
        self._release()
        _reap()

    def terminate(self) -> None:
        """Stop the workers at once (after an error)."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join()
        self._release()

    def _release(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []
        if self._frozen:
            self._frozen = False
            _unfreeze()

    def __enter__(self) -> OrderedPool[T, R]:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()
