"""Bridges from a :class:`~pathos._job.Job` to ``concurrent.futures`` and ``asyncio``.

- :class:`JobFuture`, a ``concurrent.futures.Future`` settled by the job's done callback,
  so ``as_completed()``, ``wait()`` and ``asyncio.wrap_future()`` work on it. It is what
  ``pool.submit()`` returns, and what ``await pool.amap(...)`` waits on. Its callbacks
  run on the callback thread (:mod:`pathos._callbacks`), never on an engine thread.
- :func:`next_change`, which lets ``async for`` over ``imap``/``uimap`` wait for the next
  result without blocking the event loop: the job calls back, and the callback wakes
  the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any, Callable

from . import _callbacks
from ._job import Job

if TYPE_CHECKING:
    import asyncio  # next_change imports it where it runs: inside a running event loop

__all__ = ["JobFuture", "next_change"]


class JobFuture(Future[Any]):
    """A ``concurrent.futures.Future`` for a job's outcome.

    It is settled on the thread that ends the job, so ``result()``, ``as_completed()``
    and ``wait()`` wake at once. Its callbacks (``add_done_callback``) run on the pathos
    callback thread, never on an engine thread, after anything the job posted there
    before (so ``await pool.amap(..., progress=True)`` resumes after the bar is closed);
    an error they raise goes to the ``pathos`` logger.

    Args:
        job: the job whose completion settles the future.
        value: returns the job's value (or raises its error) once the job has ended.
        interrupt: whether :meth:`cancel` may stop work that has already started
            (True for ``amap``, which stops its unfinished items); else only work no
            worker has picked up yet is cancelled, as ``Executor.submit`` futures do.
    """

    def __init__(self, job: Job, value: Callable[[], Any], *, interrupt: bool) -> None:
        super().__init__()
        _callbacks.start()
        self._job = job
        self._value = value
        self._interrupt = interrupt
        self._notify_lock = threading.Lock()
        self._notified = False
        job.add_done_callback(self._settle)  # quick, and never waits for the callback thread

    def add_done_callback(self, fn: Callable[[Future[Any]], object]) -> None:
        """Call ``fn(future)`` on the callback thread once the future is done."""

        def deliver(future: Future[Any]) -> None:
            _callbacks.post(_call_back, fn, future)

        super().add_done_callback(deliver)

    def cancel(self) -> bool:
        """Cancel the work if it can be; True if the future is now cancelled."""
        if self.done():
            return self.cancelled()
        if not self._job.cancel(unstarted_only=not self._interrupt):  # the job tells its backend
            return self.cancelled()
        return self._mark_cancelled()

    def _mark_cancelled(self) -> bool:
        if not super().cancel():
            return False  # it finished first
        with self._notify_lock:
            notify, self._notified = not self._notified, True
        if notify:
            # what an executor's worker does when it finds a cancelled future: this
            # wakes as_completed() and wait()
            self.set_running_or_notify_cancel()
        return True

    def _settle(self, job: Job) -> None:
        if job.cancelled_by_caller():
            self._mark_cancelled()
            return
        try:
            value = self._value()
        except BaseException as exc:
            error: BaseException | None = exc
        else:
            error = None
        try:
            if error is None:
                self.set_result(value)
            else:
                self.set_exception(error)
        except InvalidStateError:
            pass  # cancelled meanwhile


def _call_back(fn: Callable[[Future[Any]], object], future: Future[Any]) -> None:
    try:
        fn(future)
    except Exception:
        _callbacks.log.exception("a callback of %r raised; the pool carries on: %r", future, fn)


def next_change(job: Job, ready: Callable[[], bool]) -> asyncio.Future[None] | None:
    """None if ``ready()`` holds now; else an asyncio future set at the job's next change.

    Must be called from a running event loop, which the future belongs to.
    """
    import asyncio  # here: submit() imports this module, and only a running event loop calls this

    loop = asyncio.get_running_loop()
    changed: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not changed.done():
            changed.set_result(None)

    def wake() -> None:  # called from a backend thread
        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    return None if job.wake_when(ready, wake) else changed
