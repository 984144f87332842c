"""Deprecated name of :mod:`pathos.parallel`, kept for old code."""

from .parallel import ParallelPythonPool as ParallelPythonPool
from .parallel import stats as stats

__all__ = ["ParallelPythonPool", "stats"]
