"""An event loop over ``select()``: call handlers when files are ready or nothing happens.

    >>> import os
    >>> from pathos.selector import Selector
    >>> r, w = os.pipe()
    >>> os.write(w, b"x")
    1
    >>> def on_read(selector, fd):
    ...     print(os.read(fd, 1))
    ...     selector.state = False        # stop watching
    >>> sel = Selector()
    >>> sel.notifyOnReadReady(r, on_read)
    >>> sel.watch(timeout=1.0)
    b'x'

A file handler is called as ``handler(selector, fd)`` and an idle handler (called when
``timeout`` seconds pass with no event) as ``handler(selector)``; a handler that returns
a false value is removed, one that returns true stays. ``watch()`` runs until
``selector.state`` is set to False or no handler is left. This is pathos 0.3.5's
``Selector``, used by :mod:`pathos.server` and :mod:`pathos.xmlrpc`.
"""

from __future__ import annotations

import logging
import select
from typing import Any, Callable

__all__ = ["Selector"]

FdHandler = Callable[["Selector", Any], Any]
Handler = Callable[["Selector"], Any]


class Selector:
    """Watches files and calls the handlers registered for them."""

    _TIMEOUT = 0.5
    _debug = logging.getLogger("pathos.selector")

    def __init__(self) -> None:
        self.state = True  # False ends watch() after the current round
        self._timeout: float = self._TIMEOUT
        self._input: dict[Any, list[FdHandler]] = {}
        self._output: dict[Any, list[FdHandler]] = {}
        self._exception: dict[Any, list[FdHandler]] = {}
        self._idle: list[Handler] = []
        self._interrupt: list[Handler] = []

    def notifyOnReadReady(self, fd: Any, handler: FdHandler) -> None:
        """Call ``handler(selector, fd)`` when ``fd`` (a file, socket or descriptor) can be read."""
        self._input.setdefault(fd, []).append(handler)

    def notifyOnWriteReady(self, fd: Any, handler: FdHandler) -> None:
        """Call ``handler(selector, fd)`` when ``fd`` can be written."""
        self._output.setdefault(fd, []).append(handler)

    def notifyOnException(self, fd: Any, handler: FdHandler) -> None:
        """Call ``handler(selector, fd)`` when ``fd`` has an exceptional condition."""
        self._exception.setdefault(fd, []).append(handler)

    def notifyOnInterrupt(self, handler: Handler) -> None:
        """Call ``handler(selector)`` if ``watch()`` is interrupted (Ctrl-C, an exception)."""
        self._interrupt.append(handler)

    def notifyWhenIdle(self, handler: Handler) -> None:
        """Call ``handler(selector)`` each time ``timeout`` seconds pass without an event."""
        self._idle.append(handler)

    def watch(self, timeout: float | None = None) -> None:
        """Dispatch events to the handlers until ``state`` is False or none is left.

        Args:
            timeout: seconds without an event before the idle handlers run (kept for
                later calls; default 0.5).
        """
        if timeout:
            self._timeout = timeout
        try:
            self._watch()
        except BaseException:
            for handler in list(self._interrupt):
                handler(self)
            raise

    def _watch(self) -> None:
        while self.state:
            if not (self._input or self._output or self._exception or self._idle):
                self._debug.info("no handler left; the selector stops")
                return
            reads, writes, errors = select.select(
                list(self._input), list(self._output), list(self._exception), self._timeout
            )
            if not (reads or writes or errors):
                self._idle[:] = [h for h in list(self._idle) if h(self)]
                continue
            self._dispatch(self._exception, errors)
            self._dispatch(self._output, writes)
            self._dispatch(self._input, reads)

    def _dispatch(self, handlers: dict[Any, list[FdHandler]], ready: list[Any]) -> None:
        for fd in ready:
            kept = [h for h in list(handlers.get(fd, ())) if h(self, fd)]
            if kept:
                handlers[fd] = kept
            else:
                handlers.pop(fd, None)
