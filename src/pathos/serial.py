"""pathos's serial pool: ``SerialPool``, also known as ``PythonSerial``."""

from .pools import SerialPool as SerialPool

PythonSerial = SerialPool

__all__ = ["SerialPool"]
