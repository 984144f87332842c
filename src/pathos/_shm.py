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

Arguments (parent to worker) go through the process's :class:`SegmentPool`
(:func:`shared_pool`, one for all its process pools): files the parent keeps mapped and
refills, because pages that already exist are several times cheaper to write than new
ones. Measured on a 2-core EPYC VM, for 320 MB: a copy into mapped pages 17 ms, written
into new ``/dev/shm`` files 120 ms (into fresh private pages 180 ms: page faults cost
more than the copy). So the process engine sends large arguments in batches of about
8 MiB, to idle workers only: a call over 40 arrays of 8 MB fills 3 segments over and
over instead of 40 new ones.

A worker maps a segment for the length of one batch only; if the user's function kept a
reference to an argument (the mapping cannot be closed), the worker says so and the
parent retires that segment instead of reusing it, so no kept array is ever overwritten.
Free segments are unlinked a second after their last use (so the next pool of a
``with ProcessPool() as p:`` loop still finds them), at exit, and, should the parent be
killed, by its workers or by the next process pool started on the machine
(:func:`discard_orphans`). Workers forked later never inherit their mappings.

Where ``/dev/shm`` is missing (macOS, Windows), buffers stay in the pickle stream.
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
import sys
import threading
import time
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
    "large_bytes",
    "load_buffers",
    "map_file",
    "map_segments",
    "shared_pool",
    "unmap_segments",
]

SHM_DIR = "/dev/shm"
THRESHOLD = 1 << 20  # smaller buffers are cheaper to copy through the pipe
GRAIN = 1 << 20  # segment sizes are rounded up to this, so equal-sized arrays share segments
KEEP_BYTES = 256 << 20  # free argument segments the process keeps for reuse, at most
KEEP_SEGMENTS = 64  # ... and at most this many (before Python 3.13 each holds a descriptor)
IDLE_SECONDS = 1.0  # free argument segments unused this long are unlinked
# madvise(MADV_POPULATE_READ), Linux 5.14+ (Python 3.11's mmap has no name for it).
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22) if sys.platform.startswith("linux") else None
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


def large_bytes(obj: Any) -> int:
    """Bytes of the large buffers ``obj`` shows at its top: itself, or the items of a
    tuple or list of at most 16 (a starred call's arguments); 0 when none shows.

    An estimate made before pickling, so that a batch of large arguments can be cut
    small (its segments then come back for reuse sooner): one look per batch.
    """
    if type(obj) in (tuple, list) and len(obj) <= 16:
        return sum(_buffer_bytes(x) for x in obj)
    return _buffer_bytes(obj)


_NO_BUFFER = frozenset({int, float, str, bytes, bool, type(None), complex})  # bytes pickle in band


def _buffer_bytes(obj: Any) -> int:
    if type(obj) in _NO_BUFFER:
        return 0
    try:
        with memoryview(obj) as view:
            nbytes = view.nbytes
    except Exception:  # no buffer (TypeError), or one memoryview will not show (datetime64: ValueError)
        return 0
    return nbytes if nbytes >= THRESHOLD else 0


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


def _map_no_fd(fd: int, size: int) -> mmap.mmap:
    """``mmap.mmap`` of ``fd``, keeping no duplicate of the descriptor where Python can
    (3.13+); before that each mapping holds one until it is closed (segments are few:
    see ``KEEP_SEGMENTS``)."""
    if sys.version_info >= (3, 13):
        return mmap.mmap(fd, size, trackfd=False)  # type: ignore[call-arg,unused-ignore]
    return mmap.mmap(fd, size)


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

    __slots__ = ("capacity", "mm", "name", "used", "warm")

    def __init__(self, name: str, capacity: int, mm: mmap.mmap) -> None:
        self.name, self.capacity, self.mm = name, capacity, mm
        self.used = 0  # bytes of the current buffer
        self.warm = False  # the parent's mapping has its page-table entries (see SegmentPool.put)

    def unlink(self) -> None:
        self.mm.close()
        discard([self.name])


class SegmentPool:
    """Argument segments for reuse, shared by every process pool of this process.

    A segment is *lent* (to one batch, from :meth:`put` to :meth:`give_back`: only the
    thread that took it touches it) or *free* (in ``_free``, under ``_lock``). Several
    pools' manager threads lend and give back at once, so only the free lists are shared.

    Free segments are capped (``keep_bytes`` and ``KEEP_SEGMENTS``) and unlinked once
    none has been lent or given back for ``idle_seconds`` (by a short-lived thread, so
    the next pool of a ``with ProcessPool() as p:`` loop still finds them, yet an idle
    process keeps none), and at interpreter exit.

    Args:
        prefix: names the files (``pathos-<pid>-p``).
        keep_bytes: free segments kept, at most.
        idle_seconds: free segments unused this long are unlinked.
    """

    def __init__(self, prefix: str, keep_bytes: int = KEEP_BYTES, idle_seconds: float = IDLE_SECONDS) -> None:
        self.prefix = prefix
        self.keep_bytes = keep_bytes
        self.idle_seconds = idle_seconds
        self.created = 0  # segments made so far (a measure of reuse, for tests and benchmarks)
        self._lock = threading.Lock()
        self._free: dict[int, list[Segment]] = {}  # capacity -> segments, the last given back last
        self._free_bytes = 0
        self._last_use = 0.0
        self._trimmer: threading.Thread | None = None
        self._closed = False  # the interpreter is exiting: give back means unlink

    def writer(self) -> SegmentWriter:
        """A buffer callback for one batch's arguments."""
        return SegmentWriter(self)

    def put(self, view: memoryview) -> Segment:
        """A segment holding a copy of ``view``: a free one of its size class, or a new file.

        A new file is filled with ``write()``, the cheapest way to make fresh shared
        pages. Copying into a reused segment's pages runs several times faster still;
        its first reuse maps all its pages in one call (``MADV_POPULATE_READ``) instead
        of a page fault per 4 KiB.
        """
        nbytes = view.nbytes
        capacity = max(GRAIN, -(-nbytes // GRAIN) * GRAIN)
        with self._lock:
            free = self._free.get(capacity)
            segment = free.pop() if free else None
            if segment is not None:
                self._free_bytes -= capacity
            self._last_use = time.monotonic()
        if segment is None:
            segment = self._create(view, capacity)
        else:
            if not segment.warm:
                _populate(segment.mm)
                segment.warm = True
            segment.mm[:nbytes] = view
        segment.used = nbytes
        return segment

    def _create(self, view: memoryview, capacity: int) -> Segment:
        name = f"{self.prefix}-{next(_counter)}"
        fd = os.open(os.path.join(SHM_DIR, name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            while view:
                view = view[os.write(fd, view) :]
            os.ftruncate(fd, capacity)
            mm = _map_no_fd(fd, capacity)
            _keep_from_children(mm)
            with self._lock:
                self.created += 1
            return Segment(name, capacity, mm)
        except BaseException:
            discard([name])
            raise
        finally:
            os.close(fd)

    def give_back(self, segments: list[Segment], kept: Collection[str] = ()) -> None:
        """Return a settled batch's segments; those a worker still maps (``kept``) are retired."""
        retired: list[Segment] = []
        with self._lock:
            for segment in segments:
                if segment.name in kept or self._closed or not self._room_locked(segment.capacity):
                    retired.append(segment)
                else:
                    self._free.setdefault(segment.capacity, []).append(segment)
                    self._free_bytes += segment.capacity
            self._last_use = time.monotonic()
            if self._free_bytes and self._trimmer is None:
                self._trimmer = threading.Thread(target=self._trim_when_idle, name="pathos-shm-trim", daemon=True)
                self._trimmer.start()
        for segment in retired:
            segment.unlink()

    def trim(self) -> None:
        """Unlink every free segment now."""
        with self._lock:
            free = self._take_free_locked()
        _unlink_all(free)

    def close(self) -> None:
        """Unlink every free segment, and every segment given back from now on (exit)."""
        with self._lock:
            self._closed = True
            free = self._take_free_locked()
        _unlink_all(free)

    @property
    def holding(self) -> bool:
        with self._lock:
            return self._free_bytes > 0

    def _room_locked(self, capacity: int) -> bool:
        count = sum(len(segments) for segments in self._free.values())
        return self._free_bytes + capacity <= self.keep_bytes and count < KEEP_SEGMENTS

    def _take_free_locked(self) -> list[Segment]:
        free = [segment for segments in self._free.values() for segment in segments]
        self._free, self._free_bytes = {}, 0
        return free

    def _trim_when_idle(self) -> None:
        """The trimmer thread: unlink the free segments once unused for ``idle_seconds``.

        Race: a segment given back just as this thread decides to exit. The decision is
        taken under the lock that :meth:`give_back` takes, and ``_trimmer`` is cleared
        with it: a later give-back sees no trimmer and starts one.
        """
        while True:
            with self._lock:
                wait = self._last_use + self.idle_seconds - time.monotonic()
                if wait <= 0 or not self._free_bytes:
                    free = self._take_free_locked()
                    self._trimmer = None
                    break
            time.sleep(wait)
        _unlink_all(free)


def _unlink_all(segments: list[Segment]) -> None:
    for segment in segments:
        segment.unlink()


def _populate(mm: mmap.mmap) -> None:
    """Map every page of an existing file's mapping in one call (Linux 5.14+; elsewhere
    the copy that follows faults them in, one by one)."""
    if _MADV_POPULATE_READ is not None:
        try:
            mm.madvise(_MADV_POPULATE_READ)
        except OSError:  # an older kernel: the copy faults the pages in
            pass


def _keep_from_children(mm: mmap.mmap) -> None:
    """A process forked later (a new worker) must not inherit the mapping: it would
    keep the pages allocated for its whole life after the parent unlinks the file."""
    dontfork = getattr(mmap, "MADV_DONTFORK", None)
    if dontfork is not None:
        try:
            mm.madvise(dontfork)
        except OSError:  # pragma: no cover - not supported here
            pass


_shared: SegmentPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> SegmentPool:
    """This process's :class:`SegmentPool`, made on first use (a forked child makes its own)."""
    global _shared
    pool = _shared
    if pool is None:
        with _shared_lock:
            if _shared is None:
                _shared = SegmentPool(f"pathos-{os.getpid()}-p")
                _close_at_exit()
            pool = _shared
    return pool


_exit_hook: list[bool] = []


def _close_at_exit() -> None:
    """Register, once, the exit hook that unlinks the free segments. Backends stopped by
    later exit hooks give their segments back after it ran: ``close`` makes those go too."""
    if not _exit_hook:
        import atexit

        atexit.register(_close_shared)
        _exit_hook.append(True)


def _close_shared() -> None:
    pool = _shared
    if pool is not None:
        pool.close()


def _forget_inherited() -> None:
    """In a forked child: the parent's segments are not ours (their mappings were not
    inherited, see :func:`_keep_from_children`), and the lock may have been held by a
    thread that does not exist here."""
    global _shared, _shared_lock
    _shared = None
    _shared_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)


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
                mm = _map_no_fd(fd, nbytes)
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
