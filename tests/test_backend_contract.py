"""The backend lifecycle contract, run against every backend: the fake one
(:mod:`tests._fake`), serial, thread, process and parallel (Dask).

What every pool promises, whatever runs it:

- a call on a closed pool raises :class:`PoolClosedError`; work submitted before
  ``close()`` still finishes, an ``imap`` over a generator included, even when its input
  arrives after the engine went idle (the engine's exit/restart handshake);
- after ``terminate()`` a lazy call that needs more input fails promptly with
  :class:`PoolClosedError` (never waits forever), unfinished calls fail, and a call that
  had completed keeps its results;
- ``join(timeout)`` returns within its timeout; ``restart()`` after ``terminate()``
  gives a working pool.

The fake backend's own tests at the end drive the protocol step by step.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Iterator

import pytest

from pathos._errors import PoolClosedError
from pathos._job import Job

from . import _cases
from ._fake import STALL, Fail, FakeBackend, FakePool, Lose
from .conftest import HAVE_DASK, fixture_pool, make_pool, release_pool

T = 30  # seconds: a bound reached only if something hangs
_ids = itertools.count()

KINDS = [
    "fake",
    "serial",
    "thread",
    "process",
    pytest.param("parallel", marks=[pytest.mark.dask, pytest.mark.skipif(not HAVE_DASK, reason="needs pathos[dask]")]),
]
POOLED = [k for k in KINDS if k != "serial"]  # kinds where work runs apart from the caller


def new_pool(kind: str) -> Any:
    """A pool of its own (closing or terminating it touches no other test)."""
    if kind == "fake":
        return FakePool(2, id=f"contract-{next(_ids)}")
    return make_pool(kind)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pool(kind: str) -> Iterator[Any]:
    p = new_pool(kind)
    yield p
    p.terminate()
    p.clear()


def backend_of(pool: Any) -> Any:
    backend = pool._cached_backend()
    assert backend is not None
    return backend


def join_within(pool: Any, seconds: float = T) -> None:
    """``pool.join()``, failing the test instead of hanging."""
    done = threading.Event()

    def join() -> None:
        pool.join()
        done.set()

    threading.Thread(target=join, daemon=True).start()
    assert done.wait(seconds), f"join() did not return within {seconds} s"


def drain(it: Any) -> list[Any]:
    """Every result of a result iterator, each waited for at most ``T`` seconds."""
    out = []
    while True:
        try:
            out.append(it.next(timeout=T))
        except StopIteration:
            return out


def gen(n: int) -> Iterator[int]:
    yield from range(n)


# -- close --------------------------------------------------------------------------------
def test_calls_after_close_raise(pool: Any) -> None:
    assert pool.map(_cases.square, [1, 2]) == [1, 4]
    pool.close()
    for call in (
        lambda: pool.map(_cases.square, [1]),
        lambda: pool.amap(_cases.square, [1]),
        lambda: pool.imap(_cases.square, [1]),
        lambda: pool.uimap(_cases.square, [1]),
        lambda: pool.apipe(_cases.square, 1),
        lambda: pool.submit(_cases.square, 1),
    ):
        with pytest.raises(PoolClosedError):
            call()
    join_within(pool)


@pytest.mark.parametrize("verb", ["imap", "uimap"])
def test_lazy_call_begun_before_close_finishes(pool: Any, kind: str, verb: str) -> None:
    it = getattr(pool, verb)(_cases.square, gen(100))
    first = it.next(timeout=T)
    pool.close()
    time.sleep(0.3)  # the engine runs out of input and goes idle (it may exit) before the refill
    results = [first, *drain(it)]
    expected = [x * x for x in range(100)]
    assert (results if verb == "imap" else sorted(results)) == expected
    join_within(pool)


def test_engine_restarts_for_concurrent_refills_after_close(pool: Any, kind: str) -> None:
    """Several threads refill lazy calls begun before close() while the engine keeps
    going idle: every item of every call comes back (the exit/restart handshake)."""
    iterators = [pool.imap(_cases.add, gen(40), itertools.repeat(k)) for k in range(4)]
    pool.close()
    results: dict[int, list[Any]] = {}

    def consume(k: int) -> None:
        out: list[Any] = []
        try:
            for i, value in enumerate(iter(lambda: _next_or_stop(iterators[k]), _STOP)):
                out.append(value)
                if i % 7 == 0:
                    time.sleep(0.02)  # let the engine idle between refills
        except Exception as exc:  # shown in the assertion below
            out.append(exc)
        results[k] = out

    threads = [threading.Thread(target=consume, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T * 2)
        assert not t.is_alive(), "a consumer hung"
    assert results == {k: [x + k for x in range(40)] for k in range(4)}
    join_within(pool)


_STOP = object()


def _next_or_stop(it: Any) -> Any:
    try:
        return it.next(timeout=T)
    except StopIteration:
        return _STOP


# -- terminate ----------------------------------------------------------------------------
def test_refill_after_terminate_fails_promptly(pool: Any) -> None:
    """Issue item 4: a lazy imap that needs more input after terminate() raises
    PoolClosedError (thread and serial pools used to wait forever)."""
    it = pool.imap(_cases.square, itertools.count())
    assert [it.next(timeout=T) for _ in range(3)] == [0, 1, 4]
    pool.terminate()
    with pytest.raises(PoolClosedError):
        for _ in range(100_000):
            it.next(timeout=T)


def test_terminate_keeps_completed_results(pool: Any) -> None:
    """Issue item 5: terminate() never turns a completed call into an error."""
    done = pool.amap(_cases.square, [1, 2])
    assert done.get(T) == [1, 4]
    listed = pool.imap(_cases.square, [3, 4])
    assert listed.next(timeout=T) == 9
    time.sleep(0.05)
    pool.terminate()
    assert done.get(0) == [1, 4]
    assert done.successful() and not done.cancelled()


@pytest.mark.parametrize("kind", POOLED)
def test_terminate_fails_unfinished_calls(kind: str) -> None:
    pool = new_pool(kind)
    try:
        slow = pool.amap(_cases.sleep_then, [3.0, 3.0, 3.0])
        fut = pool.submit(_cases.sleep_then, 3.0)
        pool.terminate()
        with pytest.raises(PoolClosedError):
            slow.get(T)
        with pytest.raises(PoolClosedError):
            fut.result(T)
    finally:
        pool.terminate()
        pool.clear()


def test_restart_after_terminate(pool: Any) -> None:
    assert pool.map(_cases.square, [2]) == [4]
    pool.terminate()
    with pytest.raises(PoolClosedError):
        pool.map(_cases.square, [2])
    pool.restart()
    assert pool.map(_cases.square, range(5)) == [0, 1, 4, 9, 16]
    pool.terminate()
    pool.clear()
    assert pool.map(_cases.square, [3]) == [9]


# -- join ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", POOLED)
def test_join_with_timeout_returns_while_work_runs(kind: str) -> None:
    pool = new_pool(kind)
    try:
        result = pool.amap(_cases.sleep_then, [1.5])
        pool.close()
        backend_of(pool).join(0.05)
        assert not result.ready()  # join(timeout) came back before the work was done
        assert result.get(T) == [1.5]
        join_within(pool)
    finally:
        pool.terminate()
        pool.clear()


@pytest.mark.dask
@pytest.mark.skipif(not HAVE_DASK, reason="needs pathos[dask]")
def test_shared_cluster_runs_the_contract_basics() -> None:
    """The shared cluster of conftest serves the checks that neither close nor stop it."""
    pool = fixture_pool("parallel")
    try:
        assert pool.map(_cases.square, [1, 2, 3]) == [1, 4, 9]
        assert drain(pool.imap(_cases.square, gen(20))) == [x * x for x in range(20)]
    finally:
        release_pool(pool)


# -- the fake backend, step by step ---------------------------------------------------------
def fed(items: list[Any], fn: Any = _cases.square, **kwds: Any) -> Job:
    job = Job(fn, nodes=2, chunksize=kwds.pop("chunksize", 1), star=False, **kwds)
    job.feed(items, last=True)
    return job


def test_fake_notify_starts_then_wakes_the_engine() -> None:
    b = FakeBackend()
    b.submit(fed([1, 2]))
    assert (b.starts, b.wakes, b.engine_running) == (1, 0, True)
    b.submit(fed([3]))
    assert (b.starts, b.wakes) == (1, 1)
    assert b.run_all() == 3


def test_fake_batch_taken_then_terminated_is_settled_once() -> None:
    """terminate() between the engine taking a batch and settling it: the batch was
    failed by terminate(), and settling it after is a no-op (the auto engine thread
    once died here of a ValueError, and the pool's join() then waited for ever)."""
    b = FakeBackend()
    job = fed([1, 2])
    b.submit(job)
    batch = b.take()
    assert batch is not None
    b.terminate()
    b.finish(batch)  # the engine carries on from where it was: nothing to settle
    with pytest.raises(PoolClosedError):
        job.result()
    b.join(T)
    assert b.joined()


def test_fake_exit_decision_sees_work_queued_during_cleanup() -> None:
    """A notify() that lands while the engine cleans up only wakes it; the exit
    decision then sees the work and the engine goes on."""
    b = FakeBackend()
    job = fed([1])
    b.submit(job)
    b.run_all()
    late = fed([2])
    b.submit(late)  # the engine still runs (cleaning up): woken, not restarted
    assert b.starts == 1
    assert b.try_exit() is False
    b.run_all()
    assert b.try_exit() is True and not b.engine_running
    again = fed([3])
    b.submit(again)  # after the exit: a new engine
    assert b.starts == 2
    b.run_all()
    assert [j.result() for j in (job, late, again)] == [[1], [4], [9]]


def test_fake_exit_handshake_under_concurrent_notify() -> None:
    """The engine's exit decision racing a notify(): in every interleaving the job has
    an engine (the exiting one stayed, or a new one started) and runs."""
    for _ in range(300):
        b = FakeBackend()
        b.submit(fed([0]))
        b.run_all()
        job = fed([1])
        barrier = threading.Barrier(2)
        exited: list[bool] = []

        def engine(b: FakeBackend = b, barrier: threading.Barrier = barrier, exited: list[bool] = exited) -> None:
            barrier.wait()
            exited.append(b.try_exit())

        t = threading.Thread(target=engine)
        t.start()
        barrier.wait()
        b.submit(job)
        t.join(T)
        assert b.engine_running
        assert b.starts == (2 if exited[0] else 1)
        assert b.run_all() == 1 and job.complete()


def test_fake_terminate_fails_unfinished_never_rewrites_finished() -> None:
    b = FakeBackend()
    finished, stalled, queued = fed([1, 2]), fed([3]), fed([4])
    for job in (finished, stalled, queued):
        b.submit(job)
    b.step()
    b.step()  # finished's last batch: complete, and still at the front of the queue
    assert finished.complete()
    b.take()  # stalled's batch, left in flight
    b.terminate()
    assert finished.error is None and not finished.cancelled
    assert isinstance(stalled.error, PoolClosedError)
    assert isinstance(queued.error, PoolClosedError)
    assert b.stops == 1 and not b.engine_running


def test_fake_notify_after_terminate_fails_the_job() -> None:
    b = FakeBackend()
    job = Job(_cases.square, nodes=2, fail_fast=False, stream=True, star=False)
    b.submit(job)
    job.feed([1], last=False)
    b.run_all()
    b.terminate()
    job.feed([2], last=False)  # a lazy refill after terminate()
    assert isinstance(job.error, PoolClosedError) and job.cancelled


def test_fake_lost_batch_is_split_and_failed_batch_fails_each_item() -> None:
    b = FakeBackend(handler=lambda batch: Lose(RuntimeError("died")) if len(batch.items) > 1 else "proceed")
    job = fed([1, 2, 3], chunksize=3)
    b.submit(job)
    b.run_all()
    assert job.complete() and len(job.outcomes) == 3 and job.result() == [1, 4, 9]
    b2 = FakeBackend(handler=lambda batch: Fail(KeyError("nope")))
    job2 = fed([1, 2], chunksize=2, fail_fast=False)
    b2.submit(job2)
    b2.run_all()
    chunk = job2.take(0)
    assert chunk is not None
    values, errors = chunk.values, chunk.errors
    assert values == [None, None] and errors is not None and set(errors) == {0, 1}


def test_fake_stalled_batch_fails_at_terminate() -> None:
    b = FakeBackend(handler=lambda batch: STALL)
    job = fed([1])
    b.submit(job)
    b.run_all()
    assert not job.done_or_failed() and len(b.in_flight) == 1
    b.terminate()
    assert isinstance(job.error, PoolClosedError)


def test_fake_broken_backend_says_why() -> None:
    """Issue item 21: after an internal failure, later calls name the reason."""
    b = FakeBackend()
    pending = Job(_cases.square, nodes=2, fail_fast=False, stream=True, star=False)
    b.submit(pending)
    reason = RuntimeError("the disk is on fire")
    b._break(reason)
    with pytest.raises(PoolClosedError, match="disk is on fire") as info:
        b.submit(fed([1]))
    assert info.value.__cause__ is reason
    pending.feed([1], last=True)
    assert isinstance(pending.error, PoolClosedError) and "disk is on fire" in str(pending.error)
    assert b.describe()["broken"] == "RuntimeError: the disk is on fire"


def test_fake_close_lets_the_engine_exit_and_a_refill_restarts_it() -> None:
    b = FakeBackend()
    job = Job(_cases.square, nodes=2, fail_fast=False, stream=True, star=False)
    b.submit(job)
    job.feed([1], last=False)
    b.run_all()
    wakes = b.wakes
    b.close()
    assert b.wakes == wakes + 1 and b.try_exit() is True
    b.join(0)  # the engine exited: join returns at once
    job.feed([2], last=True)  # the refill of a call begun before close()
    assert b.starts == 2
    b.run_all()
    assert job.complete()
