#!/usr/bin/env bash
# Downstream projects against this pathos: p_tqdm's own tests, and SALib's
# ProblemSpec(...).sample_sobol(...).evaluate_parallel(f, nprocs=2) (through p_tqdm, as
# SALib does when p_tqdm is installed). Both are installed from their PyPI sources with
# --no-deps, so the registry's pathos (the old 0.3.5 of the same name) never enters;
# their other dependencies are named here. Uses its own venv, .venv-downstream.
# Usage: bash scripts/downstream.sh        (CI calls it after the main suite, bounded)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-downstream
WORK=${DOWNSTREAM_WORK:-$VENV/src}
P_TQDM=1.4.2
SALIB=1.6.0
stamp=$VENV/.installed-$P_TQDM-$SALIB
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e .
  # Their dependencies, except pathos: p_tqdm (tqdm, six), SALib (numpy, scipy,
  # matplotlib, pandas, multiprocess).
  "$VENV/bin/python" -m pip install --quiet six "numpy>=2.0" "scipy>=1.9.3" "matplotlib>=3.5" "pandas>=2.0"
  mkdir -p "$WORK"
  "$VENV/bin/python" -m pip download --quiet --no-deps --no-binary :all: -d "$WORK" \
    "p_tqdm==$P_TQDM" "salib==$SALIB"
  for archive in "$WORK"/*.tar.gz; do tar -xzf "$archive" -C "$WORK"; done
  "$VENV/bin/python" -m pip install --quiet --no-deps "$WORK/p_tqdm-$P_TQDM" "$WORK/salib-$SALIB"
  cp pyproject.toml "$stamp"
fi
PYBIN=$(pwd)/$VENV/bin/python
# The pathos imported must be this checkout's, never the registry's.
"$VENV/bin/python" - <<'PY'
import os, pathos
here = os.path.realpath("src/pathos")
assert os.path.realpath(os.path.dirname(pathos.__file__)) == here, pathos.__file__
print("pathos", pathos.__version__, "from", here)
PY
echo "== p_tqdm $P_TQDM: its own tests"
# Its tests are unittest cases: run them with unittest, so that this script's output
# ends with no pytest summary that could be mistaken for the main suite's.
log=$(mktemp)
if (cd "$WORK/p_tqdm-$P_TQDM" && "$PYBIN" -m unittest discover -s tests >"$log" 2>&1); then
  tail -3 "$log"
else
  cat "$log"
  exit 1
fi
echo "== SALib $SALIB: ProblemSpec.sample_sobol().evaluate_parallel(f, nprocs=2)"
"$VENV/bin/python" - <<'PY'
import warnings

import numpy as np
from SALib import ProblemSpec
from SALib.test_functions import Ishigami

warnings.simplefilter("ignore")  # "Parallel evaluation is an experimental feature"
spec = ProblemSpec({"names": ["x1", "x2", "x3"], "bounds": [[-np.pi, np.pi]] * 3, "outputs": ["Y"]})
# Seeded, and 1024 samples: the check below is about SALib running on this pathos, not
# about Sobol sampling noise (unseeded with 256 samples, S1 of x3 came out -0.12 once).
spec.sample_sobol(1024, calc_second_order=False, seed=1).evaluate_parallel(Ishigami.evaluate, nprocs=2)
serial = Ishigami.evaluate(spec.samples)
assert np.allclose(spec.results.ravel(), serial.ravel()), "parallel results differ from serial"
spec.analyze_sobol(calc_second_order=False, seed=1)
first = spec.analysis["S1"]
assert first[0] > 0.2 and abs(first[2]) < 0.1, first  # Ishigami: x1 matters, x3 alone does not
print("SALib evaluate_parallel ok: S1 =", np.round(first, 2))
PY
echo "downstream: p_tqdm and SALib ok"
