"""Futures and asyncio: pool.submit() gives concurrent.futures Futures; amap and apipe
results are awaitable, and imap/uimap work with async for, without blocking the loop."""

import asyncio
import time
from concurrent.futures import as_completed

from pathos.pools import ProcessPool


def slow_square(x):
    time.sleep(0.05)
    return x * x


async def main(pool):
    total = sum(await pool.amap(slow_square, range(10)))  # the loop runs other tasks meanwhile
    print("awaited amap:", total)
    print("awaited apipe:", await pool.apipe(pow, 2, 10))
    async for value in pool.uimap(slow_square, range(4)):  # as each result arrives
        print("async for got", value)
    try:
        await pool.apipe(int, "not a number")
    except ValueError as error:  # the function's own exception
        print("awaited error:", error)


if __name__ == "__main__":
    with ProcessPool(2) as pool:
        futures = [pool.submit(slow_square, x) for x in range(5)]
        print("as_completed:", sorted(f.result() for f in as_completed(futures, timeout=30)))
        asyncio.run(asyncio.wait_for(main(pool), timeout=60))
