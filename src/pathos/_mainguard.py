"""The globals of ``__main__`` that a function sent by value may not find where it runs.

A function sent by value finds its globals in the receiving process's ``__main__``
(dill's default, as in pathos 0.3.5). A forked worker has the parent's; a spawned or
forkserver worker imported the script again without what is under
``if __name__ == "__main__":``; a Dask worker has none of it. So the serializer sends
the ``__main__`` globals a function uses along with it (see :func:`needed_globals`),
each one only if it pickles, and the receiver uses a sent value only for a name its own
``__main__`` lacks: a forked worker keeps what it inherited (a module-level
``multiprocessing.Value`` stays the shared object), as with pathos 0.3.5.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["main_dict", "needed_globals"]


def main_dict() -> dict[str, Any] | None:
    """The ``__main__`` module's globals in this process, if there is one."""
    main = sys.modules.get("__main__")
    return getattr(main, "__dict__", None)


def _code_names(code: types.CodeType, found: set[str]) -> None:
    found.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_names(const, found)


def _functions_of(obj: Any) -> list[types.FunctionType]:
    """The functions whose globals a worker will look up when ``obj`` runs there."""
    if isinstance(obj, types.FunctionType):
        return [obj]
    functions: list[types.FunctionType] = []
    for value in vars(obj).values() if isinstance(obj, type) else ():
        value = getattr(value, "__func__", value)  # staticmethod, classmethod
        if isinstance(value, property):
            functions.extend(f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType))
        elif isinstance(value, types.FunctionType):
            functions.append(value)
    return functions


def needed_globals(obj: Any) -> dict[str, Any]:
    """The globals of ``__main__`` that ``obj`` (a function or class of ``__main__``,
    sent by value) uses.

    Functions reachable through closure cells and defaults are followed, so a lambda
    that calls a nested helper brings the helper's globals too.
    """
    main = main_dict()
    if main is None:
        return {}
    names: set[str] = set()
    pending, seen = _functions_of(obj), set()
    while pending:
        fn = pending.pop()
        if id(fn) in seen or fn.__globals__ is not main:
            continue
        seen.add(id(fn))
        _code_names(fn.__code__, names)
        inner = [c.cell_contents for c in fn.__closure__ or () if _filled(c)] + list(fn.__defaults__ or ())
        pending.extend(x for x in inner if isinstance(x, types.FunctionType))
    dunder = {n for n in names if n.startswith("__") and n.endswith("__")}
    return {n: main[n] for n in sorted(names - dunder) if n in main}


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True
