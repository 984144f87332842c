"""Deprecated name of :mod:`pathos.parallel`, kept for old code."""

from typing import Any

from .parallel import ParallelPool as ParallelPool
from .parallel import ParallelPythonPool as ParallelPythonPool
from .parallel import stats as stats

__all__ = ["ParallelPythonPool", "stats"]


def __getattr__(name: str) -> Any:
    if name in ("__STATE",):
        return ParallelPool.__state__  # pathos's name for the pool cache, looked up each time
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
