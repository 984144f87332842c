"""The Dask backend: :class:`~pathos.pools.ParallelPool` on Dask distributed.

::

    callers (any thread)          engine thread                        Dask workers
    --------------------          -------------                        ------------
    submit(job): connect a  --->  JobQueue.pull() -> batch
      Client (lazily) to the      dumps(items); the function once
      scheduler, or start a       a job (inline, or scattered when
      local cluster               large)
                                  client.submit(run_batch, token,  ---> run_batch: load the
                                    fn, items)  (a bounded number         function (cached per
                                    of batches in flight)                 job), call each item
                                  done futures (callback -> queue) <--- BatchReply (values
                                  job.batch_done / batch_failed /        bytes, error payloads,
                                    batch_lost (KilledWorker)            seconds)
                                  "started" events  <----------------   (a timed batch logs
                                  deadlines: TaskTimeoutError, cancel     one as it starts)
                                  ended jobs: cancel their futures
                                  scheduler gone: ClusterError for all

The lifecycle is the base class's (:mod:`pathos._backend`): ``notify()`` starts the
engine thread when none runs, and the engine exits when it has nothing to do, deciding
so under the backend's lock, so new work either reaches it or starts a new one. The
client outlives the engine thread: it is let go when the pool is terminated, or when it
is closed and every call submitted before has ended (an ``imap`` begun before
``close()`` still refills and finishes all its items).

One Dask task carries a batch of items. A task that keeps killing its workers comes
back as ``KilledWorker`` (:class:`WorkerCrashedError`). A result lost with its worker
before we fetched it, or a task the cluster dropped, is sent again: the pool breaks only
when the scheduler is gone, and then every later call says so.
A timed batch's clock starts when the worker says it started running it (a Dask
event), so waiting for a worker, transfers and a fresh worker's imports do not count.
Dask cannot stop a running task: a batch past its ``timeout=`` fails at once with
:class:`TaskTimeoutError` and its future is cancelled, but its worker thread runs on
until the function returns.

The local cluster (no ``servers=``) is a scheduler in this process and worker
processes started as fresh interpreters (``SubprocessWorker``), so a script without an
``if __name__ == "__main__":`` guard is not re-run in the workers.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import deque
from typing import Any

from .. import _registry
from .._backend import CLOSE, RUN, TERMINATE, Backend
from .._errors import ClusterError, PathosError, SerializationError, TaskTimeoutError, WorkerCrashedError
from .._job import Batch, Job
from .._serialize import dumps
from .._workers._protocol import NOT_STARTED, BatchReply, items_label, load_values, rebuild_error, timeout_error
from ._dask_cluster import (
    RPC_SECONDS,
    close_quietly,
    connect,
    import_distributed,
    report,
    scheduler_address,
    workers_of,
)

__all__ = ["DaskBackend", "import_distributed", "scheduler_address"]

PER_THREAD = 3  # batches in flight per worker thread: one running, two waiting
INLINE_BYTES = 64 * 1024  # larger functions or arguments are scattered, not inlined
HEALTH_SECONDS = 1.0  # how often the cluster's workers are counted while work runs
NO_WORKERS_SECONDS = 60.0  # work waiting this long on a cluster with no workers fails
START_SECONDS = 10.0  # a timed batch not started this long past its timeout fails anyway
FETCH_TRIES = 3  # a finished batch whose result cannot be fetched this many times fails
FETCH_IN_ROW = 5  # this many failed fetches in a row, of any batches, break the pool
SCATTER_SECONDS = 60.0  # bound on sending one large function or argument list to the cluster


class _Task:
    """One batch running on the cluster as one Dask future.

    A timed batch's ``deadline`` is first a bound on starting at all (``started`` is
    False); each "started" event from a worker moves it to that start plus the timeout.
    """

    __slots__ = ("batch", "deadline", "future", "started")

    def __init__(self, batch: Batch, future: Any, deadline: float | None) -> None:
        self.batch = batch
        self.future = future
        self.deadline = deadline
        self.started = False


class _Started:
    """An event on the queue: the worker started running the task ``key`` at ``at``."""

    __slots__ = ("at", "key")

    def __init__(self, key: str, at: float) -> None:
        self.key = key
        self.at = at


class DaskBackend(Backend):
    """Runs batches as Dask tasks, on a scheduler given by ``servers`` or a local cluster.

    Args:
        nodes: worker processes of the local cluster; 0 runs on the servers only.
        servers: scheduler addresses; the first one that answers is used.
        strict: raise :class:`ClusterError` for an unreachable server instead of
            warning and going on with the next one (or a local cluster).
    """

    def __init__(self, nodes: int, *, servers: tuple[str, ...] = (), strict: bool = False) -> None:
        super().__init__(nodes)
        import_distributed()
        self._servers = tuple(s for s in servers if s not in ("*", "autodetect"))
        self._strict = strict
        self._token = uuid.uuid4().hex
        self._thread: threading.Thread | None = None
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()  # futures, _Started; None wakes
        self._connecting = threading.Lock()  # one connection attempt at a time (never under _lock)
        # Under self._lock: the cluster (set by _connect, let go by _let_go), and the
        # calls submitted and not ended yet (a closed pool keeps its cluster for them).
        self._client: Any = None
        self._cluster: Any = None  # our local cluster, if we started one
        self._address: str | None = None
        self._calls: set[Job] = set()
        # The engine thread's own:
        self._running: dict[str, _Task] = {}
        self._held: deque[Batch] = deque()  # timed single items waiting for a free worker thread
        self._functions: dict[int, tuple[Job, Any]] = {}  # job key -> (job, bytes or future)
        self._threads = 0  # worker threads in the cluster, as last counted
        self._checked = 0.0
        self._no_workers_since: float | None = None
        self._lost_reason: ClusterError | None = None
        self._unfetched_tries: dict[tuple[int, int], int] = {}  # (job key, batch start) -> failed fetches
        self._unfetched_in_row = 0  # failed fetches since the last one that worked
        self._stats = {"tasks": 0, "items": 0, "crashes": 0, "timeouts": 0}
        _registry.register(self)

    # -- the caller's side --------------------------------------------------------------
    def submit(self, job: Job) -> None:
        if self.state == RUN:
            self._connect()
        with self._lock:
            # Open before it is attached: an engine that finds a closed pool idle lets
            # the cluster go only when no call submitted before close() is still open.
            if self.state != RUN:
                raise self.closed_error()
            self._calls.add(job)
        try:
            super().submit(job)
        except BaseException:
            with self._lock:
                self._calls.discard(job)
            raise
        job.add_done_callback(self._ended)

    def _ended(self, job: Job) -> None:
        """A call ended (any thread, no lock held): the last one of a closed pool lets
        the cluster go, through the engine (started if none runs)."""
        with self._lock:
            self._calls.discard(job)
            closing = self.state == CLOSE and not self._calls
        if closing:
            self.notify(job)

    def close(self) -> None:
        super().close()
        with self._lock:  # no engine and no open call: nothing will use the cluster again
            idle = self.state == CLOSE and not self._engine_running and not self._calls
        if idle:
            self._let_go()

    # -- the lifecycle contract (see pathos._backend) -----------------------------------
    def _start_engine(self) -> None:
        with self._lock:
            if self.state == TERMINATE:
                self._engine_may_exit_locked(force=True)
                return
        self._thread = threading.Thread(target=self._run, name="pathos-dask", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        self._events.put(None)  # a queue, not a descriptor: safe at any time

    def _stop_engine(self) -> None:
        self._wake()
        if threading.current_thread() is not self._thread:
            self._engine_exited.wait(RPC_SECONDS)
        # Race: an engine that decided to exit while RUN (idle) does not let the cluster
        # go; terminate() does, once it has exited. Letting go twice is harmless.
        if self._engine_exited.is_set():
            self._let_go()

    # -- connecting ---------------------------------------------------------------------
    def _connect(self) -> None:
        """Connect a client on first use: to a server, or to a local cluster we start."""
        with self._connecting:
            if self._client is not None:
                return
            client, local = connect(self._servers, self.nodes, strict=self._strict)
            client.subscribe_topic(self._topic, self._on_started)
            with self._lock:
                keep = self.state == RUN
                if keep:
                    self._client, self._cluster, self._address = client, local, client.scheduler.address
        if not keep:  # closed or terminated while we connected: nothing will use it
            close_quietly(client, local)
            raise self.closed_error()

    @property
    def _topic(self) -> str:
        return f"pathos-started-{self._token}"

    def _on_started(self, event: tuple[float, Any]) -> None:
        """Runs in the client's event loop: pass the "started" event to the engine."""
        self._events.put(_Started(str(event[1]), time.monotonic()))

    def _let_go(self) -> None:
        """Close the client and stop the local cluster, if any (bounded in time)."""
        with self._lock:
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
        self._functions.clear()
        close_quietly(client, cluster)

    # -- the engine thread --------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug here must fail the calls, never hang them
            error = PathosError(f"the Dask pool's engine thread failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            try:
                self._end_with(error)
            finally:
                with self._lock:  # whatever happened, join() returns
                    self._engine_may_exit_locked(force=True)

    def _loop(self) -> None:
        while True:
            if self.state == TERMINATE:
                self._fail_all(self.closed_error())
                self._let_go()
                self._engine_may_exit()  # always True under TERMINATE
                return
            self._step()
            if self._lost_reason is not None:
                self._end_with(self._lost_reason)
                return
            if self._running or self._held or self._queue:
                continue
            # Idle. Clean up first, then decide under the lock (the base's handshake).
            self._forget_finished()
            with self._lock:
                finished = self.state == CLOSE and not self._calls  # no call can bring work again
            if finished:
                self._let_go()
            if self._engine_may_exit():
                return

    def _end_with(self, error: BaseException) -> None:
        """The pool dies of ``error``: every unfinished call fails with it, later calls say it."""
        self._fail_all(error)
        self._break(error)  # terminated, before the slow close below: no call reconnects meanwhile
        self._let_go()
        with self._lock:
            self._engine_may_exit_locked(force=True)

    def _step(self) -> None:
        self._fill()
        self._wait_events(self._poll_timeout())
        self._sweep()

    def _poll_timeout(self) -> float:
        timeout = HEALTH_SECONDS
        now = time.monotonic()
        for task in self._running.values():
            if task.deadline is not None:
                timeout = min(timeout, max(0.0, task.deadline - now))
        return timeout

    def _wait_events(self, timeout: float) -> None:
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        done = []
        while True:
            if isinstance(event, _Started):
                self._start_clock(event)
            elif event is not None:
                done.append(event)
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
        for future in done:
            task = self._running.pop(future.key, None)
            if task is not None:  # None: settled already (timed out, cancelled)
                self._settle(task)

    def _start_clock(self, event: _Started) -> None:
        task = self._running.get(event.key)
        timeout = None if task is None else task.batch.job.timeout
        if task is not None and timeout is not None:  # again if Dask reruns it after a crash
            task.started = True
            task.deadline = event.at + timeout

    # -- sending ------------------------------------------------------------------------
    def _fill(self) -> None:
        """Submit batches while fewer than ``PER_THREAD`` per worker thread are in flight."""
        threads = max(1, self._threads)
        while len(self._running) < PER_THREAD * threads and self.state != TERMINATE:
            batch = self._held.popleft() if self._held else self._queue.pull()
            if batch is None:
                return
            if batch.job.done_or_failed():  # a held item of a call that ended meanwhile
                batch.job.batch_failed(batch, self.closed_error())  # ended: only counted
                continue
            if batch.job.timeout is not None:
                if len(batch.items) > 1:  # chunksize= with timeout=: one task per item, each its own clock
                    self._held.extendleft(reversed(batch.job.split(batch, *[1] * len(batch.items))))
                    continue
                if len(self._running) >= threads:
                    self._held.appendleft(batch)  # it starts only on a free thread, so its clock is true
                    return
            self._send(batch)

    def _send(self, batch: Batch) -> None:
        job = batch.job
        client = self._client
        if client is None:  # let go: only an ended call can get here, but never hang one
            self._fail(job, self.closed_error())
            job.batch_failed(batch, self.closed_error())
            return
        job.nodes = max(job.nodes, self._threads)  # chunk sizes balance over the whole cluster
        fn = self._function(client, batch)
        if fn is None:
            return
        try:
            items: Any = dumps(batch.items, what=f"arguments of {items_label(batch)}")
        except SerializationError as exc:
            _split_or_fail(batch, exc)
            return
        from .._workers._dask import run_batch

        key = f"pathos-{uuid.uuid4().hex}"
        started = None if job.timeout is None else (self._topic, key)
        try:
            if len(items) > INLINE_BYTES:
                items = client.scatter(items, hash=False, timeout=SCATTER_SECONDS)
            future = client.submit(run_batch, f"{self._token}-{job.key}", fn, items, started, key=key)
        except Exception as exc:
            self._not_sent(batch, f"the arguments of {items_label(batch)}", exc)
            return
        deadline = None if job.timeout is None else time.monotonic() + job.timeout + START_SECONDS
        self._running[future.key] = _Task(batch, future, deadline)
        future.add_done_callback(self._events.put)

    def _function(self, client: Any, batch: Batch) -> Any:
        """The job's function as bytes (or a scattered future), made once a job."""
        job = batch.job
        entry = self._functions.get(job.key)
        if entry is not None:
            return entry[1]
        try:
            data: Any = dumps((job.fn, job.kwargs, job.star), what="function")
        except SerializationError as exc:
            job.fail(exc)  # every verb raises it (imap and uimap too)
            job.batch_failed(batch, exc)
            return None
        if len(data) > INLINE_BYTES:
            try:
                data = client.scatter(data, hash=False, broadcast=True, timeout=SCATTER_SECONDS)
            except Exception as exc:
                self._not_sent(batch, "the function", exc)
                return None
        self._functions[job.key] = (job, data)
        return data

    def _not_sent(self, batch: Batch, what: str, exc: Exception) -> None:
        """Sending ``batch`` failed: the scheduler is gone (the pool breaks, the batch
        waits), or the cluster refused it (its items fail with the reason)."""
        client = self._client
        if client is None or client.status not in ("running", "newly-created"):
            self._lost(f"it did not take {what} ({type(exc).__name__}: {exc})")
            batch.job.batch_unstarted(batch)
            return
        error = ClusterError(
            f"the Dask cluster did not take {what} ({type(exc).__name__}: {exc})", address=self._address
        )
        error.__cause__ = exc
        _split_or_fail(batch, error)

    # -- receiving ----------------------------------------------------------------------
    def _settle(self, task: _Task) -> None:
        batch, future = task.batch, task.future
        status = future.status
        if status == "finished":
            try:
                reply = future.result(timeout=RPC_SECONDS)
            except Exception as exc:
                self._unfetched(batch, exc)
                return
            self._unfetched_tries.pop((batch.job.key, batch.start), None)
            self._unfetched_in_row = 0
            self._done(batch, BatchReply(*reply))
        elif status == "error":
            self._errored(batch, future)
        else:  # "lost": its result died with its worker; "cancelled" (not by us): dropped
            self._again(batch)

    def _unfetched(self, batch: Batch, exc: Exception) -> None:
        """A finished batch's result could not be fetched: it died with its worker (Dask
        reschedules it while the client still calls it finished; we send it again), or
        the connection is gone (the pool breaks). After ``FETCH_TRIES`` failures its
        items fail, and the pool stays up; after ``FETCH_IN_ROW`` failures in a row of
        any batches the cluster is not serving results, and the pool breaks (each
        fetch waits up to ``RPC_SECONDS``: a call fails, it never hangs)."""
        self._unfetched_in_row += 1
        if self._unfetched_in_row >= FETCH_IN_ROW:  # every fetch fails: the cluster is not serving
            self._lost(f"{self._unfetched_in_row} results in a row could not be fetched ({type(exc).__name__}: {exc})")
        key = (batch.job.key, batch.start)
        tries = self._unfetched_tries.get(key, 0) + 1
        if tries < FETCH_TRIES:
            self._unfetched_tries[key] = tries
            self._again(batch)
            return
        del self._unfetched_tries[key]
        error = ClusterError(
            f"the result of {items_label(batch)} could not be fetched from the Dask cluster "
            f"{FETCH_TRIES} times (last: {type(exc).__name__}: {exc})",
            address=self._address,
        )
        error.__cause__ = exc
        batch.job.batch_failed(batch, error)

    def _again(self, batch: Batch) -> None:
        """Send ``batch`` again (its future is dropped); a dead scheduler breaks the pool."""
        client = self._client
        if client is None or client.status not in ("running", "newly-created"):
            self._lost(f"the client's connection is {None if client is None else client.status}")
        entry = self._functions.get(batch.job.key)
        if entry is not None and not isinstance(entry[1], bytes):
            del self._functions[batch.job.key]  # a scattered function may be lost too: scatter again
        batch.job.batch_unstarted(batch)

    def _done(self, batch: Batch, reply: BatchReply) -> None:
        self._stats["tasks"] += 1
        self._stats["items"] += len(batch.items)
        try:
            results = load_values(reply.values)
        except Exception as exc:
            error = SerializationError(f"cannot deserialize the result of {items_label(batch)}: {exc}")
            _split_or_fail(batch, error)
            return
        errors = reply.errors
        if errors and errors[0][0] == NOT_STARTED:  # the batch could not even start
            _split_or_fail(batch, rebuild_error(errors[0][1]))
        else:
            errors_at = {i: rebuild_error(p) for i, p in errors}
            batch.job.batch_done(batch, results, errors_at, reply.seconds, nbytes=len(reply.values))

    def _errored(self, batch: Batch, future: Any) -> None:
        from distributed.scheduler import KilledWorker

        try:
            exc = future.exception(timeout=RPC_SECONDS)
        except Exception as other:
            exc = other
        if isinstance(exc, KilledWorker):
            self._stats["crashes"] += 1
            error: PathosError = WorkerCrashedError(
                f"Dask workers kept dying while running {items_label(batch)} ({exc}); "
                "Dask already retried it on other workers",
                task=batch.start,
            )
            batch.job.batch_lost(batch, error)
            return
        error = ClusterError(
            f"Dask could not run {items_label(batch)}: {type(exc).__name__}: {exc}", address=self._address
        )
        error.__cause__ = exc
        batch.job.batch_failed(batch, error)

    # -- time, ended calls and health ----------------------------------------------------
    def _sweep(self) -> None:
        now = time.monotonic()
        cancel = []
        for key, task in list(self._running.items()):
            job = task.batch.job
            if job.done_or_failed():  # cancelled, or failed fast: its other batches are not wanted
                cancel.append(self._running.pop(key))
                job.batch_failed(task.batch, self.closed_error())  # ended: only counted
            elif task.deadline is not None and now >= task.deadline:
                cancel.append(self._running.pop(key))
                self._stats["timeouts"] += 1
                job.batch_failed(task.batch, _timeout_error(task.batch, task.started))
        if cancel:
            self._cancel([t.future for t in cancel])
        if now - self._checked >= HEALTH_SECONDS and (self._running or self._threads == 0):
            self._check_health(now)

    def _cancel(self, futures: list[Any]) -> None:
        client = self._client
        if not futures or client is None or self._lost_reason is not None:
            return
        try:
            client.cancel(futures, force=True)
        except Exception:  # the scheduler is going: _check_health will tell
            pass

    def _check_health(self, now: float) -> None:
        """Count the worker threads; notice a lost scheduler or a cluster with no workers."""
        self._checked = now
        client = self._client
        if client is None:
            return
        if client.status not in ("running", "newly-created"):
            self._lost(f"the client's connection is {client.status}")
            return
        try:
            nthreads = client.nthreads(callback_timeout=RPC_SECONDS)
        except Exception as exc:
            self._lost(f"it did not answer ({type(exc).__name__}: {exc})")
            return
        self._threads = sum(nthreads.values())
        if self._threads or not self._running:
            self._no_workers_since = None
        elif self._no_workers_since is None:
            self._no_workers_since = now
        elif now - self._no_workers_since > NO_WORKERS_SECONDS:
            self._lost_reason = ClusterError(
                f"the Dask cluster at {self._address} has had no workers for {NO_WORKERS_SECONDS:g} s; "
                "start some with `dask worker`, then call clear() or restart() on the pool",
                address=self._address,
            )

    def _lost(self, why: str) -> None:
        if self._lost_reason is None:
            self._lost_reason = ClusterError(
                f"lost the Dask scheduler at {self._address}: {why}; "
                "call clear() or restart() on the pool to connect again",
                address=self._address,
            )

    def _fail_all(self, error: BaseException) -> None:
        """End every unfinished call with ``error`` (a completed one keeps its results)
        and cancel its futures on the cluster."""
        tasks = list(self._running.values())
        self._running.clear()
        batches = [t.batch for t in tasks]
        batches.extend(self._held)
        self._held.clear()
        for batch in batches:
            self._fail(batch.job, error)
            batch.job.batch_failed(batch, error)  # the job has ended: only counted
        self._queue.cancel_all(error)
        self._cancel([t.future for t in tasks])

    def _forget_finished(self) -> None:
        self._unfetched_tries.clear()  # idle: no batch is in flight or waiting to be sent again
        done = [key for key, (job, _) in self._functions.items() if job.in_flight == 0 and job.done_or_failed()]
        for key in done:
            del self._functions[key]

    # -- describing ---------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(self._stats, scheduler=self._address, local=self._cluster is not None)
        info["workers"] = self._workers()
        return info

    def _workers(self) -> dict[str, dict[str, Any]]:
        client = self._client
        if client is None or self._broken is not None:
            return {}
        return workers_of(client)

    def report(self) -> str:
        """The text ``pathos.parallel.stats()`` shows for this pool."""
        return report(self.describe())


def _split_or_fail(batch: Batch, error: BaseException) -> None:
    """A batch failed as a whole: split it so only the culprit item fails."""
    if len(batch.items) > 1:
        batch.job.batch_lost(batch, error)
    else:
        batch.job.batch_failed(batch, error)


def _timeout_error(batch: Batch, started: bool) -> TaskTimeoutError:
    """A timed batch (one item) ran past its timeout, or never started in time."""
    timeout = float(batch.job.timeout or 0.0)  # set: only timed batches have deadlines
    if started:
        consequence = "Dask cannot stop a running task, so its worker thread runs on until the function returns"
        return timeout_error(batch.start, timeout, consequence)
    return TaskTimeoutError(
        f"{items_label(batch)} did not start within {timeout + START_SECONDS:g} s (its timeout of {timeout:g} s "
        f"plus {START_SECONDS:g} s to reach a worker); the cluster's workers are busy or gone",
        task=batch.start,
        timeout=timeout,
    )
