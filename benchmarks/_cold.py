"""One cold start, in the fresh interpreter that runs this file: import a library, start
its pool and get the first result of a trivial task, as a program's first parallel call
does. Prints one JSON line: ``{"seconds": ..., "pathos": file of the pathos imported}``.

    python _cold.py LIB NODES

Run by the ``start_cold`` workload of ``_measure.py``, several times per round. The clock
starts after this file's own imports (``_libs`` and ``_tasks``, which import nothing but
``os`` at run time) and stops at the first result; stopping the pool is not timed.
"""

import sys
import time

import _libs
import _tasks


def main(argv: list[str]) -> int:
    lib, nodes = argv[0], int(argv[1])
    start = time.perf_counter()
    pool = _libs.ADAPTERS[lib](nodes)
    pool.start()  # each adapter imports its library here
    out = pool.map(_tasks.inc, [1])
    elapsed = time.perf_counter() - start
    pool.stop()
    if out != [2]:
        raise AssertionError(f"unexpected first result {out!r}")
    import json

    pathos = sys.modules.get("pathos")
    print(json.dumps({"seconds": elapsed, "pathos": getattr(pathos, "__file__", None)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
