"""The base of pathos's servers: a :class:`~pathos.selector.Selector` loop (pathos 0.3.5).

A server installs handlers on its selector in ``activate()`` and runs it with
``serve(timeout)``; ``deactivate()`` (from a handler, or another thread) ends the loop.
:class:`pathos.xmlrpc.XMLRPCServer` is one. To run Python functions on other machines,
use :class:`~pathos.pools.ParallelPool` with Dask (see :func:`pathos.core.serve`).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .selector import Selector

__all__ = ["Server"]


class Server:
    """A server driven by a selector."""

    def __init__(self) -> None:
        self._selector: Optional[Selector] = None

    def selector(self) -> Optional[Selector]:
        """The selector installed by ``activate()`` (None before)."""
        return self._selector

    def activate(
        self, onTimeout: Optional[Callable[[Selector], Any]] = None, selector: Optional[Selector] = None
    ) -> None:
        """Install ``selector`` (default a new one), with ``onTimeout`` as an idle handler."""
        if selector is None:
            selector = Selector()
        if onTimeout is not None:
            selector.notifyWhenIdle(onTimeout)
        self._selector = selector

    def deactivate(self) -> None:
        """Stop the selector loop after its current round."""
        if self._selector is not None:
            self._selector.state = False

    def serve(self, timeout: float) -> None:
        """Run the selector loop; idle handlers run every ``timeout`` seconds without events."""
        if self._selector is None:
            raise RuntimeError("the server is not active: call activate() before serve()")
        self._selector.watch(timeout)
