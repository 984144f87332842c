"""pathos's process pool: ``ProcessPool``, also known as ``ProcessingPool``.

(Named after the standard library module, as in pathos; it does not shadow it.)
"""

from ._stdpool import _ProcessPool as _ProcessPool
from .pools import ProcessPool as ProcessPool

ProcessingPool = ProcessPool

__all__ = ["ProcessPool", "_ProcessPool"]
