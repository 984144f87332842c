"""A job: one call of a verb (``map``, ``imap``, ``pipe``, ...), written once for every backend.

::

    caller thread                  Job                               backend thread(s)
    -------------                  ---                               -----------------
    items (eager list, or   -->  pending items --next_batch()-->   run the batch
      a lazy window read by                                          (thread, process,
      the consumer)                                                   Dask, or inline)
    get()/next()  <-- wait --    outcomes  <--batch_done()/------    results, errors,
                                               batch_failed()        crashes, timeouts

The backend *pulls* batches when it has room, so input is read no faster than workers
consume it, and chunk sizes adapt to measured task durations: the first batches hold one
item each; later ones aim at ``TARGET_BATCH_SECONDS`` of work, but never more than an
even share of what is left (nor less than ``MIN_BATCH_SECONDS`` of work), so load stays
balanced.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from typing import Any, Callable, Protocol

from ._errors import PoolClosedError

__all__ = ["Batch", "Job", "Notifier"]

TARGET_BATCH_SECONDS = 0.02
QUICK_BATCH_SECONDS = 0.002  # batches this short may be queued behind each other
MIN_BATCH_SECONDS = 0.001  # the smallest batch worth sending, in measured work
_keys = itertools.count(1)
_CANCELLED = PoolClosedError("the call was cancelled before this item ran")


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
        progress: called with the number of items just finished, or None.
        star: items are argument tuples (``f(*item)``); False for one iterable, where
            items are the arguments themselves (``f(item)``), which is cheaper.
        stream: a consumer wants each result as it comes (``imap``), so every batch
            wakes it; otherwise only completion or an error does.

    Results are kept per batch, ``chunks[start] = (values, errors or None)``, and
    ``order`` lists batch starts in completion order.
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
    ) -> None:
        self.fn = fn
        self.kwargs = kwargs or {}
        self.nodes = max(1, nodes)
        self.chunksize = chunksize
        self.timeout = timeout
        self.retries = retries
        self.fail_fast = fail_fast
        self.progress = progress
        self.star = star
        self.stream = stream
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._pending: list[Any] = []
        self._pos = 0  # position in _pending of the next item to batch
        self._retry: deque[Batch] = deque()
        self._next_index = 0  # index of the next pending item
        self.total: int | None = None  # known once the input is exhausted
        self.chunks: dict[int, tuple[list[Any], dict[int, BaseException] | None]] = {}
        self.order: deque[int] = deque()  # batch starts in completion order
        self.finished = 0
        self.error: BaseException | None = None  # first error, for fail-fast jobs
        self.cancelled = False
        self.in_flight = 0
        self._item_seconds = 0.0
        self._items_timed = 0
        self._notifier: Notifier | None = None
        self._callbacks: list[Callable[[Job], None]] = []
        self._wakers: list[Callable[[], None]] = []  # one-shot, for async consumers
        self._fired = False
        self.key = next(_keys)  # names the job's function in worker caches

    # -- input ---------------------------------------------------------------------
    def feed(self, items: list[Any], *, last: bool) -> None:
        """Add items read from the input; ``last`` marks the end of the input."""
        with self.lock:
            if self._pending:
                self._pending.extend(items)
            else:
                self._pending, self._pos = items, 0
            if last:
                self.total = self._next_index + len(self._pending) - self._pos
                if self.total == self.finished:
                    self.changed.notify_all()
        if items and self._notifier is not None:
            self._notifier.notify(self)
        if last:
            self._wake()
            self._maybe_fire()

    def add_done_callback(self, fn: Callable[[Job], None]) -> None:
        """Call ``fn(job)`` once the job is complete, failed or cancelled (maybe at once)."""
        with self.lock:
            if not self._fired:
                self._callbacks.append(fn)
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

    def _maybe_fire(self) -> None:
        with self.lock:
            if self._fired or not self.done_or_failed():
                return
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(self)
            except Exception:  # a user's callback must not break the engine
                import traceback

                traceback.print_exc()

    def attach(self, notifier: Notifier) -> None:
        """Give the job to a backend, which pulls its batches from now on."""
        self._notifier = notifier
        notifier.notify(self)

    def next_batch(self) -> Batch | None:
        """The next batch to run, or None if there is nothing to run now."""
        with self.lock:
            if self.cancelled or (self.error is not None and self.fail_fast):
                return None
            if self._retry:
                batch = self._retry.popleft()
            elif self._pos < len(self._pending):
                pos, size = self._pos, self._batch_size()
                items = self._pending[pos : pos + size]
                batch = Batch(self, self._next_index, items)
                self._next_index += len(items)
                self._pos = pos + len(items)
                if self._pos == len(self._pending):
                    self._pending, self._pos = [], 0  # let the input go
            else:
                return None
            self.in_flight += 1
            return batch

    def seed_timing(self, seconds: float) -> None:
        """Start from a previous call's seconds per item, worth one measured item, so
        the first real measurement soon outweighs it."""
        with self.lock:
            if not self._items_timed:
                self._item_seconds, self._items_timed = seconds, 1

    def item_seconds(self) -> float | None:
        """Measured seconds per item, if any item was measured."""
        with self.lock:
            return self._item_seconds / self._items_timed if self._items_timed else None

    def waiting(self) -> int:
        """Items read from the input but not yet put in a batch, or waiting for a retry (a snapshot)."""
        with self.lock:
            return len(self._pending) - self._pos + sum(len(b.items) for b in self._retry)

    def has_work(self) -> bool:
        return (self._pos < len(self._pending) or bool(self._retry)) and not self.done_or_failed()

    def ideal_batch(self) -> int:
        """Items per batch that make about ``TARGET_BATCH_SECONDS`` of work."""
        if self.chunksize:
            return self.chunksize
        if self.timeout is not None or not self._items_timed:
            return 1
        per_item = self._item_seconds / self._items_timed
        return max(1, int(TARGET_BATCH_SECONDS / per_item) if per_item > 0 else 1 << 30)

    def is_quick(self, items: int, limit: float = QUICK_BATCH_SECONDS) -> bool:
        """True if ``items`` items of this job are measured to take under ``limit`` s."""
        if not self._items_timed:
            return False
        return self._item_seconds / self._items_timed * items < limit

    def _batch_size(self) -> int:
        size = self.ideal_batch()
        if self.chunksize or size == 1:
            return size
        share = math.ceil((len(self._pending) - self._pos) / (2 * self.nodes))
        # Never below about MIN_BATCH_SECONDS of work: the tail of a call does not
        # dwindle into batches that cost more to send than to run.
        floor = max(1, size * MIN_BATCH_SECONDS // TARGET_BATCH_SECONDS)
        return max(1, min(size, max(share, int(floor))))

    # -- outcomes ------------------------------------------------------------------
    def batch_done(
        self,
        batch: Batch,
        values: list[Any],
        errors: dict[int, BaseException] | None = None,
        seconds: float | None = None,
    ) -> None:
        """Record a batch's results; ``errors`` maps offsets in the batch to exceptions."""
        n = len(batch.items)
        with self.lock:
            self.in_flight -= 1
            if seconds is not None:
                self._item_seconds += seconds
                self._items_timed += n
            if self.cancelled:
                return
            if errors and self.error is None:
                self.error = errors[min(errors)]
            self.chunks[batch.start] = (values, errors or None)
            self.order.append(batch.start)
            self.finished += n
            if self.stream or self.done_or_failed():
                self.changed.notify_all()
        if self.progress is not None:
            self.progress(n)
        self._wake()
        self._maybe_fire()

    def batch_failed(self, batch: Batch, exc: BaseException) -> None:
        """Every item of ``batch`` failed with ``exc`` (a crash, a timeout, ...)."""
        self.batch_done(batch, [None] * len(batch.items), dict.fromkeys(range(len(batch.items)), exc))

    def batch_lost(self, batch: Batch, exc: BaseException) -> None:
        """The worker running ``batch`` died: isolate the culprit, retry, or fail.

        A batch of several items is split into single items and run again, so only the
        item that kills its worker fails; a single item is retried ``retries`` times.
        """
        if len(batch.items) > 1:
            singles = [Batch(self, batch.start + i, [it]) for i, it in enumerate(batch.items)]
            self._requeue(batch, singles)
        elif batch.attempts < self.retries:
            self._requeue(batch, [Batch(self, batch.start, batch.items, batch.attempts + 1)])
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

    def _requeue(self, old: Batch, batches: list[Batch]) -> None:
        with self.lock:
            self.in_flight -= 1
            self._retry.extendleft(reversed(batches))
        if self._notifier is not None:
            self._notifier.notify(self)

    def batch_unstarted(self, batch: Batch) -> None:
        """A batch was taken but never ran (its worker went away first): run it again."""
        with self.lock:
            self.in_flight -= 1
            self._retry.appendleft(batch)
        if self._notifier is not None:
            self._notifier.notify(self)

    def cancel(self, exc: BaseException | None = None, *, unstarted_only: bool = False) -> bool:
        """Stop the job: no new batches; waiting consumers get ``exc`` (or a cancel error).

        Args:
            exc: the error consumers get instead of the default cancel error.
            unstarted_only: cancel only if no item has been handed to a worker yet.

        Returns:
            True if the job was cancelled by this call.
        """
        with self.lock:
            if self.done_or_failed() and exc is None:
                return False
            if unstarted_only and (self._next_index or self.in_flight):
                return False
            self.cancelled = True
            if self.error is None:
                self.error = exc or _CANCELLED
            self._pending, self._pos = [], 0
            self._retry.clear()
            self.changed.notify_all()
        self._wake()
        self._maybe_fire()
        return True

    def cancelled_by_caller(self) -> bool:
        """True if the job was cancelled by its caller, not stopped by an error."""
        return self.cancelled and self.error is _CANCELLED

    # -- state ---------------------------------------------------------------------
    def complete(self) -> bool:
        return self.total is not None and self.finished >= self.total

    def done_or_failed(self) -> bool:
        return self.complete() or self.cancelled or (self.fail_fast and self.error is not None)

    def wait(self, timeout: float | None, predicate: Callable[[], bool]) -> bool:
        """Wait, under the job's lock, until ``predicate()`` or ``timeout`` seconds pass."""
        with self.lock:
            return self.changed.wait_for(predicate, timeout)


def call_items(
    fn: Callable[..., Any], items: list[Any], star: bool, kwargs: dict[str, Any]
) -> tuple[list[Any], dict[int, BaseException]]:
    """Call ``fn`` on each item; exceptions are kept per item, the loop goes on.

    The common case (no error) runs as one tight loop; after an error the loop resumes
    at the next item.
    """
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    append = values.append
    start = 0
    while start < len(items):
        try:
            if star:
                for args in items[start:] if start else items:
                    append(fn(*args, **kwargs))
            elif kwargs:
                for arg in items[start:] if start else items:
                    append(fn(arg, **kwargs))
            else:
                for arg in items[start:] if start else items:
                    append(fn(arg))
            break
        except Exception as exc:
            errors[len(values)] = exc
            append(None)
            start = len(values)
    return values, errors
