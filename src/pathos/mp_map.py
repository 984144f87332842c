"""Deprecated (as in pathos 0.3.5): ``mp_map``, a parallel ``map`` on the process or
thread pool. Use :mod:`pathos.pools` in new code.

``mp`` and ``tp`` are the default ``ProcessPool()`` and ``ThreadPool()`` (pathos made them
when this module was imported; here they are made on first use).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .helpers import cpu_count as cpu_count
from .pools import ProcessPool as ProcessPool
from .pools import ThreadPool as ThreadPool

__all__ = ["mp_map"]

# Keywords of other pathos mappers that mp_map accepted and ignored.
_IGNORED = ("nnodes", "nodes", "launcher", "mapper", "queue", "timelimit", "scheduler", "ncpus", "servers")
_VERBS = {"blocking": "map", "unordered": "uimap", "non-blocking": "imap", "ordered": "imap"}


def mp_map(function: Callable[..., Any], sequence: Iterable[Any], *args: Iterable[Any], **kwds: Any) -> Any:
    """``map(function, sequence, *args)`` on a process pool (or a thread pool).

    Args:
        function: the function to call on each item.
        sequence: the first iterable; ``*args`` are zipped with it as builtin ``map`` does.
        nproc: number of workers (default: one per core).
        type: ``"blocking"`` (a list, the default), ``"non-blocking"`` or ``"ordered"``
            (an iterator in order), ``"unordered"`` (an iterator in completion order).
        threads: True to use threads instead of processes.
        chunksize: passed on to the pool's verb.

    Returns:
        A list, or an iterator for the non-blocking types.
    """
    nproc = kwds.pop("nproc", None)
    kind = kwds.pop("type", "blocking")
    threads = kwds.pop("threads", False)
    for name in _IGNORED:
        kwds.pop(name, None)
    pool: Any = (ThreadPool if threads else ProcessPool)(nproc)
    verb = _VERBS.get(kind, "map")
    return getattr(pool, verb)(function, sequence, *args, **kwds)


def __getattr__(name: str) -> Any:
    if name in ("__STATE",):
        return ProcessPool.__state__  # pathos's name for the pool cache, looked up each time
    if name == "mp":
        return ProcessPool()
    if name == "tp":
        return ThreadPool()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
