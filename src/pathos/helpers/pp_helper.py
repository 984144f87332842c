"""The result types of :class:`~pathos.parallel.ParallelPool` (pathos's ``pp_helper``
names): the same :class:`~pathos.AsyncResult` as every other pool, so ``isinstance``
checks against them hold for every pool's results.

``Server`` is ppft's server class, which pathos 0.3.5 re-exported: the real one when ppft
is installed, otherwise a stand-in that says how to install it (our ``ParallelPool`` runs
on Dask, not ppft).
"""

from __future__ import annotations

from multiprocessing import TimeoutError as TimeoutError
from typing import Any

from .._results import AsyncResult

ApplyResult = AsyncResult
MapResult = AsyncResult

__all__ = ["ApplyResult", "MapResult", "TimeoutError"]


def __getattr__(name: str) -> Any:
    if name == "Server":
        from ._ppft import server_class

        return server_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
