"""Fixtures shared by the suite: one pool of each kind, and a leak check."""

from __future__ import annotations

import importlib.util
import itertools
import os
import time
from typing import Any, Iterator

import pytest

from pathos._backend import RUN
from pathos.pools import ParallelPool, ProcessPool, SerialPool, ThreadPool

TIMEOUT = 30  # seconds: reached only if something hangs

_ids = itertools.count()
KINDS = {"serial": SerialPool, "thread": ThreadPool, "process": ProcessPool, "parallel": ParallelPool}
HAVE_DASK = importlib.util.find_spec("distributed") is not None
# "parallel" is ParallelPool on a local Dask cluster (a scheduler here, two worker processes).
POOL_KINDS = [
    pytest.param(kind, marks=[pytest.mark.dask, pytest.mark.skipif(not HAVE_DASK, reason="needs pathos[dask]")])
    if kind == "parallel"
    else kind
    for kind in KINDS
]


def make_pool(kind: str, nodes: int = 2, **kwds: Any) -> Any:
    """A pool with an id of its own, so tests never share cached workers."""
    cls = KINDS[kind]
    if cls is SerialPool:
        return cls(**kwds)
    return cls(nodes, id=f"test-{next(_ids)}", **kwds)


SHARED_PARALLEL_ID = "test-parallel-shared"
IDLE_SECONDS = 10  # a shared cluster not idle this long after a test is replaced


def fixture_pool(kind: str) -> Any:
    """The ``pool`` fixtures' pool: for ``parallel``, one local Dask cluster shared by tests.

    Starting a local cluster takes seconds, so the fixtures reuse one (a cached pool id)
    while it stays healthy and idle; a test that closes, restarts or breaks it, or that
    leaves work running, gets it replaced by a fresh one (see :func:`release_pool`).
    """
    if kind == "parallel":
        return ParallelPool(2, id=SHARED_PARALLEL_ID)
    return make_pool(kind)


def release_pool(pool: Any) -> None:
    """End a fixture's pool, unless it is the shared cluster and still fit for the next test."""
    if pool._id == SHARED_PARALLEL_ID and _reusable(pool):
        return
    pool.terminate()
    pool.clear()


def _reusable(pool: Any) -> bool:
    """A running, unbroken cluster with no work left: none queued, none in any worker thread.

    Dask cannot stop a cancelled or timed-out task, so worker threads are counted too.
    """
    backend = ParallelPool.__state__.get(pool._id)
    if backend is None or backend.state != RUN:
        return False
    deadline = time.monotonic() + IDLE_SECONDS
    while time.monotonic() < deadline:
        if backend._broken is not None or backend._client is None:
            return False
        if not (backend._running or backend._held or backend._queue):
            try:
                busy = backend._client.run(_executing, callback_timeout=IDLE_SECONDS)
            except Exception:
                return False
            if not any(busy.values()):
                return True
        time.sleep(0.05)
    return False


def _executing(dask_worker: Any) -> int:
    return int(dask_worker.state.executing_count)


@pytest.fixture(scope="session", autouse=True)
def _shared_cluster_ends_with_the_session() -> Iterator[None]:
    yield
    backend = ParallelPool.__state__.pop(SHARED_PARALLEL_ID, None)
    if backend is not None:
        backend.terminate()


@pytest.fixture(params=POOL_KINDS)
def pool(request: pytest.FixtureRequest) -> Iterator[Any]:
    p = fixture_pool(request.param)
    yield p
    release_pool(p)


@pytest.fixture(params=[k for k in POOL_KINDS if k != "serial"])
def parallel_pool(request: pytest.FixtureRequest) -> Iterator[Any]:
    p = fixture_pool(request.param)
    yield p
    release_pool(p)


def children() -> list[Any]:
    psutil = pytest.importorskip("psutil")
    return [c for c in psutil.Process(os.getpid()).children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
