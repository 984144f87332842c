"""How many items the next batch of a job takes: the chunking policy, on its own.

The first batches of a job hold one item each; once items are timed, a batch aims at
``TARGET_BATCH_SECONDS`` of work, but never more than an even share of what is left
(half a worker's share), so load stays balanced, nor less than ``MIN_BATCH_SECONDS`` of
work, unless that would be more than a worker's share. When the rest of a call is less
than that floor per worker (its *tail*), it is cut into one equal piece per worker, once:
the tail does not dwindle into ever smaller halves (each batch costs a round trip).

A timing remembered from an earlier call of the same function (a *seed*) sizes the
first batches at once, but until the job has timed items of its own the first batch of
each worker holds at most ``UNMEASURED_BATCH_ITEMS``, and no batch more than a worker's
share of what is left: a wrong seed costs one short batch per worker, never a whole
call run as one batch, and a right one costs no more than that.
"""

from __future__ import annotations

import math

__all__ = [
    "MIN_BATCH_SECONDS",
    "QUICK_BATCH_SECONDS",
    "TARGET_BATCH_SECONDS",
    "UNMEASURED_BATCH_ITEMS",
    "Batcher",
]

TARGET_BATCH_SECONDS = 0.02
QUICK_BATCH_SECONDS = 0.002  # batches this short may be queued behind each other
MIN_BATCH_SECONDS = 0.001  # the smallest batch worth sending, in measured work
UNMEASURED_BATCH_ITEMS = 64  # the most items in each worker's first batch, before the job timed its own


class Batcher:
    """How many items the next batch of a job takes: the chunking policy, and nothing else.

    Not thread-safe: the job calls it under its lock.

    Args:
        nodes: workers that share the job, for the balance cap.
        chunksize: fixed items per batch, or None for adaptive.
        timeout: per-task limit; a timed job runs one item per batch.
    """

    def __init__(self, nodes: int = 1, chunksize: int | None = None, timeout: float | None = None) -> None:
        self.nodes = max(1, nodes)
        self.chunksize = chunksize
        self.timeout = timeout
        self._seconds = 0.0  # measured seconds ...
        self._timed = 0  # ... over this many items
        self._own = False  # some of them were this job's own (not only a seed)
        self._short_left = self.nodes  # first batches (one per worker) still held to UNMEASURED_BATCH_ITEMS
        self._tail: tuple[int, int] | None = None  # (piece size, items waiting when the tail began)

    def seed(self, seconds: float) -> None:
        """Start from an earlier call's seconds per item, worth one measured item, so
        the job's own first measurement soon outweighs it."""
        if not self._timed:
            self._seconds, self._timed = seconds, 1

    def record(self, items: int, seconds: float) -> None:
        """``items`` items of this job took ``seconds`` in a worker."""
        self._seconds += seconds
        self._timed += items
        self._own = True

    def item_seconds(self) -> float | None:
        """Measured seconds per item, if any item was measured (or seeded)."""
        return self._seconds / self._timed if self._timed else None

    def ideal(self) -> int:
        """Items per batch that make about ``TARGET_BATCH_SECONDS`` of work."""
        if self.chunksize:
            return self.chunksize
        if self.timeout is not None or not self._timed:
            return 1
        per_item = self._seconds / self._timed
        return max(1, int(TARGET_BATCH_SECONDS / per_item) if per_item > 0 else 1 << 30)

    def is_quick(self, items: int, limit: float = QUICK_BATCH_SECONDS) -> bool:
        """True if ``items`` items are measured to take under ``limit`` seconds."""
        return bool(self._timed) and self._seconds / self._timed * items < limit

    def size(self, waiting: int) -> int:
        """Items for the next batch when ``waiting`` items are ready to be batched."""
        size = self.ideal()
        if self.chunksize or size == 1:
            return size
        share = math.ceil(waiting / (2 * self.nodes))
        # Never below about MIN_BATCH_SECONDS of work, so the tail of a call does not
        # dwindle into batches that cost more to send than to run; but that floor never
        # exceeds a worker's share of what is left, so it cannot leave workers idle.
        floor = max(1, int(size * MIN_BATCH_SECONDS / TARGET_BATCH_SECONDS))
        floor = min(floor, self._tail_piece(waiting, floor))
        size = min(size, max(share, floor))
        if not self._own and self._short_left > 0:
            self._short_left -= 1
            size = min(size, UNMEASURED_BATCH_ITEMS)
        return max(1, size)

    def _tail_piece(self, waiting: int, floor: int) -> int:
        """A worker's share of the tail, fixed when the tail begins (more input resets it)."""
        if self._tail is not None and waiting <= self._tail[1]:
            return self._tail[0]
        piece = math.ceil(waiting / self.nodes)
        # The tail begins when the floor no longer fits in a worker's share; before that
        # the cap is the share itself, recomputed each time.
        self._tail = (piece, waiting) if floor > piece else None
        return piece
