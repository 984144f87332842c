"""Where a job keeps finished batches until its consumer takes them."""

from __future__ import annotations

import sys
from collections import deque
from typing import Any, NamedTuple

__all__ = ["Chunk", "Outcomes", "estimate_bytes"]


class Chunk(NamedTuple):
    """A finished batch's outcomes: ``values[i]`` is item ``start + i``'s value, unless
    ``errors`` maps ``i`` to its exception. ``nbytes``: the results' size, as reported."""

    start: int
    values: list[Any]
    errors: dict[int, BaseException] | None
    nbytes: int


class Outcomes:
    """Finished batches waiting to be consumed: the job's outcome store.

    Ordered consumers (``imap``, ``map``) take chunks by position; unordered ones
    (``uimap``) in completion order. Either way a chunk is held only until taken, so a
    stream's bookkeeping stays as small as its window. Not thread-safe: the job calls it
    under its lock.

    Attributes:
        held_bytes: reported bytes of the results held now.
    """

    def __init__(self, ordered: bool = True) -> None:
        self.ordered = ordered
        self._by_start: dict[int, Chunk] = {}  # ordered
        self._arrived: deque[Chunk] = deque()  # unordered, in completion order
        self.held_bytes = 0
        self._bytes_seen = 0  # every result reported so far, for the mean size
        self._items_seen = 0

    def add(self, chunk: Chunk) -> None:
        if self.ordered:
            self._by_start[chunk.start] = chunk
        else:
            self._arrived.append(chunk)
        self.held_bytes += chunk.nbytes
        self._bytes_seen += chunk.nbytes
        self._items_seen += len(chunk.values)

    def ready(self, position: int) -> bool:
        """True if a chunk can be taken: the one at ``position`` (ordered), or any."""
        return position in self._by_start if self.ordered else bool(self._arrived)

    def take(self, position: int) -> Chunk | None:
        """Remove and return the chunk at ``position`` (ordered) or the oldest one."""
        if self.ordered:
            chunk = self._by_start.pop(position, None)
        else:
            chunk = self._arrived.popleft() if self._arrived else None
        if chunk is not None:
            self.held_bytes -= chunk.nbytes
        return chunk

    def values(self) -> list[Any]:
        """Every held value in input order (an eager call's result)."""
        chunks = sorted(self._arrived, key=lambda c: c.start) if not self.ordered else None
        if chunks is None:
            chunks = [self._by_start[start] for start in sorted(self._by_start)]
        if len(chunks) == 1:
            return list(chunks[0].values)
        out: list[Any] = []
        for chunk in chunks:
            out.extend(chunk.values)
        return out

    def result_size(self) -> float | None:
        """Mean reported bytes per result so far, once any were reported."""
        return self._bytes_seen / self._items_seen if self._bytes_seen and self._items_seen else None

    def __len__(self) -> int:
        """Chunks held: the bookkeeping entries."""
        return len(self._by_start) + len(self._arrived)


def estimate_bytes(values: list[Any]) -> int:
    """The results' shallow size, when the backend did not measure it (in-process pools)."""
    try:
        return sum(map(sys.getsizeof, values))
    except Exception:  # a broken __sizeof__
        return 64 * len(values)
