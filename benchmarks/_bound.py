"""The memory-copy bound of this machine for the numpy workloads; writes JSON.

Run by ``run.py`` as ``python _bound.py --params JSON --out FILE``, once per round of the
numpy workloads. Moving ``n_arrays`` arrays of ``array_size`` float64 to another process
costs at least one copy of their bytes, so three figures bound it (seconds to copy them
all, array by array, the best of three passes):

- ``reused``: into pages that already exist and are mapped (a plain ``memcpy``): the
  floor for a library that reuses its buffers;
- ``fresh``: into fresh private pages (a new anonymous mapping per array): what a copy
  costs when every page must first be made (page faults, zeroing);
- ``fresh_shm``: written into new files in ``/dev/shm`` (``write()``): the cheapest way
  to fresh *shared* pages, which the first arrays of a new pool need.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import sys
import time
from typing import Any, Callable

PASSES = 3


def _best(setup: Callable[[], Any], run: Callable[[Any], None], cleanup: Callable[[Any], None]) -> float:
    times = []
    for _ in range(PASSES):
        state = setup()
        start = time.perf_counter()
        run(state)
        times.append(time.perf_counter() - start)
        cleanup(state)
    return min(times)


def measure(p: dict[str, Any]) -> dict[str, Any]:
    """The three figures for ``p["n_arrays"]`` arrays of ``p["array_size"]`` float64."""
    import numpy as np

    arrays = [np.full(p["array_size"], i, dtype=np.float64) for i in range(p["n_arrays"])]
    nbytes = arrays[0].nbytes
    targets = [np.ones_like(a) for a in arrays]  # touched: their pages exist

    def reused(_: Any) -> None:
        for a, t in zip(arrays, targets):
            np.copyto(t, a)

    def fresh_pages() -> list[mmap.mmap]:
        return [mmap.mmap(-1, nbytes) for _ in arrays]

    def fresh(maps: list[mmap.mmap]) -> None:
        for a, m in zip(arrays, maps):
            np.copyto(np.frombuffer(m, dtype=np.float64), a)

    def close(maps: list[mmap.mmap]) -> None:
        for m in maps:
            m.close()

    names = [f"/dev/shm/bench-bound-{os.getpid()}-{i}" for i in range(len(arrays))]

    def fresh_shm(_: Any) -> None:
        for a, name in zip(arrays, names):
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            try:
                os.write(fd, memoryview(a).cast("B"))
            finally:
                os.close(fd)

    def unlink(_: Any) -> None:
        for name in names:
            os.unlink(name)

    out = {
        "bytes": nbytes * len(arrays),
        "reused": _best(lambda: None, reused, lambda _: None),
        "fresh": _best(fresh_pages, fresh, close),
    }
    if os.path.isdir("/dev/shm"):
        out["fresh_shm"] = _best(lambda: None, fresh_shm, unlink)
    return out


def main(argv: list[str]) -> int:
    """Command line: ``--params`` (JSON), ``--out`` (JSON file)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True, help="JSON object of sizes and settings")
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)
    with open(args.out, "w") as fh:
        json.dump(measure(json.loads(args.params)), fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
