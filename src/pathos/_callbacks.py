"""The callback thread: where user code that the engine triggers runs.

Progress reports (``progress=`` callables and tqdm bars), the callbacks of the futures
that ``submit()`` returns, the stdlib-API ``callback=``/``error_callback=``, and the
clean-up of result iterators dropped without ``close()`` all run here, on one daemon
thread per process, in the order they were posted:

::

    engine threads (dispatch,         SimpleQueue            "pathos-callbacks"
    workers' results), finalizers --- post(fn, *args) --->   fn(*args); errors go to
                                                              logging.getLogger("pathos")

So a slow or raising callback never stalls or kills an engine thread, no user code runs
under an engine lock, and a finalizer never takes a lock: :func:`post` only appends to a
``queue.SimpleQueue``, whose ``put`` is safe in ``__del__`` and signal handlers (it takes
no lock that Python code could hold). The thread is started by :func:`start`, from the
ordinary code that creates something which will post later (a result iterator, a future,
a progress report), never from a finalizer. A child made by ``fork`` gets a new, empty
queue and starts its own thread when it needs one.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import TYPE_CHECKING, Any, Callable

from . import _lazy

if TYPE_CHECKING:
    import logging

    log: logging.Logger

__all__ = ["log", "on_callback_thread", "post", "start"]

_queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()


def start() -> None:
    """Make sure the callback thread runs (call it where taking a lock is allowed)."""
    global _thread
    if _thread is not None:
        return
    with _start_lock:
        if _thread is None:
            thread = threading.Thread(target=_run, args=(_queue,), name="pathos-callbacks", daemon=True)
            thread.start()
            _thread = thread


def post(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on the callback thread, soon; never blocks, takes no lock.

    Safe under any lock and in finalizers. Its caller must have called :func:`start`
    once before (every path that posts does, where it may block briefly).
    """
    _queue.put((fn, args))


def on_callback_thread() -> bool:
    """True if the caller is the callback thread (which must never wait for itself)."""
    thread = _thread
    return thread is not None and thread.ident == threading.get_ident()


def _run(work: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
    while True:
        fn, args = work.get()
        try:
            fn(*args)
        except BaseException:  # even SystemExit: this thread must outlive every callback
            _logger().exception("a callback raised; the pool carries on: %r", fn)
        del fn, args  # drop references before waiting: a finalizer may post again


def _after_fork_in_child() -> None:
    # The parent's thread does not exist here, and its lock may have been held at the
    # fork; what the parent had queued belongs to the parent's jobs.
    global _queue, _thread, _start_lock
    _queue = queue.SimpleQueue()
    _thread = None
    _start_lock = threading.Lock()


def _logger() -> logging.Logger:
    # The "pathos" logger, made on first use: logging (with the re, traceback and string
    # modules it imports) is a good part of a bare ``import pathos``, and it is needed only
    # once something goes wrong. The first use may be on an engine thread or the callback
    # thread, hence _lazy.load (safe against a fork meanwhile).
    logger: logging.Logger = _lazy.load("logging").getLogger("pathos")
    globals()["log"] = logger  # later ``_callbacks.log`` finds it without __getattr__
    return logger


def __getattr__(name: str) -> Any:
    if name == "log":  # ``_callbacks.log``, as other modules write it
        return _logger()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
