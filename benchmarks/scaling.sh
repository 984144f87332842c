#!/usr/bin/env bash
# Scaling on a many-core machine: CPU-bound speedup over serial by worker count (the
# benchmark's `scaling` workload, 1 to all cores), and tiny-task throughput against
# multiprocessing.Pool at 1, 2, 4, 8 and 16 workers (as many as the machine has).
# Runs with this interpreter as it is (`run.py --here`: dill and tqdm must be installed).
# Usage: bash benchmarks/scaling.sh OUTDIR   -> OUTDIR/scaling/results.md, OUTDIR/tiny-N/results.md
set -euo pipefail
out=$(realpath -m "${1:?usage: bash benchmarks/scaling.sh OUTDIR}")
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
cores=$(nproc)
echo "machine: $cores cores, $("$PY" -c 'import platform; print(platform.processor() or platform.machine())')"
"$PY" benchmarks/run.py --here --only scaling --libs ours,multiprocessing --out "$out/scaling"
for n in 1 2 4 8 16; do
  [ "$n" -le "$cores" ] || break
  "$PY" benchmarks/run.py --here --only tiny --libs ours,multiprocessing --nodes "$n" --out "$out/tiny-$n"
done
