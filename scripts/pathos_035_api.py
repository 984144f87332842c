"""Write tests/data/pathos_0_3_5_api.json: every module of the real pathos 0.3.5, its
public names, what each is, and the signatures of its functions, classes and methods.

Run it ONCE, with a Python that has the real pathos 0.3.5 installed, never in this
project's environment (the registry's ``pathos`` is the old package of the same name)::

    python3 -m venv /tmp/p035 && /tmp/p035/bin/pip install pathos==0.3.5
    /tmp/p035/bin/python scripts/pathos_035_api.py > tests/data/pathos_0_3_5_api.json

tests/test_api_035.py reads the file; nothing at run time depends on pathos 0.3.5.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
import types
from typing import Any

# Underscore names that are part of 0.3.5's public surface all the same: code in the
# wild imports them (the pool caches, the stdlib-API pools, the str/bytes helpers).
KEPT_PRIVATE = {
    "_ProcessPool", "_ThreadPool", "_clear", "__STATE", "_ProcessPool__STATE", "_ThreadPool__STATE",
    "_SerialPool__STATE", "_ParallelPool__STATE", "_str", "_b", "__version__", "__author__",
    "__license__",
}
# Modules the ssh engineer builds (issue 10 item 5): the test skips them until they exist.
SSH_MODULES = ("pathos.__main__", "pathos.connection", "pathos.core", "pathos.hosts", "pathos.secure",
               "pathos.selector", "pathos.server", "pathos.util", "pathos.xmlrpc")
SSH_NAMES = {"pathos": {"SSH_Launcher", "SCP_Launcher", "SSH_Tunnel", "connection", "core", "hosts", "secure",
                        "selector", "server", "util", "xmlrpc"}}
METHOD_HOMES = ("pathos", "multiprocess")


def signature(obj: Any) -> str | None:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return None


def methods(cls: type) -> dict[str, str | None]:
    found = {}
    for name, value in inspect.getmembers(cls):
        if name.startswith("_") and name not in ("__call__", "__enter__", "__exit__"):
            continue
        home = next((k for k in cls.__mro__ if name in vars(k)), None)
        if home is None or not home.__module__.startswith(METHOD_HOMES):
            continue
        if callable(value) and not isinstance(value, type):
            found[name] = signature(value)
    return found


def describe(module: types.ModuleType, name: str, value: Any) -> dict[str, Any] | None:
    if isinstance(value, types.ModuleType):
        if value.__name__.startswith("pathos.tests"):
            return None  # 0.3.5's own test suite
        if not value.__name__.startswith("pathos") and name not in ("mp", "parallelpython", "pp"):
            return None  # "os", "sys", ...: the module's own imports, not its API
        return {"kind": "module", "module": value.__name__}
    origin = getattr(value, "__module__", None) or ""
    entry: dict[str, Any] = {"origin": origin}
    if isinstance(value, type):
        entry.update(kind="class", signature=signature(value), methods=methods(value),
                     exception=issubclass(value, BaseException))
    elif callable(value):
        entry.update(kind="function", signature=signature(value))
    else:
        entry.update(kind="value", type=type(value).__name__)
    return entry


def public(module: types.ModuleType) -> list[str]:
    names = set(getattr(module, "__all__", ()))
    for name in dir(module):
        if name in KEPT_PRIVATE or not name.startswith("_"):
            names.add(name)
    return sorted(names)


def main() -> None:
    import pathos

    assert pathos.__version__ == "0.3.5", pathos.__version__
    found = pkgutil.walk_packages(pathos.__path__, "pathos.")
    modules = ["pathos", *sorted(m.name for m in found if not m.name.startswith("pathos.tests"))]
    out: dict[str, Any] = {}
    for modname in modules:
        module = importlib.import_module(modname)
        names = {}
        for name in public(module):
            entry = describe(module, name, getattr(module, name))
            if entry is not None:
                if modname.startswith(SSH_MODULES) or name in SSH_NAMES.get(modname, ()):
                    entry["owner"] = "ssh"
                names[name] = entry
        info: dict[str, Any] = {"names": names}
        if hasattr(module, "__all__"):
            info["__all__"] = list(module.__all__)
        if modname.startswith(SSH_MODULES):
            info["owner"] = "ssh"
        out[modname] = info
    meta = {"pathos": pathos.__version__, "python": sys.version.split()[0],
            "generated_by": "scripts/pathos_035_api.py"}
    json.dump({"_meta": meta, "modules": out}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()
    import os

    os._exit(0)  # pathos.mp_map made pools at import; do not wait for them


if __name__ == "__main__":
    main()
