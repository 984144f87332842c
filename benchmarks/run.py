"""Benchmarks: our ProcessPool against pathos 0.3.5, multiprocessing.Pool,
concurrent.futures, loky, joblib and mpire, on the same workloads in one run.

    python benchmarks/run.py                  # full run, 2 workers, 5 interleaved rounds (~10 min on 2 cores)
    python benchmarks/run.py --quick          # smaller sizes, 2 rounds; writes benchmarks/scratch/
    python benchmarks/run.py --only tiny,cpu --libs ours,multiprocessing

The first run creates ``benchmarks/.venv`` (ours editable, and the peers from
``requirements.txt``) and installs pathos 0.3.5 into ``benchmarks/.peers/pathos035``;
``--here`` skips that and uses this interpreter as it is (the harness test does).

Rounds are interleaved: for each workload, round 1 of every library, then round 2 of
every library (the library order rotated by one each round), and so on, so a burst of
load on this shared machine spreads over all libraries instead of landing on one. Each
round of each (workload, library) pair runs in a fresh subprocess that starts and warms
its own pool before the timed part. A full run (every workload and library, 2 workers,
full sizes) writes ``benchmarks/results/``, the committed results: ``results.md``
(medians, ratios, goals with their spread over rounds), ``results.json`` (every round)
and ``results.png``. Any other run (``--quick``, ``--only``, ``--libs``, ``--nodes``,
``--scale``, ``--here``) writes ``benchmarks/scratch/`` (not committed) unless ``--out``
names a folder, so a quick look never overwrites the committed figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _env  # noqa: E402  (after the path fix, so this works from any directory)
import _report  # noqa: E402
import _tasks  # noqa: E402
import _write  # noqa: E402

LIBS = ("ours", "pathos035", "multiprocessing", "futures", "loky", "joblib", "mpire")
WORKLOADS = (
    "tiny",
    "lambda",
    "chunk1",
    "start",
    "start_cold",
    "import",
    "cpu",
    "np_args",
    "np_results",
    "np_args_cold",
    "np_results_cold",
    "scaling",
)
NUMPY_WORKLOADS = ("np_args", "np_results", "np_args_cold", "np_results_cold")  # these get the copy bound too
SCALING_LIBS = ("ours", "multiprocessing")
RESULTS = HERE / "results"  # committed: written by a full run only, or by --out
SCRATCH = HERE / "scratch"  # every other run (ignored by git)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; ``--quick`` lowers the defaults it does not override."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=2, help="workers per pool (default 2)")
    p.add_argument("--rounds", type=int, help="timed rounds per measurement (default 5; 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="a fifth of the sizes, 2 rounds")
    p.add_argument("--only", default=",".join(WORKLOADS), help=f"workloads, comma separated: {','.join(WORKLOADS)}")
    p.add_argument("--libs", default=",".join(LIBS), help=f"libraries, comma separated: {','.join(LIBS)}")
    p.add_argument(
        "--out",
        type=Path,
        help=f"results folder (default: {RESULTS.relative_to(HERE.parent)} for a full run, "
        f"{SCRATCH.relative_to(HERE.parent)} for any other)",
    )
    p.add_argument("--scale", type=float, help="multiply every size by this (default 1; 0.2 with --quick)")
    p.add_argument(
        "--budget",
        type=float,
        default=2.0,
        help="seconds one round of one map may take before a slow "
        "library gets fewer items (scaled back to the nominal count)",
    )
    p.add_argument("--timeout", type=float, default=120, help="seconds one round of one library may take")
    p.add_argument("--here", action="store_true", help="use this interpreter; set up no environment")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.scale = args.scale or (0.2 if args.quick else 1.0)
    args.only = _choose(args.only, WORKLOADS, "workload")
    args.libs = _choose(args.libs, LIBS, "library")
    if args.nodes < 1 or args.rounds < 1 or args.scale <= 0:
        p.error("--nodes, --rounds and --scale must be positive")
    args.out = args.out or (RESULTS if is_full_run(args) else SCRATCH)
    return args


def is_full_run(args: argparse.Namespace) -> bool:
    """True for the run whose figures are committed (and quoted in the README): every
    workload and library, 2 workers, full sizes, the peers' own environment."""
    everything = args.only == list(WORKLOADS) and args.libs == list(LIBS)
    return everything and not args.quick and not args.here and args.nodes == 2 and args.scale == 1.0


def _choose(text: str, known: tuple[str, ...], what: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(known)})")
    return [name for name in known if name in chosen]  # canonical order


def calibrate_spin(seconds: float) -> int:
    """Loop iterations that take ``seconds`` here (best of three, to skip noise)."""
    probe = 50_000
    best = min(_timed_spin(probe) for _ in range(3))
    return max(100, int(probe * seconds / best))


def _timed_spin(iterations: int) -> float:
    start = time.perf_counter()
    _tasks.spin(iterations)
    return time.perf_counter() - start


def scaling_nodes() -> list[int]:
    """1 to all cores: every count on small machines, powers of two plus all on big ones."""
    cores = os.cpu_count() or 1
    if cores <= 8:
        return list(range(1, cores + 1))
    return sorted({*(2**i for i in range(cores.bit_length()) if 2**i <= cores), cores})


def build_params(args: argparse.Namespace) -> dict[str, Any]:
    """Sizes and settings shared by every subprocess of this run."""
    s = args.scale
    nodes = scaling_nodes()
    return {
        "nodes": args.nodes,
        "rounds": args.rounds,
        "budget_s": args.budget * min(1.0, s * 5),
        "n_tiny": max(20, int(100_000 * s)),
        "n_chunk1": max(20, int(20_000 * s)),
        "n_cpu": 40,
        "task_ms": 20 * s,
        "spin_iters": calibrate_spin(0.020 * s),
        "n_arrays": 40,
        "array_size": max(1000, int(1_000_000 * s)),
        "n_scaling": max(40, 4 * max(nodes)),
        "scaling_nodes": nodes,
    }


def pathos_from(lib: str) -> Optional[Path]:
    """Where this library's subprocess must import ``pathos`` from: ours from this
    checkout's ``src/`` (not from wherever the venv's editable install points), pathos
    0.3.5 from its target directory; None for the libraries that do not use it."""
    return {"ours": _env.ROOT / "src", "pathos035": _env.PATHOS035}.get(lib)


def _pythonpath(lib: str) -> str:
    # The library's own pathos first on the path, then this folder (_tasks, _libs).
    first = pathos_from(lib)
    return os.pathsep.join([*([str(first)] if first else []), str(HERE)])


def measure(lib: str, workload: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one round of one (library, workload) pair in a subprocess and return its JSON result."""
    if lib == "pathos035" and not (_env.PATHOS035 / "pathos").is_dir():
        return {"lib": lib, "workload": workload, "error": "NotInstalled", "message": str(_env.PATHOS035)}
    env = dict(os.environ, PYTHONPATH=_pythonpath(lib), PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(HERE / "_measure.py"), "--lib", lib, "--workload", workload]
        cmd += ["--params", json.dumps(params), "--out", str(out)]
        first = pathos_from(lib)
        if first:
            cmd += ["--pathos-from", str(first)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"lib": lib, "workload": workload, "error": "Timeout", "message": f"over {timeout:.0f} s"}
        if not out.exists():
            tail = (proc.stderr or proc.stdout)[-500:]
            return {"lib": lib, "workload": workload, "error": f"exit {proc.returncode}", "message": tail}
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _round_figure(result: dict[str, Any]) -> Optional[float]:
    # One round's figure: the median of its samples (one sample, except for pool start).
    if result.get("error") or not result.get("values"):
        return None
    return float(statistics.median(result["values"]))


def merge_rounds(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from the per-round results of one pair: every sample in ``values``,
    each round's figure in ``per_round`` (None for a failed round, in round order, so two
    libraries' rounds pair up), failed rounds in ``failed_rounds``."""
    ok = [part for part in parts if not part.get("error")]
    if not ok:
        return {**parts[0], "rounds_run": len(parts)}
    merged: dict[str, Any] = {k: v for k, v in ok[0].items() if k != "traceback"}
    for key, value in ok[0].items():
        if isinstance(value, list):  # values, serial_s, pool_s, shutdown_s
            merged[key] = [x for part in ok for x in part.get(key, [])]
    if ok[0].get("by_nodes"):
        merged["by_nodes"] = {k: [x for part in ok for x in part["by_nodes"].get(k, [])] for k in ok[0]["by_nodes"]}
    merged["per_round"] = [_round_figure(part) for part in parts]
    merged["rounds_run"] = len(parts)
    failed = [
        {"round": i + 1, "error": part["error"], "message": part.get("message", "")[:300]}
        for i, part in enumerate(parts)
        if part.get("error")
    ]
    if failed:
        merged["failed_rounds"] = failed
    return merged


def _summary(result: dict[str, Any]) -> str:
    if result.get("error"):
        return f"fails ({result['error']})"
    if result.get("by_nodes"):
        return ", ".join(f"{k}: {statistics.median(v):.2f}x" for k, v in result["by_nodes"].items())
    return f"{statistics.median(result['values']):.4g} {result['unit']}"


def rotated(libs: list[str], round_index: int) -> list[str]:
    """The library order of one round: shifted by one each round, so no library is always first."""
    k = round_index % len(libs) if libs else 0
    return libs[k:] + libs[:k]


def run_workload(workload: str, libs: list[str], args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    """Every round of one workload, interleaved across libraries; one merged result per library.

    The first round fixes each library's item count (``n_used``, for the † scaling) and
    the later rounds reuse it; a library whose first round fails is not run again here.
    """
    parts: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libs}
    for r in range(args.rounds):
        started = time.perf_counter()
        done = []
        for lib in rotated(libs, r):
            if parts[lib] and parts[lib][0].get("error"):
                continue
            fixed = parts[lib][0].get("n_used") if parts[lib] else None
            round_params = {**params, "rounds": 1, **({"n_used": fixed} if fixed else {})}
            result = measure(lib, workload, round_params, args.timeout)
            parts[lib].append(result)
            done.append(f"{lib} {_summary(result)}")
        took = time.perf_counter() - started
        print(f"{workload:>10} round {r + 1}/{args.rounds} [{took:.1f} s]: " + "; ".join(done), flush=True)
    return {lib: merge_rounds(parts[lib]) for lib in libs}


def measure_bound(params: dict[str, Any], rounds: int, timeout: float) -> Optional[dict[str, list[float]]]:
    """The memory-copy bound of this machine (see ``_bound.py``), in a subprocess once per
    round: every round's figures by name, or None if no round could measure it."""
    figures: dict[str, list[float]] = {}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "bound.json"
            cmd = [sys.executable, str(HERE / "_bound.py"), "--params", json.dumps(params), "--out", str(out)]
            try:
                subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                continue
            if out.exists():
                for name, value in json.loads(out.read_text()).items():
                    figures.setdefault(name, []).append(value)
    if figures:
        shown = ", ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in figures.items() if k != "bytes")
        print(f"copy bound ({statistics.median(figures['bytes']) / 1e6:.0f} MB): {shown}", flush=True)
    return figures or None


def run_all(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every chosen workload on every chosen library, printing each round as it comes."""
    results: dict[str, dict[str, Any]] = {}
    for workload in args.only:
        libs = [lib for lib in args.libs if workload != "scaling" or lib in SCALING_LIBS]
        results[workload] = run_workload(workload, libs, args, params)
        medians = ", ".join(f"{lib} {_summary(result)}" for lib, result in results[workload].items())
        print(f"{workload:>10} medians: {medians}", flush=True)
    return results


def main(argv: list[str]) -> int:
    """Set up the environment if needed, measure, write the results folder."""
    args = parse_args(argv)
    if not args.here:
        if not _env.in_venv():
            _env.reexec_in_venv(argv)  # does not return
        _env.ensure_pathos035()  # started with the venv's Python directly: still make sure
    started = time.time()
    params = build_params(args)
    bound = measure_bound(params, args.rounds, args.timeout) if set(args.only) & set(NUMPY_WORKLOADS) else None
    results = run_all(args, params)
    meta = _report.machine_meta(args.libs, results, argv, time.time() - started)
    if bound:
        meta["copy_bound"] = bound
    paths = _write.write_all(args.out, meta, params, results)
    print("wrote " + ", ".join(str(p) for p in paths))
    if args.out == SCRATCH:
        print(f"(not a full run, so {RESULTS} is untouched; --out {RESULTS} would replace it)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
