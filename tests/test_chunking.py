"""Automatic chunking: batch sizes follow measured item times, and a function's next call
starts from what its last call measured."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from pathos._job import TARGET_BATCH_SECONDS, Job

from .conftest import make_pool


def inc(x: int) -> int:
    return x + 1


def test_a_new_job_starts_with_single_items_then_follows_its_timing() -> None:
    job = Job(inc, nodes=2)
    assert job.ideal_batch() == 1 and job.item_seconds() is None
    job.seed_timing(TARGET_BATCH_SECONDS / 1000)
    assert 999 <= job.ideal_batch() <= 1000 and job.item_seconds() == pytest.approx(TARGET_BATCH_SECONDS / 1000)


def test_a_seed_never_overrides_real_measurements() -> None:
    job = Job(inc, nodes=2)
    job.feed([1, 2], last=True)
    batch = job.next_batch()
    assert batch is not None
    job.batch_done(batch, [2, 3][: len(batch.items)], None, 0.5)
    measured = job.item_seconds()
    job.seed_timing(1e-9)
    assert job.item_seconds() == measured


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_the_next_call_of_a_function_starts_from_its_last_timing(kind: str) -> None:
    pool: Any = make_pool(kind)
    try:
        assert pool.map(inc, range(1000)) == list(range(1, 1001))
        backend = pool._serve()
        learned = backend._timings.get(inc)
        assert learned is not None and learned > 0
        ident = lambda x: x  # noqa: E731
        assert pool.map(ident, range(100)) == list(range(100))
        assert backend._timings.get(ident) is not None  # a lambda is remembered as long as it lives...
        del ident
        gc.collect()
        assert list(backend._timings.keys()) == [inc]  # ...and forgotten with it
        assert pool.map(inc, range(5), chunksize=2) == [1, 2, 3, 4, 5]
    finally:
        pool.clear()
