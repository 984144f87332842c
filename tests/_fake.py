"""A fake backend for tests, in the spirit of httpx's ``MockTransport``.

:class:`FakeBackend` follows the lifecycle protocol of :mod:`pathos._backend` with no
workers at all. It has two modes:

- **manual** (the default): nothing runs until the test says so. :meth:`~FakeBackend.take`
  pulls the next batch and leaves it in flight; :meth:`~FakeBackend.finish`,
  :meth:`~FakeBackend.fail`, :meth:`~FakeBackend.lose` settle one;
  :meth:`~FakeBackend.step` takes and settles one through the handler;
  :meth:`~FakeBackend.try_exit` plays the engine's idle exit decision. Every
  interleaving a test wants is written out, step by step, so it is deterministic.
- **auto** (``auto=True``): one engine thread runs each batch as it comes through the
  handler, so the pool verbs (which block) work on it: :class:`FakePool`.

A *handler* decides each batch's fate, like ``MockTransport(handler)``: given the batch,
it returns :data:`PROCEED` (call the function on its items, in this thread), :class:`Fail`
(every item fails), :class:`Lose` (the "worker" died: the job splits or retries it) or
:data:`STALL` (stays in flight until terminate()).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable, ClassVar, Union

from pathos._backend import RUN, TERMINATE, Backend
from pathos._job import Batch
from pathos._pool import WorkerPool
from pathos._workers import _protocol


class Fail:
    """Every item of the batch fails with ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Lose:
    """The batch's worker died with ``exc`` (``Job.batch_lost``)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


PROCEED = "proceed"
STALL = "stall"
Outcome = Union[str, Fail, Lose]
Handler = Callable[[Batch], Outcome]


def run_items(batch: Batch) -> Outcome:
    """The default handler: run every batch."""
    return PROCEED


class FakeBackend(Backend):
    """A deterministic backend (see the module docstring).

    Attributes:
        starts: how many times an engine was started.
        wakes: how many times a running engine was woken.
        stops: how many times ``_stop_engine()`` ran.
        in_flight: batches taken and not settled yet.
        log: what happened, in order (``("take", start)``, ``("finish", start)``, ...).
    """

    def __init__(self, nodes: int = 2, *, handler: Handler = run_items, auto: bool = False) -> None:
        super().__init__(nodes)
        self.handler = handler
        self.auto = auto
        self.starts = self.wakes = self.stops = 0
        self.in_flight: deque[Batch] = deque()
        self.log: list[tuple[str, Any]] = []
        self._cond = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    # -- the protocol ---------------------------------------------------------------------
    def _start_engine(self) -> None:
        with self._lock:
            if self.state == TERMINATE:
                self._engine_may_exit_locked()
                return
            self.starts += 1
            if self.auto:
                self._thread = threading.Thread(target=self._engine, name="fake-engine", daemon=True)
                self._thread.start()

    def _wake(self) -> None:
        with self._lock:
            self.wakes += 1
            self._cond.notify_all()

    def _stop_engine(self) -> None:
        with self._lock:
            self.stops += 1
            stalled = list(self.in_flight)
            self.in_flight.clear()
            self._cond.notify_all()
            if not self.auto and self._engine_running:
                self._engine_may_exit_locked()  # a manual engine has no thread to exit by itself
        for batch in stalled:
            self._fail(batch.job, self.closed_error())

    # -- manual driving ---------------------------------------------------------------------
    @property
    def engine_running(self) -> bool:
        with self._lock:
            return self._engine_running

    def take(self) -> Batch | None:
        """Pull the next batch and leave it in flight (the engine took it)."""
        batch = self._queue.pull()
        if batch is not None:
            with self._lock:
                self.in_flight.append(batch)
            self.log.append(("take", batch.start))
        return batch

    def finish(self, batch: Batch | None = None) -> None:
        """Run a batch in flight (the oldest by default) and report its results."""
        batch = self._settling(batch)
        if batch is None:
            return
        job = batch.job
        values, errors = _protocol.run_items(job.fn, batch.items, job.star, job.kwargs)
        self.log.append(("finish", batch.start))
        job.batch_done(batch, values, errors, 0.0)

    def fail(self, exc: BaseException, batch: Batch | None = None) -> None:
        batch = self._settling(batch)
        if batch is None:
            return
        self.log.append(("fail", batch.start))
        batch.job.batch_failed(batch, exc)

    def lose(self, exc: BaseException, batch: Batch | None = None) -> None:
        batch = self._settling(batch)
        if batch is None:
            return
        self.log.append(("lose", batch.start))
        batch.job.batch_lost(batch, exc)

    def step(self) -> bool:
        """Take one batch and settle it as the handler says; False if none was queued."""
        batch = self.take()
        if batch is None:
            return False
        self._settle(batch, self.handler(batch))
        return True

    def run_all(self) -> int:
        """Step until nothing is queued; how many batches ran (stalled ones included)."""
        n = 0
        while self.step():
            n += 1
        return n

    def try_exit(self) -> bool:
        """The engine's idle exit decision (``Backend._engine_may_exit``)."""
        return self._engine_may_exit()

    def _settling(self, batch: Batch | None) -> Batch | None:
        """Take ``batch`` (the oldest by default) out of flight; None if terminate() did."""
        with self._lock:
            if batch is None:
                return self.in_flight.popleft()
            if batch not in self.in_flight and self.state == TERMINATE:
                # Race: terminate() came between take() and here; _stop_engine() took
                # the batch out of flight and failed its job. (The engine thread once
                # died of the ValueError here, leaving join() waiting for ever.)
                return None
            self.in_flight.remove(batch)
            return batch

    def _settle(self, batch: Batch, outcome: Outcome) -> None:
        if outcome == STALL:
            self.log.append(("stall", batch.start))
        elif outcome == PROCEED:
            self.finish(batch)
        elif isinstance(outcome, Fail):
            self.fail(outcome.exc, batch)
        elif isinstance(outcome, Lose):
            self.lose(outcome.exc, batch)
        else:  # pragma: no cover - a test's mistake
            raise ValueError(f"unknown outcome {outcome!r}")

    # -- auto mode: one engine thread -------------------------------------------------------
    def _engine(self) -> None:
        try:
            self._engine_loop()
        except BaseException:  # a bug in this double must not leave join() waiting for ever
            with self._lock:
                self._engine_may_exit_locked(force=True)
            raise

    def _engine_loop(self) -> None:
        while True:
            if self.state != TERMINATE and self.step():
                continue
            with self._lock:
                if self.state == TERMINATE or (self.state != RUN and not self._queue):
                    self._engine_may_exit_locked()
                    return
                if not self._queue:
                    self._cond.wait()


class FakePool(WorkerPool):
    """A pool whose backend is an auto-mode :class:`FakeBackend` (``handler=`` optional)."""

    __state__: ClassVar[dict[Any, Backend]] = {}
    _options = ("handler",)

    def _make_backend(self, nodes: int) -> Backend:
        return FakeBackend(nodes, handler=self._kwds.get("handler", run_items), auto=True)
