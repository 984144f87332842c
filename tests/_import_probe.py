"""A function for worker processes to run: is a module loaded there? (Importable by name,
so sending it needs no dill.)"""

from __future__ import annotations

import sys


def loaded(name: str) -> bool:
    """True if ``name`` is in this process's ``sys.modules``."""
    return name in sys.modules
