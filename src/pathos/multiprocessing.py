"""pathos's process pool: ``ProcessPool``, also known as ``ProcessingPool``.

(Named after the standard library module, as in pathos; it does not shadow it.)

Also here, as in pathos 0.3.5: ``Pool`` (the standard library's ``Pool`` API, with
dill's reach, on our engine), ``cpu_count``, ``freeze_support``, ``star`` and the pool
cache ``__STATE`` (the very dict ``ProcessPool.__state__``).
"""

import sys
from typing import Any

from ._pool import AbstractWorkerPool as AbstractWorkerPool
from ._stdpool import _ProcessPool as _ProcessPool
from ._stdpool import _ThreadPool as ThreadPool  # noqa: F401 - pathos exposes the raw thread pool here
from .helpers import cpu_count as cpu_count
from .helpers import freeze_support as freeze_support
from .helpers.mp_helper import starargs as star  # noqa: F401 - pathos 0.3.5 exported it here
from .pools import ProcessPool as ProcessPool
from .threading import ThreadPool as ThreadingPool  # noqa: F401 - pathos's name for the thread pool

ProcessingPool = ProcessPool
Pool = _ProcessPool
# pathos 0.3.5 silenced multiprocess's DeprecationWarnings on Python >= 3.12.0a7.
OLD312a7 = sys.hexversion >= 0x30C00A7

__all__ = ["ProcessPool", "_ProcessPool"]


def __getattr__(name: str) -> Any:
    if name in ("__STATE", "_ProcessPool__STATE"):
        return ProcessPool.__state__  # pathos's name for the pool cache, looked up each time
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
