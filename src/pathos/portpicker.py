"""Find free TCP ports on this machine (pathos 0.3.5's ``pathos.portpicker``).

    >>> from pathos.portpicker import portnumber, randomport
    >>> next_port = portnumber(20000, 21000)
    >>> a, b = next_port(), next_port()    # a random free port, then the next free one
    >>> port = randomport()                # one free port in 1024..65535

From a shell: ``portpicker`` or ``python -m pathos.portpicker`` prints a free port.
A port is free if a socket can be bound to it now; another program may take it before
you do, so bind it soon.
"""

from __future__ import annotations

import builtins
import random
import socket
from typing import Callable

__all__ = ["is_free", "main", "portnumber", "randomport"]


def is_free(port: int) -> bool:
    """True if a TCP socket can be bound to ``port`` on every interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def portnumber(min: int = 0, max: int = 64 * 1024) -> Callable[[], int]:
    """A function that returns a free port in ``[min, max)`` each time it is called.

    The first call starts at a random port of the range; later calls go on from there
    in order, wrapping around at the end, so each port is offered at most once.

    Args:
        min: the lowest port (port 0, which means "any" to the OS, is skipped).
        max: one past the highest port.

    Returns:
        A callable that raises ``RuntimeError('Range exhausted')`` once every port of
        the range has been tried.
    """
    low, high = builtins.max(min, 1), builtins.min(max, 65536)  # min, max: pathos's names
    if low >= high:
        raise ValueError(f"the port range [{min}, {max}) holds no usable port")
    size = high - low
    state = {"start": random.randrange(size), "tried": 0}

    def next_port() -> int:
        while state["tried"] < size:
            port = low + (state["start"] + state["tried"]) % size
            state["tried"] += 1
            if is_free(port):
                return port
        raise RuntimeError("Range exhausted")

    return next_port


def randomport(min: int = 1024, max: int = 65536) -> int:
    """A free port in ``[min, max)``, picked at random.

    Raises:
        RuntimeError: no port of the range is free.
    """
    return portnumber(min, max)()


def main() -> None:
    """Print a free port (the ``portpicker`` command)."""
    print(randomport())


if __name__ == "__main__":
    main()
