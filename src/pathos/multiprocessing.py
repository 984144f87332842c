"""pathos's process pool: ``ProcessPool``, also known as ``ProcessingPool``.

(Named after the standard library module, as in pathos; it does not shadow it.)
"""

from ._stdpool import _ProcessPool as _ProcessPool
from ._stdpool import _ThreadPool as ThreadPool  # noqa: F401 - pathos exposes the raw thread pool here
from .pools import ProcessPool as ProcessPool
from .threading import ThreadPool as ThreadingPool  # noqa: F401 - pathos's name for the thread pool

ProcessingPool = ProcessPool

__all__ = ["ProcessPool", "_ProcessPool"]
