"""Small helpers for functions run in pools: ``starargs``, ``random_seed``, ``random_state``."""

from __future__ import annotations

import importlib
import os
import time
import types
from typing import Any, Callable

# ``random`` is imported inside the two functions that use it: this module loads with
# every ``import pathos``, and most programs never seed.

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
    import random

    random.seed(s)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(s)


def random_state(module: Any = "random", new: bool = False, seed: Any = "!") -> Any:
    """The random number generator of ``module``, optionally new and (re)seeded.

    Args:
        module: ``"random"`` (default), ``"numpy"`` (meaning ``numpy.random``), any
            module name, or a module object (``numpy`` itself means ``numpy.random``).
        new: return a new, independent generator (``random.Random()`` or
            ``numpy.random.RandomState()``) instead of the module's global one.
        seed: ``"!"`` leaves the seed alone, None reseeds from the OS, ``"*"`` seeds
            with this process id and the time (distinct in every worker), anything else
            is the seed.
    """
    if isinstance(module, types.ModuleType):
        rng_module: Any = _numpy_random() if module.__name__ == "numpy" else module
    elif module == "random":
        import random

        rng_module = random
    else:
        rng_module = importlib.import_module("numpy.random" if module == "numpy" else module)
    factory = getattr(rng_module, "RandomState", None) or rng_module.Random
    rng = factory() if new else rng_module
    if seed == "!":
        return rng
    if seed == "*":
        seed = (os.getpid() + int(time.time() * 1e6)) % 2**32  # numpy takes seeds below 2**32
    rng.seed(seed)
    return rng


def _numpy_random() -> Any:
    import numpy.random

    return numpy.random
