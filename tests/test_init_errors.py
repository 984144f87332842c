"""An initializer that fails: every call says so, and a new call gives it another try.

Regression tests for a race between a new call and the process engine's manager thread
that had just failed the previous call with :class:`WorkerInitError`: the new call could
return ``None`` (its item "failed" with no error) instead of raising.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Iterator

import pytest

from pathos import WorkerInitError
from pathos._backend import JobQueue
from pathos._job import Batch, Job

from . import _cases
from .conftest import TIMEOUT, make_pool

HOLD_SECONDS = 5.0  # the manager is held at most this long (the test only waits for its own call)


def _on_manager_thread() -> bool:
    return threading.current_thread().name == "pathos-manager"


def test_a_call_made_while_the_manager_fails_the_last_one_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manager thread is held just before it takes the next batch, right after it
    failed the first call with the initializer's error, until the second call is
    submitted: that call's batch is the one it takes. It must fail with the
    initializer's error (or run with fresh workers, which fail the same way), never be
    "failed" with no error, which made ``pipe`` return None."""
    init_failed, submitted = threading.Event(), threading.Event()
    original_failed, original_pull = Job.batch_failed, JobQueue.pull

    def batch_failed(self: Job, batch: Batch, exc: BaseException) -> None:
        original_failed(self, batch, exc)
        if isinstance(exc, WorkerInitError):
            init_failed.set()

    def pull(self: JobQueue) -> Batch | None:
        if _on_manager_thread() and init_failed.is_set() and not submitted.is_set():
            submitted.wait(HOLD_SECONDS)  # a manager descheduled right here, on a busy machine
        return original_pull(self)

    monkeypatch.setattr(Job, "batch_failed", batch_failed)
    monkeypatch.setattr(JobQueue, "pull", pull)
    pool = make_pool("process", context="fork", initializer=_cases.init_raises)
    try:
        with pytest.raises(WorkerInitError):
            pool.map(_cases.square, range(4))
        result = pool.apipe(_cases.square, 2)
        submitted.set()
        with pytest.raises(WorkerInitError, match="initializer"):
            result.get(TIMEOUT)
    finally:
        submitted.set()
        pool.clear()


@pytest.fixture
def busy_machine() -> Iterator[None]:
    """This process on one core (where the system allows it), shared with two threads
    that spin, and the GIL handed over every microsecond: the manager thread and the
    caller are preempted at random points (as on a loaded machine, only more often)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity is not None and len(affinity) > 1:
        os.sched_setaffinity(0, {min(affinity)})
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    spinners = [threading.Thread(target=spin, name=f"test-spin-{i}", daemon=True) for i in range(2)]
    for t in spinners:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in spinners:
            t.join(TIMEOUT)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
        sys.setswitchinterval(interval)


@pytest.mark.slow
def test_every_call_on_a_failing_initializer_raises_under_load(busy_machine: Any) -> None:
    """The scenario of ``test_initializer_that_raises`` many times over on a busy core:
    before the fix, about one run in ten returned None from the second call under load."""
    deadline = time.monotonic() + 20.0  # bounded: as many runs as fit, at least a few
    runs = 0
    while runs < 60 and (runs < 5 or time.monotonic() < deadline):
        pool = make_pool("process", context="fork", initializer=_cases.init_raises)
        try:
            with pytest.raises(WorkerInitError):
                pool.map(_cases.square, range(4))
            for _ in range(6):  # each call says so; none hangs, none returns
                with pytest.raises(WorkerInitError):
                    pool.apipe(_cases.square, 2).get(TIMEOUT)
        finally:
            pool.clear()
        runs += 1
