"""The chaos suite's task (tests/_chaos.py): each item says what it does. Importable by
workers under every start method."""

from __future__ import annotations

import os
import time
from typing import Any

from ._cases import square

CHAOS_SLOW = 2.0  # seconds a "slow" item sleeps; chaos calls that have one use timeout=0.5
CHAOS_BIG = 1 << 21  # bytes of a "big" result: over the shared-memory threshold


class ChaosError(Exception):
    """What a chaos item that "raises" raises; ``args[0]`` is its position."""


def chaos_task(item: tuple[int, str, float, str | None]) -> Any:
    """Run one chaos item ``(position, action, pause, runs_dir)``.

    Every run appends a byte to ``runs_dir/<position>``, so a test can count how often an
    item ran (a finished item must never run again).
    """
    i, action, pause, runs = item
    if runs is not None:
        with open(os.path.join(runs, str(i)), "ab") as f:
            f.write(b"x")
    if pause:
        time.sleep(pause)
    if action == "raise":
        raise ChaosError(i)
    if action == "exit":
        os._exit(13)
    if action == "sysexit":
        raise SystemExit(i)
    if action == "slow":
        time.sleep(CHAOS_SLOW)
    if action == "big":
        return bytes([i % 256]) * CHAOS_BIG
    if action == "nested":
        return i * i + _nested_sum()
    return i * i


def _nested_sum() -> int:
    """Map on a new ProcessPool from inside a task (default id, as users write it)."""
    import threading

    from pathos.pools import ProcessPool

    # One worker process runs one task at a time, so the default id is what a user would
    # write; a thread pool runs several at once, so each thread takes its own id there.
    main = threading.current_thread() is threading.main_thread()
    pool_id = None if main else f"nested-{os.getpid()}-{threading.get_ident()}"
    kwds = {} if pool_id is None else {"id": pool_id}
    with ProcessPool(2, **kwds) as pool:
        return sum(pool.map(square, range(3)))
