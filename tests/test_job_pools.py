"""The job's contracts kept on every pool kind they apply to (issue 9, items 5, 6, 8, 10,
12, 15, 19 and 22; item 11 is in test_progress.py).

Each test here failed on the engine before the job was rewritten as a state machine with
a callback thread.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any, Callable, Iterator

import pytest

import pathos._results
from pathos._errors import SerializationError
from pathos.pools import SerialPool

from .conftest import HAVE_DASK, TIMEOUT, fixture_pool, make_pool, release_pool

CALLBACK_THREAD = "pathos-callbacks"


def square(x: int) -> int:
    return x * x


def nap(seconds: float) -> float:
    if seconds:  # no system call at all otherwise: a really cheap call
        time.sleep(seconds)
    return seconds


def blob(size: int) -> bytes:
    return b"x" * size


def broken_after(n: int) -> Iterator[int]:
    yield from range(n)
    raise ValueError(f"input broke after {n} items")


def drain(it: Any) -> tuple[list[Any], BaseException | None]:
    """Every result of an iterator, and the error that ended it (each wait bounded)."""
    out: list[Any] = []
    while True:
        try:
            out.append(it.next(TIMEOUT))
        except StopIteration:
            return out, None
        except Exception as exc:
            return out, exc


def wait_until(predicate: Callable[[], bool], seconds: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def same_pool_again(pool: Any) -> Any:
    """A new pool object with the same cache id: it gets the same cached workers."""
    if isinstance(pool, SerialPool):
        return SerialPool()
    return type(pool)(pool.nodes, id=pool._id)


def pathos_errors(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pathos" and r.exc_info is not None and text in str(r.exc_info[1])]


# -- item 5: a finished call is never rewritten ------------------------------------------------
def test_a_finished_call_survives_terminate(pool: Any) -> None:
    result = pool.amap(square, range(5))
    assert result.get(TIMEOUT) == [0, 1, 4, 9, 16]
    pool.terminate()
    assert result.get(0) == [0, 1, 4, 9, 16]
    assert result.successful() and not result.cancelled()


# -- item 6: input errors come after every item read before them --------------------------------
@pytest.mark.parametrize("verb", ["imap", "uimap"])
def test_an_input_error_comes_after_the_items_read_before_it(pool: Any, verb: str) -> None:
    values, error = drain(getattr(pool, verb)(square, broken_after(40)))
    assert sorted(values) == [x * x for x in range(40)]
    assert isinstance(error, ValueError) and "after 40 items" in str(error)


@pytest.mark.parametrize("verb", ["imap", "uimap"])
def test_an_input_error_in_the_first_window_is_raised_by_iteration(pool: Any, verb: str) -> None:
    it = getattr(pool, verb)(square, broken_after(1))  # must not raise here
    values, error = drain(it)
    assert values == [0] and isinstance(error, ValueError)


# -- item 8: an ordered stream's bookkeeping stays flat -----------------------------------------
def test_an_ordered_endless_imap_keeps_flat_bookkeeping(pool: Any) -> None:
    it = pool.imap(square, itertools.count(), chunksize=1)
    largest = 0
    for i in range(600):
        assert it.next(TIMEOUT) == i * i
        largest = max(largest, len(it._job.outcomes))
    it.close()
    # one entry per batch not yet consumed, at most a window of them; it used to be 600
    assert largest <= 2 * it._window() < 600


# -- item 10: a remembered timing never serializes a call ---------------------------------------
@pytest.mark.parametrize("kind", ["thread", "process"])
def test_a_cheap_first_call_does_not_make_the_next_one_batch(kind: str) -> None:
    pool: Any = make_pool(kind, nodes=4)
    try:
        assert pool.map(nap, [0.0] * 2000) == [0.0] * 2000  # remembered as very cheap
        sizes: list[int] = []
        assert pool.map(nap, [0.002] * 400, progress=sizes.append) == [0.002] * 400
        # it used to run as one batch of 400 on one worker
        assert sum(sizes) == 400 and max(sizes) <= 400 // 4, sizes
    finally:
        pool.clear()


# -- items 12 and 15: user code never runs on, stalls or kills an engine thread -------------------
def test_progress_reports_run_on_the_callback_thread_and_never_stall_the_work(pool: Any) -> None:
    release = threading.Event()
    threads: set[str] = set()

    def report(n: int) -> None:
        threads.add(threading.current_thread().name)
        release.wait(TIMEOUT)

    result = pool.amap(square, range(40), progress=report, chunksize=1)
    try:
        # every item finishes while the first report is still blocked
        assert wait_until(result._job.done_or_failed, 10), "a blocked progress report stalled the pool"
        assert not result.ready()  # ready once its reports have run
    finally:
        release.set()
    assert result.get(TIMEOUT) == [x * x for x in range(40)]
    assert threads == {CALLBACK_THREAD}


def test_a_raising_progress_callable_never_kills_the_pool(pool: Any, caplog: pytest.LogCaptureFixture) -> None:
    def report(n: int) -> None:
        raise RuntimeError("progress bug")

    assert pool.map(square, range(10), progress=report, chunksize=2) == [x * x for x in range(10)]
    assert pathos_errors(caplog, "progress bug")
    assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]
    assert list(pool.imap(square, range(3), progress=report)) == [0, 1, 4]
    assert same_pool_again(pool).map(square, range(3)) == [0, 1, 4]


def test_future_callbacks_run_on_the_callback_thread_and_their_errors_are_logged(
    pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    done = threading.Event()

    def bad(_: Any) -> None:
        seen.append(threading.current_thread().name)
        raise RuntimeError("callback bug")

    def good(_: Any) -> None:
        seen.append(threading.current_thread().name)
        done.set()

    future = pool.submit(square, 3)
    future.add_done_callback(bad)
    future.add_done_callback(good)
    assert future.result(TIMEOUT) == 9 and done.wait(TIMEOUT)
    late = threading.Event()
    future.add_done_callback(lambda _: late.set() if threading.current_thread().name == CALLBACK_THREAD else None)
    assert late.wait(TIMEOUT)  # added after it was done: still not on the caller's thread
    assert seen == [CALLBACK_THREAD, CALLBACK_THREAD]
    assert pathos_errors(caplog, "callback bug")


# -- item 19: imap's window is bounded by bytes held ---------------------------------------------
def test_results_held_for_a_slow_consumer_stay_bounded_in_bytes(pool: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    limit, size = 4 << 20, 256 << 10
    monkeypatch.setattr(pathos._results, "WINDOW_BYTES", limit)
    it = pool.imap(blob, itertools.repeat(size, 100))
    job = it._job
    held = []
    for _ in range(100):
        assert len(it.next(TIMEOUT)) == size
        # the slow consumer: let the workers run everything they were given
        assert wait_until(lambda: (job.in_flight == 0 and job.waiting() == 0) or job.done_or_failed())
        held.append(job.held_bytes())
    # the first window is read before any result is measured; after that, the bytes rule
    assert max(held[20:]) <= limit + 2 * size, held
    it.close()


# -- item 22: an error that ends a job reaches every verb ----------------------------------------
SENDING_KINDS = [
    "process",
    pytest.param("parallel", marks=[pytest.mark.dask, pytest.mark.skipif(not HAVE_DASK, reason="needs pathos[dask]")]),
]
VERBS: dict[str, Callable[[Any, Callable[[int], int]], Any]] = {
    "map": lambda p, f: p.map(f, range(4)),
    "imap": lambda p, f: drain(p.imap(f, range(4))),
    "imap-lazy": lambda p, f: drain(p.imap(f, iter(range(4)))),
    "uimap": lambda p, f: drain(p.uimap(f, range(4))),
    "amap": lambda p, f: p.amap(f, range(4)).get(TIMEOUT),
    "apipe": lambda p, f: p.apipe(f, 1).get(TIMEOUT),
    "submit": lambda p, f: p.submit(f, 1).result(TIMEOUT),
}


@pytest.fixture(params=SENDING_KINDS)
def sending_pool(request: pytest.FixtureRequest) -> Iterator[Any]:
    p = fixture_pool(request.param)
    yield p
    release_pool(p)


@pytest.mark.parametrize("verb", list(VERBS))
def test_a_function_that_cannot_be_sent_fails_every_verb(sending_pool: Any, verb: str) -> None:
    # imap and uimap used to return an empty iterator: silent data loss.
    generator = (i for i in range(3))  # neither pickle nor dill can send a generator

    def f(x: int) -> int:
        return (generator, x)[1]

    outcome = None
    try:
        outcome = VERBS[verb](sending_pool, f)
    except SerializationError:
        return
    assert isinstance(outcome, tuple), outcome
    values, error = outcome
    assert values == [] and isinstance(error, SerializationError), outcome
    assert sending_pool.map(square, range(3)) == [0, 1, 4]  # the pool carries on
