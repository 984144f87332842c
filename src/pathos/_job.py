"""A job: one call of a verb (``map``, ``imap``, ``pipe``, ...), written once for every backend.

::

    caller thread                  Job                               backend thread(s)
    -------------                  ---                               -----------------
    items (eager list, or   -->  pending items --next_batch()-->   run the batch
      a lazy window read by        (Batcher: how many)               (thread, process,
      the consumer)                                                   Dask, or inline)
    get()/next()  <-- wait --    Outcomes  <--batch_done()/------    results, errors,
                                               batch_failed()        crashes, timeouts
    progress, callbacks  <-- the callback thread (pathos._callbacks) <-- posted

A job is in one :class:`JobState` at a time, changed only under its lock and only along
the allowed transitions: once it has ended (COMPLETE, FAILED or CANCELLED) nothing can
change it, so a finished call is never turned into an error by a late ``terminate()``.

The backend *pulls* batches when it has room, so input is read no faster than workers
consume it; :class:`Batcher` sizes them from measured task durations. The first batches
hold one item each; later ones aim at ``TARGET_BATCH_SECONDS`` of work, but never more
than an even share of what is left, so load stays balanced. Results wait in
:class:`Outcomes` until the consumer takes them; an ordered stream keeps one entry per
batch not yet consumed, and nothing once it is.

User code triggered by the job (``progress=`` reports, the stdlib API's callbacks) never
runs on the thread that reports a result: it is posted to the callback thread, and a
call returns only once everything it posted has run (so its progress bar is closed).
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections import deque
from typing import Any, Callable, Protocol

from . import _callbacks
from ._batcher import MIN_BATCH_SECONDS, QUICK_BATCH_SECONDS, TARGET_BATCH_SECONDS, Batcher
from ._errors import PoolClosedError
from ._outcomes import Chunk, Outcomes, estimate_bytes

__all__ = [
    "MIN_BATCH_SECONDS",
    "TARGET_BATCH_SECONDS",
    "Batch",
    "Batcher",
    "Chunk",
    "Job",
    "JobState",
    "Notifier",
    "Outcomes",
]

_keys = itertools.count(1)


class JobState(enum.Enum):
    """Where a job is in its life; see :data:`TRANSITIONS`."""

    PENDING = "pending"  # nothing handed to a worker yet
    RUNNING = "running"  # a batch was handed out
    COMPLETE = "complete"  # every item has its outcome (a value or its own error)
    FAILED = "failed"  # an error ended it: a fail-fast item error, or an engine error
    CANCELLED = "cancelled"  # stopped by its caller, or by its pool stopping

    # Members compare by identity, so identity hashing agrees with equality; Enum's own
    # __hash__ is Python code, run on every ``state in ENDED`` of the engine's hot path.
    __hash__ = object.__hash__


ENDED = frozenset({JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED})
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING}) | ENDED,
    JobState.RUNNING: ENDED,
    JobState.COMPLETE: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def may_move(current: JobState, new: JobState) -> bool:
    """True if a job may go from ``current`` to ``new``; False if it has already ended.

    Raises:
        RuntimeError: any other transition (a bug in the engine, never a race).
    """
    if new in TRANSITIONS[current]:
        return True
    if current in ENDED:
        return False
    raise RuntimeError(f"a job cannot go from {current.name} to {new.name}")


class Notifier(Protocol):
    def notify(self, job: Job) -> None: ...


class Batch:
    """Consecutive items of one job, run together in one worker.

    Attributes:
        job: the job it belongs to.
        start: index of its first item in the job's input.
        items: the argument tuples.
        attempts: how many times it was started and lost to a crash.
    """

    __slots__ = ("attempts", "items", "job", "segments", "start")

    def __init__(self, job: Job, start: int, items: list[Any], attempts: int = 0):
        self.job = job
        self.start = start
        self.items = items
        self.attempts = attempts
        self.segments: list[Any] = []  # shared-memory segments (pathos._shm.Segment) holding its large arguments

    def __repr__(self) -> str:
        return f"<Batch items {self.start}..{self.start + len(self.items) - 1}>"


class Job:
    """The items of one verb call, the batches cut from them, and their outcomes.

    Args:
        fn: the function to call on each item.
        kwargs: keyword arguments for every call (``pipe`` only).
        nodes: the pool's worker count, for the balance cap on chunk sizes.
        chunksize: fixed items per batch, or None for adaptive.
        timeout: per-task limit in seconds, or None.
        retries: how often a batch lost to a dead worker is run again.
        fail_fast: stop at the first error (``map``/``amap``) instead of keeping going.
        progress: called (on the callback thread) with the number of items just
            finished, or None.
        star: items are argument tuples (``f(*item)``); False for one iterable, where
            items are the arguments themselves (``f(item)``), which is cheaper.
        stream: a consumer wants each result as it comes (``imap``), so every batch
            wakes it; otherwise only the job's end does.
        ordered: the consumer takes results in input order (False for ``uimap``).

    Attributes:
        state: the :class:`JobState`; read it freely, change it only through the methods.
        error: the error that ended the job (FAILED or CANCELLED), else None.
        outcomes: the results waiting for the consumer (guarded by ``lock``).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        kwargs: dict[str, Any] | None = None,
        *,
        nodes: int = 1,
        chunksize: int | None = None,
        timeout: float | None = None,
        retries: int = 0,
        fail_fast: bool = True,
        progress: Callable[[int], None] | None = None,
        star: bool = True,
        stream: bool = False,
        ordered: bool = True,
    ) -> None:
        self.fn = fn
        self.kwargs = kwargs or {}
        self.chunksize = chunksize
        self.timeout = timeout
        self.retries = retries
        self.fail_fast = fail_fast
        self.progress = progress
        self.star = star
        self.stream = stream
        self.key = next(_keys)  # names the job's function in worker caches
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.state = JobState.PENDING
        self.error: BaseException | None = None
        self.batcher = Batcher(nodes, chunksize, timeout)
        self.outcomes = Outcomes(ordered)
        # input
        self._pending: list[Any] = []
        self._pos = 0  # position in _pending of the next item to batch
        self._retry: deque[Batch] = deque()
        self._next_index = 0  # index of the next pending item
        self.total: int | None = None  # known once the input is exhausted
        self.finished = 0
        self.in_flight = 0
        # who hears about it
        self._notifier: Notifier | None = None
        self._callbacks: list[tuple[Callable[[Job], None], bool]] = []  # (fn, on the callback thread)
        self._wakers: list[Callable[[], None]] = []  # one-shot, for async consumers
        self._undelivered = 0  # posted to the callback thread, not yet run
        self._by_caller = False

    @property
    def nodes(self) -> int:
        return self.batcher.nodes

    @nodes.setter
    def nodes(self, value: int) -> None:
        with self.lock:
            self.batcher.nodes = max(1, value)

    # -- life ------------------------------------------------------------------------
    def _end_locked(self, state: JobState, error: BaseException | None = None) -> list[Callable[[Job], None]]:
        """Move to an ended ``state`` (lock held); returns the callbacks to run after unlocking.

        Callbacks meant for the callback thread are posted here, under the lock, so they
        run after every progress report posted before (the bar closes at its final count).
        """
        if not may_move(self.state, state):
            return []
        self.state = state
        self.error = error
        self._pending, self._pos = [], 0
        self._retry.clear()
        callbacks, self._callbacks = self._callbacks, []
        inline = []
        for fn, deliver in callbacks:
            if deliver:
                self._deliver_locked(fn, self)
            else:
                inline.append(fn)
        self.changed.notify_all()
        return inline

    def _after(self, inline: list[Callable[[Job], None]]) -> None:
        """What follows a change, outside the lock: wake async waiters, run engine callbacks."""
        self._wake()
        for fn in inline:
            try:
                fn(self)
            except Exception:  # ours, and quick; a bug in one must not break the engine
                _callbacks.log.exception("a job's done callback raised: %r", fn)

    def _deliver_locked(self, fn: Callable[..., Any], *args: Any) -> None:
        _callbacks.start()  # at once when it runs; never reached from a finalizer
        self._undelivered += 1
        _callbacks.post(self._run_delivery, fn, args)

    def _run_delivery(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """On the callback thread: run user code, then let waiters know when all has run."""
        try:
            fn(*args)
        except BaseException:
            _callbacks.log.exception("a progress report or callback of a pool call raised; the call goes on: %r", fn)
        finally:
            with self.lock:
                self._undelivered -= 1
                quiet = not self._undelivered and self.state in ENDED
                if quiet:
                    self.changed.notify_all()
            if quiet:
                self._wake()

    def complete(self) -> bool:
        """True if every item has its outcome (the job ended COMPLETE)."""
        return self.state is JobState.COMPLETE

    def done_or_failed(self) -> bool:
        """True once the job has ended: complete, failed or cancelled (for the engine)."""
        return self.state in ENDED

    def settled(self) -> bool:
        """True once the job has ended and everything it posted (progress reports, the
        bar's closing, callbacks) has run: when a call may return."""
        return self.state in ENDED and (not self._undelivered or _callbacks.on_callback_thread())

    @property
    def cancelled(self) -> bool:
        """True if it was cancelled, by its caller or by its pool stopping."""
        return self.state is JobState.CANCELLED

    def cancelled_by_caller(self) -> bool:
        """True if the job was cancelled by its caller, not stopped by an error."""
        return self._by_caller

    def cancel(self, exc: BaseException | None = None, *, unstarted_only: bool = False) -> bool:
        """Stop the job: no new batches; waiting consumers get ``exc`` (or a cancel error).

        Without ``exc`` this is the caller's cancel, and the job tells its backend, which
        drops what it still runs. With ``exc`` the engine itself is stopping the job, so
        no backend is told (the caller may hold the backend's lock): a
        :class:`PoolClosedError` (its pool stops) leaves it CANCELLED, any other error
        (e.g. its function cannot be sent) FAILED, as :meth:`fail` does.

        Args:
            exc: the error consumers get instead of the default cancel error.
            unstarted_only: cancel only if no item has been handed to a worker yet.

        Returns:
            True if the job was cancelled by this call; False if it had already ended
            (a complete job stays complete) or, with ``unstarted_only``, had started.
        """
        with self.lock:
            if self.state in ENDED or (unstarted_only and self.state is not JobState.PENDING):
                return False
            by_caller = exc is None
            if exc is None:
                exc = PoolClosedError("the call was cancelled before this item ran")
            self._by_caller = by_caller
            state = JobState.CANCELLED if isinstance(exc, PoolClosedError) else JobState.FAILED
            inline = self._end_locked(state, exc)
        self._after(inline)
        if by_caller and self._notifier is not None:
            self._notifier.notify(self)
        return True

    def fail(self, exc: BaseException) -> bool:
        """End the job with ``exc`` (an engine error, e.g. its function cannot be sent);
        every verb raises it at the first item without an outcome. False if it had ended."""
        with self.lock:
            if self.state in ENDED:
                return False
            inline = self._end_locked(JobState.FAILED, exc)
        self._after(inline)
        return True

    # -- callbacks ---------------------------------------------------------------------
    def add_done_callback(self, fn: Callable[[Job], None], *, deliver: bool = False) -> None:
        """Call ``fn(job)`` once the job has ended (at once if it has).

        Args:
            deliver: run it on the callback thread (user code, or anything slow); the
                job is settled only after it ran. Otherwise it runs on the thread that
                ended the job, after the job's lock is released: only for the engine's
                own quick callbacks.
        """
        if deliver:
            _callbacks.start()
        with self.lock:
            if self.state not in ENDED:
                self._callbacks.append((fn, deliver))
                return
            if deliver:
                self._deliver_locked(fn, self)
                return
        fn(self)

    def wake_when(self, predicate: Callable[[], bool], fn: Callable[[], None]) -> bool:
        """True if ``predicate()`` holds now; else call ``fn()`` once at the next change.

        The check and the registration happen under the job's lock, so no change is
        missed between them: the way for an event loop to wait without blocking.
        """
        with self.lock:
            if predicate():
                return True
            self._wakers.append(fn)
            return False

    def _wake(self) -> None:
        if not self._wakers:
            return
        with self.lock:
            wakers, self._wakers = self._wakers, []
        for fn in wakers:
            fn()

    # -- input ---------------------------------------------------------------------
    def attach(self, notifier: Notifier) -> None:
        """Give the job to a backend, which pulls its batches from now on."""
        self._notifier = notifier
        notifier.notify(self)

    def feed(self, items: list[Any], *, last: bool) -> None:
        """Add items read from the input; ``last`` marks the end of the input."""
        inline: list[Callable[[Job], None]] = []
        with self.lock:
            if self.state in ENDED:
                return  # a cancelled or failed job reads no more
            if self._pending:
                self._pending.extend(items)
            else:
                self._pending, self._pos = items, 0
            if last:
                self.total = self._next_index + len(self._pending) - self._pos
                if self.finished >= self.total:
                    inline = self._end_locked(JobState.COMPLETE)
        if items and self._notifier is not None:
            self._notifier.notify(self)
        if last:
            self._after(inline)

    def next_batch(self) -> Batch | None:
        """The next batch to run, or None if there is nothing to run now."""
        with self.lock:
            if self.state in ENDED:
                return None
            if self._retry:
                batch = self._retry.popleft()
            elif self._pos < len(self._pending):
                pos = self._pos
                items = self._pending[pos : pos + self.batcher.size(len(self._pending) - pos)]
                batch = Batch(self, self._next_index, items)
                self._next_index += len(items)
                self._pos = pos + len(items)
                if self._pos == len(self._pending):
                    self._pending, self._pos = [], 0  # let the input go
            else:
                return None
            self.in_flight += 1
            if self.state is JobState.PENDING:
                self.state = JobState.RUNNING
            return batch

    def seed_timing(self, seconds: float) -> None:
        """Start from a previous call's seconds per item (see :meth:`Batcher.seed`)."""
        with self.lock:
            self.batcher.seed(seconds)

    def item_seconds(self) -> float | None:
        """Measured seconds per item, if any item was measured."""
        with self.lock:
            return self.batcher.item_seconds()

    def ideal_batch(self) -> int:
        """Items per batch that make about ``TARGET_BATCH_SECONDS`` of work."""
        with self.lock:
            return self.batcher.ideal()

    def is_quick(self, items: int, limit: float = QUICK_BATCH_SECONDS) -> bool:
        """True if ``items`` items of this job are measured to take under ``limit`` s."""
        with self.lock:
            return self.batcher.is_quick(items, limit)

    def waiting(self) -> int:
        """Items read from the input but not yet put in a batch, or waiting for a retry (a snapshot)."""
        with self.lock:
            return len(self._pending) - self._pos + sum(len(b.items) for b in self._retry)

    def has_work(self) -> bool:
        """True if :meth:`next_batch` would give a batch now (a snapshot)."""
        with self.lock:
            return self.state not in ENDED and (self._pos < len(self._pending) or bool(self._retry))

    # -- outcomes ------------------------------------------------------------------
    def batch_done(
        self,
        batch: Batch,
        values: list[Any],
        errors: dict[int, BaseException] | None = None,
        seconds: float | None = None,
        nbytes: int | None = None,
    ) -> None:
        """Record a batch's results.

        Args:
            batch: the batch, as :meth:`next_batch` gave it.
            values: one per item (anything where the item failed).
            errors: offsets in the batch mapped to their exceptions.
            seconds: how long the worker took, for the batch sizes.
            nbytes: the results' size in bytes, if the backend knows it (bounds
                ``imap``'s window by memory); estimated for streams otherwise.
        """
        n = len(batch.items)
        if nbytes is None:
            nbytes = estimate_bytes(values) if self.stream else 0
        inline: list[Callable[[Job], None]] = []
        with self.lock:
            self.in_flight -= 1
            if seconds is not None:
                self.batcher.record(n, seconds)
            if self.state in ENDED:
                return  # cancelled or failed meanwhile: nobody wants these
            self.outcomes.add(Chunk(batch.start, values, errors or None, nbytes))
            self.finished += n
            if self.progress is not None:
                self._deliver_locked(self.progress, n)
            if errors and self.fail_fast:
                inline = self._end_locked(JobState.FAILED, errors[min(errors)])
            elif self.total is not None and self.finished >= self.total:
                inline = self._end_locked(JobState.COMPLETE)
            elif self.stream:
                self.changed.notify_all()
        self._after(inline)

    def batch_failed(self, batch: Batch, exc: BaseException) -> None:
        """Every item of ``batch`` failed with ``exc`` (a crash, a timeout, ...)."""
        self.batch_done(batch, [None] * len(batch.items), dict.fromkeys(range(len(batch.items)), exc))

    def batch_lost(self, batch: Batch, exc: BaseException) -> None:
        """The worker running ``batch`` died: isolate the culprit, retry, or fail.

        A batch of several items is split into single items and run again, so only the
        item that kills its worker fails; a single item is retried ``retries`` times.
        """
        if len(batch.items) > 1:
            self._requeue([Batch(self, batch.start + i, [it]) for i, it in enumerate(batch.items)])
        elif batch.attempts < self.retries:
            self._requeue([Batch(self, batch.start, batch.items, batch.attempts + 1)])
        else:
            self.batch_failed(batch, exc)

    def split(self, batch: Batch, *sizes: int) -> list[Batch]:
        """Cut an in-flight ``batch`` into consecutive in-flight parts of ``sizes`` items
        (empty parts are left out); each part is then settled on its own. The process
        engine uses it to settle the items a worker finished before a crash apart from
        the one that crashed it, and those after it, which never ran."""
        parts: list[Batch] = []
        pos = 0
        for size in sizes:
            if size > 0:
                parts.append(Batch(self, batch.start + pos, batch.items[pos : pos + size], batch.attempts))
            pos += size
        if pos < len(batch.items):
            parts.append(Batch(self, batch.start + pos, batch.items[pos:], batch.attempts))
        with self.lock:
            self.in_flight += len(parts) - 1
        return parts

    def batch_unstarted(self, batch: Batch) -> None:
        """A batch was taken but never ran (its worker went away first): run it again."""
        self._requeue([batch])

    def _requeue(self, batches: list[Batch]) -> None:
        with self.lock:
            self.in_flight -= 1
            if self.state in ENDED:
                return
            self._retry.extendleft(reversed(batches))
        if self._notifier is not None:
            self._notifier.notify(self)

    # -- the consumer's side -------------------------------------------------------
    def wait(self, timeout: float | None, predicate: Callable[[], bool]) -> bool:
        """Wait, under the job's lock, until ``predicate()`` or ``timeout`` seconds pass."""
        with self.lock:
            return self.changed.wait_for(predicate, timeout)

    def take(self, position: int) -> Chunk | None:
        """The next chunk for a consumer at ``position`` (see :meth:`Outcomes.take`)."""
        with self.lock:
            return self.outcomes.take(position)

    def result(self, *, single: bool = False) -> Any:
        """An ended job's values in input order (the one value if ``single``).

        Raises:
            Exception: the error that ended the job.
        """
        with self.lock:
            error = self.error
            values = self.outcomes.values() if error is None else []
        if error is not None:
            raise error
        return values[0] if single else values

    def held_bytes(self) -> int:
        """Bytes of results held for the consumer now, as reported or estimated."""
        with self.lock:
            return self.outcomes.held_bytes

    def result_size(self) -> float | None:
        """Mean bytes per result so far, once known."""
        with self.lock:
            return self.outcomes.result_size()
