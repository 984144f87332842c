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

from typing import TYPE_CHECKING, Any

from . import helpers as helpers
from . import maps as maps
from . import multiprocessing as multiprocessing
from . import parallel as parallel
from . import pools as pools
from . import serial as serial
from . import threading as threading
from .__info__ import __author__ as __author__
from .__info__ import __license__ as __license__
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

if TYPE_CHECKING:
    import logging

python = serial  # pathos's old module aliases
pp = parallel

# pathos 0.3.5 imported these with the package; here each is imported on first use of
# ``pathos.<name>`` (the remote-execution modules pull in subprocess and socket code
# most programs never need). The launcher aliases name classes of ``pathos.secure``.
_LAZY_MODULES = (
    "abstract_launcher",
    "connection",
    "core",
    "hosts",
    "secure",
    "selector",
    "server",
    "util",
    "xmlrpc",
)
_LAZY_ALIASES = {
    "SSH_Launcher": ("secure", "Pipe"),
    "SCP_Launcher": ("secure", "Copier"),
    "SSH_Tunnel": ("secure", "Tunnel"),
}


def _submodule(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        # hasattr() and inspect expect AttributeError for a name that is not there.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from exc


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return _submodule(name)
    if name in _LAZY_ALIASES:
        module, attr = _LAZY_ALIASES[name]
        return getattr(_submodule(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_ALIASES))


def logger(level: int | None = None, handler: logging.Handler | None = None, **kwds: Any) -> logging.Logger:
    """The ``pathos`` logger (or ``name=``), with a stream handler if it has none.

    Args:
        level: a logging level to set, if given.
        handler: a handler that replaces the logger's handlers (so calling this
            twice with the same handler does not add it twice).
        name: the logger's name (default ``"pathos"``).
    """
    import logging  # here, not at the top: most programs never call this, and logging is slow to import

    log = logging.getLogger(kwds.get("name", "pathos"))
    if handler is not None:
        log.handlers = [handler]  # as pathos: the given handler replaces the others
    elif not log.handlers:
        log.addHandler(logging.StreamHandler())
    if level is not None:
        log.setLevel(level)
    return log


def license() -> None:
    """Print the license."""
    print(__license__)


def citation() -> None:
    """Print how to cite pathos."""
    print(
        "If you use pathos in published work, please cite the pathos project:\n"
        "  M.M. McKerns, L. Strand, T. Sullivan, A. Fang, M.A.G. Aivazis,\n"
        '  "Building a framework for predictive science", Proceedings of the\n'
        "  10th Python in Science Conference, 2011.\n"
        "This package is an independent implementation of its public API."
    )
