"""Deprecated (as in pathos 0.3.5): ``ppmap`` and ``pp_map``, parallel ``map`` functions
from Parallel Python's days. Use :mod:`pathos.pools` in new code.

They run on our pools: a local :class:`~pathos.pools.ProcessPool`, or a
:class:`~pathos.pools.ParallelPool` (Dask) when ``servers=`` names remote schedulers.
``ppServer`` is ppft's ``Server`` (a stand-in saying how to install ppft if it is not).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from .parallel import print_stats as print_stats
from .parallel import stats as stats
from .pools import ParallelPool, ProcessPool

__all__ = ["pp_map", "ppmap", "print_stats", "stats"]

_IGNORED = ("nnodes", "nodes", "launcher", "mapper", "queue", "timelimit", "scheduler")


def _pool(processes: int | None, servers: Any = ()) -> Any:
    if servers and servers not in ("*", ("*",)):
        return ParallelPool(processes, servers=servers)
    return ProcessPool(processes)


def ppmap(
    processes: int | None, function: Callable[..., Any], sequence: Iterable[Any], *sequences: Iterable[Any]
) -> Iterator[Any]:
    """``map(function, sequence, *sequences)`` on ``processes`` workers, as a generator.

    Args:
        processes: number of local workers; None for one per core.

    Returns:
        A generator of the results, in order; the work runs while you consume it.
    """
    results = _pool(processes).imap(function, sequence, *sequences)
    return (result for result in results)


def pp_map(function: Callable[..., Any], sequence: Iterable[Any], *args: Iterable[Any], **kwds: Any) -> list[Any]:
    """``map(function, sequence, *args)`` in parallel, as a list.

    Args:
        ncpus: number of local workers (default: one per core).
        servers: Dask scheduler addresses (``"host:port"``) to run on as well; this needs
            the dask extra (``pip install -e ".[dask]"`` in this project's checkout).
    """
    ncpus = kwds.pop("ncpus", None)
    servers = kwds.pop("servers", ())
    for name in _IGNORED:
        kwds.pop(name, None)
    return list(_pool(ncpus, servers).imap(function, sequence, *args))


def __getattr__(name: str) -> Any:
    if name in ("__STATE",):
        return ParallelPool.__state__  # pathos's name for the pool cache, looked up each time
    if name == "ppServer":
        from .helpers._ppft import server_class

        return server_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
