"""pathos's cluster pool: ``ParallelPool`` (also ``ParallelPythonPool``), on Dask
distributed, and ``stats()``.

As in pathos 0.3.5, the pool cache is also reachable as ``__STATE``, and ``pp`` names
ppft (the real one if installed; else a stand-in saying how to install it).
"""

from __future__ import annotations

from typing import Any

from ._pool import AbstractWorkerPool as AbstractWorkerPool
from .helpers import cpu_count as cpu_count
from .helpers.pp_helper import ApplyResult as ApplyResult
from .helpers.pp_helper import MapResult as MapResult
from .pools import ParallelPool as ParallelPool

ParallelPythonPool = ParallelPool

__all__ = ["ParallelPool", "stats"]


def print_stats(servers: Any = None) -> None:
    """Print a report of each cluster in ``servers`` (default: every cached pool's).

    Args:
        servers: one backend of ``ParallelPool.__state__`` or several; None for all.
    """
    every = servers is None
    chosen = list(ParallelPool.__state__.values()) if every else servers
    try:
        backends = tuple(chosen)
    except TypeError:
        backends = (chosen,)
    reports = [b.report() for b in backends if hasattr(b, "report")]
    reports = [r for r in reports if r]
    if not reports:
        print(f"Stats are not available{'; no active' if every else ' for the requested'} servers.\n")
        return
    print("\n".join(reports))


def stats(pool: Any = None) -> str:
    """A report of the cluster behind ``pool``, or of every cached ``ParallelPool``.

    Returns:
        The text of the report; ``"Stats are not available; no active servers.\\n\\n"``
        when no pool has a cluster (pathos's wording).
    """
    import contextlib
    import io

    chosen = None if pool is None else ParallelPool.__state__.get(pool._id, ())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_stats(chosen)
    return out.getvalue()


def __getattr__(name: str) -> Any:
    if name in ("__STATE", "_ParallelPool__STATE"):
        return ParallelPool.__state__  # pathos's name for the pool cache, looked up each time
    if name == "pp":
        from .helpers._ppft import load

        return load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
