"""Deprecated name of :mod:`pathos.serial`, kept for old code."""

from .serial import PythonSerial as PythonSerial

__all__ = ["PythonSerial"]
