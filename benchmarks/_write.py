"""Write the results folder: ``results.json`` (every round), ``results.md`` (the tables)
and ``results.png`` (the plot). Files are written beside their target and renamed, so a
run cut short never leaves half a table.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Optional

from _goals import check
from _libs import ADAPTERS
from _measure import COLD_SAMPLES, IMPORT_SAMPLES, START_SAMPLES
from _report import LABELS, SHOWN, Results, cell, fmt_ratio, median, ratio_of, title

CALLS = {
    "ours": "`ProcessPool(nodes=N).map(f, xs)`, then `clear()`",
    "pathos035": "`pathos.pools.ProcessPool(nodes=N).map(f, xs)`, then `close()`, `join()`, `clear()`",
    "multiprocessing": "`multiprocessing.Pool(N).map(f, xs)` (default chunksize ⌈n / 4N⌉)",
    "futures": "`ProcessPoolExecutor(max_workers=N).map(f, xs)` (default chunksize 1)",
    "loky": "`get_reusable_executor(max_workers=N).map(f, xs)` (default chunksize 1)",
    "joblib": "`Parallel(n_jobs=N)(delayed(f)(x) for x in xs)` (loky backend, automatic batching)",
    "mpire": "`WorkerPool(n_jobs=N, keep_alive=True).map(f, xs, concatenate_numpy_output=False)` (keep_alive: "
    "a warmed pool stays warm; numpy results stay a list, as elsewhere)",
}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _libs_in(results: Results) -> list[str]:
    present = {lib for by_lib in results.values() for lib in by_lib}
    return [lib for lib in LABELS if lib in present]


def _header(meta: dict[str, Any], params: dict[str, Any]) -> list[str]:
    # pathos 0.3.5's label already names its version; the standard library goes with Python.
    names = {"pathos035": "pathos"}
    shown = {k: v.split(" (")[0] for k, v in meta["versions"].items() if not v.startswith("stdlib")}
    versions = ", ".join(f"{names.get(k, k)} {v}" for k, v in shown.items())
    return [
        "# Benchmark results",
        "",
        f"- Date: {meta['date']}; run took {meta['seconds']} s",
        f"- Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']} GiB ({meta['platform']})",
        f"- Python: {meta['python']}; ours at commit {meta['commit']}",
        f"- Versions: {versions}",
        f"- Command: `{meta['command']}`",
        f"- Workers: {params['nodes']}; every figure is the median of {params['rounds']} rounds, all libraries "
        "in the same run, rounds interleaved: round r of every library (in an order rotated each round) runs "
        "before round r + 1 of any, so a burst of load on this shared, noisy machine spreads over all of them. "
        "Compare ratios, not absolute times; the goals table shows how far each goal's figure moved between rounds",
    ]


def _medians(results: Results, params: dict[str, Any], libs: list[str]) -> list[str]:
    rows = [[title(w, params)] + [cell(w, results[w].get(lib)) for lib in libs] for w in SHOWN if w in results]
    return ["", "## Medians", "", *_table(["workload", *(LABELS[lib] for lib in libs)], rows)]


def _ratios(results: Results, params: dict[str, Any], libs: list[str]) -> list[str]:
    peers = [lib for lib in libs if lib != "ours"]
    rows = []
    for w in (w for w in SHOWN if w in results):
        ours = median(results[w].get("ours"))
        row = [title(w, params), cell(w, results[w].get("ours"))]
        for peer in peers:
            result = results[w].get(peer)
            failed = bool(result and result.get("error"))
            row.append(
                f"ours only ({LABELS[peer]} fails)"
                if failed and ours
                else fmt_ratio(ratio_of(w, results[w].get("ours"), result))
            )
        rows.append(row)
    intro = (
        "How many times better ours is (above 1: ours wins; times: peer / ours; speedups: ours / peer), "
        "taken within each round and the median over rounds shown."
    )
    return [
        "",
        "## Ours vs each peer",
        "",
        intro,
        "",
        *_table(["workload", "ours", *(f"vs {LABELS[p]}" for p in peers)], rows),
    ]


def _goals(goals: list[dict[str, Any]]) -> list[str]:
    mark = {True: "✅", False: "❌", None: "-"}
    rows = [
        [g["goal"], g["target"], g["measured"], g.get("spread", "-"), f"{mark[g['met']]} {g['verdict']}", g["why"]]
        for g in goals
    ]
    intro = (
        "Measured: the median over rounds (for a ratio, of the ratio within each round). Spread: the lowest "
        "and highest of those per-round figures, and in how many rounds the goal was met: the noise of this run."
    )
    header = ["goal", "target", "measured", "spread over rounds", "verdict", "why, when short"]
    return ["", "## Goals", "", intro, "", *_table(header, rows)]


def _copy_bound(meta: dict[str, Any], results: Results, params: dict[str, Any]) -> list[str]:
    """Ours' numpy figures against the cost of one copy of their bytes on this machine."""
    bound = meta.get("copy_bound")
    if not bound:
        return []
    fig = {k: statistics.median(v) for k, v in bound.items()}
    mb = fig["bytes"] / 1e6
    intro = (
        f"One copy of the {mb:.0f} MB the numpy workloads move, array by array (best of 3 passes, median over "
        f"{len(bound['bytes'])} rounds): into reused pages (a plain memcpy) {fig['reused'] * 1e3:.1f} ms, into fresh "
        f"private pages {fig['fresh'] * 1e3:.1f} ms"
        + (f", written into new `/dev/shm` files {fig['fresh_shm'] * 1e3:.1f} ms" if "fresh_shm" in fig else "")
        + ". Ours' time as a multiple of each (1x: as fast as one copy)."
    )
    header = ["workload", "ours", "x reused-page copy", "x fresh-page copy", "x new /dev/shm files"]
    rows = []
    for w in (w for w in SHOWN if w.startswith("np_") and w in results):
        ours = median(results[w].get("ours"))
        if ours is None:
            continue
        multiples = [f"{ours / fig[k]:.2g}x" if k in fig else "-" for k in ("reused", "fresh", "fresh_shm")]
        rows.append([title(w, params), cell(w, results[w].get("ours")), *multiples])
    return ["", "## Memory-copy bound", "", intro, "", *_table(header, rows)]


def _scaling(results: Results, params: dict[str, Any]) -> list[str]:
    by_lib = results.get("scaling", {})
    libs = [lib for lib in LABELS if lib in by_lib]
    if not libs:
        return []
    rows = []
    for k in params["scaling_nodes"]:
        row = [str(k)]
        for lib in libs:
            rounds = (by_lib[lib].get("by_nodes") or {}).get(str(k))
            row.append(f"{statistics.median(rounds):.2f}x" if rounds else f"fails ({by_lib[lib].get('error')})")
        rows.append([*row, f"{k}x"])
    intro = f"CPU-bound speedup over serial by worker count ({params['n_scaling']} tasks of {params['task_ms']:g} ms)."
    return ["", "## Scaling", "", intro, "", *_table(["workers", *(LABELS[lib] for lib in libs), "ideal"], rows)]


def _notes(results: Results, params: dict[str, Any], libs: list[str]) -> list[str]:
    lines = ["", "## How it is measured", ""]
    lines += [f"- {LABELS[lib]}: {CALLS[lib]}" for lib in libs]
    lines += [
        "- Each round of each (workload, library) pair runs in a fresh subprocess of its own: ours from this "
        "checkout's `src/`, pathos 0.3.5 from its own `--target` directory (checked in the subprocess), never "
        "both in one interpreter. Rounds are interleaved across libraries, the order rotated by one each round.",
        "- Throughput workloads first start the pool and warm it with one small map of the same function, "
        "untimed, so pool start is only in the start workloads (*pool start to first result, imports done*: "
        "create a pool, get `f(1)`, shut down "
        f"untimed; {START_SAMPLES} samples a round, {params['rounds'] * START_SAMPLES} in all, as each takes "
        "milliseconds; a round's figure is the median of its samples).",
        "- *Import* and *import, pool start and first result* run in fresh interpreters "
        f"({IMPORT_SAMPLES} and {COLD_SAMPLES} a round, after one untimed run that writes the bytecode "
        "cache, as an installed package has it). *Import* times the statement a program writes to get the "
        "pool, alone (the interpreter's own start-up is not in it): "
        + "; ".join(f"{LABELS[lib]} `{ADAPTERS[lib].IMPORT}`" for lib in libs)
        + ". The cold start times that import, creating the pool and getting `f(1)`, as a program's first "
        "parallel call does (shutdown untimed).",
        "- Numpy workloads: each argument or result is a float64 array of "
        f"{params['array_size'] * 8 / 1e6:g} MB; f reads one element of its argument, or makes its result. The "
        "plain rows warm the pool with a small map of the same arrays first, so they show a pool in steady use; "
        "the *first call* rows warm it with a trivial call only, make fresh arrays right before the timed map, and "
        "time that one map (one sample a round): the cost a program pays the first time a pool moves arrays.",
        "- Per-task overhead: chunksize=1 (`batch_size=1` for joblib, `chunk_size=1` for mpire); wall time / tasks.",
        "- mpire runs the lambda because its workers fork after the (warm-up) map names it; "
        "`multiprocessing.Pool` and `concurrent.futures` pickle functions by reference and fail on it.",
    ]
    for w, by_lib in results.items():
        for lib, r in by_lib.items():
            if r.get("n_used") and r["n_used"] != r.get("n"):
                lines.append(
                    f"- † {LABELS[lib]}, {w}: too slow for the time budget; measured on "
                    f"{r['n_used']:,} of {r['n']:,} items per round (fixed in round 1), time scaled to {r['n']:,}."
                )
            if r.get("error"):
                lines.append(f"- {LABELS[lib]}, {w}: fails with {r['error']}: {r.get('message', '')[:160]}")
            for bad in r.get("failed_rounds", []):
                lines.append(
                    f"- {LABELS[lib]}, {w}: round {bad['round']} fails with {bad['error']} "
                    f"({bad['message'][:120]}); the median is of the other rounds."
                )
    return lines


def markdown(meta: dict[str, Any], params: dict[str, Any], results: Results, goals: list[dict[str, Any]]) -> str:
    """The whole ``results.md``."""
    libs = _libs_in(results)
    parts = _header(meta, params) + _medians(results, params, libs) + _ratios(results, params, libs)
    parts += _goals(goals) + _copy_bound(meta, results, params) + _scaling(results, params)
    parts += _notes(results, params, libs)
    parts += ["", "![ratios and scaling](results.png)", ""]
    return "\n".join(parts)


def write_all(out: Path, meta: dict[str, Any], params: dict[str, Any], results: Results) -> list[Path]:
    """Write results.json, results.md and (when matplotlib is there) results.png."""
    out.mkdir(parents=True, exist_ok=True)
    goals = check(results, params["nodes"])
    doc = {"meta": meta, "params": params, "goals": goals, "results": results}
    written = [out / "results.json", out / "results.md"]
    _atomic_write(written[0], json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    _atomic_write(written[1], markdown(meta, params, results, goals))
    png: Optional[Path] = None
    try:
        from _plot import plot

        png = plot(out / "results.png", params, results)
    except ImportError as exc:
        print(f"no plot ({exc}); install matplotlib for results.png")
    return written + ([png] if png else [])
