"""Fixtures shared by the suite: one pool of each kind, and a leak check."""

from __future__ import annotations

import itertools
import os
from typing import Any, Iterator

import pytest

from pathos.pools import ProcessPool, SerialPool, ThreadPool

TIMEOUT = 30  # seconds: reached only if something hangs

_ids = itertools.count()
KINDS = {"serial": SerialPool, "thread": ThreadPool, "process": ProcessPool}


def make_pool(kind: str, nodes: int = 2, **kwds: Any) -> Any:
    """A pool with an id of its own, so tests never share cached workers."""
    cls = KINDS[kind]
    if cls is SerialPool:
        return cls(**kwds)
    return cls(nodes, id=f"test-{next(_ids)}", **kwds)


@pytest.fixture(params=list(KINDS))
def pool(request: pytest.FixtureRequest) -> Iterator[Any]:
    p = make_pool(request.param)
    yield p
    p.terminate()
    p.clear()


@pytest.fixture(params=["thread", "process"])
def parallel_pool(request: pytest.FixtureRequest) -> Iterator[Any]:
    p = make_pool(request.param)
    yield p
    p.terminate()
    p.clear()


def children() -> list[Any]:
    psutil = pytest.importorskip("psutil")
    return [c for c in psutil.Process(os.getpid()).children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
