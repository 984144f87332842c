"""Validation of the options the pools take, with messages that say what to do."""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
from typing import Any

__all__ = ["cpu_count", "default_context", "parse_context", "parse_memory"]

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def cpu_count() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_context() -> str:
    """The start method used when none is given: ``fork`` on Linux (fast, and
    ``__main__`` objects are there already), ``spawn`` on macOS and Windows, where
    forking is unsafe (as CPython decided)."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


def parse_context(context: Any) -> Any:
    """A multiprocessing context from a start method name, a context, or None."""
    if context is None:
        return multiprocessing.get_context(default_context())
    if isinstance(context, str):
        methods = multiprocessing.get_all_start_methods()
        if context not in methods:
            raise ValueError(f"context must be one of {methods} or a multiprocessing context, got {context!r}")
        return multiprocessing.get_context(context)
    if hasattr(context, "Process") and hasattr(context, "Pipe"):
        return context
    raise TypeError(f"context must be a start method name or a multiprocessing context, got {context!r}")


def parse_memory(value: Any) -> int | None:
    """Bytes from an int or a string such as ``"512MB"`` or ``"2GiB"``; None stays None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9.]+)\s*([KMG]I?B|B)?\s*", value.upper())
        if match:
            return int(float(match.group(1)) * _UNITS[match.group(2) or ""])
    raise ValueError(f"max_worker_memory must be a positive number of bytes or a size like '2GB', got {value!r}")
