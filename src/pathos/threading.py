"""pathos's thread pool: ``ThreadPool``."""

from ._stdpool import _ThreadPool as _ThreadPool
from .pools import ThreadPool as ThreadPool

__all__ = ["ThreadPool", "_ThreadPool"]
