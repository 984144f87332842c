"""Every public name of pathos 0.3.5 imports from ours, with a signature that accepts every
call 0.3.5's accepts.

The list (tests/data/pathos_0_3_5_api.json) was generated once from the real pathos 0.3.5
by scripts/pathos_035_api.py; nothing here needs pathos 0.3.5 installed. Entries marked
``"owner": "ssh"`` (the remote-execution modules, issue 10 item 5) are skipped, with that
reason, only while their module does not exist in this tree.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

API = json.loads((Path(__file__).parent / "data" / "pathos_0_3_5_api.json").read_text())
MODULES: dict[str, Any] = API["modules"]

# (name, method) pairs of 0.3.5 whose signatures are implementation details, not our API.
_PPFT_ADAPTER = (
    "0.3.5's adapter of a ppft task; ours is the AsyncResult every pool returns (get, wait, ready "
    "and successful are compared)"
)
NOT_COMPARED = {
    ("_ProcessPool", "Process"): "multiprocess's hook that starts a worker process",
    ("Pool", "Process"): "multiprocess's hook that starts a worker process",
    ("ProcessPool", "Process"): "multiprocess's hook that starts a worker process",
    ("ApplyResult", None): _PPFT_ADAPTER,
    ("ApplyResult", "finalize"): _PPFT_ADAPTER,
    ("ApplyResult", "__call__"): _PPFT_ADAPTER,
    ("MapResult", None): _PPFT_ADAPTER,
    ("MapResult", "finalize"): _PPFT_ADAPTER,
    ("MapResult", "queue"): _PPFT_ADAPTER,
    ("MapResult", "__call__"): _PPFT_ADAPTER,
}
# Defaults that differ only in spelling: 0.3.5's mutable default vs our None.
SAME_DEFAULT = {("{}", "None"), ("[]", "None"), ("()", "None")}


def _ssh_missing(module: str, name: str | None = None) -> str | None:
    """The skip reason for an entry of the ssh branch whose module is not here yet."""
    target = module
    if name is not None:
        entry = MODULES[module]["names"][name]
        if entry.get("owner") != "ssh":
            return None
        target = entry.get("module") or {
            "SSH_Launcher": "pathos.secure",
            "SCP_Launcher": "pathos.secure",
            "SSH_Tunnel": "pathos.secure",
        }.get(name, module)
    elif MODULES[module].get("owner") != "ssh":
        return None
    if target == "pathos.__main__":
        target = "pathos.core"  # ours exists (the pathos command); 0.3.5's re-exported pathos.core
    top = ".".join(target.split(".")[:2])
    if importlib.util.find_spec(top) is None:
        return f"{top} is built on the ssh branch (issue 10 item 5); tested once merged"
    return None


def _their_params(text: str) -> list[tuple[str, str, str | None]]:
    """``(name, kind, default source)`` for a signature string of 0.3.5."""
    args = ast.parse(f"def f{text}: pass").body[0].args  # type: ignore[attr-defined]
    out: list[tuple[str, str, str | None]] = []
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults):
        out.append((arg.arg, "positional", None if default is None else ast.unparse(default)))
    if args.vararg:
        out.append((args.vararg.arg, "*", None))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        out.append((arg.arg, "keyword", None if default is None else ast.unparse(default)))
    if args.kwarg:
        out.append((args.kwarg.arg, "**", None))
    return out


def _same_default(theirs: str, ours: Any) -> bool:
    if (theirs, repr(ours)) in SAME_DEFAULT:
        return True
    try:
        return bool(ast.literal_eval(theirs) == ours)
    except ValueError:
        return True  # not a literal (a function, a module constant): not compared


def incompatibility(theirs_text: str, ours_obj: Any) -> str | None:
    """Why a call that 0.3.5's signature accepts would fail on ours, or None."""
    try:
        ours = inspect.signature(ours_obj)
    except (TypeError, ValueError):
        return None  # a builtin without a signature: nothing to compare
    params = list(ours.parameters.values())
    kinds = {p.kind for p in params}
    var_pos = inspect.Parameter.VAR_POSITIONAL in kinds
    var_kw = inspect.Parameter.VAR_KEYWORD in kinds
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    used: set[str] = set()
    index = 0
    for name, kind, default in _their_params(theirs_text):
        if kind == "*":
            if not var_pos:
                return f"0.3.5 takes *{name}; ours {ours} does not"
        elif kind == "**":
            if not var_kw:
                return f"0.3.5 takes **{name}; ours {ours} does not"
        elif kind == "positional":
            if index < len(positional):
                mine = positional[index]
                if mine.name != name and not var_kw:
                    return f"parameter {index} is {name!r} in 0.3.5, {mine.name!r} in ours {ours}"
                if default is not None:
                    if mine.default is mine.empty:
                        return f"{name!r} has a default in 0.3.5, not in ours {ours}"
                    if not _same_default(default, mine.default):
                        return f"{name!r} defaults to {default} in 0.3.5, {mine.default!r} in ours"
                used.add(mine.name)
            elif not var_pos:
                return f"0.3.5 takes {name!r} as parameter {index}; ours {ours} does not"
            index += 1
        elif name not in ours.parameters and not var_kw:
            return f"0.3.5 takes the keyword {name!r}; ours {ours} does not"
        else:
            used.add(name)
    for p in params:
        required = p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        if required and p.name not in used:
            return f"ours {ours} requires {p.name!r}, which 0.3.5 does not"
    return None


def _entries(kind: str | None = None) -> list[Any]:
    params = []
    for module, info in sorted(MODULES.items()):
        for name, entry in sorted(info["names"].items()):
            if kind is None or entry.get("kind") == kind:
                params.append(pytest.param(module, name, id=f"{module}:{name}"))
    return params


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module: str) -> None:
    reason = _ssh_missing(module)
    if reason:
        pytest.skip(reason)
    if module == "pathos.__main__":
        pytest.skip("pathos.__main__ runs the command line when imported; its names are checked with pathos.core")
    importlib.import_module(module)


@pytest.mark.parametrize(("module", "name"), _entries())
def test_every_name_imports(module: str, name: str) -> None:
    reason = _ssh_missing(module) or _ssh_missing(module, name)
    if reason:
        pytest.skip(reason)
    if module == "pathos.__main__":
        module = "pathos.core"  # 0.3.5's `python -m pathos` re-exports pathos.core's functions
        if name not in MODULES[module]["names"]:
            pytest.skip(f"{name} of pathos.__main__ comes from pathos.hosts: checked there")
    entry = MODULES[module]["names"][name]
    namespace: dict[str, Any] = {}
    exec(f"from {module} import {name} as obj", namespace)  # the migrating user's import
    obj = namespace["obj"]
    kind = entry["kind"]
    if kind == "module":
        assert isinstance(obj, types.ModuleType), f"{module}.{name} should be a module, got {obj!r}"
        if entry["module"].startswith("pathos"):
            # `import pathos.pp` rebinds pathos.pp to that module, in 0.3.5 too
            assert obj is sys.modules[entry["module"]] or obj.__name__ == f"{module}.{name}"
        elif entry["module"] == "multiprocess":
            assert obj.__name__ == "multiprocess"
    elif kind == "class":
        assert isinstance(obj, type), f"{module}.{name} should be a class (0.3.5 subclasses it), got {obj!r}"
        if entry.get("exception"):
            assert issubclass(obj, BaseException)
    elif kind == "function":
        assert callable(obj), f"{module}.{name} should be callable, got {obj!r}"
    else:
        assert type(obj).__name__ == entry["type"], f"{module}.{name}: {type(obj).__name__}, 0.3.5 has {entry['type']}"


def _signature_params() -> list[Any]:
    params = []
    for module, info in sorted(MODULES.items()):
        for name, entry in sorted(info["names"].items()):
            if entry.get("signature"):
                params.append(pytest.param(module, name, None, id=f"{module}:{name}"))
            for method, sig in sorted((entry.get("methods") or {}).items()):
                if sig:
                    params.append(pytest.param(module, name, method, id=f"{module}:{name}.{method}"))
    return params


@pytest.mark.parametrize(("module", "name", "method"), _signature_params())
def test_signatures_accept_every_035_call(module: str, name: str, method: str | None) -> None:
    reason = _ssh_missing(module) or _ssh_missing(module, name)
    if reason:
        pytest.skip(reason)
    if module == "pathos.__main__":
        pytest.skip("checked on pathos.core and pathos.hosts, where these functions live")
    if (name, method) in NOT_COMPARED:
        pytest.skip(NOT_COMPARED[(name, method)])
    entry = MODULES[module]["names"][name]
    if entry.get("origin", "").startswith("ppft"):
        pytest.skip("ppft's own class: ours exists (without ppft it says how to get it), its API is ppft's")
    obj = getattr(importlib.import_module(module), name)
    sig = entry["signature"] if method is None else entry["methods"][method]
    if method is not None:
        obj = getattr(obj, method)
    problem = incompatibility(sig, obj)
    assert problem is None, f"{module}.{name}{'.' + method if method else ''}: {problem}"


@pytest.mark.parametrize("module", [m for m, info in sorted(MODULES.items()) if "__all__" in info])
def test_star_import_gives_every_035_name(module: str) -> None:
    reason = _ssh_missing(module)
    if reason:
        pytest.skip(reason)
    namespace: dict[str, Any] = {}
    exec(f"from {module} import *", namespace)
    missing = set(MODULES[module]["__all__"]) - set(namespace)
    assert not missing, f"`from {module} import *` lacks {sorted(missing)}"


def test_the_checker_itself() -> None:
    def a(f, *args, **kwds):  # type: ignore[no-untyped-def]
        pass

    def b(f, *args):  # type: ignore[no-untyped-def]
        pass

    def c(x, y=1):  # type: ignore[no-untyped-def]
        pass

    assert incompatibility("(f, *args, **kwds)", a) is None
    assert "**kwds" in (incompatibility("(f, *args, **kwds)", b) or "")
    assert incompatibility("(x, y=1)", c) is None
    assert "defaults" in (incompatibility("(x, y=2)", c) or "")
    assert "requires" in (incompatibility("(x)", lambda x, z: 0) or "")
    same = incompatibility("(module='random', new=False, seed='!')", lambda module="random", new=False, seed="!": 0)
    assert same is None
