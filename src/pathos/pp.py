"""Deprecated name of :mod:`pathos.parallel`, kept for old code."""

from .parallel import ParallelPool as ParallelPool
from .parallel import ParallelPythonPool as ParallelPythonPool
from .parallel import stats as stats

__STATE = ParallelPool.__state__

__all__ = ["ParallelPythonPool", "stats"]
