"""The one seam between the pool verbs and the engines that run work.

A backend receives jobs (:class:`pathos._job.Job`) through :meth:`Backend.submit` and
*pulls* batches from them (``job.next_batch()``) whenever it has room to run one. It
reports each batch's fate back to the job: ``batch_done`` (results and per-item errors),
``batch_failed`` (every item failed), ``batch_lost`` (the worker died) or
``batch_unstarted`` (taken but never run). Everything else (ordering, chunk sizes,
retries, fail-fast, lazy input, progress) lives in the job, written once.

Backends: ``serial`` (inline), ``thread``, ``process`` (our engine) and ``dask``.
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from ._errors import PoolClosedError
from ._job import Batch, Job

__all__ = ["CLOSE", "RUN", "TERMINATE", "Backend", "JobQueue", "closed_error"]

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"


def closed_error(state: str) -> PoolClosedError:
    """The error for a call on a pool that is not running."""
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

    def cancel_all(self, exc: BaseException) -> None:
        """Cancel every queued job with ``exc`` (the pool is stopping)."""
        with self._lock:
            jobs = list(self._jobs)
            self._jobs.clear()
        for job in jobs:
            job.cancel(exc)

    def __bool__(self) -> bool:
        with self._lock:
            return any(job.has_work() for job in self._jobs)


class Backend(ABC):
    """What an engine must do to run the pool verbs.

    Attributes:
        nodes: how many items it runs at once.
        state: ``RUN``, ``CLOSE`` (finishing queued work) or ``TERMINATE``.
    """

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.state = RUN
        # Seconds per item that the last call of each function measured: the next call
        # of the same function starts with batches of the right size at once.
        self._timings: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def submit(self, job: Job) -> None:
        """Start pulling batches from ``job``.

        Raises:
            PoolClosedError: the backend was closed or terminated.
        """
        if self.state != RUN:
            raise closed_error(self.state)
        self._recall_timing(job)
        job.attach(self)

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

    @abstractmethod
    def notify(self, job: Job) -> None:
        """``job`` may have new batches (more input, a retry, a cancellation)."""

    @abstractmethod
    def close(self) -> None:
        """Accept no new jobs; finish the work already submitted."""

    @abstractmethod
    def join(self, timeout: float | None = None) -> None:
        """Wait until a closed backend has finished and released its workers."""

    @abstractmethod
    def terminate(self) -> None:
        """Stop at once; unfinished jobs fail with :class:`PoolClosedError`."""

    def describe(self) -> dict[str, Any]:
        """Facts for ``repr`` and ``stats()``."""
        return {"nodes": self.nodes, "state": self.state}
