"""Large buffers travel through shared memory, not pipes.

Pickle protocol 5 hands every buffer an object exposes (numpy arrays, ``bytearray``,
``pickle.PickleBuffer``) to a callback. :class:`BufferWriter` copies each buffer of at
least ``THRESHOLD`` bytes into its own file in ``/dev/shm`` (memory, not disk) and keeps
it out of the pickle stream; :func:`load_buffers` maps those files on the other side,
with no further copy: the rebuilt array's memory *is* the mapping, writable and private
to its receiver. A pipe moves a few hundred MB/s; this moves data at memory speed.

Results (worker to parent) are single-use: the parent maps each file and unlinks it at
once (the mapping lives on until the array is collected). A dead worker's files are found
by their name, ``pathos-<parent pid>-<worker pid>-<n>``, and removed.

Arguments (parent to worker) go through a :class:`SegmentPool`: files the parent keeps
mapped and reuses from batch to batch, because writing into pages that already exist
runs several times faster than making new ones. A worker maps a segment for the length
of one batch only; if the user's function kept a reference to an argument (the mapping
cannot be closed), the worker says so and the parent retires that segment instead of
reusing it, so no kept array is ever overwritten. Free segments are unlinked when the
pool goes idle, when it shuts down, and, should the parent be killed, by its workers or
by the next process pool started on the machine (:func:`discard_orphans`).

Where ``/dev/shm`` is missing (macOS, Windows), buffers stay in the pickle stream.
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
import sys
import threading
import weakref
from typing import Any, Collection

__all__ = [
    "THRESHOLD",
    "BufferWriter",
    "Segment",
    "SegmentPool",
    "SegmentWriter",
    "available",
    "discard",
    "discard_orphans",
    "discard_orphans_once",
    "discard_prefix",
    "load_buffers",
    "map_file",
    "map_segments",
    "unmap_segments",
]

SHM_DIR = "/dev/shm"
THRESHOLD = 1 << 20  # smaller buffers are cheaper to copy through the pipe
GRAIN = 1 << 20  # segment sizes are rounded up to this, so equal-sized arrays share segments
KEEP_BYTES = 256 << 20  # free segments kept for reuse while work is running, at most
_counter = itertools.count()


def available() -> bool:
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


def _large_view(buffer: pickle.PickleBuffer) -> memoryview | None:
    """The buffer's bytes if it is worth moving out of band (contiguous and large)."""
    try:
        view = buffer.raw()
    except BufferError:  # not contiguous: let pickle copy it in-band
        return None
    return view if view.nbytes >= THRESHOLD else None


class BufferWriter:
    """A pickle ``buffer_callback`` that moves large buffers into shared-memory files.

    Args:
        prefix: names the files, so that a dead writer's files can be found.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names: list[str] = []

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        view = _large_view(buffer)
        if view is None:
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
    """Map and unlink the named files, in order, for ``pickle.loads(buffers=...)``.

    The mappings keep no file descriptor open (see :func:`map_file`): results may be
    kept by the thousand.
    """
    buffers: list[Any] = []
    try:
        for name in names:
            path = os.path.join(SHM_DIR, name)
            fd = os.open(path, os.O_RDWR)
            try:
                size = os.fstat(fd).st_size
                buffers.append(map_file(fd, size) if size else bytearray())
            finally:
                os.close(fd)
                os.unlink(path)
    except BaseException:
        discard(names)
        raise
    return buffers


def map_file(fd: int, size: int) -> memoryview:
    """A writable shared mapping of ``size`` bytes of ``fd`` that keeps no descriptor.

    ``mmap.mmap`` keeps a duplicate of the descriptor for as long as the mapping lives
    (one open file per result array: 1,000 of them exhaust the usual ``ulimit -n``).
    Python 3.13 can be told not to (``trackfd=False``); before that the mapping is made
    with libc's ``mmap`` and unmapped when the last view of it is released.
    """
    if sys.version_info >= (3, 13):
        return memoryview(mmap.mmap(fd, size, trackfd=False))  # type: ignore[call-arg,unused-ignore]
    import ctypes  # here: workers import this module and need no ctypes (it costs their start)

    libc = _libc()
    if libc is None:  # pragma: no cover - no usable libc: keep the descriptor
        return memoryview(mmap.mmap(fd, size))
    address = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), f"mmap of {size} bytes failed: {os.strerror(ctypes.get_errno())}")
    region = (ctypes.c_ubyte * size).from_address(address)
    weakref.finalize(region, libc.munmap, ctypes.c_void_p(address), ctypes.c_size_t(size))
    return memoryview(region).cast("B")


_libc_cache: list[Any] = []


def _libc() -> Any:
    if not _libc_cache:
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_long,
            ]
            libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        except (OSError, AttributeError):  # pragma: no cover
            libc = None
        _libc_cache.append(libc)
    return _libc_cache[0]


def discard(names: list[str]) -> None:
    """Unlink the named files; those already gone are fine."""
    for name in names:
        try:
            os.unlink(os.path.join(SHM_DIR, name))
        except FileNotFoundError:
            pass


def discard_orphans() -> None:
    """Unlink the files of pathos processes that no longer exist (one killed by SIGKILL
    could not clean up, and its workers may have been killed with it)."""
    try:
        names = [n for n in os.listdir(SHM_DIR) if n.startswith("pathos-")]
    except OSError:
        return
    dead: dict[str, bool] = {}
    for name in names:
        owner = name.split("-")[1]
        if owner.isdigit() and dead.setdefault(owner, not _alive(int(owner))):
            discard([name])


_orphans_checked = threading.Lock()


def discard_orphans_once() -> None:
    """:func:`discard_orphans`, the first time a process calls it (a crowded ``/dev/shm``
    takes milliseconds to list)."""
    if _orphans_checked.acquire(blocking=False):
        discard_orphans()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but is not ours to signal
        return True
    return True


def discard_prefix(prefix: str) -> None:
    """Unlink every file whose name starts with ``prefix`` (a dead worker's leftovers)."""
    try:
        names = [n for n in os.listdir(SHM_DIR) if n.startswith(prefix)]
    except OSError:
        return
    discard(names)


class Segment:
    """A shared-memory file the parent keeps mapped and reuses for arguments."""

    __slots__ = ("capacity", "mm", "name", "used")

    def __init__(self, name: str, capacity: int, mm: mmap.mmap) -> None:
        self.name, self.capacity, self.mm = name, capacity, mm
        self.used = 0  # bytes of the current buffer

    def unlink(self) -> None:
        self.mm.close()
        discard([self.name])


class SegmentPool:
    """The parent's reusable argument segments, handed out through :meth:`writer`.

    Used from one thread (the process backend's manager thread).

    Args:
        prefix: names the files (``pathos-<parent pid>-p``).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._free: dict[int, list[Segment]] = {}
        self._free_bytes = 0

    def writer(self) -> SegmentWriter:
        """A buffer callback for one batch's arguments."""
        return SegmentWriter(self)

    def put(self, view: memoryview) -> Segment:
        """A segment holding a copy of ``view``: a free one of its size class, or a new file.

        Copying into a reused segment's pages runs several times faster than making new
        pages; a new file is filled with ``write()``, faster than faulting in a fresh mapping.
        """
        nbytes = view.nbytes
        capacity = max(GRAIN, -(-nbytes // GRAIN) * GRAIN)
        free = self._free.get(capacity)
        if free:
            segment = free.pop()
            self._free_bytes -= capacity
            segment.mm[:nbytes] = view
        else:
            segment = self._create(view, capacity)
        segment.used = nbytes
        return segment

    def _create(self, view: memoryview, capacity: int) -> Segment:
        name = f"{self.prefix}-{next(_counter)}"
        fd = os.open(os.path.join(SHM_DIR, name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            while view:
                view = view[os.write(fd, view) :]
            os.ftruncate(fd, capacity)
            return Segment(name, capacity, mmap.mmap(fd, capacity))
        except BaseException:
            discard([name])
            raise
        finally:
            os.close(fd)

    def give_back(self, segments: list[Segment], kept: Collection[str] = ()) -> None:
        """Return a settled batch's segments; those a worker still maps (``kept``) are retired."""
        for segment in segments:
            if segment.name in kept or self._free_bytes + segment.capacity > KEEP_BYTES:
                segment.unlink()
            else:
                self._free.setdefault(segment.capacity, []).append(segment)
                self._free_bytes += segment.capacity

    def trim(self) -> None:
        """Unlink every free segment (the pool is idle or shutting down)."""
        free, self._free, self._free_bytes = self._free, {}, 0
        for segments in free.values():
            for segment in segments:
                segment.unlink()

    @property
    def holding(self) -> bool:
        return self._free_bytes > 0


class SegmentWriter:
    """A pickle ``buffer_callback`` that copies large buffers into pooled segments."""

    def __init__(self, pool: SegmentPool) -> None:
        self.pool = pool
        self.segments: list[Segment] = []

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        view = _large_view(buffer)
        if view is None:
            return True
        self.segments.append(self.pool.put(view))
        return False

    def discard(self) -> None:
        """Give back the segments taken so far (the pickling failed)."""
        self.pool.give_back(self.segments)
        self.segments = []


def map_segments(refs: list[tuple[str, int]]) -> tuple[list[Any], list[tuple[str, mmap.mmap, memoryview]]]:
    """Map the parent's argument segments for one batch (the worker side).

    Returns:
        The buffers for ``pickle.loads(buffers=...)``, and the handles that
        :func:`unmap_segments` needs once the batch has run.
    """
    buffers: list[Any] = []
    handles: list[tuple[str, mmap.mmap, memoryview]] = []
    try:
        for name, nbytes in refs:
            fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR)
            try:
                mm = mmap.mmap(fd, nbytes)
            finally:
                os.close(fd)
            view = memoryview(mm)
            handles.append((name, mm, view))
            buffers.append(view)
    except BaseException:
        unmap_segments(handles)
        raise
    return buffers, handles


def unmap_segments(handles: list[tuple[str, mmap.mmap, memoryview]]) -> list[str]:
    """Close the batch's mappings; the names of those still referenced stay mapped.

    An argument the user's function kept (in a global, say) still points into its
    mapping: that mapping is left alone, and the parent must not reuse the segment.
    """
    kept: list[str] = []
    for name, mm, view in handles:
        try:
            view.release()
            mm.close()
        except BufferError:
            kept.append(name)
    return kept
