"""Serialization: the C pickler first, dill only for what it cannot do.

Plain data (numbers, strings, lists, dicts, numpy arrays, instances of importable
classes) goes through the standard library's C pickler, which is many times faster than
dill. A ``reducer_override`` hook sends by value, through dill, only the objects that a
worker cannot import by name:

* functions defined in ``__main__``, lambdas, nested functions and closures;
* classes defined in ``__main__`` or inside functions.

If the C pickler still fails (a module object, a lock, ...), the whole object is retried
with dill. Both routes produce bytes that load with plain :func:`pickle.loads`.

dill runs with ``dill.settings`` as pathos 0.3.5 does (``recurse=False`` by default): a
function sent by value finds its globals in its module on the other side (the worker's
own ``__main__`` for a function of the main script), so a worker uses the objects it
inherited (a module-level ``multiprocessing.Value``) and library internals are never
copied. The ``__main__`` globals a function uses travel with it, each only if it can be
pickled, and are used only where the receiver's ``__main__`` lacks them (globals bound
under ``if __name__ == "__main__":`` in a spawned worker, anything on a Dask worker):
see :mod:`pathos._mainguard`.

dill is imported the first time something needs it (a process pool that only ever sends
importable functions and plain data never loads it, nor do its workers): that first use
may be on a pool's manager thread, so it goes through :func:`pathos._lazy.load`.

Classes sent by value are *canonical*: each process keeps one class object per class
definition (keyed by a digest of its dill bytes), and a class that came from this process
goes back to this same class object. So ``isinstance(result, MyClass)`` holds in the
parent for results built from a ``__main__`` class, and inside a worker for arguments
and the function's own globals alike.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import threading
import types
import weakref
from collections import OrderedDict
from typing import Any, Callable

from . import _lazy
from ._errors import SerializationError
from ._mainguard import main_dict, needed_globals
from ._shm import BufferWriter, SegmentWriter

__all__ = ["describe", "dumps", "loads", "name_result_item", "plain_dumps"]

PROTOCOL = 5
_CLASS_CACHE_SIZE = 1024

# digest -> class object; the per-process canonical copy of every class sent by value.
_classes: OrderedDict[bytes, type] = OrderedDict()
# class -> (digest, dill bytes), so a class is dill-dumped once and returns as itself.
_origins: weakref.WeakKeyDictionary[type, tuple[bytes, bytes]] = weakref.WeakKeyDictionary()
_lock = threading.RLock()
_local = threading.local()  # classes being dumped right now (breaks reference cycles)
_injected: set[str] = set()  # names of __main__ that this process got from its parent


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # another thread may have held it when we forked


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


def _needs_value(obj: Any) -> bool:
    """True for a function or class that a worker cannot find by its name."""
    module = getattr(obj, "__module__", None)
    if module in ("__main__", "__mp_main__", None):
        return True
    qualname = getattr(obj, "__qualname__", "")
    return "<" in qualname  # '<lambda>', '<locals>'


def _class_reduction(cls: type) -> Any:
    with _lock:
        known = _origins.get(cls)
    if known is None:
        busy: set[int] = _local.__dict__.setdefault("busy", set())
        if id(cls) in busy:
            return NotImplemented  # a cycle: let dill embed it in the stream at hand
        busy.add(id(cls))
        try:
            data = _dill_dumps(cls, top=cls)
        finally:
            busy.discard(id(cls))
        known = (_digest(data), data)
        with _lock:
            _origins[cls] = known
            _remember(known[0], cls)
    return (_load_class, (*known, cls.__module__, cls.__qualname__, _globals_blob(cls)))


def _digest(data: bytes) -> bytes:
    # hashlib (it loads OpenSSL) on first use: only classes sent by value need it, and they
    # may first come on a manager thread, hence _lazy.
    digest: bytes = _lazy.load("hashlib").blake2b(data, digest_size=16).digest()
    return digest


def _remember(digest: bytes, cls: type) -> None:
    _classes[digest] = cls
    _classes.move_to_end(digest)
    while len(_classes) > _CLASS_CACHE_SIZE:
        _classes.popitem(last=False)


def _load_class(digest: bytes, data: bytes, module: str = "", qualname: str = "", extra: bytes = b"") -> type:
    """Rebuild a class sent by value, once per process.

    A class of the main script that this process's ``__main__`` has under the same name
    is that class (a forked worker inherited it, a spawned one imported the script
    again), so ``isinstance`` holds between the worker's own globals and what it is sent.
    """
    _install_globals(extra)
    with _lock:
        cls = _classes.get(digest)
        if cls is not None:
            _classes.move_to_end(digest)
            return cls
    own = _main_class(module, qualname)
    if own is not None:
        with _lock:
            cls = _classes.setdefault(digest, own)
        return cls
    cls = _dill_loads(data)
    with _lock:
        cls = _classes.setdefault(digest, cls)
        _origins[cls] = (digest, data)
    return cls


def _main_class(module: str, qualname: str) -> type | None:
    if module not in ("__main__", "__mp_main__") or "<" in qualname or "." in qualname:
        return None
    main = main_dict()
    found = main.get(qualname) if main is not None else None
    return found if isinstance(found, type) and found.__qualname__ == qualname else None


def _dill_loads(data: bytes) -> Any:
    unpickler = _dill().Unpickler(io.BytesIO(data))
    main = sys.modules.get("__main__")
    if main is not None:
        unpickler._main = main  # dill took __main__ when first imported: maybe before a spawn's fix-up
    return unpickler.load()


def _load_value(data: bytes, extra: bytes = b"") -> Any:
    """Rebuild an object that was serialized whole with dill (and the globals of
    ``__main__`` that came with it)."""
    _install_globals(extra)
    return _dill_loads(data)


def _globals_blob(obj: Any) -> bytes:
    """The ``__main__`` globals ``obj`` uses, pickled one by one; a global that cannot be
    pickled is left out (the worker may have its own, inherited through fork, as with
    pathos 0.3.5)."""
    busy: set[int] = _local.__dict__.setdefault("globals_busy", set())
    if id(obj) in busy:
        return b""  # a function that reaches itself through its globals: sent once
    busy.add(id(obj))
    try:
        values = {}
        for name, value in needed_globals(obj).items():
            try:
                values[name] = dumps(value, what=f"global {name!r} of __main__")
            except SerializationError:
                continue
        return pickle.dumps(values, PROTOCOL) if values else b""
    finally:
        busy.discard(id(obj))


def _install_globals(extra: bytes) -> None:
    """Put the globals that came with a function into this process's ``__main__``.

    A name that ``__main__`` already has of its own (from the script, or inherited
    through fork) keeps its own value, as with pathos 0.3.5; one that an earlier call
    sent is replaced by this call's value.
    """
    if not extra:
        return
    main = main_dict()
    if main is None:
        return
    for name, blob in pickle.loads(extra).items():
        with _lock:
            if name in main and name not in _injected:
                continue
            _injected.add(name)
        main[name] = loads(blob)


def _override(obj: Any, top: Any = None) -> Any:
    if isinstance(obj, type) and obj is not top and _needs_value(obj):
        return _class_reduction(obj)
    if isinstance(obj, BaseException):
        return _exception_reduction(obj)
    return NotImplemented


def _exception_reduction(exc: BaseException) -> Any:
    """An exception by its class's own pickling, never by ``copyreg``'s table.

    The table is process-wide state that other libraries change: importing
    ``distributed`` registers tblib's reducer for every exception class, which rebuilds
    an exception without calling its ``__init__``, so ``SystemExit(3).code`` comes back
    None and ``OSError`` loses its ``errno``. The class's ``__reduce_ex__`` (a custom
    ``__reduce__`` included) is what plain pickle uses without such a library, so the
    bytes no longer depend on what the process imported. Loading goes through
    :func:`_load_exception`, which also copes with an ``__init__`` that will not take
    the exception's own ``args`` back.
    """
    try:
        reduced = exc.__reduce_ex__(PROTOCOL)
    except Exception:
        return NotImplemented  # let the pickler try its usual ways (and name the culprit)
    if not isinstance(reduced, tuple) or len(reduced) < 2:
        return NotImplemented
    make, make_args = reduced[0], reduced[1]
    return (_load_exception, (make, make_args, type(exc), exc.args), *reduced[2:])


def _load_exception(
    make: Callable[..., Any],
    make_args: tuple[Any, ...],
    cls: type[BaseException],
    args: tuple[Any, ...],
) -> Any:
    """Rebuild an exception as its class's pickling says; if that call fails (an
    ``__init__`` whose signature differs from the ``args`` it stores, which plain pickle
    cannot load either), make the instance without ``__init__`` and give it its
    ``args``. The state (``__dict__``) the pickler sends is applied afterwards either way.
    """
    try:
        return make(*make_args)
    except Exception:
        exc = cls.__new__(cls)
        exc.args = args
        return exc


class _FastPickler(pickle.Pickler):
    """The C pickler, sending by value (via dill) what cannot travel by name."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.FunctionType:
            if _needs_value(obj):
                return (_load_value, (_dill_dumps(obj), _globals_blob(obj)))
            return NotImplemented
        return _override(obj)


_dill_module: Any = None  # dill, once loaded by _dill()
_DillPickler: Any = None  # its Pickler with our reducer_override, made with it


def _dill() -> Any:
    """The dill module, imported on first use (with :class:`_DillPickler`, built on it)."""
    if _dill_module is None:
        _load_dill()
    return _dill_module


def _load_dill() -> None:
    global _dill_module, _DillPickler
    dill: Any = _lazy.load("dill")  # maybe on a manager thread: see pathos._lazy

    class DillPickler(dill.Pickler):  # type: ignore[misc]
        """dill, with classes made canonical as in :class:`_FastPickler`."""

        _top: Any = None

        def reducer_override(self, obj: Any) -> Any:
            return _override(obj, self._top)

    _DillPickler = DillPickler
    _dill_module = dill  # last: a thread that sees the module sees the class too


def _dill_dumps(obj: Any, top: Any = None) -> bytes:
    _dill()
    buf = io.BytesIO()
    pickler = _DillPickler(buf, protocol=PROTOCOL)  # recurse, byref...: dill.settings, as pathos 0.3.5
    pickler._top = top
    main = sys.modules.get("__main__")
    if main is not None:
        pickler._main = main
    pickler.dump(obj)
    return buf.getvalue()


def dumps(obj: Any, *, what: str = "object", buffers: BufferWriter | SegmentWriter | None = None) -> bytes:
    """Serialize ``obj`` to bytes that :func:`loads` (plain ``pickle.loads``) can read.

    Args:
        obj: anything the C pickler or dill can serialize.
        what: how to name the object in an error message ("argument of item 3").
        buffers: moves large buffers (numpy arrays...) out of the stream, into shared
            memory; the reader then needs ``loads(data, buffers=load_buffers(names))``.

    Raises:
        SerializationError: neither the C pickler nor dill could serialize ``obj``.
    """
    if _is_plain(obj, 3):
        return pickle.dumps(obj, PROTOCOL)
    buf = io.BytesIO()
    try:
        _FastPickler(buf, protocol=PROTOCOL, buffer_callback=buffers).dump(obj)
        return buf.getvalue()
    except Exception:
        if buffers is not None:
            buffers.discard()
    try:
        data = _dill_dumps(obj)
    except Exception as exc:
        raise SerializationError(_failure(what, obj, exc)) from exc
    buf = io.BytesIO()
    pickle.Pickler(buf, protocol=PROTOCOL).dump(_DillBlob(data))
    return buf.getvalue()


_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})


def plain_dumps(obj: Any) -> bytes | None:
    """``obj`` serialized by plain ``pickle.dumps`` if it is small data made only of
    builtin scalars (no large buffer can be in it); None for anything else (use :func:`dumps`)."""
    return pickle.dumps(obj, PROTOCOL) if _is_plain(obj, 3) else None


def _is_plain(obj: Any, depth: int) -> bool:
    """Small data made only of builtin scalars, which plain ``pickle.dumps`` handles."""
    kind = type(obj)
    if kind in _PLAIN:
        return True
    if (kind is list or kind is tuple) and depth and len(obj) <= 16:
        return all(_is_plain(x, depth - 1) for x in obj)
    return False


class _DillBlob:
    """Wraps dill bytes so that plain ``pickle.loads`` rebuilds the original object."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> Any:
        return (_load_value, (self.data,))


loads: Callable[[bytes], Any] = pickle.loads


_HINT = (
    "Sockets, generators, database connections and multiprocessing locks cannot be sent to "
    "another process: create them inside the function (pass a path or an address instead), "
    "or use ThreadPool."
)


def _failure(what: str, obj: Any, exc: BaseException) -> str:
    """The message for ``obj`` that would not serialize: it names the part to blame, not
    the container pathos wrapped it in (a batch's argument list)."""
    culprit, owner = _culprit(obj)
    where = f", in {describe(owner)}" if owner is not None else ""
    return f"cannot serialize the {what} ({describe(culprit)}{where}): {type(exc).__name__}: {exc}. {_HINT}"


def _parts(obj: Any) -> list[Any]:
    """What ``obj`` holds: items of builtin containers, attributes of plain instances,
    the variables a function closes over (at most 1000)."""
    kind = type(obj)
    if kind in (list, tuple, set, frozenset):
        parts = list(obj)
    elif kind is dict:
        parts = list(obj.values())
    elif isinstance(obj, types.FunctionType):  # what it closes over, and the globals it names
        parts = [cell.cell_contents for cell in obj.__closure__ or ()]
        parts += [obj.__globals__[n] for n in obj.__code__.co_names if n in obj.__globals__]
        parts = [part for part in parts if part is not obj and not isinstance(part, types.ModuleType)]
    elif not isinstance(obj, (type, types.ModuleType)) and isinstance(getattr(obj, "__dict__", None), dict):
        parts = list(vars(obj).values())
    else:
        parts = []
    return parts[:1000]


def _culprit(obj: Any, depth: int = 8) -> tuple[Any, Any]:
    """The innermost part of ``obj`` that will not serialize (``obj`` itself when no single
    part is to blame), and the nearest object around it that is not a builtin container
    (None when there is none): ``(socket, MyClient)`` for a client holding a socket."""
    owner = None
    for _ in range(depth):
        for part in _parts(obj):
            try:
                _dill_dumps(part)
            except Exception:
                if type(obj) not in (list, tuple, set, frozenset, dict):
                    owner = obj
                obj = part
                break
        else:
            break
    return obj, owner


def name_result_item(exc: BaseException, index: int) -> BaseException:
    """Name item ``index`` in a worker's "cannot serialize the result" error (a worker
    knows only the item's place in its batch); other exceptions are returned as they are."""
    prefix = "cannot serialize the result ("
    text = exc.args[0] if isinstance(exc, SerializationError) and len(exc.args) == 1 else None
    if isinstance(text, str) and text.startswith(prefix):
        exc.args = (f"cannot serialize the result of item {index} (" + text[len(prefix) :],)
    return exc


def describe(obj: Any, limit: int = 80) -> str:
    """A short, safe description of ``obj`` for error messages."""
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__} object>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(obj).__qualname__}: {text}"
