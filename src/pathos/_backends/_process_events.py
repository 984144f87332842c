"""The process engine's side that listens: worker messages, exits, deadlines.

A mixin of :class:`pathos._backends.process.ProcessBackend`, run only on its manager
thread. What a dead worker's batches become is decided from its progress slot
(``WorkerProcess.running_offset()``):

- the items it finished and sent ahead (``Partial``) were settled already;
- items it finished but had not sent yet are run again (their results died with it);
- the item it was running is the culprit: it fails with the crash error (or its
  timeout), or is retried if the job allows (``retries=``): ``1 + retries`` runs at most;
- the items after it, and the batches queued behind it, never ran: they are run again.
"""

from __future__ import annotations

import os
import pickle
import selectors
import sys
import time
from typing import Any

from .. import _shm
from .._backend import TERMINATE, Backend
from .._errors import SerializationError, WorkerCrashedError, WorkerInitError
from .._job import Batch, Job
from .._serialize import name_result_item
from .._workers._main import SLOT_BATCH, SLOT_ITEM
from .._workers._process import (
    MAIN_GUARD_EXIT,
    MAIN_GUARD_MESSAGE,
    WorkerProcess,
    exit_reason,
    signal_name,
)
from .._workers._protocol import (
    NOT_STARTED,
    Declined,
    Done,
    FromWorker,
    InitError,
    Partial,
    Ready,
    Stop,
    decode,
    encode,
    expect_batch,
    items_label,
    load_values,
    rebuild_error,
    timeout_error,
)

__all__ = ["START_DEATHS", "Events"]

STOP_SECONDS = 5.0  # a stopping worker that has not exited after this long is killed
LIVENESS_SECONDS = 0.25  # without pidfds, how often exits are also polled
START_DEATHS = 3  # workers in a row that die before they are ready fail the waiting calls


class Events(Backend):
    """The process engine's worker bookkeeping: writing, receiving, exits and deadlines
    (see the module docstring); everything here runs on the manager thread."""

    _ctx: Any
    _has_initializer: bool
    _workers: list[WorkerProcess]
    _selector: selectors.BaseSelector | None
    _functions: dict[int, tuple[Job, bytes]]
    _segments: _shm.SegmentPool | None
    _shm_prefix: str | None
    _stats: dict[str, int]
    _start_deaths: int
    _last_liveness: float
    _init_failure: tuple[int, BaseException] | None  # the manager's own
    _calls: int  # shared with callers, under self._lock
    _queued: list[WorkerProcess]  # workers with messages queued by _write(now=False)

    # -- writing and bookkeeping ---------------------------------------------------------
    def _remove(self, worker: WorkerProcess) -> None:
        assert self._selector is not None
        if worker in self._queued:  # its fd is closed below and may be reused: never write to it
            self._queued.remove(worker)
        for fd in (worker.fd, *worker.exit_fds):
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass
        self._workers.remove(worker)
        worker.close()

    def _kill(self, worker: WorkerProcess, error: BaseException) -> None:
        """End a worker now: its running item fails with ``error``, the rest are requeued."""
        worker.killed_for = error
        worker.kill()
        self._on_exit(worker, reap_timeout=1.0)
        self._stats["replaced"] += 1

    def _send_stop(self, worker: WorkerProcess) -> None:
        worker.stopping = True
        worker.stop_deadline = time.monotonic() + STOP_SECONDS
        self._write(worker, encode(Stop()))

    def _discard_files(self, worker: WorkerProcess) -> None:
        """Unlink the result files a dead worker wrote that nobody will read."""
        if self._shm_prefix:
            _shm.discard_prefix(f"pathos-{os.getpid()}-{worker.pid}-")

    def _write(self, worker: WorkerProcess, message: bytes, *, now: bool = True) -> None:
        """Queue ``message`` for ``worker``; what its pipe cannot take now is written
        when the selector says it can (never a blocking write on this thread). With
        ``now=False`` nothing is written yet: the caller calls :meth:`_flush_queued`
        once it has queued all it has (one write for several small messages)."""
        if not now:
            worker.send(message, now=False)
            if worker not in self._queued:
                self._queued.append(worker)
        elif worker.send(message):
            self._want_write(worker, True)

    def _flush_queued(self) -> None:
        """Write what :meth:`_write` queued with ``now=False``."""
        queued, self._queued = self._queued, []
        for worker in queued:
            if worker.flush():
                self._want_write(worker, True)

    def _flush(self, worker: WorkerProcess) -> None:
        if not worker.flush():
            self._want_write(worker, False)

    def _want_write(self, worker: WorkerProcess, on: bool) -> None:
        assert self._selector is not None
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        try:
            self._selector.modify(worker.fd, events, (worker, "conn"))
        except (KeyError, ValueError):  # pragma: no cover - removed meanwhile
            pass

    def _release(self, batch: Batch, kept: list[str] | None = None) -> None:
        """Give a settled batch's argument segments back for reuse (``kept``: still mapped by a worker)."""
        if batch.segments:
            assert self._segments is not None
            self._segments.give_back(batch.segments, kept or ())
            batch.segments = []

    def _retire_if_idle(self, worker: WorkerProcess) -> None:
        """Tell a retiring worker with nothing left to run to stop."""
        if worker.retiring and not worker.outstanding and not worker.stopping:
            self._send_stop(worker)

    @staticmethod
    def _fail_whole(batch: Batch, error: BaseException) -> None:
        """A batch failed as a whole: split it so only the culprit item fails."""
        if len(batch.items) > 1:
            batch.job.batch_lost(batch, error)
        else:
            batch.job.batch_failed(batch, error)

    def _forget_finished(self) -> None:
        done = [key for key, (job, _) in self._functions.items() if job.in_flight == 0 and job.done_or_failed()]
        for key in done:
            del self._functions[key]
            for w in self._workers:
                if key in w.known:
                    w.known.discard(key)
                    w.forget.append(key)

    # -- receiving --------------------------------------------------------------------
    def _receive(self, worker: WorkerProcess, *, drain: bool = False) -> None:
        """Handle the messages a worker sent; ``drain`` reads until its pipe is empty."""
        try:
            while True:
                messages = worker.read_messages()
                if messages is None:
                    return  # nothing more to read now
                for message in messages:
                    self._on_message(worker, decode(message))
                if not drain:
                    return
        except (EOFError, OSError):
            pass  # the process is gone (or closed its end); its exit settles the rest

    def _on_message(self, worker: WorkerProcess, message: FromWorker) -> None:
        if isinstance(message, Done):
            self._on_done(worker, message)
        elif isinstance(message, Partial):
            self._on_partial(worker, message)
        elif isinstance(message, Declined):
            batch_id, batch = worker.outstanding.popleft()
            expect_batch(batch_id, message.batch_id, "declined")
            self._release(batch)
            batch.job.batch_unstarted(batch)
            self._retire_if_idle(worker)
        elif isinstance(message, Ready):
            worker.ready = True
            worker.started = time.monotonic()
            self._start_deaths = 0
        elif isinstance(message, InitError):
            cause = rebuild_error(message.error)
            error = WorkerInitError(
                f"the pool's initializer raised {type(cause).__name__}: {cause}; "
                "fix the initializer, then call the pool again"
            )
            error.__cause__ = cause
            self._record_init_failure(worker, error)
            worker.killed_for = error  # the batches sent to it fail with it, whichever call they are of

    def _on_partial(self, worker: WorkerProcess, partial: Partial) -> None:
        """The first items of the running batch finished: settle them now."""
        batch_id, batch = worker.outstanding[0]
        expect_batch(batch_id, partial.batch_id, "partial")
        head, tail = batch.job.split(batch, partial.finished)
        tail.segments, batch.segments = batch.segments, []
        worker.outstanding[0] = (batch_id, tail)
        worker.base += partial.finished
        self._settle_values(head, partial.values, partial.segments, partial.errors, None)

    def _on_done(self, worker: WorkerProcess, done: Done) -> None:
        batch_id, batch = worker.outstanding.popleft()
        expect_batch(batch_id, done.batch_id, "done")
        worker.base = 0
        self._release(batch, done.kept)
        worker.started = time.monotonic()
        if done.over:
            worker.retiring = True
        self._stats["batches"] += 1
        self._stats["items"] += len(batch.items)
        self._settle_values(batch, done.values, done.segments, done.errors, done.seconds)
        job = batch.job
        if job.in_flight == 0 and job.key in self._functions and job.done_or_failed():
            self._forget_finished()
        self._retire_if_idle(worker)

    def _settle_values(
        self, batch: Batch, values: bytes, segments: list[str], errors: list[Any], seconds: float | None
    ) -> None:
        nbytes = len(values)
        try:
            if segments:
                buffers = _shm.load_buffers(segments)
                nbytes += sum(memoryview(b).nbytes for b in buffers)
                results = load_values(values, buffers)
            else:
                results = pickle.loads(values)  # the hot path: small results, no buffers
        except Exception as exc:
            error = SerializationError(f"cannot deserialize the result of {items_label(batch)}: {exc}")
            self._fail_whole(batch, error)
            return
        if not errors:
            batch.job.batch_done(batch, results, None, seconds, nbytes=nbytes)
        elif errors[0][0] == NOT_STARTED:  # the batch could not even start
            self._fail_whole(batch, rebuild_error(errors[0][1]))
        else:
            errs = {i: name_result_item(rebuild_error(p), batch.start + i) for i, p in errors}
            batch.job.batch_done(batch, results, errs, seconds, nbytes=nbytes)

    # -- exits ------------------------------------------------------------------------
    def _on_exit(self, worker: WorkerProcess, reap_timeout: float = 1.0) -> None:
        """A worker's process ended: settle the batches it held, then let it go."""
        self._receive(worker, drain=True)  # results it sent before it died still count
        if worker not in self._workers:
            return
        exitcode = worker.reap(reap_timeout)
        self._discard_files(worker)  # results it was writing
        self._count_start_death(worker, exitcode)
        self._settle_lost(worker, exitcode)
        self._remove(worker)

    def _check_liveness(self) -> None:
        """Where there are no pidfds, also poll for exits (a process the worker forked
        may hold its sentinel open), and kill stopping workers past their deadline."""
        now = time.monotonic()
        poll = now - self._last_liveness >= LIVENESS_SECONDS
        if poll:
            self._last_liveness = now
        for worker in list(self._workers):
            if worker.stopping and now >= worker.stop_deadline:
                worker.kill()
                self._on_exit(worker)
            elif poll and worker.pidfd < 0 and worker.process.exitcode is not None:
                self._on_exit(worker)

    def _settle_lost(self, worker: WorkerProcess, exitcode: int | None) -> None:
        if not worker.outstanding:
            return
        offset = worker.running_offset()
        _, running = worker.outstanding.popleft()
        queued = [batch for _, batch in worker.outstanding]
        worker.outstanding.clear()
        for batch in (running, *queued):
            self._release(batch)
        for batch in queued:
            batch.job.batch_unstarted(batch)
        job = running.job
        if offset is None:  # it had not begun this batch: nothing of it ran
            job.batch_unstarted(running)
            return
        moved_on = self._moved_on(worker)
        if offset < 0 and moved_on:  # killed for the batch before, as it began loading this one
            job.batch_unstarted(running)
            return
        if offset < 0:  # it died loading the batch: the function or an argument did it
            culprit = running
        else:
            parts = job.split(running, offset, 1)
            if offset:
                finished, *parts = parts
                job.batch_unstarted(finished)  # their results died with the worker: run them again
            culprit, *after = parts
            for batch in after:
                job.batch_unstarted(batch)  # never ran
        if moved_on:
            job.batch_lost(culprit, self._moved_on_error(worker, culprit))  # retried, or fails
        elif worker.killed_for is not None:
            job.batch_failed(culprit, worker.killed_for)
        else:
            self._stats["crashes"] += 1
            job.batch_lost(culprit, self._crash_error(worker, culprit, exitcode))  # retried, or fails

    @staticmethod
    def _moved_on(worker: WorkerProcess) -> bool:
        """Whether a worker killed for a timeout had moved on to another item first.

        The race: ``_check_deadlines`` reads the progress slot (item k began at t0, its
        deadline has passed) and kills the worker; between the read and the kill, the
        worker may finish item k (its result is sent before the next item's clock
        starts, so it is in the pipe and settled by the drain in ``_on_exit``) and begin
        item k + 1, or load the next batch. The slot read after the death (final now)
        says which item the kill hit; when it is not item k, that item did not time out.
        """
        target = worker.kill_target
        if target is None:
            return False
        return (int(worker.slot[SLOT_BATCH]), int(worker.slot[SLOT_ITEM])) != target

    @staticmethod
    def _moved_on_error(worker: WorkerProcess, batch: Batch) -> WorkerCrashedError:
        return WorkerCrashedError(
            f"worker process {worker.pid} was killed because the item it ran before {items_label(batch)} "
            f"passed its timeout of {batch.job.timeout or 0.0:g} s, just as it began {items_label(batch)}: "
            "that one was stopped with it and is not run a second time. Pass retries=N to run such a task again.",
            pid=worker.pid,
            exitcode=None,
            signal="SIGKILL",
            task=batch.start,
        )

    def _crash_error(self, worker: WorkerProcess, batch: Batch, exitcode: int | None) -> WorkerCrashedError:
        return WorkerCrashedError(
            f"worker process {worker.pid} {exit_reason(exitcode)} while running {items_label(batch)}; "
            "the pool replaced it and carries on. Pass retries=N to run such a task again.",
            pid=worker.pid,
            exitcode=exitcode,
            signal=signal_name(exitcode),
            task=batch.start,
        )

    # -- start-up deaths ----------------------------------------------------------------
    def _count_start_death(self, worker: WorkerProcess, exitcode: int | None) -> None:
        """Workers that die before they are ready, ``START_DEATHS`` in a row, fail the
        waiting calls with :class:`WorkerInitError` instead of being replaced forever."""
        if worker.ready or worker.killed_for is not None or worker.stopping or self.state == TERMINATE:
            return
        self._start_deaths += 1
        if self._start_deaths < START_DEATHS and exitcode != MAIN_GUARD_EXIT:
            return
        error = WorkerInitError(
            f"{self._start_deaths} worker process(es) in a row {exit_reason(exitcode)} before they were "
            f"ready; the pool stopped starting new ones. {self._start_hint(exitcode)}"
        )
        self._record_init_failure(worker, error)
        self._start_deaths = 0

    # The start gate. Two states, both owned by this thread: OPEN (``_init_failure`` is
    # None: workers are started as needed) and FAILED (the initializer failed in a worker
    # started since the last call: no worker is started, waiting batches fail with the
    # error). OPEN -> FAILED in _record_init_failure; FAILED -> OPEN in _init_error_now,
    # once a call has been submitted since. Callers only count calls (``_calls``); they
    # never touch the gate, so the error cannot change between a check and its use.
    def _calls_now(self) -> int:
        with self._lock:
            return self._calls

    def _record_init_failure(self, worker: WorkerProcess, error: BaseException) -> None:
        """OPEN -> FAILED, unless a call came after ``worker`` was started (that call gets
        fresh workers: another try)."""
        if worker.generation == self._calls_now():
            self._init_failure = (worker.generation, error)

    def _init_error_now(self) -> BaseException | None:
        """The error that keeps the gate FAILED, or None (OPEN; FAILED -> OPEN if a call
        was submitted since the failing workers were started)."""
        failure = self._init_failure
        if failure is not None and failure[0] != self._calls_now():
            self._init_failure = failure = None
        return None if failure is None else failure[1]

    def _start_hint(self, exitcode: int | None) -> str:
        if exitcode == MAIN_GUARD_EXIT:
            return f"The worker said: {MAIN_GUARD_MESSAGE}"
        method = self._ctx.get_start_method()
        if self._has_initializer:
            return (
                "The initializer may end the process (os._exit(), sys.exit()) or crash it: call "
                "initializer(*initargs) in the main process to see what it does."
            )
        if method in ("spawn", "forkserver"):
            main = sys.modules.get("__main__")
            path = getattr(main, "__file__", None)
            if path is None or not os.path.exists(path):
                return (
                    f"The main module was not read from a file (python - < script.py, or python -c), and a "
                    f"{method!r} worker must import it to find your functions: save the script to a file and "
                    "run that, or use context='fork'."
                )
            return (
                f"Under {method!r} each worker imports the main script: if it creates pools when imported, "
                "put that code under `if __name__ == '__main__':`."
            )
        return "The interpreter could not start or was killed while starting (look at the standard error)."

    # -- time -------------------------------------------------------------------------
    def _deadline(self, worker: WorkerProcess) -> float | None:
        """When the worker's running item passes its ``timeout=``: each item has its own
        clock, started when the worker began it (the progress slot says when)."""
        timed = self._timed_progress(worker)
        return None if timed is None else timed[0]

    @staticmethod
    def _timed_progress(worker: WorkerProcess) -> tuple[float, int, int] | None:
        """``(deadline, batch id, slot item)`` of the worker's running item, if it is timed."""
        if not worker.outstanding or not worker.ready:
            return None
        timeout = worker.outstanding[0][1].job.timeout
        if timeout is None:
            return None
        progress = worker.progress()
        if progress is None:
            return None
        batch_id, item, since = progress
        return since + timeout, batch_id, item

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            timed = self._timed_progress(worker)
            if timed is not None and now >= timed[0]:
                _, batch_id, slot_item = timed
                batch = worker.outstanding[0][1]
                self._stats["timeouts"] += 1
                timeout = float(batch.job.timeout or 0.0)
                item = batch.start + max(slot_item - worker.base, 0)
                worker.kill_target = (batch_id, slot_item)
                self._kill(worker, timeout_error(item, timeout, "its worker was killed and replaced"))
