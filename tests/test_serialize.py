"""Serialization: the C pickler where it can, dill where it must, classes kept canonical,
and objects defined in ``__main__`` working under every start method."""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from pathos import SerializationError
from pathos._serialize import dumps, loads

from . import _cases
from .conftest import TIMEOUT

METHODS = [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]


def test_plain_data_is_a_plain_pickle() -> None:
    data = {"a": [1, 2.5, "x", (None, True)], "b": b"bytes"}
    blob = dumps(data)
    assert loads(blob) == data
    assert b"dill" not in blob


def test_importable_functions_travel_by_name() -> None:
    blob = dumps(_cases.square)
    assert b"dill" not in blob and loads(blob) is _cases.square


@pytest.mark.parametrize(
    "obj",
    [lambda x: x + 1, functools.partial(_cases.add, y=2), _cases.boom_on(3)],
    ids=["lambda", "partial", "closure"],
)
def test_functions_round_trip(obj: Any) -> None:
    assert loads(dumps(obj))(1) == obj(1)


def test_local_class_keeps_its_identity_on_the_way_back() -> None:
    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    copy = loads(dumps(Local(3)))
    assert type(copy) is Local and copy.v == 3
    assert loads(dumps([Local(1), Local(2)]))[1].v == 2


def test_unserializable_object_names_itself() -> None:
    generator = (i for i in range(2))
    with pytest.raises(SerializationError, match="generator") as info:
        dumps(generator, what="argument of item 4")
    assert "argument of item 4" in str(info.value)
    assert isinstance(info.value, pickle.PicklingError)


MAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathos.pools import ProcessPool

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y
        def norm1(self):
            return abs(self.x) + abs(self.y)

    def make_point(x):
        return Point(x, -x)

    def is_point(p):
        return isinstance(p, Point)

    if __name__ == "__main__":
        k = 10
        pool = ProcessPool(2, context=sys.argv[1])
        assert pool.map(lambda x: x + k, range(3)) == [10, 11, 12]          # lambda + closure
        def nested(x):
            return x * k
        assert pool.map(nested, [1, 2]) == [10, 20]                         # nested function
        points = pool.map(make_point, range(3))
        assert all(type(p) is Point for p in points), points                # same class back
        assert pool.map(Point.norm1, points) == [0, 2, 4]
        assert pool.map(is_point, points) == [True] * 3                     # same class there
        assert pool.map(Point.norm1, [Point(1, 2)]) == [3]                  # method, instance argument
        assert pool.pipe(Point(1, 2).norm1.__call__) == 3                   # method-wrapper
        assert pool.pipe(Point(3, 4).norm1) == 7                            # bound method
        pool.clear()
        print("ok")
    """
)


@pytest.mark.parametrize("method", METHODS)
def test_main_module_objects_under_each_start_method(tmp_path: Any, method: str) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(MAIN_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, str(script), method], capture_output=True, text=True, timeout=TIMEOUT, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# -- what the README says about objects that cannot travel ----------------------------------
class Client:
    """A user object that holds something that cannot be sent."""

    def __init__(self) -> None:
        import socket

        self.name = "client"
        self.sock = socket.socket()


def test_argument_error_shows_the_bad_object_not_the_batch_list() -> None:
    # A batch's arguments travel as one list; the message names the generator, not the list.
    with pytest.raises(SerializationError) as info:
        dumps([(1, (i for i in range(2)))], what="arguments of item 4")
    text = str(info.value)
    assert text.startswith("cannot serialize the arguments of item 4 (generator: <generator object")
    assert "list:" not in text and "tuple:" not in text


def test_argument_error_names_the_part_and_its_owner() -> None:
    client = Client()
    try:
        with pytest.raises(SerializationError) as info:
            dumps([client], what="arguments of item 0")
        assert "(socket: <socket.socket" in str(info.value) and "in Client: <" in str(info.value)
    finally:
        client.sock.close()


def make_generator(n: int) -> Any:
    return (i for i in range(n))


def test_result_error_names_its_item() -> None:
    from pathos.pools import ProcessPool

    with ProcessPool(2, id="serialize-result") as pool:
        with pytest.raises(SerializationError) as info:
            pool.amap(make_generator, [3], chunksize=1).get(TIMEOUT)
        assert str(info.value).startswith("cannot serialize the result of item 0 (generator: ")
        results = pool.imap(lambda n: make_generator(n) if n == 5 else n, range(8), chunksize=4)
        seen = []
        for _ in range(8):
            try:
                seen.append(next(results))
            except SerializationError as exc:
                seen.append(str(exc)[:40])
    assert seen == [0, 1, 2, 3, 4, "cannot serialize the result of item 5 (g", 6, 7]


def lock_state(lock: Any) -> tuple[str, bool]:
    return type(lock).__name__, lock.locked()


def test_a_threading_lock_is_copied_and_a_locked_one_arrives_locked() -> None:
    import threading

    from pathos.pools import ProcessPool

    held, free = threading.Lock(), threading.Lock()
    held.acquire()
    with ProcessPool(1, id="serialize-lock") as pool:
        assert pool.map(lock_state, [held, free]) == [("lock", True), ("lock", False)]
        with pytest.raises(SerializationError, match="multiprocessing locks cannot be sent"):
            pool.map(lock_state, [multiprocessing.Lock()])


def read_file(f: Any) -> tuple[str, int, str]:
    return f.mode, f.tell(), f.read()


def test_an_open_file_is_reopened_by_name_from_its_start(tmp_path: Any) -> None:
    from pathos.pools import ProcessPool

    path = tmp_path / "data.txt"
    path.write_text("0123456789")
    with open(path) as f, ProcessPool(1, id="serialize-file") as pool:
        f.read(4)
        assert pool.map(read_file, [f]) == [("r", 0, "0123456789")]


def write_x(f: Any) -> int:
    f.write("x")
    f.flush()
    return f.tell()


def test_a_file_open_for_writing_is_reopened_and_emptied(tmp_path: Any) -> None:
    # What the README warns about: dill reopens the file by name with mode "w".
    from pathos.pools import ProcessPool

    path = tmp_path / "out.txt"
    with open(path, "w") as f, ProcessPool(1, id="serialize-file") as pool:
        f.write("written before")
        f.flush()
        assert pool.map(write_x, [f]) == [1]
        assert path.read_text() == "x"


def with_lock(lock: Any) -> int:
    with lock:
        return 1


def test_a_manager_lock_is_shared_between_processes() -> None:
    # What the README recommends instead of a threading.Lock.
    from pathos.pools import ProcessPool

    with multiprocessing.Manager() as manager, ProcessPool(2, id="serialize-manager") as pool:
        lock = manager.Lock()
        assert pool.map(with_lock, [lock] * 4) == [1, 1, 1, 1]
# Issue 10 item 0: dill runs with dill.settings (recurse=False), as pathos 0.3.5 does.
SETTINGS_SCRIPT = textwrap.dedent(
    """
    import multiprocessing
    import sys
    import warnings

    import numpy as np
    from pathos.pools import ProcessPool

    counter = multiprocessing.Value("i", 0)   # shared with forked workers by inheritance

    def bump(x):
        with counter.get_lock():
            counter.value += 1
        return x

    def guarded(x):
        return x + offset                     # offset is bound under the main guard

    def make(errfn):
        def f(x):
            old = errfn(all="ignore")         # numpy's globals hold a ContextVar
            errfn(**old)
            return x
        return f

    class Model:
        def __init__(self):
            self.handlers = {"double": self.double, "triple": self.triple}
            self.me = self
        def double(self, x):
            return 2 * x
        def triple(self, x):
            return model.handlers["double"](x) + x

    model = Model()

    if __name__ == "__main__":
        warnings.simplefilter("error")        # dill's "RecursionError" PicklingWarning too
        method = sys.argv[1]
        pool = ProcessPool(2, context=method)
        assert pool.map(make(np.seterr), range(3)) == [0, 1, 2]
        assert pool.map(lambda x: model.handlers["triple"](x), range(3)) == [0, 3, 6]
        local = Model()
        assert pool.map(lambda x: local.handlers["double"](x), range(3)) == [0, 2, 4]
        assert pool.map(bump, range(4)) == [0, 1, 2, 3]
        if method == "fork":
            assert counter.value == 4, counter.value   # the inherited Value, as 0.3.5
        offset = 10
        assert pool.map(guarded, [1]) == [11]
        offset = 20                                 # workers forked before offset existed take each call's
        assert pool.map(guarded, [1]) == [21]
        pool.clear()
        print("ok")
    """
)


@pytest.mark.parametrize("method", METHODS)
def test_dill_settings_as_pathos_035(tmp_path: Any, method: str) -> None:
    pytest.importorskip("numpy")
    script = tmp_path / "settings_script.py"
    script.write_text(SETTINGS_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, str(script), method], capture_output=True, text=True, timeout=TIMEOUT, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"


def test_dill_settings_are_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    import dill

    def outer() -> Any:
        return lambda x: _cases.square(x)

    monkeypatch.setitem(dill.settings, "recurse", True)
    assert loads(dumps(outer()))(3) == 9
    monkeypatch.setitem(dill.settings, "recurse", False)
    assert loads(dumps(outer()))(4) == 16
