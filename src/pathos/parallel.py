"""pathos's cluster pool: ``ParallelPool`` (also ``ParallelPythonPool``), on Dask
distributed, and ``stats()``."""

from __future__ import annotations

from typing import Any

from .pools import ParallelPool as ParallelPool

ParallelPythonPool = ParallelPool

__all__ = ["ParallelPool", "stats"]


def stats(pool: Any = None) -> str:
    """A report of the cluster behind ``pool``, or of every cached ``ParallelPool``.

    Returns:
        The text of the report; ``"Stats are not available; no active servers.\\n"``
        when there is no cluster.
    """
    if pool is not None:
        backend = ParallelPool.__state__.get(pool._id)
        backends = [backend] if backend is not None else []
    else:
        backends = list(ParallelPool.__state__.values())
    reports = [b.report() for b in backends if hasattr(b, "report")]
    reports = [r for r in reports if r]
    if not reports:
        return "Stats are not available; no active servers.\n"
    return "\n".join(reports)
