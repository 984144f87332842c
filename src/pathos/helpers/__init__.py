"""pathos's helpers: the multiprocessing module and pools, ``cpu_count``,
``freeze_support``, ``shutdown``, and the ``mp_helper`` functions."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing import freeze_support as freeze_support

from .._config import cpu_count as cpu_count
from .._stdpool import _ProcessPool as ProcessPool
from .._stdpool import _ThreadPool as ThreadPool
from ..pools import _clear as shutdown
from . import mp_helper as mp_helper
from . import pp_helper as pp_helper

__all__ = ["ProcessPool", "ThreadPool", "cpu_count", "freeze_support", "mp", "mp_helper", "pp_helper", "shutdown"]
