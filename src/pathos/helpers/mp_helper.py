"""Small helpers for functions run in pools: ``starargs``, ``random_seed``, ``random_state``."""

from __future__ import annotations

import os
import random
import time
from typing import Any, Callable

__all__ = ["random_seed", "random_state", "starargs"]


def starargs(f: Callable[..., Any]) -> Callable[[Any], Any]:
    """``f`` taking its arguments as one tuple: ``starargs(f)((a, b)) == f(a, b)``."""

    def star(args: Any) -> Any:
        return f(*args)

    star.__doc__ = f"{f.__doc__ or ''}\n\n(called with its arguments as one tuple)".strip()
    star.__name__ = getattr(f, "__name__", "star")
    return star


def random_seed(s: Any = None) -> None:
    """Seed ``random`` and, if installed, ``numpy.random`` (call it in each worker)."""
    random.seed(s)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(s)


def random_state(module: str = "random", new: bool = False, seed: Any = "!") -> Any:
    """The random number generator of ``module`` (``"random"`` or ``"numpy.random"``).

    Args:
        module: the module whose generator to return.
        new: return a new, independent generator instead of the module's.
        seed: ``"!"`` leaves the seed alone, None reseeds from the OS, ``"*"`` seeds
            with this process id and the time (distinct in every worker), anything else
            is the seed.
    """
    import importlib

    rng_module = importlib.import_module(module)
    if seed == "*":
        seed = os.getpid() + int(time.time() * 1e6) % (2**31)
    if module == "random":
        rng: Any = random.Random() if new else rng_module
    else:
        rng = rng_module.RandomState() if new else rng_module
    if seed != "!":
        rng.seed(seed)
    return rng
