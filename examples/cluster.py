"""The same function on a ProcessPool, on a local Dask cluster, and on a scheduler.

    python examples/cluster.py                      # local pools only
    python examples/cluster.py tcp://host:8786      # and on that Dask scheduler

Needs the dask extra: ``python3 -m pip install ".[dask]"`` in this checkout (or
``bash scripts/setup.sh``). See docs/clusters.md.
"""

import os
import sys

from pathos.parallel import stats
from pathos.pools import ParallelPool, ProcessPool


def where(x, y):
    return x * y, os.getpid()


def run(name, pool):
    results = pool.map(where, range(8), range(8))
    print(f"{name}: {[r for r, _ in results]} in {len({p for _, p in results})} worker process(es)")


with ProcessPool(nodes=2) as pool:
    run("ProcessPool", pool)

with ParallelPool(nodes=2) as pool:
    run("local Dask cluster", pool)
    print(stats(pool), end="")

if len(sys.argv) > 1:
    with ParallelPool(nodes=0, servers=(sys.argv[1],)) as pool:
        run(f"Dask scheduler at {sys.argv[1]}", pool)
        print(stats(pool), end="")
