"""The thread backend: ``nodes`` threads pull batches from the submitted jobs.

A thread cannot be killed, so a task past its ``timeout=`` is *abandoned*: its item
fails with :class:`TaskTimeoutError` at once, a new thread takes the stuck one's place,
and whatever the stuck thread returns later is dropped.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .. import _registry
from .._backend import CLOSE, RUN, TERMINATE, Backend, JobQueue, closed_error
from .._errors import WorkerInitError
from .._job import Batch, Job
from ._inline import run_batch, timeout_error

__all__ = ["ThreadBackend"]


class _Slot:
    """What one thread is running, so the watchdog can abandon it."""

    __slots__ = ("abandoned", "batch", "deadline")

    def __init__(self, batch: Batch, deadline: float | None) -> None:
        self.batch = batch
        self.deadline = deadline
        self.abandoned = False


class ThreadBackend(Backend):
    """Runs batches on ``nodes`` daemon threads, started on first use."""

    def __init__(
        self,
        nodes: int,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        super().__init__(nodes)
        self._initializer = initializer
        self._initargs = initargs
        self._queue = JobQueue()
        self._cond = threading.Condition()
        self._generation = 0
        self._threads: set[threading.Thread] = set()
        self._slots: dict[threading.Thread, _Slot] = {}
        self._watchdog: threading.Thread | None = None
        _registry.register(self)

    def notify(self, job: Job) -> None:
        self._queue.add(job)
        with self._cond:
            self._generation += 1
            if self.state == TERMINATE:
                return
            while len(self._threads) < self.nodes:
                self._start_thread()
            self._cond.notify_all()

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name="pathos-thread", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        init_error = self._initialize()
        try:
            while True:
                with self._cond:
                    generation = self._generation
                batch = self._queue.pull() if self.state != TERMINATE else None
                if batch is None:
                    if not self._idle(generation):
                        return
                    continue
                if init_error is not None:
                    batch.job.batch_failed(batch, init_error)
                elif not self._run(me, batch):
                    return  # abandoned after a timeout: a new thread took this one's place
        finally:
            with self._cond:
                self._threads.discard(me)
                self._cond.notify_all()

    def _initialize(self) -> BaseException | None:
        if self._initializer is None:
            return None
        try:
            self._initializer(*self._initargs)
        except Exception as exc:
            error = WorkerInitError(f"the pool's initializer raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            return error
        return None

    def _idle(self, generation: int) -> bool:
        """Wait for work; False when the thread should exit."""
        with self._cond:
            if self.state != RUN and not self._queue:
                return False
            if self._generation == generation:
                self._cond.wait(1.0)
            return True

    def _run(self, me: threading.Thread, batch: Batch) -> bool:
        timeout = batch.job.timeout
        slot = _Slot(batch, None if timeout is None else time.monotonic() + timeout)
        with self._cond:
            self._slots[me] = slot
            if timeout is not None:
                self._start_watchdog()
        values, errors, seconds = run_batch(batch)
        with self._cond:
            self._slots.pop(me, None)
            if slot.abandoned:
                return False
        batch.job.batch_done(batch, values, errors, seconds)
        return True

    def _start_watchdog(self) -> None:
        if self._watchdog is None or not self._watchdog.is_alive():
            self._watchdog = threading.Thread(target=self._watch, name="pathos-thread-watchdog", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        while True:
            with self._cond:
                if self.state == TERMINATE or (not self._slots and self.state != RUN):
                    return
                deadlines = [s.deadline for s in self._slots.values() if s.deadline is not None]
                now = time.monotonic()
                expired = [(t, s) for t, s in self._slots.items() if s.deadline is not None and s.deadline <= now]
                for thread, slot in expired:
                    slot.abandoned = True
                    del self._slots[thread]
                    self._threads.discard(thread)
                    self._start_thread()
                wait = min((d - now for d in deadlines if d > now), default=0.5)
            for _, slot in expired:
                slot.batch.job.batch_failed(slot.batch, timeout_error(slot.batch))
            time.sleep(min(max(wait, 0.001), 0.5))

    def close(self) -> None:
        with self._cond:
            if self.state == RUN:
                self.state = CLOSE
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._threads:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                self._cond.wait(left if left is not None else 1.0)

    def terminate(self) -> None:
        with self._cond:
            if self.state == TERMINATE:
                return
            self.state = TERMINATE
            running = list(self._slots.values())
            for slot in running:
                slot.abandoned = True
            self._slots.clear()
            self._cond.notify_all()
        error = closed_error(TERMINATE)
        self._queue.cancel_all(error)
        for slot in running:
            slot.batch.job.cancel(error)
