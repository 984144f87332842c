"""The Dask backend: :class:`~pathos.pools.ParallelPool` on Dask distributed.

::

    callers (any thread)          manager thread                       Dask workers
    --------------------          --------------                       ------------
    submit(job): connect a  --->  JobQueue.pull() -> batch
      Client (lazily) to the      dumps(items); the function once
      scheduler, or start a       a job (inline, or scattered when
      local cluster               large)
                                  client.submit(run_batch, token,  ---> run_batch: load the
                                    fn, items)  (a bounded number         function (cached per
                                    of batches in flight)                 job), call each item
                                  done futures (callback -> queue) <--- (values bytes, error
                                  job.batch_done / batch_failed /        payloads, seconds)
                                    batch_lost (KilledWorker)
                                  "started" events  <----------------   (a timed batch logs
                                  deadlines: TaskTimeoutError, cancel     one as it starts)
                                  cancelled jobs: cancel their futures
                                  scheduler gone: ClusterError for all

Items are batched by the job (adaptive chunks), so one Dask task carries many items.
Dask reschedules the tasks of a worker that dies; a task that keeps killing its
workers comes back as ``KilledWorker`` and fails as :class:`WorkerCrashedError`.
A result lost with its worker before we fetched it, or a task the cluster dropped (its
scattered input lost), is sent again: the pool breaks only when the scheduler is gone.
A timed batch's clock starts when the worker says it started running it (a Dask event),
so waiting for a worker, transfers and a fresh worker's imports do not count. Dask
cannot stop a running task: a batch past its ``timeout=`` fails at once with
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
from typing import Any

from .. import _registry
from .._backend import CLOSE, RUN, TERMINATE, Backend, JobQueue, closed_error
from .._errors import ClusterError, PathosError, SerializationError, TaskTimeoutError, WorkerCrashedError
from .._job import Batch, Job
from .._serialize import dumps, loads
from ._dask_cluster import close_quietly, connect, import_distributed, scheduler_address
from .process import rebuild_error

__all__ = ["DaskBackend", "import_distributed", "scheduler_address"]

PER_THREAD = 3  # batches in flight per worker thread: one running, two waiting
INLINE_BYTES = 64 * 1024  # larger functions or arguments are scattered, not inlined
HEALTH_SECONDS = 1.0  # how often the cluster's workers are counted while work runs
RPC_SECONDS = 10.0  # bound on one round trip to the scheduler or a worker
NO_WORKERS_SECONDS = 60.0  # work waiting this long on a cluster with no workers fails
START_SECONDS = 10.0  # a timed batch not started this long past its timeout fails anyway


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
        self._queue = JobQueue()
        self._lock = threading.Lock()
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()  # futures, _Started; None wakes
        self._client: Any = None
        self._cluster: Any = None  # our local cluster, if we started one
        self._address: str | None = None
        self._thread: threading.Thread | None = None
        self._running: dict[str, _Task] = {}
        self._held: Batch | None = None  # a timed batch waiting for a free worker thread
        self._functions: dict[int, tuple[Job, Any]] = {}  # job key -> (job, bytes or future)
        self._token = uuid.uuid4().hex
        self._threads = 0  # worker threads in the cluster, as last counted
        self._checked = 0.0
        self._no_workers_since: float | None = None
        self._broken: ClusterError | None = None
        self._stats = {"tasks": 0, "items": 0, "crashes": 0, "timeouts": 0}
        _registry.register(self)

    # -- the caller's side --------------------------------------------------------------
    def submit(self, job: Job) -> None:
        if self.state == RUN:
            self._connect()
        super().submit(job)

    def notify(self, job: Job) -> None:
        with self._lock:
            if self.state == TERMINATE or self._client is None:
                job.cancel(self._broken_copy() or closed_error(self.state if self.state != RUN else CLOSE))
                return
            self._queue.add(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pathos-dask", daemon=True)
                self._thread.start()
        self._events.put(None)

    def close(self) -> None:
        with self._lock:
            if self.state == RUN:
                self.state = CLOSE
            thread = self._thread
        if thread is None:
            self._shutdown()
        self._events.put(None)

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def terminate(self) -> None:
        with self._lock:
            if self.state == TERMINATE:
                return
            self.state = TERMINATE
            thread = self._thread
        self._events.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(RPC_SECONDS)
        if thread is None or not thread.is_alive():
            self._queue.cancel_all(closed_error(TERMINATE))
            self._shutdown()

    def _broken_copy(self) -> ClusterError | None:
        if self._broken is None:
            return None
        return ClusterError(str(self._broken), address=self._broken.address)

    # -- connecting ---------------------------------------------------------------------
    def _connect(self) -> None:
        """Connect a client on first use: to a server, or to a local cluster we start."""
        with self._lock:
            broken = self._broken_copy()
            if broken is not None:
                raise broken
            if self._client is not None:
                return
            client, self._cluster = connect(self._servers, self.nodes, strict=self._strict, stacklevel=6)
            self._client = client
            self._address = client.scheduler.address
            client.subscribe_topic(self._topic, self._on_started)

    @property
    def _topic(self) -> str:
        return f"pathos-started-{self._token}"

    def _on_started(self, event: tuple[float, Any]) -> None:
        """Runs in the client's event loop: pass the "started" event to the manager."""
        self._events.put(_Started(str(event[1]), time.monotonic()))

    def _shutdown(self) -> None:
        """Close the client and stop the local cluster, if any (bounded in time)."""
        with self._lock:
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
            self._functions.clear()
        close_quietly(client, cluster)

    # -- the manager thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:  # a bug here must fail the calls, never hang them
            error = PathosError(f"the Dask pool's manager thread failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._fail_all(error)
        finally:
            if self.state == TERMINATE:
                self._fail_all(closed_error(TERMINATE))
            if self.state != RUN or self._broken is not None:
                self._shutdown()

    def _step(self) -> bool:
        """One turn of the loop; False when the backend is finished."""
        if self.state == TERMINATE:
            return False
        self._fill()
        self._wait_events(self._poll_timeout())
        self._sweep()
        if self._broken is not None:
            self._fail_all(self._broken)
            return False
        return not (self.state == CLOSE and not self._running and self._held is None and not self._queue)

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
            batch = self._held or self._queue.pull()
            self._held = None
            if batch is None:
                return
            if batch.job.timeout is not None and len(self._running) >= threads:
                self._held = batch  # a timed batch starts only on a free thread, so its clock is true
                return
            self._send(batch)

    def _send(self, batch: Batch) -> None:
        job = batch.job
        job.nodes = max(job.nodes, self._threads)  # chunk sizes balance over the whole cluster
        fn = self._function(job, batch)
        if fn is None:
            return
        try:
            items: Any = dumps(batch.items, what=f"arguments of {_items(batch)}")
        except SerializationError as exc:
            _fail_whole(batch, exc)
            return
        from .._workers._dask import run_batch

        client = self._client
        if len(items) > INLINE_BYTES:
            items = client.scatter(items, hash=False)
        key = f"pathos-{uuid.uuid4().hex}"
        started = None if job.timeout is None else (self._topic, key)
        future = client.submit(run_batch, f"{self._token}-{job.key}", fn, items, started, key=key)
        deadline = None if job.timeout is None else time.monotonic() + job.timeout + START_SECONDS
        self._running[future.key] = _Task(batch, future, deadline)
        future.add_done_callback(self._events.put)

    def _function(self, job: Job, batch: Batch) -> Any:
        """The job's function as bytes (or a scattered future), made once a job."""
        entry = self._functions.get(job.key)
        if entry is not None:
            return entry[1]
        try:
            data: Any = dumps((job.fn, job.kwargs, job.star), what="function")
        except SerializationError as exc:
            job.cancel(exc)
            job.batch_failed(batch, exc)
            return None
        if len(data) > INLINE_BYTES:
            data = self._client.scatter(data, hash=False, broadcast=True)
        self._functions[job.key] = (job, data)
        return data

    # -- receiving ----------------------------------------------------------------------
    def _settle(self, task: _Task) -> None:
        batch, future = task.batch, task.future
        status = future.status
        if status == "finished":
            try:
                reply = future.result(timeout=RPC_SECONDS)
            except Exception as exc:
                if future.status == "finished":  # the result is there, but we cannot get it
                    self._lost(f"the result of {_items(batch)} could not be fetched ({type(exc).__name__}: {exc})")
                self._again(batch)  # else it was lost with its worker while we asked
                return
            self._done(batch, *reply)
        elif status == "error":
            self._errored(batch, future)
        else:  # "lost": its result died with its worker; "cancelled" (not by us): dropped
            self._again(batch)

    def _again(self, batch: Batch) -> None:
        """Send ``batch`` again (its future is dropped); a dead scheduler breaks the pool."""
        client = self._client
        if client is None or client.status not in ("running", "newly-created"):
            self._lost(f"the client's connection is {None if client is None else client.status}")
        entry = self._functions.get(batch.job.key)
        if entry is not None and not isinstance(entry[1], bytes):
            del self._functions[batch.job.key]  # a scattered function may be lost too: scatter again
        batch.job.batch_unstarted(batch)

    def _done(self, batch: Batch, values: bytes, errors: list[Any], seconds: float) -> None:
        self._stats["tasks"] += 1
        self._stats["items"] += len(batch.items)
        try:
            results = loads(values)
        except Exception as exc:
            _fail_whole(batch, SerializationError(f"cannot deserialize the result of {_items(batch)}: {exc}"))
            return
        if errors and errors[0][0] == -1:  # the batch could not even start
            _fail_whole(batch, rebuild_error(errors[0][1]))
        else:
            batch.job.batch_done(batch, results, {i: rebuild_error(p) for i, p in errors}, seconds)

    def _errored(self, batch: Batch, future: Any) -> None:
        from distributed.scheduler import KilledWorker

        try:
            exc = future.exception(timeout=RPC_SECONDS)
        except Exception as other:
            exc = other
        if isinstance(exc, KilledWorker):
            self._stats["crashes"] += 1
            error: PathosError = WorkerCrashedError(
                f"Dask workers kept dying while running {_items(batch)} ({exc}); "
                "Dask already retried it on other workers",
                task=batch.start,
            )
            batch.job.batch_lost(batch, error)
            return
        error = ClusterError(f"Dask could not run {_items(batch)}: {type(exc).__name__}: {exc}", address=self._address)
        error.__cause__ = exc
        batch.job.batch_failed(batch, error)

    # -- time, cancellation and health ---------------------------------------------------
    def _sweep(self) -> None:
        now = time.monotonic()
        cancel = []
        for key, task in list(self._running.items()):
            job = task.batch.job
            if job.cancelled:
                cancel.append(self._running.pop(key))
                job.batch_failed(task.batch, closed_error(CLOSE))
            elif task.deadline is not None and now >= task.deadline:
                cancel.append(self._running.pop(key))
                self._stats["timeouts"] += 1
                job.batch_failed(task.batch, _timeout_error(task.batch, task.started))
        if cancel:
            self._client.cancel([t.future for t in cancel], force=True)
        self._forget_finished()
        if now - self._checked >= HEALTH_SECONDS and (self._running or self._threads == 0):
            self._check_health(now)

    def _check_health(self, now: float) -> None:
        """Count the worker threads; notice a lost scheduler or a cluster with no workers."""
        self._checked = now
        client = self._client
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
            self._broken = ClusterError(
                f"the Dask cluster at {self._address} has had no workers for {NO_WORKERS_SECONDS:g} s; "
                "start some with `dask worker`",
                address=self._address,
            )

    def _lost(self, why: str) -> None:
        if self._broken is None:
            self._broken = ClusterError(
                f"lost the Dask scheduler at {self._address}: {why}; "
                "call clear() or restart() on the pool to connect again",
                address=self._address,
            )

    def _fail_all(self, error: BaseException) -> None:
        """Cancel every unfinished call with ``error`` and drop its futures."""
        tasks = list(self._running.values())
        self._running.clear()
        if self._held is not None:
            tasks.append(_Task(self._held, None, None))
            self._held = None
        for task in tasks:
            task.batch.job.cancel(error)
        self._queue.cancel_all(error)
        futures = [t.future for t in tasks if t.future is not None]
        if futures and self._client is not None and self._broken is None:
            try:
                self._client.cancel(futures, force=True)
            except Exception:
                pass

    def _forget_finished(self) -> None:
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
        try:
            identity = client.scheduler_info(n_workers=-1)
        except Exception:
            return {}
        workers = identity.get("workers", {})
        return {
            address: {"nthreads": w.get("nthreads"), "memory_limit": w.get("memory_limit"), "name": w.get("name")}
            for address, w in workers.items()
        }

    def report(self) -> str:
        """The text ``pathos.parallel.stats()`` shows for this pool."""
        info = self.describe()
        if info["scheduler"] is None:
            return ""
        kind = "local cluster" if info["local"] else "cluster"
        workers = info["workers"]
        lines = [f"Dask {kind} at {info['scheduler']}: {len(workers)} workers, state {info['state']}"]
        for address, w in sorted(workers.items()):
            memory = f"{w['memory_limit'] / 2**30:.1f} GiB" if w["memory_limit"] else "no limit"
            lines.append(f"  worker {address}  threads {w['nthreads']}  memory {memory}")
        lines.append(
            f"  tasks run: {info['tasks']}, items run: {info['items']}, "
            f"crashes: {info['crashes']}, timeouts: {info['timeouts']}"
        )
        return "\n".join(lines) + "\n"


def _fail_whole(batch: Batch, error: BaseException) -> None:
    """A batch failed as a whole: split it so only the culprit item fails."""
    if len(batch.items) > 1:
        batch.job.batch_lost(batch, error)
    else:
        batch.job.batch_failed(batch, error)


def _timeout_error(batch: Batch, started: bool) -> TaskTimeoutError:
    timeout = float(batch.job.timeout or 0.0)  # set: only timed batches have deadlines
    if not started:
        message = (
            f"{_items(batch)} did not start within {timeout + START_SECONDS:g} s (its timeout of {timeout:g} s "
            f"plus {START_SECONDS:g} s to reach a worker); the cluster's workers are busy or gone"
        )
    else:
        message = (
            f"{_items(batch)} ran longer than the timeout of {timeout:g} s; Dask cannot stop a running "
            "task, so its worker thread runs on until the function returns"
        )
    return TaskTimeoutError(message, task=batch.start, timeout=timeout)


def _items(batch: Batch) -> str:
    last = batch.start + len(batch.items) - 1
    return f"item {batch.start}" if last == batch.start else f"items {batch.start}..{last}"
