"""The serial backend: batches run inline, in the calling thread, when they are asked for."""

from __future__ import annotations

from .._backend import CLOSE, TERMINATE, Backend
from .._job import Job
from ._inline import can_alarm, run_batch, run_batch_with_alarm

__all__ = ["SerialBackend"]


class SerialBackend(Backend):
    """Runs every item in the caller's thread; ``timeout=`` uses SIGALRM where it can."""

    def __init__(self) -> None:
        super().__init__(1)

    def notify(self, job: Job) -> None:
        if self.state == TERMINATE:
            return
        while (batch := job.next_batch()) is not None:
            if job.timeout is not None and can_alarm():
                values, errors, seconds = run_batch_with_alarm(batch)
            else:
                values, errors, seconds = run_batch(batch)
            job.batch_done(batch, values, errors, seconds)

    def close(self) -> None:
        if self.state != TERMINATE:
            self.state = CLOSE

    def join(self, timeout: float | None = None) -> None:
        return None

    def terminate(self) -> None:
        self.state = TERMINATE
