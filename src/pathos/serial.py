"""pathos's serial pool: ``SerialPool``, also known as ``PythonSerial``."""

from ._pool import AbstractWorkerPool as AbstractWorkerPool
from .pools import SerialPool as SerialPool

PythonSerial = SerialPool
__STATE = _SerialPool__STATE = SerialPool.__state__  # pathos's (always empty) cache

__all__ = ["SerialPool"]
