"""The process backend: our own engine, on the standard library.

::

    callers (any thread)          manager thread (the engine)        worker processes
    --------------------          ---------------------------        ----------------
    submit(job) / notify  ----->  JobQueue.pull() -> batch
                                  serialize items (C pickle/dill)
                                  outbox of one worker: written  ---> run_worker loop:
                                    without blocking as its pipe       record each item's
                                    drains (function sent once)        start in a shared
                                  selector: pipes (read, write),  <--- progress slot;
                                    pidfds, the wake-up pipe           Partial / Done
                                  job.batch_done / batch_lost
                                  deadlines: each item's own clock
                                  a worker exited -> its progress
                                    slot names the culprit: only it
                                    fails (or is retried); finished
                                    items are kept, later ones rerun

Each worker has its own duplex pipe, so the manager always knows which batches a
worker holds, and a shared progress slot, so it knows which *item* is running: a dead
worker fails exactly that item (a typed error, never a hang), a task past its
``timeout=`` is ended by killing just its worker, and the pool carries on.

The manager never blocks: it writes to pipes without blocking (an outbox per worker,
flushed when the selector says the pipe is writable; the messages of one dispatch round
go out together, small ones joined into one write), so a worker busy sending a large
result can never deadlock against a large batch being sent to it; a worker's exit is
seen through its pidfd (a process the worker forked may hold its pipe open); stopping
workers is a state of the loop, not a wait. Its lifecycle follows the protocol of
:mod:`pathos._backend` (the exit decision is taken under the backend's lock).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import selectors
import sys
import threading
import time
from typing import Any, Callable

from .. import _registry, _shm
from .._backend import CLOSE, RUN, TERMINATE, WakeupPipe
from .._batcher import QUICK_BATCH_SECONDS
from .._errors import PathosError, SerializationError
from .._job import Batch, Job
from .._serialize import dumps, plain_dumps
from .._workers._process import WorkerProcess
from .._workers._protocol import CAREFUL_ITEM_SECONDS, Run, encode, items_label, rebuild_error
from ._process_events import LIVENESS_SECONDS, Events

__all__ = ["ProcessBackend", "rebuild_error"]  # rebuild_error: now in _workers._protocol

PREFETCH = 8  # batches queued per worker when its batches are quick
STEADY_BATCH_SECONDS = 0.1  # batches under this may wait one deep while plenty of work is left
CANCEL_GRACE_SECONDS = 0.05  # a cancelled batch running longer than this is killed
SHM_DEPTH = 1  # batches with large arguments a worker holds, at most (the next waits encoded, held)
SHM_BATCH_BYTES = 8 << 20  # large-argument bytes a batch of several items carries, about, at most
MAX_MESSAGE = 1 << 31  # bytes a batch's message may have (large buffers travel out of band)
FLUSH_SECONDS = 0.001  # ... at most this often
EAGER_ITEMS = 32  # an unmeasured batch of at most this many items sends each result ahead
STOP_TERMINATE_SECONDS = 5.0  # terminate() waits this long at most for the manager
KILL_WAIT_SECONDS = 2.0  # killed workers are waited for this long at most, all together


class ProcessBackend(Events):
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
        _refuse_while_bootstrapping()
        self._ctx = context if hasattr(context, "Process") else multiprocessing.get_context(context)
        _import_start_modules(self._ctx)
        setup = (initializer, tuple(initargs), max_worker_memory, cpu_budget, os.getpid())
        self._setup = dumps(setup, what="initializer")
        self._has_initializer = initializer is not None
        self._shm_prefix = f"pathos-{os.getpid()}-p" if _shm.available() else None
        self._segments = _shm.shared_pool() if self._shm_prefix else None  # shared by the process's pools
        self._maxtasks = maxtasksperchild
        # Owned by the manager thread (created by _start_engine before it starts):
        self._workers: list[WorkerProcess] = []
        self._selector: selectors.BaseSelector | None = None
        self._wakeup: WakeupPipe | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count()
        self._functions: dict[int, tuple[Job, bytes]] = {}  # job key -> (job, fn bytes)
        self._held: tuple[Batch, bytes] | None = None  # a batch no worker had room for yet
        self._queued: list[WorkerProcess] = []  # written once a dispatch round ends
        self._start_deaths = 0  # workers in a row that died before they were ready
        self._last_liveness = 0.0
        # (calls counted when the failing workers were started, the error): while set and
        # no call has come since, no worker is started and waiting batches fail with it.
        self._init_failure: tuple[int, BaseException] | None = None
        # Shared with callers, under self._lock (they only count; the manager decides):
        self._calls = 0  # calls submitted so far; a new one gives a failing initializer another try
        self._stats = {"batches": 0, "items": 0, "crashes": 0, "timeouts": 0, "replaced": 0}
        _registry.register(self)

    # -- the caller's side ------------------------------------------------------------
    def submit(self, job: Job) -> None:
        # Counted before the job is queued, so the manager sees the count of any batch it pulls.
        with self._lock:
            self._calls += 1
        super().submit(job)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(self._stats, workers=[w.pid for w in self._workers])
        return info

    # -- the lifecycle contract (see pathos._backend) -----------------------------------
    def _start_engine(self) -> None:
        with self._lock:
            if self.state == TERMINATE:
                self._engine_may_exit_locked(force=True)
                return
        self._open()
        self._thread = threading.Thread(target=self._run, name="pathos-manager", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wakeup = WakeupPipe()
        self._selector.register(self._wakeup.fileno(), selectors.EVENT_READ, None)

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup.wake()  # a no-op once that pipe is closed

    def _stop_engine(self) -> None:
        self._wake()
        if threading.current_thread() is not self._thread:
            self._engine_exited.wait(STOP_TERMINATE_SECONDS)

    # -- the manager thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug here must fail the calls, never hang them
            error = PathosError(f"the pool's manager thread failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            try:
                self._kill_all(error)
            finally:
                self._close_resources()
                self._break(error)  # later calls say why (terminate() from here does not wait)
                with self._lock:
                    self._engine_may_exit_locked(force=True)

    def _loop(self) -> None:
        first = True
        while True:
            if self._step():
                if first and self._segments is not None:
                    _shm.discard_orphans_once()  # after the first workers are on their way
                    first = False
                continue
            if self.state == TERMINATE:
                self._kill_all(self.closed_error())
            self._close_resources()
            if self._engine_may_exit():  # under the lock: no work was queued meanwhile
                return
            self._open()  # an imap begun before close() brought more input: carry on

    def _step(self) -> bool:
        """One turn of the loop; False when the engine should exit (TERMINATE, or
        closed with nothing left to do and every worker gone)."""
        if self.state == TERMINATE:
            return False
        self._spawn_missing()
        self._dispatch()
        self._sweep_cancelled()
        if self.state == CLOSE and self._idle():
            self._stop_workers()
            if not self._workers:
                return False
        assert self._selector is not None
        for key, mask in self._selector.select(self._poll_timeout()):
            if key.data is None:
                assert self._wakeup is not None
                self._wakeup.drain()
                continue
            worker, what = key.data
            if worker not in self._workers:
                continue
            if what == "exit":
                self._on_exit(worker)
                continue
            if mask & selectors.EVENT_WRITE:
                self._flush(worker)
            if mask & selectors.EVENT_READ:
                self._receive(worker)
        self._check_deadlines()
        self._check_liveness()
        return True

    def _idle(self) -> bool:
        return not self._held and not any(w.outstanding for w in self._workers) and not self._queue

    def _poll_timeout(self) -> float:
        now = time.monotonic()
        timeout = 1.0  # a bounded wait, so a lost wake-up can never hang the loop
        for w in self._workers:
            deadline = self._deadline(w)
            if w.stopping:
                deadline = w.stop_deadline if deadline is None else min(deadline, w.stop_deadline)
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
            if w.outstanding and w.outstanding[0][1].job.cancelled:
                timeout = min(timeout, CANCEL_GRACE_SECONDS)
            if w.pidfd < 0:
                timeout = min(timeout, LIVENESS_SECONDS)
        return timeout

    def _close_resources(self) -> None:
        """Free what only a running engine needs (its workers are gone by now). The free
        argument segments belong to the process: they go when unused a second."""
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._wakeup is not None:
            self._wakeup.close()

    # -- workers --------------------------------------------------------------------
    def _spawn_missing(self) -> None:
        if self.state != RUN and not self._queue and not self._held:
            return
        if self._init_error_now() is not None:
            return
        assert self._selector is not None
        calls = self._calls_now()
        while sum(not w.stopping for w in self._workers) < self.nodes:
            worker = WorkerProcess(self._ctx, self._setup)
            worker.generation = calls
            self._workers.append(worker)
            self._selector.register(worker.fd, selectors.EVENT_READ, (worker, "conn"))
            for fd in worker.exit_fds:
                self._selector.register(fd, selectors.EVENT_READ, (worker, "exit"))

    def _stop_workers(self) -> None:
        """Ask every worker to exit (the pool is closed and idle); those that do not
        within ``STOP_SECONDS`` are killed by :meth:`_check_liveness`."""
        for worker in self._workers:
            if not worker.stopping:
                self._send_stop(worker)

    def _kill_all(self, error: BaseException) -> None:
        """Kill every worker and fail everything unfinished with ``error`` (a completed
        job keeps its results); their shared-memory files go at once."""
        for worker in self._workers:
            worker.kill()
        deadline = time.monotonic() + KILL_WAIT_SECONDS  # one bound for all: terminate() never hangs
        for worker in list(self._workers):
            worker.reap(max(0.0, deadline - time.monotonic()))
            for _, batch in worker.outstanding:
                self._release(batch)
                self._fail(batch.job, error)
            worker.outstanding.clear()
            self._discard_files(worker)
            self._remove(worker)
        if self._held is not None:
            self._release(self._held[0])
            self._fail(self._held[0].job, error)
            self._held = None
        self._queue.cancel_all(error)

    # -- sending ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Send what workers have room for; the messages go out together at the end."""
        try:
            self._dispatch_batches()
        finally:
            self._flush_queued()

    def _dispatch_batches(self) -> None:
        batch: Batch | None
        error = self._init_error_now()
        if error is not None:
            if self._fail_waiting(error):
                return
            self._spawn_missing()  # a new call reopened the pool: its workers start now
        while True:
            if self._held is None:
                if self._pick(PREFETCH) is None:
                    return
                batch = self._queue.pull()
                if batch is None:
                    return
                encoded = self._encode(batch)
                if encoded is None:
                    continue
                self._held = encoded
            batch, payload = self._held
            per_item = batch.job.item_seconds()
            worker = self._pick(self._depth(batch, per_item))
            if worker is None:
                return
            self._held = None
            self._send(worker, batch, payload, per_item)

    def _fail_waiting(self, error: BaseException) -> bool:
        """No worker can start: fail every waiting batch with the initializer's ``error``.

        Returns:
            True when all were failed; False if a call came meanwhile (the batch pulled
            last is then held, to run on fresh workers).
        """
        if self._held is not None:
            held, self._held = self._held[0], None
            self._release(held)
            held.job.batch_failed(held, error)
        while (batch := self._queue.pull()) is not None:
            # Race: a call submitted after _dispatch() looked may have queued this very
            # batch. submit() counts a call before it queues the job, so looking again
            # now, after the pull, sees that call: it gets another try, not the old
            # error. (The error is a local here: no other thread can clear it under us,
            # which once made such a batch "fail" with None and pipe() return None.)
            if self._init_error_now() is None:
                self._held = self._encode(batch)
                return False
            batch.job.batch_failed(batch, error)
        return True

    def _depth(self, batch: Batch, per_item: float | None) -> int:
        """How many batches a worker may hold when this one is sent to it.

        Quick batches queue deep, so a worker never waits for the next one. Moderate
        ones (under ``STEADY_BATCH_SECONDS``) queue one deep while the job has at least
        a batch per worker still waiting, which hides the round trip to the parent (on a
        busy machine, milliseconds before its manager thread runs) without leaving slow
        work queued behind slow work at the end of a call, when another worker could
        take it. (No rule on message size is needed: nothing here blocks on a pipe.)
        ``per_item``: the job's measured seconds per item (None: not measured yet).

        A batch with large arguments goes only to an idle worker (``SHM_DEPTH``): few
        segments are then in flight, each refilled warm as soon as its batch is done,
        and the next batch waits encoded (held) for the first worker free, so a worker
        waits only for the round trip. (Measured: as fast as queueing them 2 deep, and
        a pool's first call with arrays makes fewer new segments, the costly part.)
        """
        if batch.segments:
            return SHM_DEPTH
        if per_item is None:
            return 1
        n = len(batch.items)
        if per_item * n < QUICK_BATCH_SECONDS:
            return PREFETCH
        if per_item * n < STEADY_BATCH_SECONDS and batch.job.waiting() >= n * self.nodes:
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

    def _encode(self, batch: Batch) -> tuple[Batch, bytes] | None:
        """The batch (maybe cut shorter, see :meth:`_cut`) and its items as bytes, or
        None after telling the job why not."""
        job = batch.job
        if job.key not in self._functions:
            try:
                self._functions[job.key] = (job, dumps((job.fn, job.kwargs, job.star), what="function"))
            except SerializationError as exc:
                job.cancel(exc)
                job.batch_failed(batch, exc)
                return None
        data = plain_dumps(batch.items)  # plain data (ints, short strings...): no writer, no second look
        if data is None:
            writer = None
            if self._segments is not None:
                batch = self._cut(batch)
                writer = self._segments.writer()
            try:
                data = dumps(batch.items, what=f"arguments of item {batch.start}", buffers=writer)
            except SerializationError as exc:  # dumps() has given back its segments
                self._fail_whole(batch, exc)  # split it, so only the bad item fails
                return None
            if writer is not None:
                batch.segments = writer.segments
        too_big = len(data) + len(self._functions[job.key][1]) - MAX_MESSAGE
        if too_big > 0:
            self._release(batch)
            self._fail_whole(batch, _too_large(batch, len(data), len(self._functions[job.key][1])))
            return None
        return batch, data

    @staticmethod
    def _cut(batch: Batch) -> Batch:
        """A batch of large arguments, cut to about ``SHM_BATCH_BYTES`` (its first item's
        large buffers tell their size); the rest goes back to its job, to be sent next.

        Few segments are then in flight at once, and each comes back for reuse as soon
        as its batch is done: a call over 40 arrays of 8 MB fills a handful of segments
        over and over (warm pages, a plain memory copy) instead of 40 new ones.
        """
        n = len(batch.items)
        if n < 2:
            return batch
        per_item = _shm.large_bytes(batch.items[0])
        keep = max(1, SHM_BATCH_BYTES // per_item) if per_item else n
        if keep >= n:
            return batch
        head, tail = batch.job.split(batch, keep)
        batch.job.batch_unstarted(tail)
        return head

    def _send(self, worker: WorkerProcess, batch: Batch, items: bytes, per_item: float | None) -> None:
        job = batch.job
        fn_bytes = None
        if job.key not in worker.known:
            fn_bytes = self._functions[job.key][1]
            worker.known.add(job.key)
        batch_id = next(self._ids)
        refs = [(s.name, s.used) for s in batch.segments]
        message = encode(Run(batch_id, job.key, fn_bytes, items, refs, worker.forget, _flush_after(batch, per_item)))
        worker.forget = []
        idle = not worker.outstanding
        if idle:
            worker.started = time.monotonic()
            worker.base = 0
        worker.outstanding.append((batch_id, batch))
        worker.sent += 1
        if self._maxtasks is not None and worker.sent >= self._maxtasks:
            worker.retiring = True
        # An idle worker gets its batch at once (it waits for it); one with work in hand
        # gets it at the end of the dispatch round, with whatever else was queued for it.
        self._write(worker, message, now=idle)

    def _sweep_cancelled(self) -> None:
        """Free workers still running a long batch of a cancelled call."""
        now = time.monotonic()
        for worker in list(self._workers):
            running = worker.outstanding[0][1] if worker.outstanding else None
            if running is not None and running.job.cancelled and now - worker.started > CANCEL_GRACE_SECONDS:
                self._kill(worker, self.closed_error() if self.state != RUN else _cancelled())
        if self._functions:
            self._forget_finished()


def _start_modules(method: str) -> list[str]:
    """The ``multiprocessing`` modules that starting a worker with ``method`` imports."""
    if method == "fork":
        return ["popen_fork"]
    if method == "forkserver":
        return ["popen_fork", "popen_forkserver", "forkserver"]
    return ["popen_spawn_win32"] if sys.platform == "win32" else ["popen_fork", "popen_spawn_posix"]


def _import_start_modules(ctx: Any) -> None:
    """Import, in the caller's thread, what starting a worker imports.

    ``multiprocessing`` imports its ``popen_*`` module on the first ``Process.start()``,
    which here happens on the manager thread. A process forked meanwhile by another
    thread (another pool's manager, or the user's code) copies the module half
    initialized, and its own first start then fails with ``ImportError: cannot import
    name 'Popen' from partially initialized module``. Imported here, before the manager
    thread exists, the modules are complete in every child forked later.
    """
    import importlib

    for name in (*_start_modules(ctx.get_start_method()), "connection", "sharedctypes"):
        importlib.import_module(f"multiprocessing.{name}")


def _flush_after(batch: Batch, per_item: float | None) -> float | None:
    """How often the worker sends the batch's finished results ahead (see ``Run``).

    Items measured to be quick: never (a crash reruns the finished items of that batch,
    a few milliseconds of work). Unmeasured small batches: after every item, which costs
    a message per item for the first batch per worker only. Timed jobs: after every
    item. Otherwise every millisecond at most: items slower than that are each sent on
    their own.
    """
    job = batch.job
    if job.timeout is not None:
        # Timed: each result is sent before the next item's clock starts. A timeout kill
        # then never takes a finished result with it (which would run that item again,
        # with retries=0 too: README "Failures and timeouts", promise 4).
        return 0.0
    if per_item is None:
        return 0.0 if len(batch.items) <= EAGER_ITEMS else FLUSH_SECONDS
    if job.timeout is None and per_item < CAREFUL_ITEM_SECONDS:
        return None
    return FLUSH_SECONDS


def _cancelled() -> BaseException:
    from .._errors import PoolClosedError

    return PoolClosedError("the call was cancelled while this item ran")


def _too_large(batch: Batch, items: int, fn: int) -> SerializationError:
    return SerializationError(
        f"cannot send {items_label(batch)}: its arguments ({items / 2**20:.0f} MiB) and the function "
        f"({fn / 2**20:.0f} MiB) serialize to more than the {MAX_MESSAGE / 2**30:.0f} GiB a message may carry. "
        "Large numpy arrays and bytearrays travel through shared memory and do not count: pass data as "
        "those, or pass a path and load the data inside the function (a function reading a large global "
        "of the main script carries it by value)."
    )


def _refuse_while_bootstrapping() -> None:
    """A pool created while this process is itself being started as a worker (a script
    that starts pools when imported, under spawn or forkserver): exit with the standard
    library's advice and a code the parent recognizes, instead of a traceback and a
    parent that starts worker after worker."""
    from multiprocessing import process

    if not getattr(process.current_process(), "_inheriting", False):
        return
    import sys

    from .._workers._process import MAIN_GUARD_EXIT, MAIN_GUARD_MESSAGE

    sys.stderr.write(f"pathos: {MAIN_GUARD_MESSAGE}\n")
    sys.stderr.flush()
    os._exit(MAIN_GUARD_EXIT)
