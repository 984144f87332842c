"""Running a batch in this process (serial and thread backends)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from .._errors import TaskTimeoutError
from .._job import Batch, call_items

__all__ = ["run_batch", "timeout_error"]


def timeout_error(batch: Batch) -> TaskTimeoutError:
    timeout = batch.job.timeout
    return TaskTimeoutError(
        f"item {batch.start} ran longer than its timeout of {timeout:g} s", task=batch.start, timeout=timeout
    )


def run_batch(batch: Batch) -> tuple[list[Any], dict[int, BaseException], float]:
    """Call the job's function on each item; exceptions are kept per item."""
    job = batch.job
    start = time.perf_counter()
    values, errors = call_items(job.fn, batch.items, job.star, job.kwargs)
    return values, errors, time.perf_counter() - start


def can_alarm() -> bool:
    """SIGALRM can interrupt a task here (Unix, main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def run_batch_with_alarm(batch: Batch) -> tuple[list[Any], dict[int, BaseException], float]:
    """:func:`run_batch` interrupted by SIGALRM after the job's timeout."""
    timeout = batch.job.timeout
    assert timeout is not None

    def on_alarm(signum: int, frame: Any) -> None:
        raise timeout_error(batch)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return run_batch(batch)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
