"""Failures and timeouts: a dead worker and a stuck task raise at once; the pool carries on."""

import os
import signal
import time

from pathos import TaskTimeoutError, WorkerCrashedError
from pathos.pools import ProcessPool


def risky(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
    return x


if __name__ == "__main__":
    with ProcessPool(2) as pool:
        try:
            pool.map(risky, range(8))
        except WorkerCrashedError as error:
            print(f"item {error.task} killed its worker ({error.signal}); the pool replaced it")
        print("still usable:", pool.map(abs, [-1, -2]))

        try:
            pool.map(time.sleep, [0.1, 30], timeout=1)
        except TaskTimeoutError as error:
            print(f"item {error.task} ran past {error.timeout} s and was stopped")

        # imap keeps going past a failed item: every other result still arrives.
        iterator = pool.imap(risky, range(6))
        for i in range(6):
            try:
                print("imap:", next(iterator))
            except WorkerCrashedError:
                print(f"imap: item {i} failed")
