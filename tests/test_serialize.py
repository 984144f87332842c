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
