"""Fixtures shared by the suite: one pool of each kind, and a leak check."""

from __future__ import annotations

import importlib.util
import itertools
import os
from typing import Any, Iterator

import pytest

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


@pytest.fixture(params=POOL_KINDS)
def pool(request: pytest.FixtureRequest) -> Iterator[Any]:
    p = make_pool(request.param)
    yield p
    p.terminate()
    p.clear()


@pytest.fixture(params=[k for k in POOL_KINDS if k != "serial"])
def parallel_pool(request: pytest.FixtureRequest) -> Iterator[Any]:
    p = make_pool(request.param)
    yield p
    p.terminate()
    p.clear()


def children() -> list[Any]:
    psutil = pytest.importorskip("psutil")
    return [c for c in psutil.Process(os.getpid()).children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
