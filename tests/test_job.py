"""Job, Batcher, Outcomes and ResultIterator driven directly, without engine threads.

A :class:`Manual` backend only records notifications; each test runs batches itself
with :func:`run_all`, so every interleaving here is chosen by the test.
"""

from __future__ import annotations

import gc
import itertools
import math
import threading
import time
from typing import Any, Iterator

import pytest

from pathos._backend import JobQueue
from pathos._batcher import UNMEASURED_BATCH_ITEMS, Batcher
from pathos._errors import PoolClosedError, ResultTimeoutError, SerializationError
from pathos._job import ENDED, TRANSITIONS, Batch, Job, JobState, may_move
from pathos._outcomes import Chunk, Outcomes
from pathos._results import WINDOW_BYTES, AsyncResult, ResultIterator

WAIT = 10  # seconds: reached only if something hangs


class Manual:
    """A backend that only records what it is told; the test runs the batches."""

    def __init__(self) -> None:
        self.notified: list[Job] = []

    def notify(self, job: Job) -> None:
        self.notified.append(job)


def square(x: int) -> int:
    return x * x


def run_all(job: Job, *, seconds_per_item: float = 1e-6, nbytes: int | None = None) -> int:
    """Run every batch the job has now, inline; returns how many batches ran."""
    ran = 0
    while (batch := job.next_batch()) is not None:
        values = [job.fn(*item) if job.star else job.fn(item) for item in batch.items]
        size = None if nbytes is None else nbytes * len(values)
        job.batch_done(batch, values, None, seconds_per_item * len(values), nbytes=size)
        ran += 1
    return ran


def eager(items: list[Any], **kwds: Any) -> tuple[Job, Manual]:
    job = Job(square, star=False, **kwds)
    backend = Manual()
    job.attach(backend)
    job.feed(items, last=True)
    return job, backend


def lazy(source: Iterator[Any], *, ordered: bool = True, **kwds: Any) -> tuple[ResultIterator, Job]:
    job = Job(square, star=False, fail_fast=False, stream=True, ordered=ordered, **kwds)
    job.attach(Manual())
    return ResultIterator(job, source, ordered=ordered, on_interrupt=lambda: None), job


def consume(it: ResultIterator, job: Job, limit: int | None = None) -> list[Any]:
    """Results (or the exception instance that ended iteration), running batches as needed."""
    out: list[Any] = []
    while limit is None or len(out) < limit:
        run_all(job)
        try:
            out.append(it.next(WAIT))
        except StopIteration:
            break
        except Exception as exc:
            out.append(exc)
            break
    return out


# -- states -------------------------------------------------------------------------------
def test_transitions_are_guarded() -> None:
    assert TRANSITIONS[JobState.PENDING] >= ENDED | {JobState.RUNNING}
    for ended in ENDED:
        assert not TRANSITIONS[ended]
        assert may_move(ended, JobState.CANCELLED) is False  # a race, not a bug: nothing changes
    with pytest.raises(RuntimeError, match="RUNNING to PENDING"):
        may_move(JobState.RUNNING, JobState.PENDING)


def test_a_job_runs_then_completes() -> None:
    job, _ = eager([1, 2, 3])
    assert job.state is JobState.PENDING
    batch = job.next_batch()
    assert batch is not None and job.state is JobState.RUNNING
    job.batch_done(batch, [square(x) for x in batch.items])
    run_all(job)
    assert job.state is JobState.COMPLETE and job.settled()
    assert job.result() == [1, 4, 9]


def test_an_empty_input_completes_at_once() -> None:
    job, _ = eager([])
    assert job.state is JobState.COMPLETE and job.result() == []


def test_a_complete_job_is_never_cancelled_or_rewritten() -> None:
    # Issue item 5: terminate() cancels every queued job with PoolClosedError; a job that
    # had completed but was still queued became an error.
    job, _ = eager([1, 2])
    queue = JobQueue()
    queue.add(job)
    run_all(job)
    assert job.state is JobState.COMPLETE
    queue.cancel_all(PoolClosedError("terminated"))
    assert job.cancel() is False and job.fail(ValueError("late")) is False
    assert job.state is JobState.COMPLETE and not job.cancelled and job.error is None
    result = AsyncResult(job, single=False, on_interrupt=lambda: None)
    assert result.get(0) == [1, 4] and result.successful() and not result.cancelled()


def test_the_callers_cancel_notifies_the_backend_the_engines_does_not() -> None:
    job, backend = eager([1, 2, 3])
    before = len(backend.notified)
    assert job.cancel(PoolClosedError("the pool stopped"))
    assert len(backend.notified) == before  # the engine stopping it may hold its own lock
    job, backend = eager([1, 2, 3])
    before = len(backend.notified)
    assert job.cancel() and job.cancelled_by_caller()
    assert backend.notified[before:] == [job]  # so it drops what it still runs
    assert job.next_batch() is None and not job.has_work()


def test_cancel_unstarted_only() -> None:
    job, _ = eager([1])
    assert job.next_batch() is not None
    assert job.cancel(unstarted_only=True) is False and job.state is JobState.RUNNING


def test_results_of_an_ended_job_are_dropped_but_counted_back() -> None:
    job, _ = eager([1, 2])
    batch = job.next_batch()
    assert batch is not None and job.in_flight == 1
    job.cancel()
    job.batch_done(batch, [0] * len(batch.items))
    assert job.in_flight == 0 and job.finished == 0 and len(job.outcomes) == 0


def test_fail_ends_the_job_with_the_engine_error() -> None:
    job, _ = eager([1, 2])
    error = SerializationError("cannot send the function")
    assert job.fail(error) and job.state is JobState.FAILED and not job.cancelled
    with pytest.raises(SerializationError):
        job.result()
    job, _ = eager([1, 2])
    assert job.cancel(error) and job.state is JobState.FAILED  # the engine's cancel with a non-closing error
    job, _ = eager([1, 2])
    assert job.cancel(PoolClosedError("terminated")) and job.state is JobState.CANCELLED


def test_a_fail_fast_job_fails_at_its_first_error() -> None:
    job, _ = eager([1, 2, 3, 4], chunksize=2)
    batch = job.next_batch()
    assert batch is not None
    error = KeyError(2)
    job.batch_done(batch, [1, None], {1: error})
    assert job.state is JobState.FAILED and job.error is error and job.next_batch() is None


def test_lost_batches_are_split_retried_then_failed() -> None:
    job, _ = eager([1, 2], chunksize=2, retries=1)
    batch = job.next_batch()
    assert batch is not None
    crash = RuntimeError("worker died")
    job.batch_lost(batch, crash)
    singles = [job.next_batch(), job.next_batch()]
    assert [b.start for b in singles if b is not None] == [0, 1]
    first, second = singles
    assert first is not None and second is not None
    job.batch_done(first, [1])
    job.batch_lost(second, crash)  # retried once
    again = job.next_batch()
    assert again is not None and again.attempts == 1
    job.batch_lost(again, crash)
    assert job.state is JobState.FAILED and job.error is crash


# -- batch sizes ----------------------------------------------------------------------------
def test_a_wrong_seed_cannot_make_one_batch_of_a_whole_call() -> None:
    # Issue item 10: after a cheap call of f, map(f, 400 slow items) on 4 workers ran as
    # one batch of 400: the seed made the floor larger than the whole call.
    batcher = Batcher(nodes=4)
    batcher.seed(1e-7)
    first = batcher.size(400)
    assert first <= UNMEASURED_BATCH_ITEMS and first <= math.ceil(400 / 4)
    batcher.record(10, 1e-6)  # its own items are cheap too: the floor now applies
    assert _cut(batcher, 400) == [100] * 4  # the tail: one equal piece per worker, not one batch
    fresh = Batcher(nodes=4)
    fresh.record(10, 1e-6)
    assert fresh.size(10) <= math.ceil(10 / 4)


def _cut(batcher: Batcher, waiting: int) -> list[int]:
    """The batch sizes the batcher cuts from ``waiting`` items, taken one after another."""
    sizes = []
    while waiting:
        sizes.append(min(batcher.size(waiting), waiting))
        waiting -= sizes[-1]
    return sizes


def test_a_seed_gives_each_worker_a_short_first_batch_then_shares() -> None:
    batcher = Batcher(nodes=2)
    batcher.seed(1e-7)  # right or wrong, it is not this job's own timing
    assert [batcher.size(100_000) for _ in range(2)] == [UNMEASURED_BATCH_ITEMS] * 2
    assert batcher.size(100_000) == 100_000 // 4  # then half a worker's share, as a measured job
    slow = Batcher(nodes=4)
    slow.seed(1e-7)  # wrong: the items take 10 ms; with 4 workers, no batch is over a worker's share
    assert max(_cut(slow, 400)) <= 400 // 4


def test_the_tail_of_a_tiny_task_call_is_not_halved_down_to_single_items() -> None:
    # 100k tasks of 0.1 us on 2 workers: the balance share shrinks the batches, then the
    # rest (under the 1 ms floor per worker) goes as one piece per worker. Halving the
    # tail down to 1 item cost about 15 more round trips per call.
    batcher = Batcher(nodes=2)
    batcher.record(1000, 1e-4)
    sizes = _cut(batcher, 100_000)
    assert sum(sizes) == 100_000 and len(sizes) <= 12, sizes
    assert sizes[-1] == sizes[-2] and min(sizes) > 1000


def test_batches_grow_with_measured_speed_and_honour_chunksize_and_timeout() -> None:
    batcher = Batcher(nodes=2)
    assert batcher.size(1000) == 1 and batcher.item_seconds() is None
    batcher.record(100, 0.0001)  # 1 us an item
    assert 1 < batcher.size(1000) <= math.ceil(1000 / 2)  # the floor (1 ms of work), capped at a worker share
    assert batcher.is_quick(10) and not batcher.is_quick(10**6)
    assert Batcher(nodes=2, chunksize=7).size(1000) == 7
    timed = Batcher(nodes=2, timeout=1.0)
    timed.record(100, 0.0001)
    assert timed.size(1000) == 1


def test_job_batches_follow_the_batcher() -> None:
    job, _ = eager(list(range(400)), nodes=4)
    job.seed_timing(1e-7)
    batch = job.next_batch()
    assert batch is not None and len(batch.items) <= UNMEASURED_BATCH_ITEMS


# -- outcomes ------------------------------------------------------------------------------
def test_outcomes_ordered_and_unordered() -> None:
    ordered = Outcomes(ordered=True)
    ordered.add(Chunk(2, ["c"], None, 10))
    ordered.add(Chunk(0, ["a", "b"], None, 20))
    assert not ordered.ready(1) and ordered.ready(0) and ordered.held_bytes == 30
    assert ordered.values() == ["a", "b", "c"]
    taken = ordered.take(0)
    assert taken is not None and taken.values == ["a", "b"] and ordered.held_bytes == 10 and len(ordered) == 1
    unordered = Outcomes(ordered=False)
    unordered.add(Chunk(5, ["late"], None, 0))
    unordered.add(Chunk(0, ["early"], None, 0))
    assert unordered.ready(123)
    first = unordered.take(0)
    assert first is not None and first.values == ["late"]  # completion order
    assert unordered.result_size() is None  # nothing measured


# -- the result iterator --------------------------------------------------------------------
def test_ordered_stream_bookkeeping_stays_flat() -> None:
    # Issue item 8: an ordered imap over an endless input kept one entry per batch forever.
    it, job = lazy(itertools.count(), chunksize=1)
    largest = 0
    for expected in range(3000):
        run_all(job)
        largest = max(largest, len(job.outcomes))
        assert it.next(WAIT) == expected * expected
    assert largest <= 2 * it._window()
    it.close()
    assert job.cancelled


def test_unordered_stream_bookkeeping_stays_flat() -> None:
    it, job = lazy(itertools.count(), ordered=False, chunksize=1)
    got = consume(it, job, limit=2000)
    assert sorted(got) == [x * x for x in range(2000)]
    assert len(job.outcomes) <= 2 * it._window()
    it.close()


def broken_after(n: int) -> Iterator[int]:
    yield from range(n)
    raise ValueError(f"input broke after {n} items")


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("good", [0, 1, 40, 100])
def test_input_errors_come_after_every_item_read_before_them(ordered: bool, good: int) -> None:
    # Issue item 6: a generator that yields 40 items and then raises gave 16 results and
    # then the error; with the error in the first window, imap() itself raised.
    it, job = lazy(broken_after(good), ordered=ordered)  # does not raise
    got = consume(it, job)
    assert isinstance(got[-1], ValueError) and "broke" in str(got[-1])
    values = got[:-1]
    assert (values if ordered else sorted(values)) == [x * x for x in range(good)]
    with pytest.raises(StopIteration):
        it.next(0)


@pytest.mark.parametrize("ordered", [True, False])
def test_an_error_that_ends_the_job_reaches_the_iterator_at_its_position(ordered: bool) -> None:
    # Issue item 22: a job ended by an engine error gave an empty (or short) iterator.
    it, job = lazy(iter(range(10)), ordered=ordered, chunksize=1)
    first = job.next_batch()
    assert first is not None
    job.batch_done(first, [0])
    error = SerializationError("cannot serialize the function")
    job.cancel(error)  # what a backend does today; job.fail(error) is the same to consumers
    assert it.next(WAIT) == 0
    with pytest.raises(SerializationError):
        it.next(WAIT)
    with pytest.raises(StopIteration):
        it.next(0)


def test_a_caller_cancel_just_stops_the_iterator() -> None:
    it, job = lazy(iter(range(10)))
    run_all(job)
    assert it.next(WAIT) == 0
    it.close()
    with pytest.raises(StopIteration):
        it.next(0)


def test_the_window_is_bounded_by_bytes_held(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue item 19: 1 MB results with a slow consumer piled up in the parent (the
    # window counted items only).
    monkeypatch.setattr("pathos._results.WINDOW_BYTES", 8 << 20)
    it, job = lazy(itertools.count(), nodes=2)
    size = 1 << 20
    held = []
    for _ in range(200):
        run_all(job, nbytes=size)  # the workers run everything they were given
        held.append(job.held_bytes())
        it.next(WAIT)
    first_window = it._window()  # before any measurement, the count window rules
    assert max(held[20:]) <= (8 << 20) + size, (first_window, held)
    assert WINDOW_BYTES >= 8 << 20
    it.close()


def test_a_dropped_iterator_only_posts_its_cancel() -> None:
    # Issue item 12: __del__ took the job's lock; a GC pass inside next_batch() (which
    # holds it) deadlocked the pool.
    it, job = lazy(itertools.count())
    dropped = threading.Event()

    def drop() -> None:
        nonlocal it
        del it
        gc.collect()
        dropped.set()

    with job.lock:  # as an engine thread inside next_batch() would hold it
        thread = threading.Thread(target=drop)
        thread.start()
        assert dropped.wait(WAIT), "the finalizer blocked on the job's lock"
    thread.join(WAIT)
    deadline = time.monotonic() + WAIT
    while not job.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.cancelled


# -- deliveries: progress reports and callbacks on the callback thread ---------------------
def test_a_job_settles_after_its_reports_and_callbacks_ran_in_order() -> None:
    gate = threading.Event()
    seen: list[Any] = []

    def report(n: int) -> None:
        gate.wait(WAIT)
        seen.append((n, threading.current_thread().name))

    job, _ = eager([1, 2, 3], chunksize=1, progress=report)
    job.add_done_callback(lambda j: seen.append(("done", j.state)), deliver=True)
    run_all(job)
    assert job.state is JobState.COMPLETE and not job.settled()  # the reports are held up
    result = AsyncResult(job, single=False, on_interrupt=lambda: None)
    assert not result.ready()
    gate.set()
    assert result.get(WAIT) == [1, 4, 9]
    assert seen == [(1, "pathos-callbacks")] * 3 + [("done", JobState.COMPLETE)]


def test_a_raising_report_is_logged_and_the_job_still_settles(caplog: pytest.LogCaptureFixture) -> None:
    def report(n: int) -> None:
        raise RuntimeError("bad report")

    job, _ = eager([1, 2], chunksize=1, progress=report)
    run_all(job)
    assert job.wait(WAIT, job.settled)
    assert any(r.name == "pathos" and "bad report" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


# -- a seeded random walk over one job's life ------------------------------------------------
class Walk:
    """Random interleavings of what engines and consumers do to one streaming job, checked
    against a model of each item's outcome. Replay a failure with its seed."""

    def __init__(self, seed: int) -> None:
        import random

        self.rng = random.Random(seed)
        self.n = self.rng.randint(0, 40)
        self.ordered = self.rng.random() < 0.7
        self.it, self.job = lazy(
            iter(range(self.n)), ordered=self.ordered, chunksize=self.rng.choice([None, 1, 3]), retries=1
        )
        self.held: list[Batch] = []  # taken by the "engine", not settled
        self.expected: dict[int, Any] = {}  # item -> its value or exception, once settled
        self.got: list[tuple[int | None, Any]] = []  # what the consumer saw
        self.ended_as: tuple[JobState, BaseException | None] | None = None

    def step(self) -> None:
        job, rng = self.job, self.rng
        op = rng.choice(["take", "take", "done", "done", "lost", "unstarted", "next", "next", "end"])
        if op == "take" and (batch := job.next_batch()) is not None:
            self.held.append(batch)
        elif op in ("done", "lost", "unstarted") and self.held:
            batch = self.held.pop(rng.randrange(len(self.held)))
            getattr(self, op)(batch)
        elif op == "next":
            self.consume_one()
        elif op == "end" and rng.random() < 0.05:
            how = rng.randrange(3)
            if how == 0:
                job.cancel()  # the caller
            elif how == 1:
                job.cancel(PoolClosedError("terminated"))  # the pool stopping
            else:
                job.fail(SerializationError("cannot send the function"))  # an engine error
        self.check()

    def done(self, batch: Batch) -> None:
        values: list[Any] = [x * x for x in batch.items]
        errors: dict[int, BaseException] = {}
        if self.rng.random() < 0.2:
            bad = self.rng.randrange(len(values))
            errors[bad] = KeyError(batch.start + bad)
            values[bad] = None
        ended = self.job.state in ENDED
        self.job.batch_done(batch, values, errors or None, 1e-6 * len(values))
        if not ended:
            for i, value in enumerate(values):
                self.expected[batch.start + i] = errors.get(i, value)

    def lost(self, batch: Batch) -> None:
        ended = self.job.state in ENDED
        crash = RuntimeError(f"crash at {batch.start}")
        self.job.batch_lost(batch, crash)
        if not ended and len(batch.items) == 1 and batch.attempts >= 1:
            self.expected[batch.start] = crash  # out of retries: it failed

    def unstarted(self, batch: Batch) -> None:
        self.job.batch_unstarted(batch)

    def consume_one(self) -> bool:
        try:
            value = self.it.next(0)
        except StopIteration:
            return False
        except ResultTimeoutError:
            return False
        except Exception as exc:
            self.got.append((None, exc))
            return True
        self.got.append((None, value))
        return True

    def check(self) -> None:
        job = self.job
        assert job.in_flight == len(self.held)
        if self.ended_as is not None:
            assert (job.state, job.error) == self.ended_as  # an ended job never changes
        elif job.state in ENDED:
            self.ended_as = (job.state, job.error)

    def finish(self) -> None:
        job = self.job
        for _ in range(10_000):  # the engine runs everything, the consumer reads (and refills)
            if self.held:
                self.done(self.held.pop())
            elif (batch := job.next_batch()) is not None:
                self.held.append(batch)
            elif not self.consume_one():
                break
            self.check()
        assert job.in_flight == 0 and job.state in ENDED and job.settled()
        seen = [v for _, v in self.got]
        if job.state is JobState.COMPLETE:
            assert len(self.expected) == self.n
            want = [self.expected[i] for i in range(self.n)]
            if self.ordered:
                assert seen == want
            else:
                assert sorted(map(repr, seen)) == sorted(map(repr, want))
        else:
            assert job.error is not None
            if not job.cancelled_by_caller():
                assert seen and seen[-1] is job.error  # the ending error reaches the consumer last
                seen = seen[:-1]
            if self.ordered:  # a prefix of the outcomes, in input order
                assert seen == [self.expected[i] for i in range(len(seen))]


@pytest.mark.parametrize("seed", range(300))
def test_random_walks_keep_the_job_consistent(seed: int) -> None:
    walk = Walk(seed)
    for _ in range(walk.rng.randint(0, 200)):
        walk.step()
    walk.finish()
