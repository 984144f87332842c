"""Deprecated name of :mod:`pathos.serial`, kept for old code."""

from .serial import PythonSerial as PythonSerial
from .serial import SerialPool as SerialPool

__STATE = SerialPool.__state__

__all__ = ["PythonSerial"]
