"""Running a batch in this process (serial and thread backends).

``timeout=`` is a limit per *item*, as documented: each item gets the whole timeout,
whatever the batch size, and a timeout error names the item that ran too long.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Callable

from .._errors import TaskTimeoutError
from .._job import Batch

__all__ = ["call_one", "can_alarm", "run_batch", "run_batch_with_alarm", "timeout_error"]


def timeout_error(batch: Batch, offset: int = 0) -> TaskTimeoutError:
    """The error of the item at ``offset`` in ``batch``, which ran past the job's timeout."""
    timeout = batch.job.timeout
    assert timeout is not None
    index = batch.start + offset
    return TaskTimeoutError(f"item {index} ran longer than its timeout of {timeout:g} s", task=index, timeout=timeout)


def call_one(batch: Batch, offset: int) -> Any:
    """Call the job's function on the item at ``offset`` in ``batch``."""
    job = batch.job
    item = batch.items[offset]
    return job.fn(*item, **job.kwargs) if job.star else job.fn(item, **job.kwargs)


def run_batch(batch: Batch) -> tuple[list[Any], dict[int, BaseException], float]:
    """Call the job's function on each item; every exception is kept per item.

    ``SystemExit``, ``KeyboardInterrupt`` and ``GeneratorExit`` included: raised in a pool
    thread they would end the thread and the item would never come back; inline, they
    would skip the results before them.
    """
    job = batch.job
    start = time.perf_counter()
    values, errors = _call_catching_all(job.fn, batch.items, job.star, job.kwargs)
    return values, errors, time.perf_counter() - start


def _call_catching_all(
    fn: Callable[..., Any], items: list[Any], star: bool, kwargs: dict[str, Any]
) -> tuple[list[Any], dict[int, BaseException]]:
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    append = values.append
    for item in items:
        try:
            append(fn(*item, **kwargs) if star else fn(item, **kwargs))
        except BaseException as exc:  # kept as the item's outcome, raised to its consumer
            errors[len(values)] = exc
            append(None)
    return values, errors


def can_alarm() -> bool:
    """SIGALRM can interrupt a task here (Unix, main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def run_batch_with_alarm(batch: Batch) -> tuple[list[Any], dict[int, BaseException], float]:
    """:func:`run_batch` with each item interrupted by SIGALRM after the job's timeout
    (the timer is re-armed for each item: the limit is per item)."""
    timeout = batch.job.timeout
    assert timeout is not None
    running = [0]  # offset of the item the timer is armed for

    def on_alarm(signum: int, frame: Any) -> None:
        raise timeout_error(batch, running[0])

    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    previous = signal.signal(signal.SIGALRM, on_alarm)
    start = time.perf_counter()
    try:
        for offset in range(len(batch.items)):
            running[0] = offset
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout)
                value = call_one(batch, offset)
                # Race: the alarm may fire between the return and this disarm; it then
                # raises here, inside the try, and the item (which did run for the whole
                # timeout) fails with its own timeout error.
                signal.setitimer(signal.ITIMER_REAL, 0)
            except BaseException as exc:  # SystemExit & co. too: kept at the item, as on threads
                signal.setitimer(signal.ITIMER_REAL, 0)
                errors[offset] = exc
                value = None
            values.append(value)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return values, errors, time.perf_counter() - start
