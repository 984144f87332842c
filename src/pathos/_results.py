"""What the verbs return: async results (``amap``, ``apipe``) and result iterators
(``imap``, ``uimap``), both views of one :class:`~pathos._job.Job`.

Both also serve asyncio: ``await pool.amap(f, xs)`` and ``async for y in pool.imap(f, xs)``
wait through job callbacks, never blocking the event loop (see :mod:`pathos._futures`).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, AsyncIterator, Callable, Generator, Iterator

from ._errors import PoolClosedError, ResultTimeoutError
from ._futures import JobFuture, next_change
from ._job import Job

__all__ = ["AsyncResult", "ResultIterator", "wait_for"]

_WINDOW_MIN_PER_NODE = 8
_WINDOW_MAX_BATCH = 10_000


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
            self._future = JobFuture(self._job, lambda: self.get(0), interrupt=interrupt)
        return self._future

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self._as_future()).__await__()

    def ready(self) -> bool:
        """True once every item has finished, or one failed, or it was cancelled."""
        return self._job.done_or_failed()

    def successful(self) -> bool:
        """True if it finished without an error.

        Raises:
            ValueError: the result is not ready yet.
        """
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._job.error is None

    def wait(self, timeout: float | None = None) -> None:
        """Wait until ready, or ``timeout`` seconds at most."""
        wait_for(self._job, self._job.done_or_failed, timeout, self._on_interrupt)

    def get(self, timeout: float | None = None) -> Any:
        """The value(s), waiting ``timeout`` seconds at most.

        Raises:
            ResultTimeoutError: not ready in time (a ``multiprocessing.TimeoutError`` and a
                builtin ``TimeoutError``); the work goes on.
            Exception: the first error raised by the function, re-raised here.
        """
        if not wait_for(self._job, self._job.done_or_failed, timeout, self._on_interrupt):
            raise ResultTimeoutError(f"the result was not ready within {timeout} s; the work goes on")
        job = self._job
        if job.error is not None:
            raise job.error
        chunks = job.chunks
        if self._single:
            return chunks[0][0][0]
        if len(chunks) == 1:
            return list(chunks[next(iter(chunks))][0])
        out: list[Any] = []
        for start in sorted(chunks):
            out.extend(chunks[start][0])
        return out

    def cancel(self) -> bool:
        """Cancel the work not yet finished; False if it had already finished."""
        if self.ready():
            return False
        self._job.cancel()
        if self._job._notifier is not None:
            self._job._notifier.notify(self._job)
        return True

    def cancelled(self) -> bool:
        """True if the call was cancelled (by :meth:`cancel`, or by the pool stopping)."""
        return self._job.cancelled

    def __repr__(self) -> str:
        state = "ready" if self.ready() else "pending"
        return f"<{type(self).__name__} {state}>"


class ResultIterator(Iterator[Any]):
    """Results of ``imap`` (input order) or ``uimap`` (completion order), as they come.

    The input is read lazily, a bounded window ahead of what has been consumed, so an
    infinite generator works and memory stays flat. Closing the iterator early (or
    dropping it) cancels the rest of the work. ``async for`` works too, and waits for
    each result without blocking the event loop.
    """

    def __init__(
        self,
        job: Job,
        source: Iterator[Any] | None,
        *,
        ordered: bool,
        on_interrupt: Callable[[], None],
    ) -> None:
        self._job = job
        self._source = source
        self._ordered = ordered
        self._on_interrupt = on_interrupt
        self._read = 0  # items read from the source
        self._yielded = 0
        self._source_error: BaseException | None = None
        self._closed = False
        self._chunk: tuple[list[Any], dict[int, BaseException] | None, int] = ([], None, 0)
        self._left = 0  # results left in _chunk
        self._low_water = 0  # refill the input once fewer than this many items are ahead
        self._refill()

    # -- input ----------------------------------------------------------------------
    def _window(self) -> int:
        job = self._job
        batch = min(job.ideal_batch(), _WINDOW_MAX_BATCH)
        return max(_WINDOW_MIN_PER_NODE * job.nodes, 2 * job.nodes * batch)

    def _refill(self) -> None:
        source = self._source
        if source is None:
            return
        window = self._window()
        self._low_water = window // 2
        want = window - (self._read - self._yielded)
        if want <= 0:
            return
        items = list(itertools.islice(source, want)) if self._source_error is None else []
        last = len(items) < want
        self._read += len(items)
        if last:
            self._source = None
        self._job.feed(items, last=last)

    def _feed_safely(self) -> None:
        try:
            self._refill()
        except Exception as exc:  # the input iterator raised: raise it at its position
            self._source_error = exc
            self._source = None
            self._job.feed([], last=True)

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
        """
        if self._closed:
            raise StopIteration
        job = self._job
        if not self._left and not wait_for(job, self._available, timeout, self._on_interrupt):
            raise ResultTimeoutError(f"no result arrived within {timeout} s; the work goes on")
        if not self._left:
            with job.lock:
                found = self._take()
            if not found:
                return self._end()
        values, errors, offset = self._chunk
        self._left -= 1
        self._chunk = (values, errors, offset + 1)
        self._yielded += 1
        if self._read - self._yielded < self._low_water:
            self._feed_safely()
        if errors is not None and offset in errors:
            raise errors[offset]
        return values[offset]

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        """The next result, awaited without blocking the event loop."""
        while not (self._closed or self._left):
            changed = next_change(self._job, self._available)
            if changed is None:
                break
            await changed
        try:
            return self.next(0)
        except StopIteration:
            raise StopAsyncIteration from None

    def _available(self) -> bool:
        job = self._job
        if job.cancelled:
            return True
        if self._ordered:
            if self._yielded in job.chunks:
                return True
        elif job.order:
            return True
        return job.total is not None and self._yielded >= job.total

    def _take(self) -> bool:
        """Move the next finished batch into ``_chunk`` (job lock held); False at the end."""
        job = self._job
        if self._ordered:
            start = self._yielded if self._yielded in job.chunks else None
        else:
            start = job.order.popleft() if job.order else None
        if start is None:
            return False
        values, errors = job.chunks.pop(start)
        self._chunk = (values, errors, 0)
        self._left = len(values)
        return True

    def _end(self) -> Any:
        job = self._job
        if job.cancelled and not self._closed and isinstance(job.error, PoolClosedError):
            self._closed = True
            raise job.error
        if self._source_error is not None and not self._closed:
            self._closed = True
            raise self._source_error
        self._closed = True
        raise StopIteration

    def close(self) -> None:
        """Stop early: cancel the work not yet finished and free the workers."""
        if self._closed:
            return
        self._closed = True
        self._source = None
        job = self._job
        if not job.done_or_failed():
            job.cancel()
            if job._notifier is not None:
                job._notifier.notify(job)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        kind = "ordered" if self._ordered else "unordered"
        return f"<{type(self).__name__} {kind}, {self._yielded} yielded>"
