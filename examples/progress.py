"""Progress bars: progress=True on any map verb draws a tqdm bar on stderr."""

import time

from pathos.pools import ProcessPool


def slow_square(x):
    time.sleep(0.005)
    return x * x


if __name__ == "__main__":
    with ProcessPool(2) as pool:
        # a sized input: the bar knows its total (100)
        squares = pool.map(slow_square, range(100), progress=True)
        print("sum of squares:", sum(squares))

        # a generator has no len(): the bar counts items as they finish
        evens = (x for x in range(200) if x % 2 == 0)
        print("largest:", max(pool.uimap(slow_square, evens, progress={"desc": "evens"})))

        # a callable gets the number of items each time a batch finishes
        done = []
        pool.map(slow_square, range(50), progress=done.append)
        print("items reported:", sum(done))
