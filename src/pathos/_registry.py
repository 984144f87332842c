"""Every live backend of this process, so that none outlives the interpreter.

At interpreter exit (and when a worker process ends) every backend still running is
terminated: no worker process, thread or pipe is left behind. The hook is registered
after ``multiprocessing``'s own, so it runs first (``atexit`` is last-in, first-out),
before ``multiprocessing`` waits for its child processes.
"""

from __future__ import annotations

import atexit
import multiprocessing.util  # noqa: F401  (registers its exit hook before ours)
import os
import threading
import weakref
from typing import Any

__all__ = ["register", "shutdown_all"]

_live: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()


def register(backend: Any) -> None:
    """Track ``backend`` (anything with ``terminate()``) until it is collected."""
    with _lock:
        _live.add(backend)


def shutdown_all() -> None:
    """Terminate every live backend of this process."""
    with _lock:
        backends = list(_live)
    for backend in backends:
        try:
            backend.terminate()
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _forget_inherited() -> None:
    """In a forked child: the parent's pools are not ours to stop, and their locks may
    have been held by a thread that does not exist here."""
    global _live, _lock
    _live = weakref.WeakSet()
    _lock = threading.Lock()


atexit.register(shutdown_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)
