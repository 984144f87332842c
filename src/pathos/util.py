"""Small helpers of pathos 0.3.5's remote half: text/bytes conversion, tracebacks, fork.

    >>> from pathos.util import _b, _str
    >>> _str(_b("hello"))
    'hello'

``spawn`` and ``spawn2`` fork this process and connect parent and child with pipes; they
are what :mod:`pathos.xmlrpc` uses to run a request in a child. Fork only from a
single-threaded process (a thread holding a lock at fork time leaves it held forever in
the child).
"""

from __future__ import annotations

import io
import os
import traceback
from typing import Any, BinaryIO, Callable, TypeVar

__all__ = ["_b", "_str", "print_exc_info", "spawn", "spawn2"]

T = TypeVar("T")


def _str(byte: Any, codec: str | bool | None = None) -> Any:
    """``byte`` decoded with ``codec`` (default ``'ascii'``); anything else unchanged.

    ``codec=False`` returns ``byte`` as it is, and so does a value without ``decode``.
    """
    if codec is False or not hasattr(byte, "decode"):
        return byte
    return byte.decode(codec if isinstance(codec, str) else "ascii")


def _b(string: Any, codec: str | bool | None = None) -> Any:
    """``string`` encoded with ``codec`` (default ``'ascii'``); anything else unchanged.

    ``codec=False`` returns ``string`` as it is, and so does a value without ``encode``.
    """
    if codec is False or not hasattr(string, "encode"):
        return string
    return string.encode(codec if isinstance(codec, str) else "ascii")


def print_exc_info() -> str:
    """The traceback of the exception being handled, as a string (safe from any thread)."""
    out = io.StringIO()
    traceback.print_exc(file=out)
    return out.getvalue()


def spawn(onParent: Callable[[int, BinaryIO], T], onChild: Callable[[int, BinaryIO], T]) -> T:
    """Fork, with a pipe from the child to the parent.

    The parent calls ``onParent(child_pid, fromchild)``; the child calls
    ``onChild(own_pid, toparent)`` (``toparent`` is unbuffered). Each returns what its
    callback returns; the child should end with ``os._exit``.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_fd)
        return onParent(pid, os.fdopen(read_fd, "rb"))
    os.close(read_fd)
    return onChild(os.getpid(), os.fdopen(write_fd, "wb", 0))


def spawn2(
    onParent: Callable[[int, BinaryIO, BinaryIO], T],
    onChild: Callable[[int, BinaryIO, BinaryIO], T],
) -> T:
    """Fork, with a pipe each way between parent and child.

    The parent calls ``onParent(child_pid, fromchild, tochild)``; the child calls
    ``onChild(own_pid, fromparent, toparent)`` (the writing ends are unbuffered).
    """
    down_read, down_write = os.pipe()  # parent -> child
    up_read, up_write = os.pipe()  # child -> parent
    pid = os.fork()
    if pid > 0:
        os.close(down_read)
        os.close(up_write)
        return onParent(pid, os.fdopen(up_read, "rb"), os.fdopen(down_write, "wb", 0))
    os.close(down_write)
    os.close(up_read)
    return onChild(os.getpid(), os.fdopen(down_read, "rb"), os.fdopen(up_write, "wb", 0))
