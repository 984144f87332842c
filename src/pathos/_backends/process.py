"""The process backend: our own engine, on the standard library.

::

    callers (any thread)          manager thread                     worker processes
    --------------------          --------------                     ----------------
    submit(job) / notify  ----->  JobQueue.pull() -> batch
                                  serialize items (C pickle/dill)
                                  send to one worker's pipe   ---->  run_worker loop:
                                    (function sent once a job)         run each item
                                  selector: pipes, sentinels  <----  ("done", values,
                                  job.batch_done / batch_lost          errors, seconds)
                                  deadlines: kill on timeout
                                  sentinel fired: worker died ->
                                    fail or retry its batch, requeue
                                    the rest, start a replacement

Each worker has its own duplex pipe, so the manager always knows which batch a worker
is running: a dead worker fails exactly that batch (a typed error, never a hang), a task
past its ``timeout=`` is ended by killing just its worker, and the pool carries on.
Batches that take little time are prefetched (several per worker) to hide the round
trip; a large message is only sent to an idle worker, so no pipe can fill up in both
directions at once.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import selectors
import threading
import time
from typing import Any, Callable

from .. import _registry, _shm
from .._backend import CLOSE, RUN, TERMINATE, Backend, JobQueue, closed_error
from .._errors import (
    PathosError,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
    WorkerInitError,
)
from .._job import Batch, Job
from .._serialize import dumps
from .._workers._process import WorkerProcess, exit_reason, signal_name
from .._workers._protocol import (
    NOT_STARTED,
    Declined,
    Done,
    FromWorker,
    InitError,
    Ready,
    Run,
    Stop,
    expect_batch,
    items_label,
    load_values,
    rebuild_error,
)

__all__ = ["ProcessBackend", "rebuild_error"]  # rebuild_error: moved to _workers._protocol

SMALL_MESSAGE = 8 * 1024  # at most this many bytes may wait in a busy worker's pipe
PREFETCH = 8  # batches queued per worker when its batches are quick
STEADY_BATCH_SECONDS = 0.1  # batches under this may wait one deep while plenty of work is left
CANCEL_GRACE_SECONDS = 0.05  # a cancelled batch running longer than this is killed
SEGMENT_IDLE_SECONDS = 1.0  # an idle pool keeps its argument segments this long, for the next call


class ProcessBackend(Backend):
    """Runs batches in ``nodes`` worker processes managed by one thread.

    Args:
        nodes: number of worker processes.
        context: a start method name or a multiprocessing context.
        initializer: called with ``initargs`` in each new worker.
        maxtasksperchild: batches a worker runs before it is replaced.
        max_worker_memory: bytes of resident memory past which a worker is replaced
            between batches.
        cpu_budget: cores a pool created inside a worker may use by default.
    """

    def __init__(
        self,
        nodes: int,
        *,
        context: Any = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        maxtasksperchild: int | None = None,
        max_worker_memory: int | None = None,
        cpu_budget: int | None = None,
    ) -> None:
        super().__init__(nodes)
        self._ctx = context if hasattr(context, "Process") else multiprocessing.get_context(context)
        setup = (initializer, tuple(initargs), max_worker_memory, cpu_budget, os.getpid())
        self._setup = dumps(setup, what="initializer")
        self._shm_prefix = f"pathos-{os.getpid()}-p" if _shm.available() else None
        self._segments = _shm.SegmentPool(self._shm_prefix) if self._shm_prefix else None
        self._idle_since: float | None = None
        self._maxtasks = maxtasksperchild
        self._queue = JobQueue()
        self._workers: list[WorkerProcess] = []
        self._selector: selectors.BaseSelector | None = None
        self._wake_r, self._wake_w = -1, -1
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ids = itertools.count()
        self._functions: dict[int, tuple[Job, bytes]] = {}  # job key -> (job, fn bytes)
        self._held: tuple[Batch, bytes] | None = None  # a large batch waiting for an idle worker
        self._init_error: BaseException | None = None
        self._generation = 0  # bumped by each call; an initializer's failure counts for later calls only
        self._stats = {"batches": 0, "items": 0, "crashes": 0, "timeouts": 0, "replaced": 0}
        _registry.register(self)

    # -- the caller's side ------------------------------------------------------------
    def submit(self, job: Job) -> None:
        with self._lock:  # a new call gives a failing initializer another try
            self._init_error = None
            self._generation += 1
        super().submit(job)

    def notify(self, job: Job) -> None:
        with self._lock:
            if self.state == TERMINATE:
                job.cancel(closed_error(TERMINATE))
                return
            self._queue.add(job)
            # A closed backend whose thread has finished restarts it for a lazy call
            # (an ``imap`` begun before close()) that brings more input.
            if self._thread is None or not self._thread.is_alive():
                self._start()
        self._wake()

    def _start(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="pathos-manager", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass  # a wake-up is already pending, or we are shutting down

    def close(self) -> None:
        with self._lock:
            if self.state == RUN:
                self.state = CLOSE
        self._wake()

    def terminate(self) -> None:
        with self._lock:
            if self.state == TERMINATE:
                return
            self.state = TERMINATE
            thread = self._thread
        self._wake()
        if thread is None:
            self._queue.cancel_all(closed_error(TERMINATE))
        elif thread is not threading.current_thread():
            thread.join(5.0)

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(self._stats, workers=[w.pid for w in self._workers])
        return info

    # -- the manager thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            running = self._step()
            if running and self._segments is not None:
                _shm.discard_orphans_once()  # after the first workers are on their way
            while running:
                running = self._step()
        except BaseException as exc:  # a bug here must fail the calls, never hang them
            error = PathosError(f"the pool's manager thread failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            with self._lock:
                self.state = TERMINATE
            self._stop_all(error)
        else:
            if self.state == TERMINATE:
                self._stop_all(closed_error(TERMINATE))
        finally:
            self._cleanup()

    def _step(self) -> bool:
        """One turn of the loop; False when the backend is finished."""
        if self.state == TERMINATE:
            return False
        self._spawn_missing()
        self._dispatch()
        self._sweep_cancelled()
        if self.state == CLOSE and self._idle():
            self._stop_workers()
            return False
        assert self._selector is not None
        for key, _ in self._selector.select(self._poll_timeout()):
            if key.data is None:
                self._drain_wake()
            else:
                worker, what = key.data
                if worker in self._workers:
                    if what == "conn":
                        self._receive(worker)
                    else:
                        self._on_exit(worker)
        self._check_deadlines()
        if self._segments is not None and self._segments.holding:
            self._trim_when_idle(self._segments)
        return True

    def _trim_when_idle(self, segments: _shm.SegmentPool) -> None:
        """Unlink the free argument segments once the pool has been idle a while."""
        if not self._idle():
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = time.monotonic()
        elif time.monotonic() - self._idle_since >= SEGMENT_IDLE_SECONDS:
            segments.trim()
            self._idle_since = None

    def _idle(self) -> bool:
        return not self._held and not any(w.outstanding for w in self._workers) and not self._queue

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _poll_timeout(self) -> float:
        now = time.monotonic()
        timeout = 1.0  # a bounded wait, so a lost wake-up can never hang the loop
        for w in self._workers:
            deadline = self._deadline(w)
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
            if w.outstanding and w.outstanding[0][1].job.cancelled:
                timeout = min(timeout, CANCEL_GRACE_SECONDS)
        return timeout

    # -- workers --------------------------------------------------------------------
    def _spawn_missing(self) -> None:
        if self.state != RUN and not self._queue and not self._held:
            return
        if self._init_error is not None:
            return
        assert self._selector is not None
        while len(self._workers) < self.nodes:
            worker = WorkerProcess(self._ctx, self._setup)
            worker.generation = self._generation
            self._workers.append(worker)
            self._selector.register(worker.conn.fileno(), selectors.EVENT_READ, (worker, "conn"))
            self._selector.register(worker.sentinel, selectors.EVENT_READ, (worker, "exit"))

    def _remove(self, worker: WorkerProcess) -> None:
        assert self._selector is not None
        for fd in (worker.conn.fileno(), worker.sentinel):
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass
        self._workers.remove(worker)
        worker.close()

    def _on_exit(self, worker: WorkerProcess) -> None:
        """A worker's process ended: settle the batches it held, then let it go."""
        if worker.conn.poll(0):
            self._receive(worker, drain=True)  # results it sent before it died still count
        if worker not in self._workers:
            return
        exitcode = worker.reap()
        self._settle_lost(worker, exitcode)
        self._remove(worker)

    def _settle_lost(self, worker: WorkerProcess, exitcode: int | None) -> None:
        if self._shm_prefix:
            _shm.discard_prefix(f"pathos-{os.getpid()}-{worker.pid}-")  # results it was writing
        for _, batch in worker.outstanding:
            self._release(batch)
        if not worker.outstanding:
            return
        _, running = worker.outstanding.popleft()
        if worker.killed_for is not None:
            running.job.batch_failed(running, worker.killed_for)
        elif worker.ready:
            self._stats["crashes"] += 1
            running.job.batch_lost(running, self._crash_error(worker, running, exitcode))
        else:
            running.job.batch_unstarted(running)  # it died before it could start anything
        for _, batch in worker.outstanding:
            batch.job.batch_unstarted(batch)
        worker.outstanding.clear()

    def _crash_error(self, worker: WorkerProcess, batch: Batch, exitcode: int | None) -> WorkerCrashedError:
        items = items_label(batch)
        return WorkerCrashedError(
            f"worker process {worker.pid} {exit_reason(exitcode)} while running {items}; "
            "the pool replaced it and carries on. Pass retries=N to run such a task again.",
            pid=worker.pid,
            exitcode=exitcode,
            signal=signal_name(exitcode),
            task=batch.start,
        )

    def _kill(self, worker: WorkerProcess, error: BaseException) -> None:
        """End a worker now: its running batch fails with ``error``, the rest are requeued."""
        worker.killed_for = error
        worker.kill()
        self._on_exit(worker)
        self._stats["replaced"] += 1

    def _stop_workers(self) -> None:
        for worker in list(self._workers):
            try:
                worker.conn.send_bytes(pickle.dumps(Stop()))
            except OSError:
                pass
        deadline = time.monotonic() + 5.0
        for worker in list(self._workers):
            if worker.reap(max(0.0, deadline - time.monotonic())) is None:
                worker.kill()
                worker.reap()
            self._remove(worker)

    def _stop_all(self, error: BaseException) -> None:
        """Kill every worker and fail everything unfinished with ``error``."""
        for worker in list(self._workers):
            worker.kill()
        for worker in list(self._workers):
            worker.reap()
            for _, batch in worker.outstanding:
                self._release(batch)
                batch.job.cancel(error)
            worker.outstanding.clear()
            self._remove(worker)
        if self._held is not None:
            self._release(self._held[0])
            self._held[0].job.cancel(error)
            self._held = None
        self._queue.cancel_all(error)

    def _cleanup(self) -> None:
        if self._segments is not None:
            self._segments.trim()
        with self._lock:
            if self._selector is not None:
                self._selector.close()
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    # -- sending ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        batch: Batch | None
        if self._init_error is not None:  # no worker can start: every waiting batch fails now
            if self._held is not None:
                held, self._held = self._held[0], None
                self._release(held)
                held.job.batch_failed(held, self._init_error)
            while (queued := self._queue.pull()) is not None:
                queued.job.batch_failed(queued, self._init_error)
            return
        while True:
            if self._held is None:
                if self._pick(PREFETCH) is None:
                    return
                batch = self._queue.pull()
                if batch is None:
                    return
                payload = self._encode(batch)
                if payload is None:
                    continue
                self._held = (batch, payload)
            batch, payload = self._held
            worker = self._pick(self._depth(batch, len(payload)))
            if worker is None:
                return
            self._held = None
            self._send(worker, batch, payload)

    def _depth(self, batch: Batch, size: int) -> int:
        """How many batches a worker may hold when this one is sent to it.

        Only a small message (a pipe cannot fill up) waits in a busy worker. Quick
        batches queue deep, so a worker never waits for the next one. Moderate ones
        (under ``STEADY_BATCH_SECONDS``) queue one deep while the job has at least a batch
        per worker still waiting, which hides the round trip to the parent (on a busy
        machine, milliseconds before its manager thread runs) without leaving slow work
        queued behind slow work at the end of a call, when another worker could take it.
        """
        if size > SMALL_MESSAGE:
            return 1
        job, n = batch.job, len(batch.items)
        if job.is_quick(n):
            return PREFETCH
        if job.is_quick(n, STEADY_BATCH_SECONDS) and job.waiting() >= n * self.nodes:
            return 2
        return 1

    def _pick(self, depth: int) -> WorkerProcess | None:
        """The least busy worker holding fewer than ``depth`` batches, if any."""
        best: WorkerProcess | None = None
        for w in self._workers:
            if w.retiring or w.stopping:
                continue
            room = depth - len(w.outstanding)
            if room > 0 and (best is None or len(w.outstanding) < len(best.outstanding)):
                best = w
        return best

    def _encode(self, batch: Batch) -> bytes | None:
        """The batch's items as bytes, or None after telling the job why not."""
        job = batch.job
        if job.key not in self._functions:
            try:
                self._functions[job.key] = (job, dumps((job.fn, job.kwargs, job.star), what="function"))
            except SerializationError as exc:
                job.cancel(exc)
                job.batch_failed(batch, exc)
                return None
        writer = self._segments.writer() if self._segments is not None else None
        try:
            data = dumps(batch.items, what=f"arguments of item {batch.start}", buffers=writer)
            if writer is not None:
                batch.segments = writer.segments
            return data
        except SerializationError as exc:  # dumps() has given back its segments
            if len(batch.items) > 1:
                job.batch_lost(batch, exc)  # split it, so only the bad item fails
            else:
                job.batch_failed(batch, exc)
            return None

    def _send(self, worker: WorkerProcess, batch: Batch, items: bytes) -> None:
        job = batch.job
        fn_bytes = None
        if job.key not in worker.known:
            fn_bytes = self._functions[job.key][1]
            worker.known.add(job.key)
        batch_id = next(self._ids)
        refs = [(s.name, s.used) for s in batch.segments]
        message = pickle.dumps(Run(batch_id, job.key, fn_bytes, items, refs, worker.forget), 5)
        worker.forget = []
        if not worker.outstanding:
            worker.started = time.monotonic()
        worker.outstanding.append((batch_id, batch))
        worker.sent += 1
        if self._maxtasks is not None and worker.sent >= self._maxtasks:
            worker.retiring = True
        try:
            worker.conn.send_bytes(message)
        except OSError:
            pass  # it died; its sentinel will fire and the batch is settled then

    # -- receiving --------------------------------------------------------------------
    def _receive(self, worker: WorkerProcess, *, drain: bool = False) -> None:
        """Handle the messages a worker sent; ``drain`` reads until its pipe is empty."""
        try:
            while True:
                for message in worker.read_messages():
                    self._on_message(worker, pickle.loads(message))
                if not drain or not worker.conn.poll(0):
                    return
        except (EOFError, OSError):
            pass  # the process is gone; its sentinel settles the rest

    def _on_message(self, worker: WorkerProcess, message: FromWorker) -> None:
        if isinstance(message, Done):
            self._on_done(worker, message)
        elif isinstance(message, Declined):
            batch_id, batch = worker.outstanding.popleft()
            expect_batch(batch_id, message.batch_id, "declined")
            self._release(batch)
            batch.job.batch_unstarted(batch)
            self._retire_if_idle(worker)
        elif isinstance(message, Ready):
            worker.ready = True
            worker.started = time.monotonic()
            self._init_error = None
        elif isinstance(message, InitError):
            cause = rebuild_error(message.error)
            error = WorkerInitError(
                f"the pool's initializer raised {type(cause).__name__}: {cause}; "
                "fix the initializer, then call the pool again"
            )
            error.__cause__ = cause
            with self._lock:
                if worker.generation == self._generation:  # not a worker left over from an earlier call
                    self._init_error = error
            worker.killed_for = error

    def _on_done(self, worker: WorkerProcess, done: Done) -> None:
        batch_id, batch = worker.outstanding.popleft()
        expect_batch(batch_id, done.batch_id, "done")
        self._release(batch, done.kept)
        worker.started = time.monotonic()
        if done.over:
            worker.retiring = True
        self._stats["batches"] += 1
        self._stats["items"] += len(batch.items)
        job = batch.job
        errors = done.errors
        try:
            results = load_values(done.values, _shm.load_buffers(done.segments) if done.segments else None)
        except Exception as exc:
            error = SerializationError(f"cannot deserialize the result of {items_label(batch)}: {exc}")
            self._fail_whole(batch, error)
        else:
            if errors and errors[0][0] == NOT_STARTED:  # the batch could not even start
                self._fail_whole(batch, rebuild_error(errors[0][1]))
            else:
                job.batch_done(batch, results, {i: rebuild_error(p) for i, p in errors}, done.seconds)
        if job.in_flight == 0 and job.key in self._functions and job.done_or_failed():
            self._forget_finished()
        self._retire_if_idle(worker)

    def _release(self, batch: Batch, kept: list[str] | None = None) -> None:
        """Give a settled batch's argument segments back for reuse (``kept``: still mapped by a worker)."""
        if batch.segments:
            assert self._segments is not None
            self._segments.give_back(batch.segments, kept or ())
            batch.segments = []

    @staticmethod
    def _retire_if_idle(worker: WorkerProcess) -> None:
        """Tell a retiring worker with nothing left to run to stop."""
        if worker.retiring and not worker.outstanding and not worker.stopping:
            worker.stopping = True
            try:
                worker.conn.send_bytes(pickle.dumps(Stop()))
            except OSError:
                pass

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

    # -- time -------------------------------------------------------------------------
    def _deadline(self, worker: WorkerProcess) -> float | None:
        if not worker.outstanding or not worker.ready:
            return None
        timeout = worker.outstanding[0][1].job.timeout
        return None if timeout is None else worker.started + timeout

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            deadline = self._deadline(worker)
            if deadline is not None and now >= deadline:
                batch = worker.outstanding[0][1]
                self._stats["timeouts"] += 1
                self._kill(worker, _timeout_error(batch))

    def _sweep_cancelled(self) -> None:
        """Free workers still running a long batch of a cancelled call."""
        now = time.monotonic()
        for worker in list(self._workers):
            running = worker.outstanding[0][1] if worker.outstanding else None
            if running is not None and running.job.cancelled and now - worker.started > CANCEL_GRACE_SECONDS:
                self._kill(worker, closed_error(CLOSE))
        if self._functions:
            self._forget_finished()


def _timeout_error(batch: Batch) -> TaskTimeoutError:
    timeout = batch.job.timeout
    return TaskTimeoutError(
        f"{items_label(batch)} ran longer than the timeout of {timeout:g} s; its worker was killed and replaced",
        task=batch.start,
        timeout=timeout,
    )
