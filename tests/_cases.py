"""Functions and classes the tests send to workers (importable by every start method)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def add(x: int, y: int = 0) -> int:
    return x + y


def square(x: int) -> int:
    return x * x


def pid(_: Any = None) -> int:
    return os.getpid()


def boom_on(bad: int) -> Any:
    def f(x: int) -> int:
        if x == bad:
            raise ValueError(f"bad item {x}")
        return x

    return f


def fail_at(x: int) -> int:
    if x == 3:
        raise KeyError(x)
    return x


def sleep_then(x: float) -> float:
    time.sleep(x)
    return x


def sleepy(x: int) -> int:
    if x == 2:
        time.sleep(60)
    return x


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


# -- crash cases: each kills or breaks its worker at a precise stage ---------------------


def sigkill_self(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def segfault(x: int) -> int:
    if x == 3:
        import ctypes
        import faulthandler

        # A forked worker inherits pytest's faulthandler, which would print a "Fatal
        # Python error" dump of this deliberate crash into a passing run's output.
        faulthandler.disable()
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return x


def exit_hard(x: int) -> int:
    if x == 3:
        os._exit(7)
    return x


class ErrorAtPickle:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle this")


class ErrorAtUnpickle:
    def __reduce__(self) -> Any:
        return (_raise_unpickle, ())


def _raise_unpickle() -> Any:
    raise RuntimeError("cannot unpickle this")


def return_unpicklable(x: int) -> Any:
    if x == 3:
        return ErrorAtPickle()
    return x


def return_bad_unpickle(x: int) -> Any:
    if x == 3:
        return ErrorAtUnpickle()
    return x


class UnpicklableError(Exception):
    # Two required arguments in __new__ and __init__: neither default unpickling nor
    # tblib's (which distributed installs for every exception class when it is imported)
    # can rebuild it.
    def __new__(cls, a: int, b: int) -> UnpicklableError:
        return super().__new__(cls, a, b)

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}-{b}")


def raise_unpicklable_error(x: int) -> int:
    if x == 3:
        raise UnpicklableError(1, 2)
    return x


def init_raises() -> None:
    raise RuntimeError("initializer failed")


class SlowToLoad:
    """An argument that takes ``seconds`` to unpickle (in the worker), then is quick to use."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __reduce__(self) -> Any:
        return (_load_slowly, (self.seconds,))


def _load_slowly(seconds: float) -> SlowToLoad:
    time.sleep(seconds)
    return SlowToLoad(seconds)


def seconds_of(x: SlowToLoad) -> float:
    return x.seconds


# -- the chaos suite's task: each item says what it does (tests/_chaos.py) ----------------

CHAOS_SLOW = 2.0  # seconds a "slow" item sleeps; chaos calls that have one use timeout=0.5
CHAOS_BIG = 1 << 21  # bytes of a "big" result: over the shared-memory threshold


class ChaosError(Exception):
    """What a chaos item that "raises" raises; ``args[0]`` is its position."""


def chaos_task(item: tuple[int, str, float, str | None]) -> Any:
    """Run one chaos item ``(position, action, pause, runs_dir)``.

    Every run appends a byte to ``runs_dir/<position>``, so a test can count how often an
    item ran (a finished item must never run again).
    """
    i, action, pause, runs = item
    if runs is not None:
        with open(os.path.join(runs, str(i)), "ab") as f:
            f.write(b"x")
    if pause:
        time.sleep(pause)
    if action == "raise":
        raise ChaosError(i)
    if action == "exit":
        os._exit(13)
    if action == "sysexit":
        raise SystemExit(i)
    if action == "slow":
        time.sleep(CHAOS_SLOW)
    if action == "big":
        return bytes([i % 256]) * CHAOS_BIG
    if action == "nested":
        return i * i + _nested_sum()
    return i * i


def _nested_sum() -> int:
    """Map on a new ProcessPool from inside a task (default id, as users write it)."""
    import threading

    from pathos.pools import ProcessPool

    # One worker process runs one task at a time, so the default id is what a user would
    # write; a thread pool runs several at once, so each thread takes its own id there.
    main = threading.current_thread() is threading.main_thread()
    pool_id = None if main else f"nested-{os.getpid()}-{threading.get_ident()}"
    kwds = {} if pool_id is None else {"id": pool_id}
    with ProcessPool(2, **kwds) as pool:
        return sum(pool.map(square, range(3)))
