"""The pool contract: every verb, on every pool, behaves the same."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import pytest

import pathos
from pathos import RemoteTraceback, ResultTimeoutError

from . import _cases
from .conftest import TIMEOUT


def test_map_several_iterables(pool: Any) -> None:
    assert pool.map(pow, [1, 2, 3, 4, 5], [2, 3, 2, 4, 3]) == [1, 8, 9, 256, 125]


def test_map_returns_a_list_in_order(pool: Any) -> None:
    assert pool.map(_cases.square, range(50)) == [x * x for x in range(50)]


def test_unequal_lengths_truncate_like_builtin_map(pool: Any) -> None:
    assert pool.map(_cases.add, [1, 2, 3], [10, 20]) == [11, 22]


def test_empty_input(pool: Any) -> None:
    assert pool.map(_cases.square, []) == []
    assert list(pool.imap(_cases.square, [])) == []
    assert list(pool.uimap(_cases.square, iter([]))) == []
    assert pool.amap(_cases.square, []).get(TIMEOUT) == []


def test_generators_as_input(pool: Any) -> None:
    assert pool.map(_cases.add, (x for x in range(5)), iter([1] * 5)) == [1, 2, 3, 4, 5]
    assert list(pool.imap(_cases.square, (x for x in range(5)))) == [0, 1, 4, 9, 16]


def test_imap_is_ordered_and_uimap_complete(pool: Any) -> None:
    assert list(pool.imap(_cases.add, range(20), range(20))) == [2 * x for x in range(20)]
    assert sorted(pool.uimap(_cases.add, range(20), range(20))) == [2 * x for x in range(20)]


def test_imap_next_with_timeout(pool: Any) -> None:
    it = pool.imap(_cases.square, [3])
    assert it.next(TIMEOUT) == 9
    with pytest.raises(StopIteration):
        it.next(TIMEOUT)


def test_amap_result_object(pool: Any) -> None:
    result = pool.amap(_cases.add, [1, 2], [3, 4])
    assert result.get(TIMEOUT) == [4, 6]
    assert result.ready()
    assert result.successful()
    result.wait(TIMEOUT)


def test_pipe_passes_keywords_to_the_function(pool: Any) -> None:
    assert pool.pipe(_cases.add, 1, y=41) == 42
    result = pool.apipe(_cases.add, 2, y=3)
    assert result.get(TIMEOUT) == 5
    assert result.successful()


class Scaler:
    def __init__(self, k: int) -> None:
        self.k = k

    def scale(self, x: int) -> int:
        return self.k * x


@pytest.mark.parametrize(
    "fn",
    [lambda x: x + 1, functools.partial(_cases.add, y=1), Scaler(3).scale, abs],
    ids=["lambda", "partial", "bound-method", "builtin"],
)
def test_functions_of_every_kind(pool: Any, fn: Any) -> None:
    assert pool.map(fn, range(-2, 3)) == [fn(x) for x in range(-2, 3)]


def test_closures_and_nested_functions(pool: Any) -> None:
    offset = 10

    def nested(x: int) -> int:
        return x + offset

    assert pool.map(nested, range(3)) == [10, 11, 12]
    assert pool.map(lambda x: nested(x) * 2, range(3)) == [20, 22, 24]


def test_classes_defined_inside_functions(pool: Any) -> None:
    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    out = pool.map(lambda v: Local(v), range(3))
    assert [o.v for o in out] == [0, 1, 2]
    assert pool.map(lambda o: o.v * 2, [Local(4)]) == [8]


def test_instances_as_arguments_and_results(pool: Any) -> None:
    points = [_cases.Point(i, -i) for i in range(4)]
    assert pool.map(_cases.Point.norm1, points) == [0, 2, 4, 6]
    assert pool.map(_cases.Point, [1], [2]) == [_cases.Point(1, 2)]


def test_worker_exception_keeps_its_type_and_args(pool: Any) -> None:
    with pytest.raises(ValueError, match="bad item 2") as info:
        pool.map(_cases.boom_on(2), range(5))
    assert info.value.args == ("bad item 2",)
    if "Process" in type(pool).__name__:
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert "bad item 2" in str(info.value.__cause__)
    assert pool.map(_cases.square, [3]) == [9]  # the pool stays usable


def test_imap_raises_at_the_failing_item_then_goes_on(pool: Any) -> None:
    it = pool.imap(_cases.fail_at, range(6))
    assert [next(it), next(it), next(it)] == [0, 1, 2]
    with pytest.raises(KeyError):
        next(it)
    assert list(it) == [4, 5]


def test_uimap_yields_every_item_and_the_error(pool: Any) -> None:
    got, errors = [], 0
    it = pool.uimap(_cases.fail_at, range(6))
    while True:
        try:
            got.append(next(it))
        except StopIteration:
            break
        except KeyError:
            errors += 1
    assert sorted(got) == [0, 1, 2, 4, 5] and errors == 1


def test_amap_error(pool: Any) -> None:
    result = pool.amap(_cases.fail_at, range(6))
    with pytest.raises(KeyError):
        result.get(TIMEOUT)
    assert result.ready() and not result.successful()


def test_apipe_error(pool: Any) -> None:
    with pytest.raises(KeyError):
        pool.apipe(_cases.fail_at, 3).get(TIMEOUT)


def test_explicit_chunksize(pool: Any) -> None:
    assert pool.map(_cases.square, range(10), chunksize=3) == [x * x for x in range(10)]
    assert list(pool.imap(_cases.square, range(10), chunksize=4)) == [x * x for x in range(10)]


def test_infinite_generator_with_imap(pool: Any) -> None:
    it = pool.imap(_cases.square, itertools.count())
    assert [next(it) for _ in range(25)] == [x * x for x in range(25)]
    it.close()
    assert list(it) == []


def test_many_items(pool: Any) -> None:
    n = 20_000
    assert pool.map(_cases.add, range(n), range(n))[-1] == 2 * (n - 1)


def test_get_timeout_raises_but_work_goes_on(parallel_pool: Any) -> None:
    result = parallel_pool.amap(_cases.sleep_then, [0.5])
    with pytest.raises(ResultTimeoutError) as info:
        result.get(0.01)
    assert isinstance(info.value, TimeoutError)
    assert result.get(TIMEOUT) == [0.5]


def test_arguments_are_copied_into_processes() -> None:
    pool = pathos.ProcessPool(2, id="copy-test")
    try:
        data = [1, 2]
        pool.map(lambda d: d.append(3), [data])
        assert data == [1, 2]
    finally:
        pool.clear()
