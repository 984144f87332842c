"""pathos: run ordinary Python functions in parallel, on threads, processes or a cluster.

    >>> from pathos.multiprocessing import ProcessingPool as Pool
    >>> Pool(nodes=4).map(pow, [1, 2, 3], [2, 2, 2])
    [1, 4, 9]

The pools (:class:`ProcessPool`, :class:`ThreadPool`, :class:`SerialPool`,
:class:`ParallelPool`) share one interface: ``map``, ``imap``, ``uimap``, ``amap``,
``pipe`` and ``apipe``. This is a from-scratch implementation of the public API of
pathos 0.3.5, with a process engine that never hangs.
"""

from __future__ import annotations

import logging
from typing import Any

from . import helpers as helpers
from . import maps as maps
from . import multiprocessing as multiprocessing
from . import parallel as parallel
from . import pools as pools
from . import serial as serial
from . import threading as threading
from ._errors import ClusterError as ClusterError
from ._errors import PathosError as PathosError
from ._errors import PoolClosedError as PoolClosedError
from ._errors import RemoteError as RemoteError
from ._errors import RemoteTraceback as RemoteTraceback
from ._errors import ResultTimeoutError as ResultTimeoutError
from ._errors import SerializationError as SerializationError
from ._errors import TaskTimeoutError as TaskTimeoutError
from ._errors import WorkerCrashedError as WorkerCrashedError
from ._errors import WorkerInitError as WorkerInitError
from ._pool import PoolRunningError as PoolRunningError
from ._results import AsyncResult as AsyncResult
from ._results import ResultIterator as ResultIterator
from ._version import __version__ as __version__
from .pools import ParallelPool as ParallelPool
from .pools import ProcessPool as ProcessPool
from .pools import SerialPool as SerialPool
from .pools import ThreadPool as ThreadPool

python = serial  # pathos's old module aliases
pp = parallel

# The remote-execution modules load on first use, so `import pathos` stays fast.
_LAZY_MODULES = ("connection", "core", "hosts", "secure", "selector", "server", "util", "xmlrpc")
_LAZY_ALIASES = {"SSH_Launcher": "Pipe", "SCP_Launcher": "Copier", "SSH_Tunnel": "Tunnel"}  # in pathos.secure


def __getattr__(name: str) -> Any:
    """``pathos.core``, ``pathos.secure``... and ``SSH_Launcher``/``SCP_Launcher``/``SSH_Tunnel``, on first use."""
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_ALIASES:
        return getattr(importlib.import_module(f"{__name__}.secure"), _LAZY_ALIASES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncResult",
    "ClusterError",
    "ParallelPool",
    "PathosError",
    "PoolClosedError",
    "PoolRunningError",
    "ProcessPool",
    "RemoteError",
    "RemoteTraceback",
    "ResultIterator",
    "ResultTimeoutError",
    "SerialPool",
    "SerializationError",
    "TaskTimeoutError",
    "ThreadPool",
    "WorkerCrashedError",
    "WorkerInitError",
    "__version__",
    "citation",
    "helpers",
    "license",
    "logger",
    "maps",
    "multiprocessing",
    "parallel",
    "pools",
    "serial",
    "threading",
]


def logger(level: int | None = None, handler: logging.Handler | None = None, **kwds: Any) -> logging.Logger:
    """The ``pathos`` logger (or ``name=``), with a stream handler if it has none.

    Args:
        level: a logging level to set, if given.
        handler: a handler to add instead of the default stream handler.
        name: the logger's name (default ``"pathos"``).
    """
    log = logging.getLogger(kwds.get("name", "pathos"))
    if handler is not None:
        log.addHandler(handler)
    elif not log.handlers:
        log.addHandler(logging.StreamHandler())
    if level is not None:
        log.setLevel(level)
    return log


def license() -> None:
    """Print the license."""
    print("pathos is distributed under the 3-clause BSD license.")


def citation() -> None:
    """Print how to cite pathos."""
    print(
        "If you use pathos in published work, please cite the pathos project:\n"
        "  M.M. McKerns, L. Strand, T. Sullivan, A. Fang, M.A.G. Aivazis,\n"
        '  "Building a framework for predictive science", Proceedings of the\n'
        "  10th Python in Science Conference, 2011.\n"
        "This package is an independent implementation of its public API."
    )
