"""Which globals of ``__main__`` a worker started by spawn or forkserver lacks.

Such a worker imports the main script again under the name ``__mp_main__``, without
running what is under ``if __name__ == "__main__":``. A function sent by value finds
its globals in that module (dill's default, as in pathos 0.3.5), so the globals the
script binds under the guard are missing there. The serializer sends those, and only
those, by value with the function (see :func:`needed_globals`); everything the script
binds at import time is the worker's own, as under fork (a module-level
``multiprocessing.Value`` stays the inherited object).

The names bound at import time come from the script's source (its AST), read once per
process. An interactive session or ``python -c`` has no script: every global the
function uses is then sent, when it can be pickled.
"""

from __future__ import annotations

import ast
import sys
import threading
import types
from typing import Any

__all__ = ["main_dict", "needed_globals"]

_lock = threading.Lock()
_bound: dict[str, frozenset[str] | None] = {}  # script path -> names bound at import


def main_dict() -> dict[str, Any] | None:
    """The ``__main__`` module's globals in this process, if there is one."""
    main = sys.modules.get("__main__")
    return getattr(main, "__dict__", None)


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    values = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and values == ["__main__"]


def _targets(node: ast.AST, found: set[str]) -> None:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            found.add(sub.id)


def _bound_at_import(body: list[ast.stmt], found: set[str]) -> None:
    """Collect the names that the statements bind when the module is imported."""
    for node in body:
        if isinstance(node, ast.If) and _is_main_guard(node.test):
            _bound_at_import(node.orelse, found)  # what runs as __mp_main__
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)):
            for item in getattr(node, "items", []):
                if item.optional_vars is not None:
                    _targets(item.optional_vars, found)
            if isinstance(node, (ast.For, ast.AsyncFor)):
                _targets(node.target, found)
            for field in ("body", "orelse", "finalbody"):
                _bound_at_import(getattr(node, field, []), found)
            for handler in getattr(node, "handlers", []):
                if handler.name:
                    found.add(handler.name)
                _bound_at_import(handler.body, found)
        else:
            _targets(node, found)


def _import_time_names(main: dict[str, Any]) -> frozenset[str] | None:
    """Names the main script binds at import time; None when there is no script."""
    path = main.get("__file__")
    if not isinstance(path, str):
        return None
    with _lock:
        if path in _bound:
            return _bound[path]
    try:
        with open(path, encoding="utf-8") as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError, ValueError):
        names = None
    else:
        found: set[str] = set()
        _bound_at_import(tree.body, found)
        names = frozenset(found)
    with _lock:
        _bound[path] = names
    return names


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
    sent by value) uses and that a re-imported main script would not bind.

    Functions reachable through closure cells and defaults are followed, so a lambda
    that calls a nested helper brings the helper's globals too.
    """
    main = main_dict()
    if main is None:
        return {}
    at_import = _import_time_names(main)
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
    return {n: main[n] for n in sorted(names - dunder) if n in main and (at_import is None or n not in at_import)}


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True
