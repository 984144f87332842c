"""Large buffers travel through shared memory, not pipes.

Pickle protocol 5 hands every buffer an object exposes (numpy arrays, ``bytearray``,
``pickle.PickleBuffer``) to a callback. :class:`BufferWriter` copies each buffer of at
least ``THRESHOLD`` bytes into its own file in ``/dev/shm`` (memory, not disk) and keeps
it out of the pickle stream; :func:`load_buffers` maps those files on the other side,
with no further copy: the rebuilt array's memory *is* the mapping, writable and private
to its receiver. A pipe moves a few hundred MB/s; this moves data at memory speed.

No leaks: a receiver unlinks each file as soon as it has mapped it (the mapping lives
on until the array is collected). The sender unlinks whatever is left once the batch is
settled, whatever its fate, and the files a dead worker wrote are found by their name,
``pathos-<parent pid>-<worker pid>-<n>``, and removed.

Where ``/dev/shm`` is missing (macOS, Windows), buffers stay in the pickle stream.
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
from typing import Any

__all__ = ["THRESHOLD", "BufferWriter", "available", "discard", "discard_prefix", "load_buffers"]

SHM_DIR = "/dev/shm"
THRESHOLD = 1 << 20  # smaller buffers are cheaper to copy through the pipe
_counter = itertools.count()


def available() -> bool:
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


class BufferWriter:
    """A pickle ``buffer_callback`` that moves large buffers into shared-memory files.

    Args:
        prefix: names the files, so that a dead writer's files can be found.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names: list[str] = []

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()
        except BufferError:  # not contiguous: let pickle copy it in-band
            return True
        if view.nbytes < THRESHOLD:
            return True
        name = f"{self.prefix}-{next(_counter)}"
        fd = os.open(os.path.join(SHM_DIR, name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        self.names.append(name)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)
        return False

    def discard(self) -> None:
        """Remove the files written so far (the pickling failed)."""
        discard(self.names)
        self.names = []


def load_buffers(names: list[str]) -> list[Any]:
    """Map and unlink the named files, in order, for ``pickle.loads(buffers=...)``."""
    buffers: list[Any] = []
    try:
        for name in names:
            path = os.path.join(SHM_DIR, name)
            fd = os.open(path, os.O_RDWR)
            try:
                size = os.fstat(fd).st_size
                buffers.append(memoryview(mmap.mmap(fd, size)) if size else bytearray())
            finally:
                os.close(fd)
                os.unlink(path)
    except BaseException:
        discard(names)
        raise
    return buffers


def discard(names: list[str]) -> None:
    """Unlink the named files; those already gone are fine."""
    for name in names:
        try:
            os.unlink(os.path.join(SHM_DIR, name))
        except FileNotFoundError:
            pass


def discard_prefix(prefix: str) -> None:
    """Unlink every file whose name starts with ``prefix`` (a dead worker's leftovers)."""
    try:
        names = [n for n in os.listdir(SHM_DIR) if n.startswith(prefix)]
    except OSError:
        return
    discard(names)
