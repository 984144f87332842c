"""Deprecated name of :mod:`pathos.serial`, kept for old code."""

from typing import Any

from .serial import PythonSerial as PythonSerial
from .serial import SerialPool as SerialPool

__all__ = ["PythonSerial"]


def __getattr__(name: str) -> Any:
    if name in ("__STATE",):
        return SerialPool.__state__  # pathos's name for the pool cache, looked up each time
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
