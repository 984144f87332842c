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
complete, and an import waits until a fork in flight is done.

Other libraries' fork hooks take locks of their own, and an import may need one of them:
logging's hook takes the logging lock, which importing dill (it makes its logger) and
importing logging itself take. Fork hooks run newest first, so a fork that ran logging's
hook before ours would hold the logging lock while it waits for an import that waits for
that lock. Hence :func:`load` imports logging first (every module loaded here imports it
anyway) and then registers our hook again, so ours runs before logging's. Any cycle left
(through a hook we do not know of, or in the instant between logging registering its
hook and ours being registered again) ends after :data:`FORK_WAIT_SECONDS`: the fork then
goes ahead without waiting, as it would without this module.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType

__all__ = ["FORK_WAIT_SECONDS", "load"]

FORK_WAIT_SECONDS = 2.0  # far longer than any import deferred here (dill takes ~30 ms)

_lock = threading.RLock()  # held while a deferred import runs, and across each fork
_forking = threading.local()  # .active: in a fork's hooks; .held: that fork took _lock
# Whether our hooks run before logging's: true once registered again after it, or at
# once if logging was imported before this module.
_hooked_after_logging = "logging" in sys.modules


def load(name: str) -> ModuleType:
    """``importlib.import_module(name)``, safe to call on any thread (see the module docstring)."""
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
        return module  # imported and complete: the common case, no lock
    with _lock:
        importlib.import_module("logging")
        _hook_after_logging()
        return importlib.import_module(name)


def _hook_after_logging() -> None:
    global _hooked_after_logging
    if not _hooked_after_logging and hasattr(os, "register_at_fork"):
        _hooked_after_logging = True
        _register()


def _before_fork() -> None:
    if getattr(_forking, "active", False):
        return  # registered twice: the first call of this fork did the work
    _forking.active = True
    _forking.held = _lock.acquire(timeout=FORK_WAIT_SECONDS)


def _after_fork_in_parent() -> None:
    if getattr(_forking, "active", False):
        _forking.active = False
        if _forking.held:
            _forking.held = False
            _lock.release()


def _after_fork_in_child() -> None:
    # The child has only the forking thread, and no import of another thread goes on.
    global _lock
    if getattr(_forking, "active", False):
        _lock = threading.RLock()
        _forking.active = _forking.held = False


def _register() -> None:
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


if hasattr(os, "register_at_fork"):
    _register()
