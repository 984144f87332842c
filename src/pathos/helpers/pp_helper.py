"""The result types of :class:`~pathos.parallel.ParallelPool` (pathos's ``pp_helper``
names): the same :class:`~pathos.AsyncResult` as every other pool."""

from .._results import AsyncResult

ApplyResult = AsyncResult
MapResult = AsyncResult

__all__ = ["ApplyResult", "MapResult"]
