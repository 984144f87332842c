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

        faulthandler.disable()  # workers inherit pytest's: no "Fatal Python error" dump in a passing run
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


# -- engine cases (tests/test_engine.py) -------------------------------------------------


def bytes_after(seconds: float, size: int) -> bytes:
    """Sleep, then return ``size`` bytes (in the pickle stream: bytes are never out of band)."""
    time.sleep(seconds)
    return b"x" * size


def logged(path: str, crash_at: int, how: str, pause: float = 0.0) -> Any:
    """A task that appends its item to ``path`` (a side effect), then crashes at ``crash_at``."""

    def task(x: int) -> int:
        with open(path, "a") as f:
            f.write(f"{x}\n")
        if pause:
            time.sleep(pause)
        if x == crash_at:
            if how == "exit":
                os._exit(3)
            if how == "segfault":
                import ctypes
                import faulthandler

                faulthandler.disable()  # no "Fatal Python error" dump in the test output
                ctypes.string_at(0)
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    return task


def exit_at_start() -> None:
    os._exit(5)


def fork_and_return(x: int) -> int:
    """Fork; the child returns from the task instead of exiting (a classic mistake)."""
    child = os.fork()
    if child == 0:
        return -1  # the child's value must never reach the parent
    os.waitpid(child, 0)
    return x


def record_fork_at(x: int, path: str, at: int) -> int:
    """Append ``x`` to ``path``; at item ``at``, fork, and the child returns from the task
    (so it is back in the worker's loop, where it must not run another item)."""
    with open(path, "a") as f:
        f.write(f"{x}\n")
    if x == at:
        child = os.fork()
        if child == 0:
            return -1
        os.waitpid(child, 0)
    return x


def fork_sleeper_then_die(x: int) -> int:
    """Fork a child that lives on for 20 s, then kill this worker."""
    if os.fork() == 0:
        time.sleep(20)
        os._exit(0)
    os.kill(os.getpid(), signal.SIGKILL)
    return x


def big_array_after(seconds: float) -> Any:
    """Sleep, then return a 64 MiB array (it travels through /dev/shm)."""
    import numpy as np

    time.sleep(seconds)
    return np.ones(8 << 20)


def slow_to_exit(x: int) -> int:
    """Leave a non-daemon thread behind: the worker takes a second to exit when stopped."""
    import threading

    threading.Thread(target=time.sleep, args=(1.0,), daemon=False).start()
    return x
