"""Quickstart: one function, several iterables, four worker processes."""

from pathos.multiprocessing import ProcessingPool as Pool


def calculate_power(base, exponent):
    return base**exponent


if __name__ == "__main__":
    bases = [1, 2, 3, 4, 5]
    exponents = [2, 3, 2, 4, 3]
    pool = Pool(nodes=4)
    results = pool.map(calculate_power, bases, exponents)  # several iterables, no starmap
    print("Parallel Results:", results)
    pool.clear()  # stop the workers (a `with Pool(nodes=4) as pool:` block does it for you)
