"""The one seam between the pool verbs and the engines that run work, and the lifecycle
protocol every engine follows.

A backend receives jobs (:class:`pathos._job.Job`) through :meth:`Backend.submit` and
*pulls* batches from them (``job.next_batch()``, through :class:`JobQueue`) whenever it
has room to run one. It reports each batch's fate back to the job: ``batch_done``
(results and per-item errors), ``batch_failed`` (every item failed), ``batch_lost`` (the
worker died) or ``batch_unstarted`` (taken but never run). Everything else (ordering,
chunk sizes, retries, fail-fast, lazy input, progress) lives in the job, written once.

Backends: ``serial`` (inline), ``thread``, ``process`` (our engine) and ``dask``.

The lifecycle protocol (what the base class owns)
-------------------------------------------------

:class:`Backend` owns, for every engine:

- ``self._lock`` (a plain ``threading.Lock``) guarding ``state``, ``_engine_running``
  and ``_broken``; ``self._queue`` (a :class:`JobQueue`); ``self.state`` in ``RUN`` ->
  ``CLOSE`` -> ``TERMINATE`` (or ``RUN`` -> ``TERMINATE``), never back;
- ``_engine_running``: True from the moment :meth:`notify` decides to start the engine
  until the engine has decided, under the lock, to exit (:meth:`_engine_may_exit`);
- ``_broken``: the exception that killed the backend for an internal reason (a bug in
  an engine thread, a lost cluster), set by :meth:`_break`; every later error says it;
- :meth:`notify` (written once; only the serial backend, which has no engine and runs
  each job inline in the caller's thread, overrides it, with the same TERMINATE rule)::

      with lock:
          if TERMINATE: fail the job with closed_error()     (outside the lock, and
                                                               never a COMPLETE job)
          else: queue.add(job); start = not _engine_running; _engine_running = True
      start ? self._start_engine() : self._wake()            (outside the lock)

- :meth:`close` (RUN -> CLOSE, then ``_wake()`` a running engine so it can finish and
  exit), :meth:`terminate` (-> TERMINATE; fails the queued jobs, never rewriting a
  completed one; then ``_stop_engine()``) and :meth:`join` (waits, with an optional
  timeout, on an event set when the engine has exited), all written once.

The subclass contract (what an engine implements)
-------------------------------------------------

``_start_engine()``
    Called *outside* the lock, exactly once per engine run, by the :meth:`notify`
    that flipped ``_engine_running`` to True. Start the engine's thread(s) (or, inline,
    run). It may find ``state == TERMINATE`` already (a terminate() raced in between):
    then it must not start anything and calls :meth:`_engine_may_exit_locked` under
    the lock (or :meth:`_engine_may_exit`), so ``join()`` returns. If it raises, the
    base marks the engine exited and breaks the backend (:meth:`_break`).
``_wake()``
    Called outside the lock while an engine runs (or is being started): new work is
    queued, a job was cancelled, or the state changed. Must never block and must be
    safe at any time, also after the engine closed its resources: check a closed flag
    under a lock before writing to a file descriptor (see :class:`WakeupPipe`, which
    does exactly that), so it never writes into a closed or reused descriptor.
``_stop_engine()``
    Called outside the lock by :meth:`terminate`, after ``state`` is TERMINATE and the
    queue's jobs were failed. Abandon or kill the running work, fail the jobs of the
    batches in flight with ``self.closed_error()`` (through :meth:`_fail`, which never
    rewrites a completed job), and make the engine exit soon. Bounded waits only.

The engine's exit handshake (trio's entry queue, CPython's ``_shutdown_lock``): an
engine that finds nothing to do first finishes its own cleanup (e.g. stopping idle
workers), *then* calls :meth:`_engine_may_exit`. Under the lock, that returns False if
the queue has work (the engine goes on: a notify() that came during the cleanup saw
``_engine_running`` and only woke it) or else clears ``_engine_running`` and returns
True (the engine exits: a later notify() starts a new one). Work is never stranded
between an exiting engine and a notify(), and nobody checks ``thread.is_alive()``.
An engine that holds the lock already (e.g. a Condition built on ``self._lock``)
calls :meth:`_engine_may_exit_locked` instead. Under TERMINATE the engine always
exits. Rule of thumb: an engine exits only when ``state != RUN`` (or when it is idle
and wants to free resources, e.g. a process pool's idle timeout). ``force=True`` marks
the engine exited whatever is queued: only for an engine that dies (its failure path,
which then breaks the backend, failing what is queued).

What a backend does with a job when it is closed or terminated is written once, here:
``submit()`` on a non-RUN backend raises :meth:`closed_error`; ``notify()`` on a CLOSE
backend still runs the job (an ``imap`` begun before ``close()`` finishes all its
items); ``notify()`` on a TERMINATE backend fails the job at once.

Lock order: ``Backend._lock`` -> ``JobQueue._lock`` -> ``Job.lock``. Job callbacks
(done callbacks, progress, waiters) never run under ``Backend._lock``. The locks are not
reentrant: code that may run while an engine thread holds one (a finalizer run by the
garbage collector, a callback) must not call :meth:`notify` synchronously.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from typing import Any

from ._errors import PoolClosedError
from ._job import Batch, Job

__all__ = ["CLOSE", "RUN", "TERMINATE", "Backend", "JobQueue", "WakeupPipe", "closed_error"]

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"


def closed_error(state: str, broken: BaseException | None = None) -> PoolClosedError:
    """The error for a call on a pool that is not running.

    Args:
        state: the backend's state (``CLOSE`` or ``TERMINATE``).
        broken: why the backend died, if it died for an internal reason; the message
            says it and the error's ``__cause__`` is it.
    """
    if broken is not None:
        error = PoolClosedError(
            f"Pool not running: it stopped because {type(broken).__name__}: {broken}; "
            "call restart() or clear() on the pool, or create a new one, to use it again"
        )
        error.__cause__ = broken
        return error
    how = "terminated" if state == TERMINATE else "closed"
    return PoolClosedError(
        f"Pool not running: it was {how}; call restart() or clear() on the pool, or create a new one, to use it again"
    )


class JobQueue:
    """Jobs that may have batches to run, oldest first; thread-safe."""

    def __init__(self) -> None:
        self._jobs: deque[Job] = deque()
        self._lock = threading.Lock()

    def add(self, job: Job) -> None:
        with self._lock:
            if job not in self._jobs:
                self._jobs.append(job)

    def pull(self) -> Batch | None:
        """The next batch of the oldest job that has one, or None."""
        # The lock is held while a job is dropped, and Job.feed() notifies only after
        # adding items, so a job that gains items is always queued again.
        with self._lock:
            jobs = self._jobs
            while jobs:
                batch = jobs[0].next_batch()
                if batch is not None:
                    return batch
                jobs.popleft()
            return None

    def take_all(self) -> list[Job]:
        """Remove and return every queued job."""
        with self._lock:
            jobs = list(self._jobs)
            self._jobs.clear()
        return jobs

    def cancel_all(self, exc: BaseException) -> None:
        """Fail every queued job with ``exc`` (the pool is stopping); a completed job
        (all its results in, waiting to be read) keeps its results."""
        for job in self.take_all():
            fail_job(job, exc)

    def __bool__(self) -> bool:
        """True if some queued job has a batch to run now."""
        with self._lock:
            return any(job.has_work() for job in self._jobs)


def fail_job(job: Job, exc: BaseException) -> None:
    """Fail ``job`` with ``exc`` unless it has completed: a finished call's results are
    never rewritten into an error (issue item 5).

    Race: a batch finishing on another thread can complete the job between the check
    and the cancel; ``Job.cancel`` itself refuses to touch a COMPLETE job (its state
    transition is guarded under the job's lock), which closes that window. The check
    here keeps the promise on its own for jobs already complete.
    """
    if job.complete():
        return
    job.cancel(exc)


class Backend:
    """What an engine must do to run the pool verbs (see the module docstring for the
    lifecycle protocol and the subclass contract).

    Attributes:
        nodes: how many items it runs at once.
        state: ``RUN``, ``CLOSE`` (finishing queued work) or ``TERMINATE``.
    """

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.state = RUN
        self._lock = threading.Lock()
        self._queue = JobQueue()
        self._engine_running = False
        self._engine_exited = threading.Event()
        self._engine_exited.set()  # no engine yet: join() has nothing to wait for
        self._broken: BaseException | None = None
        # Seconds per item that the last call of each function measured: the next call
        # of the same function starts with batches of the right size at once.
        self._timings: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    # -- the callers' side ------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Start pulling batches from ``job``.

        Raises:
            PoolClosedError: the backend was closed or terminated.
        """
        # Race: a close() right after this check lets the job in; notify() then queues
        # it on a CLOSE backend, which runs it like any work submitted before close().
        if self.state != RUN:
            raise self.closed_error()
        self._recall_timing(job)
        job.attach(self)

    def notify(self, job: Job) -> None:
        """``job`` may have new batches (more input, a retry, a cancellation)."""
        with self._lock:
            if self.state == TERMINATE:
                start = None
            else:
                self._queue.add(job)
                start = not self._engine_running
                if start:
                    self._engine_running = True
                    self._engine_exited.clear()
        if start is None:
            fail_job(job, self.closed_error())  # outside the lock: it runs the job's callbacks
        elif start:
            self._begin_engine()
        else:
            self._wake()

    def _begin_engine(self) -> None:
        try:
            self._start_engine()
        except BaseException as exc:  # e.g. no thread can be started: fail, never hang
            with self._lock:
                self._engine_may_exit_locked(force=True)
            self._break(exc)
            raise

    def close(self) -> None:
        """Accept no new jobs; finish the work already submitted."""
        with self._lock:
            if self.state == RUN:
                self.state = CLOSE
            running = self._engine_running
        if running:
            self._wake()

    def terminate(self) -> None:
        """Stop at once; unfinished jobs fail with :class:`PoolClosedError` (a completed
        one keeps its results)."""
        with self._lock:
            if self.state == TERMINATE:
                return
            self.state = TERMINATE
        self._queue.cancel_all(self.closed_error())
        self._stop_engine()

    def join(self, timeout: float | None = None) -> None:
        """Wait until a closed backend's engine has exited (``timeout`` seconds at most)."""
        self._engine_exited.wait(timeout)

    def joined(self) -> bool:
        """True if no engine runs (:meth:`join` would return at once)."""
        return self._engine_exited.is_set()

    def closed_error(self) -> PoolClosedError:
        """The error for work given to this backend now that it is not running: it
        names the reason the backend died (``_broken``) when it died of one."""
        return closed_error(self.state, self._broken)

    def _break(self, reason: BaseException) -> None:
        """The backend died of ``reason`` (an internal failure): terminate it, and make
        every later call say why (issue item 21)."""
        with self._lock:
            if self._broken is None and self.state != TERMINATE:
                self._broken = reason
        self.terminate()

    @staticmethod
    def _fail(job: Job, exc: BaseException) -> None:
        """Fail ``job`` with ``exc`` unless it completed (see :func:`fail_job`)."""
        fail_job(job, exc)

    # -- the engine's side --------------------------------------------------------------
    def _engine_may_exit(self) -> bool:
        """The engine's exit decision (call it after the engine's own cleanup): False
        if work is queued (keep going), else the engine is marked exited and must exit."""
        with self._lock:
            return self._engine_may_exit_locked()

    def _engine_may_exit_locked(self, *, force: bool = False) -> bool:
        """:meth:`_engine_may_exit` for a caller that holds ``self._lock``."""
        # Race: notify() adds its job under this lock before it reads _engine_running,
        # so either the job is visible to this check (the engine stays) or notify()
        # comes after and sees _engine_running False (it starts a new engine).
        if not force and self.state != TERMINATE and self._queue:
            return False
        self._engine_running = False
        self._engine_exited.set()
        return True

    def _start_engine(self) -> None:
        """Start the engine (see the module docstring); subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _start_engine()")

    def _wake(self) -> None:
        """Nudge the running engine; never blocks; safe after close (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _wake()")

    def _stop_engine(self) -> None:
        """Abandon the running work at terminate() (subclasses; bounded waits only)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _stop_engine()")

    # -- timing memory ------------------------------------------------------------------
    def _recall_timing(self, job: Job) -> None:
        try:
            seconds = self._timings.get(job.fn)
        except TypeError:  # a callable that is unhashable or takes no weak reference
            return
        if seconds is not None:
            job.seed_timing(seconds)
        job.add_done_callback(self._learn_timing)

    def _learn_timing(self, job: Job) -> None:
        seconds = job.item_seconds()
        if seconds is not None:
            try:
                self._timings[job.fn] = seconds
            except TypeError:
                pass

    def describe(self) -> dict[str, Any]:
        """Facts for ``repr`` and ``stats()``."""
        info: dict[str, Any] = {"nodes": self.nodes, "state": self.state}
        if self._broken is not None:
            info["broken"] = f"{type(self._broken).__name__}: {self._broken}"
        return info


class WakeupPipe:
    """A self-pipe that wakes an engine's selector from any thread, safe to poke after
    it was closed (issue item 12).

    :meth:`wake` writes one byte, never blocks, and does nothing once :meth:`close` ran:
    the closed flag and the descriptor are read and changed under one lock, so a late
    wake can never write into a descriptor that was closed and reused by someone else
    (CPython's ``_ThreadWakeup`` does the same with its ``_closed`` flag).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._closed = False

    def fileno(self) -> int:
        """The read end, to register with a selector."""
        return self._r

    def wake(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self._w, b"x")
            except (BlockingIOError, OSError):
                pass  # a wake-up is already pending

    def drain(self) -> None:
        """Read every pending wake-up (the engine's thread, before it looks for work)."""
        with self._lock:
            if self._closed:
                return
            try:
                while os.read(self._r, 4096):
                    pass
            except (BlockingIOError, OSError):
                pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._r)
            os.close(self._w)
