"""Imports deferred to first use, made safe against a ``fork`` from another thread.

``import pathos`` stays cheap because heavy modules are imported only when first used:
dill when something first needs it (a lambda, a class of ``__main__``), logging when
something is first logged, tqdm when a bar is first asked for, asyncio by the code that
awaits. Most of those first uses happen on the caller's thread, where a plain local
``import`` is right. Some happen on a background thread: the process pool's manager
thread serializes the first lambda (dill), the callback thread logs the first raising
callback (logging). That is a hazard if another thread forks meanwhile (another pool's
manager starting a worker, or the program's own ``os.fork``): the child inherits the
module half executed, with its import lock held by a thread that does not exist there,
so importing it in the child fails or hangs.

:func:`load` closes that window: it imports under a lock that every fork of this process
takes first (``os.register_at_fork``), so a fork waits until an import in flight is
complete, and an import waits until a fork in flight is done. The wait at a fork is
bounded (:data:`FORK_WAIT_SECONDS`): should the importing thread ever need a lock that
the forking thread already holds (another library's fork hook takes its own lock), the
fork goes ahead after that long instead of deadlocking.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType

__all__ = ["FORK_WAIT_SECONDS", "load"]

FORK_WAIT_SECONDS = 5.0

_lock = threading.RLock()  # held while a deferred import runs, and across each fork
_forking = threading.local()  # .held: this thread's fork took the lock


def load(name: str) -> ModuleType:
    """``importlib.import_module(name)``, safe to call on any thread (see the module docstring)."""
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
        return module  # imported and complete: the common case, no lock
    with _lock:
        return importlib.import_module(name)


def _before_fork() -> None:
    _forking.held = _lock.acquire(timeout=FORK_WAIT_SECONDS)


def _after_fork_in_parent() -> None:
    if getattr(_forking, "held", False):
        _forking.held = False
        _lock.release()


def _after_fork_in_child() -> None:
    # The child has only the forking thread; no import of another thread goes on here.
    global _lock
    _lock = threading.RLock()
    _forking.held = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
