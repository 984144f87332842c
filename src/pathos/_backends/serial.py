"""The serial backend: batches run inline, in the calling thread, when they are asked for.

A task that raises ``SystemExit``, ``KeyboardInterrupt`` or ``GeneratorExit`` gets it
back at its item, like any other exception: ``map`` raises it (after the rest of that
batch, a few milliseconds of work), ``imap`` after the results before it.

It has no engine: :meth:`SerialBackend.notify` runs the notified job's batches in the
caller's thread at once (a task may itself call the same pool: that inner call runs
inline too, and no queue is shared between callers, so one thread never ends up
running another thread's work). What a closed or terminated backend does with a job
is the base class's (:meth:`~pathos._backend.Backend.notify`'s) rule, kept here.
"""

from __future__ import annotations

from .._backend import TERMINATE, Backend
from .._job import Job
from ._inline import can_alarm, run_batch, run_batch_with_alarm

__all__ = ["SerialBackend"]


class SerialBackend(Backend):
    """Runs every item in the caller's thread; ``timeout=`` uses SIGALRM where it can."""

    def __init__(self) -> None:
        super().__init__(1)

    def notify(self, job: Job) -> None:
        """Run ``job``'s batches now, in this thread (terminated: fail it at once)."""
        while True:
            # Read under the lock: a terminate() from another thread stops this loop
            # before its next batch, and the job then fails instead of waiting forever.
            with self._lock:
                stopped = self.state == TERMINATE
            if stopped:
                self._fail(job, self.closed_error())
                return
            batch = job.next_batch()
            if batch is None:
                return
            if job.timeout is not None and can_alarm():
                values, errors, seconds = run_batch_with_alarm(batch)
            else:
                values, errors, seconds = run_batch(batch)
            job.batch_done(batch, values, errors, seconds)

    def _wake(self) -> None:
        return None  # nothing runs in the background

    def _stop_engine(self) -> None:
        return None  # a batch running inline ends its job at its next step (see notify)
