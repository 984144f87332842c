"""Stand-ins for ppft (Parallel Python), which pathos 0.3.5 re-exported and we do not use.

Our ``ParallelPool`` runs on Dask, so ppft is not a dependency. Old code that names
ppft's objects through pathos (``pathos.helpers.parallelpython``, ``pp_helper.Server``,
``pp_map.ppServer``) still imports: it gets the real ppft when that is installed, and
otherwise stand-ins that say, when used, how to install it.
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["load", "server_class"]

_HINT = (
    "ppft (Parallel Python) is not installed: pathos's ParallelPool runs on Dask "
    '(install the dask extra of this pathos: pip install -e ".[dask]" in its checkout); '
    "for ppft itself, pip install ppft"
)


class _MissingPpft(types.ModuleType):
    """A module whose every attribute says that ppft is missing."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(f"cannot use ppft.{name}: {_HINT}")


class _MissingServer:
    """ppft's ``Server``, when ppft is not installed: fails when created, saying why."""

    def __init__(self, *args: Any, **kwds: Any) -> None:
        raise ImportError(_HINT)


def load() -> types.ModuleType:
    """The ppft module, or a stand-in that explains how to install it."""
    try:
        import ppft
    except ImportError:
        return _MissingPpft("ppft", _HINT)
    module: types.ModuleType = ppft
    return module


def server_class() -> type:
    """ppft's ``Server`` class, or a stand-in that explains how to install ppft."""
    module = load()
    if isinstance(module, _MissingPpft):
        return _MissingServer
    server: type = module.Server
    return server
