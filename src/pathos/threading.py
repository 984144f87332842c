"""pathos's thread pool: ``ThreadPool``, plus ``cpu_count``, ``star`` and the pool cache
``__STATE`` (the very dict ``ThreadPool.__state__``) as in pathos 0.3.5."""

from ._pool import AbstractWorkerPool as AbstractWorkerPool
from ._stdpool import _ThreadPool as _ThreadPool
from .helpers import cpu_count as cpu_count
from .helpers.mp_helper import starargs as star  # noqa: F401 - pathos 0.3.5 exported it here
from .pools import ThreadPool as ThreadPool

__STATE = _ThreadPool__STATE = ThreadPool.__state__

__all__ = ["ThreadPool", "_ThreadPool"]
