"""Measure one workload on one library, in a process of its own; writes JSON.

Run by ``run.py`` as ``python _measure.py --lib LIB --workload NAME --params JSON --out FILE
[--pathos-from DIR]``, once per round (``params["rounds"]`` is then 1), so the rounds of
all libraries can be interleaved. ``--pathos-from`` (our ``src/`` or pathos 0.3.5's target
directory) goes first on ``sys.path``, and the ``pathos`` actually imported is checked to
come from there, so the two ``pathos`` packages never meet in one interpreter.

Throughput workloads warm the pool first (one small map with the workload's own
function), so pool start is measured only by the ``start`` workloads. ``start`` starts
pools in this (warm) process; ``import`` and ``start_cold`` time fresh interpreters
(``python -c "<the library's import>"``, and ``_cold.py``), as a program's first call
pays them. Those children write and use cached bytecode, as an installed package has it
(``PYTHONDONTWRITEBYTECODE`` is dropped for them, and one untimed run first writes it). The ``np_*_cold``
workloads time a pool's first call with arrays instead (its workers up, but nothing of
the array path warm, and the arrays made right before it), the same way for every library. A map that would
run longer than the per-round budget is cut to fewer items and its time scaled back to
the nominal count (``n_used`` says so); ``run.py`` fixes that count in the first round and
passes it to the later ones as ``params["n_used"]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import _tasks
from _libs import ADAPTERS, Adapter

Result = dict[str, Any]
HERE = Path(__file__).resolve().parent
START_SAMPLES = 4  # pool starts per round: each takes milliseconds, and the noise is of that size
IMPORT_SAMPLES = 5  # fresh interpreters per round for ``import`` (tens of ms each)
COLD_SAMPLES = 3  # fresh interpreters per round for ``start_cold`` (a pool started and stopped in each)
FRESH_TIMEOUT = 60.0  # seconds one fresh interpreter may take
# Times the import statement alone: the interpreter's own start-up is before the clock.
_IMPORT_CODE = """import time
t = time.perf_counter()
{statement}
t = time.perf_counter() - t
import json, sys
m = sys.modules.get("pathos")
print(json.dumps({{"seconds": t, "pathos": getattr(m, "__file__", None)}}))
"""


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def _fit(pool: Adapter, f: Any, items: Callable[[int], list[Any]], n: int, budget: float, chunksize: Any) -> int:
    """How many items fit in one round's time budget (n, unless the library is slow)."""
    probe = max(1, n // 20)
    elapsed, _ = _timed(lambda: pool.map(f, items(probe), chunksize))
    estimate = elapsed * n / probe
    return n if estimate <= budget else max(probe, int(n * budget / estimate))


def _map_rounds(
    pool: Adapter, f: Any, items: Callable[[int], list[Any]], n: int, p: dict[str, Any], chunksize: Any = None
) -> Result:
    """Seconds per map of ``n`` items (scaled from ``n_used`` if cut), one per round."""
    pool.map(f, items(2 * pool.nodes), chunksize)  # warm: workers up, function sent once
    used = p.get("n_used") or _fit(pool, f, items, n, p["budget_s"], chunksize)
    times = []
    for _ in range(p["rounds"]):
        elapsed, out = _timed(lambda: pool.map(f, items(used), chunksize))
        if len(out) != used:
            raise AssertionError(f"expected {used} results, got {len(out)}")
        times.append(elapsed * n / used)
    return {"values": times, "n": n, "n_used": used}


def tiny(pool: Adapter, p: dict[str, Any]) -> Result:
    """100k calls of ``x + 1`` with the library's default chunking: seconds."""
    return {**_map_rounds(pool, _tasks.inc, lambda k: list(range(k)), p["n_tiny"], p), "unit": "s"}


def lambdas(pool: Adapter, p: dict[str, Any]) -> Result:
    """As ``tiny``, with a lambda closing over a local variable: seconds."""
    f = _tasks.closure_over(1)
    return {**_map_rounds(pool, f, lambda k: list(range(k)), p["n_tiny"], p), "unit": "s"}


def chunk1(pool: Adapter, p: dict[str, Any]) -> Result:
    """Per-task overhead at chunksize 1: microseconds of wall time per task."""
    n = p["n_chunk1"]
    out = _map_rounds(pool, _tasks.inc, lambda k: list(range(k)), n, p, chunksize=1)
    return {**out, "values": [t / n * 1e6 for t in out["values"]], "unit": "us/task"}


def _start_and_first(pool: Adapter) -> Any:
    pool.start()
    return pool.map(_tasks.inc, [1])


def start(pool: Adapter, p: dict[str, Any]) -> Result:
    """Create a pool and get the first result of a trivial task: seconds (shutdown not timed)."""
    _start_and_first(pool)  # imports and page cache warm, as in a program's second pool
    pool.stop()
    times, stops = [], []
    for _ in range(p["rounds"] * START_SAMPLES):  # a few ms each: more samples steady the median
        elapsed, out = _timed(functools.partial(_start_and_first, pool))
        stops.append(_timed(pool.stop)[0])
        if out != [2]:
            raise AssertionError(f"unexpected first result {out!r}")
        times.append(elapsed)
    return {"values": times, "unit": "s", "shutdown_s": stops}


def _fresh(args: list[str], p: dict[str, Any]) -> float:
    """Seconds that a fresh interpreter running ``args`` reports (checking which pathos it imported)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=HERE, env=env, capture_output=True, text=True, timeout=FRESH_TIMEOUT
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fresh interpreter exited {proc.returncode}: {proc.stderr[-300:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = p.get("pathos_from")
    if expected and not Path(report["pathos"] or "").resolve().is_relative_to(Path(expected).resolve()):
        raise ImportError(f"pathos imported from {report['pathos']}, expected it under {expected}")
    return float(report["seconds"])


def _fresh_samples(args: list[str], p: dict[str, Any], per_round: int) -> list[float]:
    _fresh(args, p)  # untimed: writes the bytecode cache, warms the page cache
    return [_fresh(args, p) for _ in range(p["rounds"] * per_round)]


def imports(pool: Adapter, p: dict[str, Any]) -> Result:
    """The library's import statement (``Adapter.IMPORT``) in a fresh interpreter: seconds."""
    code = _IMPORT_CODE.format(statement=pool.IMPORT)
    return {"values": _fresh_samples(["-c", code], p, IMPORT_SAMPLES), "unit": "s", "statement": pool.IMPORT}


def start_cold(pool: Adapter, p: dict[str, Any]) -> Result:
    """Import, pool start and the first result of a trivial task, in a fresh interpreter
    (``_cold.py``): what a program's first parallel call costs. Seconds."""
    args = [str(HERE / "_cold.py"), p["lib"], str(pool.nodes)]
    return {"values": _fresh_samples(args, p, COLD_SAMPLES), "unit": "s"}


def _serial_spin(p: dict[str, Any], n: int) -> float:
    return _timed(lambda: [_tasks.spin(p["spin_iters"]) for _ in range(n)])[0]


def cpu(pool: Adapter, p: dict[str, Any]) -> Result:
    """CPU-bound speedup over serial: serial time / pool time, both timed each round."""
    n, iters = p["n_cpu"], p["spin_iters"]
    pool.map(_tasks.spin, [iters] * pool.nodes)
    speedups, serial, parallel = [], [], []
    for _ in range(p["rounds"]):
        serial.append(_serial_spin(p, n))
        parallel.append(_timed(lambda: pool.map(_tasks.spin, [iters] * n))[0])
        speedups.append(serial[-1] / parallel[-1])
    return {"values": speedups, "unit": "x", "serial_s": serial, "pool_s": parallel}


def np_args(pool: Adapter, p: dict[str, Any]) -> Result:
    """Large numpy arrays as arguments (f returns one element): seconds."""
    import numpy as np

    arrays = [np.full(p["array_size"], i, dtype=np.float64) for i in range(p["n_arrays"])]
    out = _map_rounds(pool, _tasks.first_item, lambda k: arrays[:k], p["n_arrays"], p)
    return {**out, "unit": "s"}


def np_results(pool: Adapter, p: dict[str, Any]) -> Result:
    """Large numpy arrays as results (f(i) = np.full(size, i)): seconds."""
    f = functools.partial(_tasks.full_array, size=p["array_size"])
    out = _map_rounds(pool, f, lambda k: list(range(k)), p["n_arrays"], p)
    return {**out, "unit": "s"}


def _first_call(pool: Adapter, f: Any, make: Callable[[], list[Any]]) -> Result:
    """One timed map, the first of its kind on this pool: the workers are up (warmed by
    a trivial call, as every library's are) but nothing of the array path is warm, and
    the inputs are made right before it (fresh arrays in fresh pages)."""
    pool.map(_tasks.inc, list(range(2 * pool.nodes)))
    items = make()
    elapsed, out = _timed(lambda: pool.map(f, items))
    if len(out) != len(items):
        raise AssertionError(f"expected {len(items)} results, got {len(out)}")
    return {"values": [elapsed], "n": len(items), "n_used": len(items), "unit": "s"}


def np_args_cold(pool: Adapter, p: dict[str, Any]) -> Result:
    """``np_args`` as a program's first call with arrays: fresh arrays, a pool that never
    carried any (one sample per round: only the first call is cold)."""
    import numpy as np

    size, n = p["array_size"], p["n_arrays"]
    return _first_call(pool, _tasks.first_item, lambda: [np.full(size, i, dtype=np.float64) for i in range(n)])


def np_results_cold(pool: Adapter, p: dict[str, Any]) -> Result:
    """``np_results`` as the first call of a pool that never returned an array."""
    f = functools.partial(_tasks.full_array, size=p["array_size"])
    return _first_call(pool, f, lambda: list(range(p["n_arrays"])))


def scaling(pool: Adapter, p: dict[str, Any]) -> Result:
    """CPU-bound speedup for each node count in ``p["scaling_nodes"]``."""
    n, iters = p["n_scaling"], p["spin_iters"]
    by_nodes: dict[str, list[float]] = {str(k): [] for k in p["scaling_nodes"]}
    for _ in range(p["rounds"]):
        serial = _serial_spin(p, n)
        for k in p["scaling_nodes"]:
            sized = type(pool)(k)
            sized.start()
            sized.map(_tasks.spin, [iters] * k)
            by_nodes[str(k)].append(serial / _timed(lambda sized=sized: sized.map(_tasks.spin, [iters] * n))[0])
            sized.stop()
    return {"values": [], "by_nodes": by_nodes, "unit": "x"}


WORKLOADS: dict[str, Callable[[Adapter, dict[str, Any]], Result]] = {
    "tiny": tiny,
    "lambda": lambdas,
    "chunk1": chunk1,
    "start": start,
    "start_cold": start_cold,
    "import": imports,
    "cpu": cpu,
    "np_args": np_args,
    "np_results": np_results,
    "np_args_cold": np_args_cold,
    "np_results_cold": np_results_cold,
    "scaling": scaling,
}


def _check_pathos_from(expected: str) -> None:
    """Raise unless the ``pathos`` imported here is the one under ``expected``."""
    import pathos

    found = Path(pathos.__file__).resolve()
    if not found.is_relative_to(Path(expected).resolve()):
        raise ImportError(f"pathos imported from {found}, expected it under {expected}")


def measure(lib: str, workload: str, params: dict[str, Any], pathos_from: Optional[str] = None) -> Result:
    """Run one workload on a fresh pool of one library; an exception becomes ``error``."""
    pool = ADAPTERS[lib](params["nodes"])
    result: Result = {"lib": lib, "workload": workload, "error": None}
    params = {**params, "lib": lib, "pathos_from": pathos_from}  # for the fresh interpreters
    # These start and stop pools themselves (the fresh-interpreter ones in their children).
    own_pools = workload in ("start", "scaling", "start_cold", "import")
    try:
        if pathos_from:
            _check_pathos_from(pathos_from)
        result["version"] = pool.version()
        if workload.startswith("np_"):
            import numpy  # noqa: F401  (imported before the pool starts, as a program does)
        if not own_pools:
            pool.start()
        try:
            result.update(WORKLOADS[workload](pool, params))
        finally:
            if not own_pools:
                pool.stop()
    except Exception as exc:  # a library that cannot run a workload is a result, not a crash
        result["error"] = type(exc).__name__
        result["message"] = str(exc)[:300]
        result["traceback"] = traceback.format_exc(limit=8)
    return result


def main(argv: list[str]) -> int:
    """Command line: ``--lib``, ``--workload``, ``--params`` (JSON), ``--out`` (JSON file), ``--pathos-from``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lib", required=True, choices=sorted(ADAPTERS))
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--params", required=True, help="JSON object of sizes and settings")
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument("--pathos-from", help="directory to import pathos from (put first on sys.path)")
    args = parser.parse_args(argv)
    if args.pathos_from:
        sys.path.insert(0, args.pathos_from)  # before any import of pathos
    result = measure(args.lib, args.workload, json.loads(args.params), args.pathos_from)
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
