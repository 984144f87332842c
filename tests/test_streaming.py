"""Streaming input from a pipe never hangs: workers forked while another thread reads
stdin start normally, and workers never outlive a parent that dies abruptly."""

from __future__ import annotations

import io
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from .conftest import make_pool

WAIT = 10  # seconds: reached only if something hangs

needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")


@needs_fork
def test_workers_forked_while_a_thread_reads_stdin_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # `pathos map` reads its input in the main thread while the manager thread forks the
    # workers. A reader blocked on an empty pipe holds the lock of sys.stdin, and a forked
    # child, where that thread does not exist, used to block forever when multiprocessing
    # closed stdin, before the worker even started.
    r, w = os.pipe()
    stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(r, "r")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    reader = threading.Thread(target=stdin.readline, daemon=True)
    reader.start()
    time.sleep(0.1)  # let the reader block in read() with the lock held
    pool = make_pool("process", context="fork")
    try:
        assert pool.amap(abs, [-1, -2, -3]).get(timeout=WAIT) == [1, 2, 3]
        assert list(pool.imap(abs, iter([-4, -5]))) == [4, 5]
    finally:
        os.write(w, b"line\n")
        reader.join(WAIT)
        os.close(w)
        stdin.close()
        pool.terminate()
        pool.clear()


DIE_WHILE_WORKERS_RUN = """
    import itertools, multiprocessing, os, sys, time
    from pathos.pools import ProcessPool

    def f(n, x):
        return n, x.upper()

    def hog(n):
        return sum(range(n))  # one C call, which keeps the GIL for hours

    pool = ProcessPool(2, id="orphans")
    if sys.argv[1] == "streaming":  # workers idle, waiting for the next batch
        results = pool.imap(f, itertools.count(1), (line[:-1] for line in sys.stdin))
        assert next(results) == (1, "A")
    else:  # a worker whose watchdog thread never gets the GIL
        pool.amap(hog, [10**13])
        time.sleep(0.5)
    with open(sys.argv[2], "w") as out:
        out.write(" ".join(str(p.pid) for p in multiprocessing.active_children()))
    os._exit(1)  # as faulthandler's exit=True does: no atexit hook, no cleanup
"""


@pytest.mark.parametrize("doing", ["streaming", "holding-the-gil"])
def test_workers_exit_when_the_parent_dies_abruptly(doing: str, tmp_path: Any) -> None:
    psutil = pytest.importorskip("psutil")
    code = textwrap.dedent(DIE_WHILE_WORKERS_RUN)
    pid_file = tmp_path / "workers"
    # No pipe for its output: a surviving worker would hold it open and stall us.
    done = subprocess.run(
        [sys.executable, "-c", code, doing, str(pid_file)],
        input=b"a\n" * 1000,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 1
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + WAIT
    alive: list[Any] = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.05)
    for pid in alive:  # do not leave them behind if the test fails
        psutil.Process(pid).kill()
    assert not alive, f"workers {alive} outlived their parent"
