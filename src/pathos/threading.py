"""pathos's thread pool: ``ThreadPool``, plus ``cpu_count``, ``star`` and the pool cache
``__STATE`` (the very dict ``ThreadPool.__state__``) as in pathos 0.3.5."""

from typing import Any

from ._pool import AbstractWorkerPool as AbstractWorkerPool
from ._stdpool import _ThreadPool as _ThreadPool
from .helpers import cpu_count as cpu_count
from .helpers.mp_helper import starargs as star  # noqa: F401 - pathos 0.3.5 exported it here
from .pools import ThreadPool as ThreadPool

__all__ = ["ThreadPool", "_ThreadPool"]


def __getattr__(name: str) -> Any:
    if name in ("__STATE", "_ThreadPool__STATE"):
        return ThreadPool.__state__  # pathos's name for the pool cache, looked up each time
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
