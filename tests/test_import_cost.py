"""``import pathos`` stays cheap: heavy modules are imported on first use, not with the package.

Each case runs in a fresh interpreter (a module once imported stays imported, so this
process cannot tell). Speed itself is measured by the ``import`` and ``start_cold``
benchmark workloads, never asserted here; these tests pin which modules are loaded when.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import pathos

from .conftest import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(pathos.__file__).resolve().parent.parent  # the pathos under test, in the children too

# Deferred to first use (see pathos._lazy and the modules that import these).
DEFERRED = (
    "asyncio",
    "concurrent.futures",
    "dask",
    "dill",
    "distributed",
    "hashlib",
    "logging",
    "logging.handlers",
    "multiprocess",
    "numpy",
    "random",
    "tqdm",
)

IMPORTS = (
    "import pathos",
    "import pathos.multiprocessing",
    "from pathos.pools import ProcessPool, ThreadPool",
    "import pathos.helpers, pathos.maps, pathos.parallel, pathos.serial, pathos.threading",
)


def run_fresh(code: str) -> Any:
    """Run ``code`` in a fresh interpreter (this tree's pathos and tests importable) and
    return the JSON object its last line of output prints."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(ROOT)]))
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _preloaded() -> list[str]:
    """The deferred modules a bare interpreter here already has (a site hook may import some)."""
    code = f"import json, sys; print(json.dumps([m for m in {DEFERRED!r} if m in sys.modules]))"
    found: list[str] = run_fresh(code)
    return found


@pytest.mark.parametrize("statement", IMPORTS)
def test_importing_pathos_loads_no_deferred_module(statement: str) -> None:
    preloaded = _preloaded()
    if preloaded:
        pytest.skip(f"this interpreter loads {preloaded} at start-up, before any pathos import")
    code = f"""
        import json, sys
        {statement}
        assert "pathos.pools" in sys.modules  # the pools really were imported
        print(json.dumps([m for m in {DEFERRED!r} if m in sys.modules]))
    """
    assert run_fresh(code) == []


# (what a program does, modules it must have loaded by then, modules it must not have)
FIRST_USES = [
    pytest.param(
        "ProcessPool(2, id='plain').map(abs, [-1, -2])",
        [],
        ["dill", "hashlib", "logging", "asyncio", "concurrent.futures", "tqdm"],
        id="process-map-of-an-importable-function",
    ),
    pytest.param("ProcessPool(2, id='lambda').map(lambda x: x + 1, [1])", ["dill"], [], id="process-map-of-a-lambda"),
    pytest.param(
        "class Point: pass\nProcessPool(2, id='cls').map(type, [Point()])",
        ["dill", "hashlib"],
        [],
        id="process-map-of-a-main-class",
    ),
    pytest.param("ThreadPool(2).map(abs, [-1], progress=True)", ["tqdm"], ["dill"], id="progress-bar"),
    pytest.param("ThreadPool(2).submit(abs, -1).result()", ["concurrent.futures"], ["asyncio"], id="submit"),
    pytest.param(
        "def boom(n): raise ValueError('progress callback fails')\nThreadPool(2).map(abs, [-1], progress=boom)",
        ["logging"],
        [],
        id="a-failing-callback-is-logged",
    ),
    pytest.param("pathos.logger()", ["logging"], [], id="pathos-logger"),
    pytest.param("pathos.helpers.mp_helper.random_seed(1)", ["random"], [], id="random-seed"),
]


@pytest.mark.parametrize(("use", "loaded", "absent"), FIRST_USES)
def test_a_deferred_module_is_imported_by_its_first_use(use: str, loaded: list[str], absent: list[str]) -> None:
    preloaded = _preloaded()
    if set(preloaded) & {*loaded, *absent}:
        pytest.skip(f"this interpreter loads {preloaded} at start-up")
    code = f"""
        import json, sys
        import pathos, pathos.helpers
        from pathos.pools import ProcessPool, ThreadPool
        before = [m for m in {[*loaded, *absent]!r} if m in sys.modules]
        {textwrap.indent(use, " " * 8).strip()}
        after = [m for m in {DEFERRED!r} if m in sys.modules]
        pathos.helpers.shutdown()
        print(json.dumps({{"before": before, "after": after}}))
    """
    result = run_fresh(code)
    assert result["before"] == []  # so what follows really was loaded by the use
    assert set(loaded) <= set(result["after"]), result
    assert not set(absent) & set(result["after"]), result


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_load_dill_only_for_what_needs_it(method: str) -> None:
    import multiprocessing

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    code = f"""
        import json, sys
        from pathos.pools import ProcessPool
        from tests._import_probe import loaded

        pool = ProcessPool(2, id="probe", context={method!r})
        plain = pool.map(loaded, ["dill"] * 4)
        parent_plain = "dill" in sys.modules
        values = pool.map(lambda x: x + 1, [1, 2, 3, 4])
        pool.terminate()
        pool.clear()
        print(json.dumps({{"plain": plain, "parent_plain": parent_plain, "values": values,
                          "parent": "dill" in sys.modules}}))
    """
    result = run_fresh(code)
    assert result["plain"] == [False] * 4  # workers that run importable functions never load it
    assert result["parent_plain"] is False
    assert result["values"] == [2, 3, 4, 5]  # and a lambda loads it where needed, on every start method
    assert result["parent"] is True


FORK_DURING_IMPORT = """
    import json, os, sys, tempfile, threading
    from pathlib import Path
    import importlib
    from pathos import _lazy
    {setup}

    folder = tempfile.mkdtemp()
    Path(folder, "slow_module.py").write_text(
        "import sys, time\\n"
        "sys.modules['__main__'].started.set()\\n"
        "time.sleep(0.5)\\n"
        "{last_step}\\n"
        "complete = True\\n"
    )
    sys.path.insert(0, folder)
    started = threading.Event()
    importer = threading.Thread(target={loader}, args=("slow_module",))
    importer.start()
    assert started.wait(10)
    pid = os.fork()  # while the other thread is inside the module's body
    if pid == 0:
        os._exit(0 if getattr(sys.modules.get("slow_module"), "complete", False) else 3)
    _, status = os.waitpid(pid, 0)
    importer.join()
    print(json.dumps(os.waitstatus_to_exitcode(status)))
"""


def fork_during_import(loader: str, setup: str = "", last_step: str = "pass") -> int:
    """Fork while another thread imports a slow module with ``loader``: the child's exit
    code, 0 if it got the whole module, 3 if it got the module half executed."""
    code = FORK_DURING_IMPORT.format(loader=loader, setup=setup, last_step=last_step)
    exit_code: int = run_fresh(code)
    return exit_code


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize(
    ("loader", "child_exit"),
    [
        ("_lazy.load", 0),  # the fork waited: the child has the whole module
        ("importlib.import_module", 3),  # the hazard _lazy closes: the child gets it half executed
    ],
)
def test_a_fork_waits_for_a_deferred_import_in_flight(loader: str, child_exit: int) -> None:
    assert fork_during_import(loader) == child_exit


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_waits_for_an_import_that_needs_the_logging_lock() -> None:
    # logging imported after pathos: its fork hook (which takes the logging lock) would run
    # before ours, and the fork would hold that lock while it waits for an import that needs
    # it (dill's import makes a logger, as this module does). _lazy.load registers its hook
    # again, so that it runs first: the fork waits for the whole module, holding nothing.
    last_step = "import logging; logging.getLogger('slow_module')"
    assert fork_during_import("_lazy.load", setup="import logging", last_step=last_step) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_waits_for_an_import_only_so_long() -> None:
    # A thread that holds the import lock for good (as a cycle through another library's
    # fork hook would): the fork goes ahead after FORK_WAIT_SECONDS instead of hanging,
    # and a deferred import still works afterwards.
    code = """
        import json, os, threading
        from pathos import _lazy

        _lazy.FORK_WAIT_SECONDS = 0.2
        held = threading.Event()

        def hold():
            _lazy._lock.acquire()
            held.set()
            threading.Event().wait()

        threading.Thread(target=hold, daemon=True).start()
        assert held.wait(10)
        pid = os.fork()
        if pid == 0:
            _lazy.load("colorsys")  # the child's lock is its own, free
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(json.dumps(os.waitstatus_to_exitcode(status)))
    """
    assert run_fresh(code) == 0
