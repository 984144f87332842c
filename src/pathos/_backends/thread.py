"""The thread backend: ``nodes`` threads pull batches from the submitted jobs.

The engine is the set of pool threads; it follows the lifecycle protocol of
:mod:`pathos._backend`. Its condition variable is built on the backend's own lock, so
the threads' "nothing to do, may I exit?" check, ``notify()``'s "is an engine running?"
check and ``terminate()`` all happen under one lock: the last thread to leave takes the
engine's exit decision there, and a ``notify()`` either lands before it (the thread
stays) or after it (a new set of threads starts).

A thread cannot be killed, so an item past its ``timeout=`` (a limit per item) is
*abandoned*: it fails with :class:`TaskTimeoutError` at once, a new thread takes the
stuck one's place and carries on with the rest of that batch, and whatever the stuck
thread returns later is dropped. A task that raises ``SystemExit``,
``KeyboardInterrupt`` or ``GeneratorExit`` gets that exception back at its item; the
thread lives on.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .. import _registry
from .._backend import RUN, TERMINATE, Backend
from .._errors import PathosError, WorkerInitError
from .._job import Batch
from ._inline import call_one, run_batch, timeout_error

__all__ = ["ThreadBackend"]


class _Run:
    """A batch being run by a pool thread.

    ``owner`` is the thread allowed to record its outcome; the watchdog (timeout) or
    terminate() takes ownership away, under the backend's lock, and a thread that is no
    longer the owner drops whatever its task returns. For a timed batch, ``values`` and
    ``errors`` fill item by item, ``next`` is the offset of the next item to run and
    ``deadline`` is when the running item times out.
    """

    __slots__ = ("batch", "deadline", "errors", "next", "owner", "started", "timed_out", "values")

    def __init__(self, batch: Batch, owner: threading.Thread) -> None:
        self.batch = batch
        self.owner: threading.Thread | None = owner
        self.values: list[Any] = []
        self.errors: dict[int, BaseException] = {}
        self.next = 0
        self.deadline: float | None = None
        self.started = time.perf_counter()
        self.timed_out = False


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
        self._cond = threading.Condition(self._lock)  # the pool threads wait for work here
        self._watch_cond = threading.Condition(self._lock)  # the watchdog waits for deadlines here
        self._threads: set[threading.Thread] = set()  # the engine: threads not abandoned
        self._runs: dict[threading.Thread, _Run] = {}  # what each engine thread is running
        self._watching = False  # a watchdog thread runs (started and stopped under the lock)
        _registry.register(self)

    # -- the protocol ---------------------------------------------------------------------
    def _start_engine(self) -> None:
        with self._lock:
            if self.state == TERMINATE:  # a terminate() came between notify() and here
                self._engine_may_exit_locked()
                return
            self._top_up()

    def _wake(self) -> None:
        with self._lock:
            # Race: the engine may have exited since notify() saw it running; then
            # _engine_running is False and the next notify() starts a new one.
            if self.state == TERMINATE or not self._engine_running:
                return
            if self._queue:  # threads that left during close() come back for new work
                self._top_up()
            self._cond.notify_all()

    def _stop_engine(self) -> None:
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
            for run in runs:
                if run.owner is not None:
                    self._threads.discard(run.owner)  # abandoned: no longer part of the engine
                run.owner = None
            self._cond.notify_all()
            self._watch_cond.notify_all()
            if not self._threads and self._engine_running:
                self._engine_may_exit_locked()
        error = self.closed_error()
        for run in runs:
            self._fail(run.batch.job, error)

    def _top_up(self, inherited: _Run | None = None) -> None:
        """Start threads until ``nodes`` run (lock held); the first new one may carry on
        with a batch whose running item was abandoned."""
        while len(self._threads) < self.nodes or inherited is not None:
            thread = threading.Thread(target=self._work, args=(inherited,), name="pathos-thread", daemon=True)
            if inherited is not None:
                inherited.owner = thread
                self._runs[thread] = inherited
                inherited = None
            self._threads.add(thread)
            try:
                thread.start()
            except BaseException:  # e.g. "can't start new thread": leave no phantom member behind
                self._threads.discard(thread)
                self._runs.pop(thread, None)
                raise

    # -- a pool thread ----------------------------------------------------------------------
    def _work(self, inherited: _Run | None) -> None:
        me = threading.current_thread()
        held: Batch | None = inherited.batch if inherited is not None else None  # taken, not yet reported
        try:
            init_error = self._initialize()
            if inherited is not None and not self._carry_on(me, inherited, init_error):
                return
            held = None
            while (batch := self._next_batch(me)) is not None:
                held = batch
                if init_error is not None:
                    batch.job.batch_failed(batch, init_error)
                elif not self._run(me, batch):
                    return  # abandoned (timeout, terminate): another thread took this one's place
                # Drop the batch before waiting for the next one: an idle thread must not
                # keep a finished job (its function, its arguments) alive.
                held = batch = None
        except BaseException as exc:  # a bug here must fail the calls, never hang them
            error = PathosError(f"a pool thread failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            with self._lock:
                self._threads.discard(me)
                run = self._runs.pop(me, None)
                if not self._threads and self._engine_running:
                    self._engine_may_exit_locked(force=True)  # _break() terminates: no work is left behind
            self._break(error)
            # Race: another thread may have dropped this batch's job from the queue (it
            # had no batch left), so terminate() did not see it: fail it here.
            lost = run.batch if run is not None else held
            if lost is not None:
                self._fail(lost.job, self.closed_error())

    def _next_batch(self, me: threading.Thread) -> Batch | None:
        """The next batch to run, waiting for one; None when this thread must exit."""
        while True:
            batch = None if self.state == TERMINATE else self._queue.pull()
            if batch is not None:
                return batch
            with self._lock:
                if me not in self._threads:
                    return None  # abandoned by terminate() while it looked for work
                if self.state == TERMINATE or (self.state != RUN and not self._queue):
                    self._threads.discard(me)
                    if not self._threads:  # the last one takes the engine's exit decision
                        self._engine_may_exit_locked()
                    return None
                if not self._queue:
                    # Race: a notify() queues its job under this same lock before it
                    # wakes us, so checking the queue and waiting here loses no wake-up.
                    self._cond.wait()

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

    def _run(self, me: threading.Thread, batch: Batch) -> bool:
        """Run ``batch`` and report it; False if this thread was abandoned meanwhile."""
        run = _Run(batch, me)
        with self._lock:
            stopped = self.state == TERMINATE
            if not stopped:
                self._runs[me] = run
        if stopped:
            # Race: terminate() came while this batch was on its way from the queue to
            # this thread, so it is in no run list: fail its job here. True: the thread
            # goes back to _next_batch(), which sees TERMINATE and exits the right way.
            self._fail(batch.job, self.closed_error())
            return True
        if batch.job.timeout is not None:
            return self._carry_on(me, run, None)
        values, errors, seconds = run_batch(batch)
        with self._lock:
            if run.owner is not me:
                return False  # terminate() abandoned it; the job was failed already
            del self._runs[me]
        batch.job.batch_done(batch, values, errors, seconds)
        return True

    def _carry_on(self, me: threading.Thread, run: _Run, init_error: BaseException | None) -> bool:
        """Run a timed batch item by item from ``run.next``; False if abandoned."""
        batch = run.batch
        timeout = batch.job.timeout
        assert timeout is not None
        while True:
            with self._lock:
                if run.owner is not me:
                    return False
                offset = run.next
                if offset >= len(batch.items) or batch.job.done_or_failed():  # ended: the rest is not wanted
                    del self._runs[me]
                    break
                run.deadline = time.monotonic() + timeout
                self._watch()
            value: Any = None
            error: BaseException | None = init_error
            if error is None:
                try:
                    value = call_one(batch, offset)
                except BaseException as exc:  # the item's outcome
                    error = exc
            with self._lock:
                # Race: the watchdog may have timed this item out while it ran; it then
                # recorded the timeout and gave the batch to a new thread: drop ours.
                if run.owner is not me:
                    return False
                run.values.append(value)
                if error is not None:
                    run.errors[offset] = error
                run.next = offset + 1
        complete = len(run.values) == len(batch.items)
        seconds = time.perf_counter() - run.started if complete and not run.timed_out else None
        run.values.extend([None] * (len(batch.items) - len(run.values)))  # the job ended early
        batch.job.batch_done(batch, run.values, run.errors, seconds)
        return True

    # -- the watchdog -----------------------------------------------------------------------
    def _watch(self) -> None:
        """Make sure the watchdog runs (lock held)."""
        if self._watching:
            self._watch_cond.notify()  # a new deadline, maybe sooner than the one it waits for
        else:
            self._watching = True
            threading.Thread(target=self._watchdog, name="pathos-thread-watchdog", daemon=True).start()

    def _watchdog(self) -> None:
        """Time out items past their deadline; exits (under the lock) when nothing is timed."""
        try:
            with self._lock:
                while True:
                    timed = [run for run in self._runs.values() if run.deadline is not None]
                    if not timed or self.state == TERMINATE:
                        self._watching = False
                        return
                    now = time.monotonic()
                    for run in timed:
                        assert run.deadline is not None
                        if run.deadline <= now:
                            self._time_out(run)
                    soonest = min((r.deadline for r in self._runs.values() if r.deadline is not None), default=now)
                    self._watch_cond.wait(max(0.001, soonest - now))
        except BaseException as exc:  # e.g. no replacement thread could start: fail, never hang
            error = PathosError(f"the pool's timeout watchdog failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            with self._lock:
                self._watching = False
            self._break(error)  # fails the jobs of every run, the timed-out one included

    def _time_out(self, run: _Run) -> None:
        """The running item of ``run`` is past its deadline (lock held): record its
        timeout and give the rest of the batch to a new thread."""
        stuck = run.owner
        assert stuck is not None
        try:
            self._top_up(inherited=run)  # first: if no thread can start, nothing has changed
        except BaseException:
            run.owner = stuck
            self._runs[stuck] = run
            raise
        offset = run.next
        run.values.append(None)
        run.errors[offset] = timeout_error(run.batch, offset)
        run.next = offset + 1
        run.deadline = None
        run.timed_out = True
        del self._runs[stuck]
        self._threads.discard(stuck)
