"""What the verbs return: async results (``amap``, ``apipe``) and result iterators
(``imap``, ``uimap``), both views of one :class:`~pathos._job.Job`.

Both also serve asyncio: ``await pool.amap(f, xs)`` and ``async for y in pool.imap(f, xs)``
wait through job callbacks, never blocking the event loop (see :mod:`pathos._futures`).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Generator, Iterator

from . import _callbacks
from ._errors import ResultTimeoutError
from ._job import ENDED, Chunk, Job, JobState

if TYPE_CHECKING:
    from ._futures import JobFuture

# asyncio and pathos._futures (which needs concurrent.futures, and so logging) are
# imported by the methods that use them, on the caller's thread: together they are most
# of what a bare ``import pathos`` used to cost, and only submit() and await need them.

__all__ = ["WINDOW_BYTES", "AsyncResult", "ResultIterator", "wait_for"]

_WINDOW_MIN_PER_NODE = 8
_WINDOW_MAX_BATCH = 10_000
# About how many bytes of results an imap/uimap lets wait for its consumer (input is
# read only that far ahead), whatever the count window says; at least two items per node.
WINDOW_BYTES = 64 << 20
_BYTES_WINDOW_MIN_PER_NODE = 2


def wait_for(job: Job, predicate: Callable[[], bool], timeout: float | None, on_interrupt: Callable[[], None]) -> bool:
    """Wait on the job; on Ctrl-C run ``on_interrupt`` (cancel, stop workers) and re-raise."""
    try:
        return job.wait(timeout, predicate)
    except KeyboardInterrupt:
        on_interrupt()
        raise


class AsyncResult:
    """The result of ``amap`` (a list) or ``apipe`` (one value), available later.

    Compatible with ``multiprocessing.pool.AsyncResult``: :meth:`get`, :meth:`wait`,
    :meth:`ready`, :meth:`successful`; and it can be cancelled. It is awaitable:
    ``await pool.amap(f, xs)`` in a coroutine gives the list without blocking the event
    loop, and cancelling the awaiting task cancels the work.
    """

    def __init__(self, job: Job, *, single: bool, on_interrupt: Callable[[], None]) -> None:
        self._job = job
        self._single = single
        self._on_interrupt = on_interrupt
        self._future: JobFuture | None = None

    def _as_future(self, *, interrupt: bool = True) -> JobFuture:
        """This result as a ``concurrent.futures.Future`` (made once)."""
        if self._future is None:
            from ._futures import JobFuture

            job, single = self._job, self._single
            self._future = JobFuture(job, lambda: job.result(single=single), interrupt=interrupt)
        return self._future

    def __await__(self) -> Generator[Any, None, Any]:
        import asyncio  # already imported by the event loop that awaits

        return asyncio.wrap_future(self._as_future()).__await__()

    def ready(self) -> bool:
        """True once every item has finished, or one failed, or it was cancelled (and its
        progress bar is closed)."""
        return self._job.settled()

    def successful(self) -> bool:
        """True if it finished without an error.

        Raises:
            ValueError: the result is not ready yet.
        """
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._job.state is JobState.COMPLETE

    def wait(self, timeout: float | None = None) -> None:
        """Wait until ready, or ``timeout`` seconds at most."""
        wait_for(self._job, self._job.settled, timeout, self._on_interrupt)

    def get(self, timeout: float | None = None) -> Any:
        """The value(s), waiting ``timeout`` seconds at most.

        Raises:
            ResultTimeoutError: not ready in time (a ``multiprocessing.TimeoutError`` and a
                builtin ``TimeoutError``); the work goes on.
            Exception: the first error raised by the function, re-raised here.
        """
        if not wait_for(self._job, self._job.settled, timeout, self._on_interrupt):
            raise ResultTimeoutError(f"the result was not ready within {timeout} s; the work goes on")
        return self._job.result(single=self._single)

    def cancel(self) -> bool:
        """Cancel the work not yet finished; False if it had already finished."""
        return not self.ready() and self._job.cancel()

    def cancelled(self) -> bool:
        """True if the call was cancelled (by :meth:`cancel`, or by the pool stopping)."""
        return self._job.cancelled

    def __repr__(self) -> str:
        state = "ready" if self.ready() else "pending"
        return f"<{type(self).__name__} {state}>"


class ResultIterator(Iterator[Any]):
    """Results of ``imap`` (input order) or ``uimap`` (completion order), as they come.

    The input is read lazily, a bounded window ahead of what has been consumed (bounded
    by count, and by the bytes of results waiting, :data:`WINDOW_BYTES`), so an infinite
    generator works and memory stays flat. An error raised by the input comes after the
    results of every item read before it, at its position. An error that ends the job
    (the function cannot be sent, the pool was terminated) is raised at the first item
    without a result. Closing the iterator early (or dropping it) cancels the rest of the
    work. ``async for`` works too, and waits for each result without blocking the event
    loop.
    """

    def __init__(
        self,
        job: Job,
        source: Iterator[Any] | None,
        *,
        ordered: bool,
        on_interrupt: Callable[[], None],
    ) -> None:
        _callbacks.start()  # a finalizer cannot start it, and __del__ posts there
        self._closed = False
        self._job = job
        self._source = source
        self._ordered = ordered
        self._on_interrupt = on_interrupt
        self._read = 0  # items read from the source
        self._yielded = 0
        self._source_error: Exception | None = None
        self._chunk: Chunk | None = None  # the chunk being yielded from
        self._offset = 0  # its next item
        self._low_water = 0  # refill the input once fewer than this many items are ahead
        self._refill()

    # -- input ----------------------------------------------------------------------
    def _window(self) -> int:
        job = self._job
        nodes = job.nodes
        batch = min(job.ideal_batch(), _WINDOW_MAX_BATCH)
        window = max(_WINDOW_MIN_PER_NODE * nodes, 2 * nodes * batch)
        size = job.result_size()
        if size:
            window = min(window, max(_BYTES_WINDOW_MIN_PER_NODE * nodes, int(WINDOW_BYTES // size)))
        return window

    def _refill(self) -> None:
        """Read the input up to a window ahead of the consumer and give it to the job.

        An error from the input ends it there: the items read before it still run,
        and the consumer gets the error after their results (as ``Pool.imap`` does).
        """
        source = self._source
        if source is None or self._job.state in ENDED:
            return  # nothing left to read, or nobody will run it
        window = self._window()
        self._low_water = window // 2
        want = window - (self._read - self._yielded)
        if want <= 0:
            return
        items: list[Any] = []
        append = items.append
        try:
            for item in itertools.islice(source, want):  # one by one: keep what came before an error
                append(item)
        except Exception as exc:
            self._source_error = exc
        last = self._source_error is not None or len(items) < want
        self._read += len(items)
        if last:
            self._source = None
        self._job.feed(items, last=last)

    # -- output ---------------------------------------------------------------------
    def __iter__(self) -> ResultIterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next result, waiting ``timeout`` seconds at most.

        Raises:
            StopIteration: no more results.
            ResultTimeoutError: none arrived in time (the work goes on).
            Exception: the item's own error; the input's error at its position; the
                error that ended the call at the first item it left without a result.
        """
        if self._closed:
            raise StopIteration
        chunk = self._chunk
        if chunk is None:
            job = self._job
            if not wait_for(job, self._available, timeout, self._on_interrupt):
                raise ResultTimeoutError(f"no result arrived within {timeout} s; the work goes on")
            chunk = job.take(self._yielded)
            if chunk is None:
                return self._end()
            self._chunk, self._offset = chunk, 0
        offset = self._offset
        self._offset += 1
        if self._offset == len(chunk.values):
            self._chunk = None  # let its values go once yielded
        self._yielded += 1
        if self._read - self._yielded < self._low_water:
            self._refill()
        if chunk.errors is not None and offset in chunk.errors:
            raise chunk.errors[offset]
        return chunk.values[offset]

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        """The next result, awaited without blocking the event loop."""
        from ._futures import next_change

        while not (self._closed or self._chunk is not None):
            changed = next_change(self._job, self._available)
            if changed is None:
                break
            await changed
        try:
            return self.next(0)
        except StopIteration:
            raise StopAsyncIteration from None

    def _available(self) -> bool:
        """A chunk can be taken, or the job has ended and settled (job lock held)."""
        job = self._job
        if job.outcomes.ready(self._yielded):
            return True
        return job.state in ENDED and job.settled()

    def _end(self) -> Any:
        job = self._job
        self._closed = True
        self._source = None
        if job.state is not JobState.COMPLETE and not job.cancelled_by_caller() and job.error is not None:
            raise job.error  # it ended the call here: the function cannot be sent, the pool stopped, ...
        if self._source_error is not None:
            raise self._source_error
        raise StopIteration

    def close(self) -> None:
        """Stop early: cancel the work not yet finished and free the workers.

        Returns once the call's progress bar (if any) is closed.
        """
        if self._closed:
            return
        self._closed = True
        self._source = None
        self._chunk = None
        job = self._job
        job.cancel()
        job.wait(None, job.settled)

    def __del__(self) -> None:
        # A finalizer may run on any thread, inside any lock (a GC pass in the engine):
        # it only posts the cancel to the callback thread, and takes no lock itself.
        try:
            job = self._job
            if not self._closed and job.state not in ENDED:
                _callbacks.post(job.cancel)
        except Exception:  # half-built, or the interpreter is shutting down
            pass

    def __repr__(self) -> str:
        kind = "ordered" if self._ordered else "unordered"
        return f"<{type(self).__name__} {kind}, {self._yielded} yielded>"
