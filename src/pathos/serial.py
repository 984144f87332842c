"""pathos's serial pool: ``SerialPool``, also known as ``PythonSerial``."""

from typing import Any

from ._pool import AbstractWorkerPool as AbstractWorkerPool
from .pools import SerialPool as SerialPool

PythonSerial = SerialPool

__all__ = ["SerialPool"]


def __getattr__(name: str) -> Any:
    if name in ("__STATE", "_SerialPool__STATE"):
        return SerialPool.__state__  # pathos's name for the pool cache, looked up each time
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
