"""The functions the workloads run in worker processes.

They live in a module of their own (not ``__main__``) so every library, including the
ones that pickle functions by reference, can send them to a worker.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: the cold-start child imports
if TYPE_CHECKING:  # this module before its clock starts, and typing would be a free import
    from typing import Any, Callable


def inc(x: int) -> int:
    """The tiny task: next to no work, so the library's own cost is all that shows."""
    return x + 1


def closure_over(offset: int) -> Callable[[int], int]:
    """A lambda closing over a local variable: what plain pickle cannot send."""
    return lambda x: x + offset


def spin(iterations: int) -> int:
    """A pure-Python loop holding the GIL, for the CPU-bound workloads."""
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def first_item(a: Any) -> float:
    """Read one element of a large array, so the cost is moving the argument."""
    return float(a[0])


def full_array(i: int, size: int) -> Any:
    """A large array as the result, so the cost is moving the result back."""
    import numpy as np

    return np.full(size, i, dtype=np.float64)
