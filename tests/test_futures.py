"""pool.submit() futures, awaitable amap/apipe results, and async for over imap/uimap."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from typing import Any

import pytest

from . import _cases
from .conftest import TIMEOUT, make_pool


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


@pytest.fixture
def one_thread() -> Any:
    p = make_pool("thread", nodes=1)
    yield p
    p.terminate()
    p.clear()


def test_submit_returns_futures_for_as_completed(pool: Any) -> None:
    futures = [pool.submit(_cases.add, x, y=10) for x in range(6)]
    assert all(isinstance(f, cf.Future) for f in futures)
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=TIMEOUT)) == list(range(10, 16))
    done, not_done = cf.wait(futures, timeout=TIMEOUT)
    assert len(done) == 6 and not not_done


def test_submit_raises_the_functions_own_exception(pool: Any) -> None:
    future = pool.submit(_cases.fail_at, 3)
    with pytest.raises(KeyError):
        future.result(TIMEOUT)
    assert isinstance(future.exception(TIMEOUT), KeyError)


def test_submit_cancels_only_what_has_not_started(one_thread: Any) -> None:
    release = threading.Event()
    running = one_thread.submit(release.wait, TIMEOUT)
    queued = one_thread.submit(_cases.square, 3)
    assert cf.wait([running], timeout=0.2).not_done  # holds the only thread
    assert queued.cancel() and queued.cancelled()
    assert not running.cancel()
    done, _ = cf.wait([queued], timeout=TIMEOUT)  # a cancel wakes wait()
    assert queued in done
    release.set()
    assert running.result(TIMEOUT) is True
    with pytest.raises(cf.CancelledError):
        queued.result(0)
    assert one_thread.map(_cases.square, [2]) == [4]


def test_await_amap_and_apipe(pool: Any) -> None:
    async def main() -> Any:
        return await pool.amap(_cases.add, [1, 2], [3, 4]), await pool.apipe(_cases.add, 1, y=2)

    assert run(main()) == ([4, 6], 3)


def test_await_raises_the_functions_exception(pool: Any) -> None:
    async def main() -> Any:
        return await pool.amap(_cases.fail_at, range(6))

    with pytest.raises(KeyError):
        run(main())


def test_async_for_imap_and_uimap(pool: Any) -> None:
    async def main() -> Any:
        ordered = [x async for x in pool.imap(_cases.square, range(10))]
        unordered = [x async for x in pool.uimap(_cases.square, (x for x in range(10)))]
        return ordered, sorted(unordered)

    squares = [x * x for x in range(10)]
    assert run(main()) == (squares, squares)


def test_async_for_raises_at_the_failing_item(pool: Any) -> None:
    seen: list[int] = []

    async def main() -> None:
        async for x in pool.imap(_cases.fail_at, range(6)):
            seen.append(x)

    with pytest.raises(KeyError):
        run(main())
    assert seen == [0, 1, 2]


def test_waiting_does_not_block_the_event_loop(parallel_pool: Any) -> None:
    async def ticker(ticks: list[int]) -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    async def main() -> tuple[Any, Any, int]:
        ticks: list[int] = []
        task = asyncio.create_task(ticker(ticks))
        values = await parallel_pool.amap(_cases.sleep_then, [0.2, 0.2])
        items = [x async for x in parallel_pool.uimap(_cases.sleep_then, [0.1, 0.1])]
        task.cancel()
        return values, items, len(ticks)

    values, items, ticks = run(main())
    assert values == [0.2, 0.2] and items == [0.1, 0.1]
    assert ticks >= 10


def test_cancelling_the_awaiting_task_cancels_the_work(one_thread: Any) -> None:
    result = one_thread.amap(_cases.sleep_then, [0.05] * 100)

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(result, 0.1)

    run(main())
    assert result.cancelled()
    assert one_thread.map(_cases.square, [3]) == [9]
