"""pathos's helpers: the stdlib-API pools, ``cpu_count``, ``freeze_support``, ``shutdown``,
the ``mp_helper`` functions, and ``mp``.

``mp`` is the `multiprocess <https://pypi.org/project/multiprocess/>`_ package, as in
pathos 0.3.5: the standard library's ``multiprocessing`` API (``mp.Pool``,
``mp.Process``, ``mp.Queue``, ``mp.Manager``...) serializing with dill, so lambdas and
closures work there too. It is imported on first use of ``mp``, so ``import pathos``
stays fast. Our own pools do not use it: they run on pathos's engine.
"""

from __future__ import annotations

from typing import Any

from .._config import cpu_count as cpu_count
from .._stdpool import _ProcessPool as ProcessPool
from .._stdpool import _ThreadPool as ThreadPool
from ..pools import _clear as shutdown
from . import mp_helper as mp_helper
from . import pp_helper as pp_helper

__all__ = [
    "ProcessPool",
    "ThreadPool",
    "cpu_count",
    "freeze_support",
    "mp",
    "mp_helper",
    "parallelpython",
    "pp_helper",
    "shutdown",
]


def freeze_support() -> None:
    """Let a frozen Windows executable start worker processes (a no-op elsewhere).

    Call it first thing under ``if __name__ == "__main__":``, as with multiprocessing.
    """
    import multiprocessing

    multiprocessing.freeze_support()


def __getattr__(name: str) -> Any:
    # Imported on first use: multiprocess and ppft cost time, and most programs never
    # touch them.
    if name == "mp":
        import multiprocess

        globals()["mp"] = multiprocess
        return multiprocess
    if name == "parallelpython":
        from ._ppft import load

        return load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
