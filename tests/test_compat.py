"""pathos 0.3.5 compatibility: names, aliases, the pool cache and lifecycle, maps, helpers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import pathos
from pathos import PoolClosedError
from pathos.helpers import mp_helper
from pathos.pools import ProcessPool, SerialPool, ThreadPool

from . import _cases
from .conftest import TIMEOUT, children, make_pool

_ids = itertools.count()


def test_module_map() -> None:
    from pathos.multiprocessing import ProcessingPool, ThreadingPool, _ProcessPool
    from pathos.multiprocessing import ProcessPool as MP
    from pathos.parallel import ParallelPythonPool, stats
    from pathos.pp import ParallelPythonPool as PPP
    from pathos.python import PythonSerial
    from pathos.serial import PythonSerial as PS
    from pathos.threading import ThreadPool as TP
    from pathos.threading import _ThreadPool

    assert ProcessingPool is MP is ProcessPool
    assert ThreadingPool is TP is ThreadPool
    assert PythonSerial is PS is SerialPool
    assert ParallelPythonPool is PPP is pathos.ParallelPool
    assert callable(stats) and _ProcessPool and _ThreadPool
    assert pathos.python.PythonSerial is SerialPool and pathos.pp.stats is stats
    assert isinstance(pathos.__version__, str)
    assert pathos.logger(name="pathos-test").name == "pathos-test"


def test_pools_star_import_gives_the_four_pools() -> None:
    namespace: dict[str, Any] = {}
    exec("from pathos.pools import *", namespace)
    assert {"ProcessPool", "ThreadPool", "SerialPool", "ParallelPool"} <= set(namespace)


@pytest.mark.parametrize(
    ("cls", "alias", "repr_name"),
    [(ProcessPool, "ncpus", "ncpus"), (ThreadPool, "nthreads", "nthreads")],
)
def test_node_aliases_and_repr(cls: Any, alias: str, repr_name: str) -> None:
    pool = cls(**{alias: 3}, id=f"alias-{next(_ids)}")
    assert pool.nodes == 3 and getattr(pool, alias) == 3
    assert repr(pool) == f"<pool {cls.__name__}({repr_name}=3)>"
    assert getattr(pool, f"_{cls.__name__}__nodes") == 3
    assert cls(processes=2, id=f"alias-{next(_ids)}").nodes == 2
    assert cls(4, id=f"alias-{next(_ids)}").nodes == 4
    with pytest.raises(TypeError, match="multiple values"):
        cls(2, nodes=2)
    with pytest.raises(TypeError, match="multiple values"):
        cls(nodes=2, **{alias: 2})


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_node_counts(bad: int) -> None:
    with pytest.raises(ValueError, match="nodes must be at least 1"):
        ProcessPool(bad)
    with pytest.raises(ValueError):
        ThreadPool(nodes=bad)


def test_non_int_nodes() -> None:
    with pytest.raises(TypeError, match="nodes must be an int"):
        ProcessPool("4")


def test_unknown_keyword() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'maxtasksperchild'"):
        ThreadPool(2, maxtasksperchild=3)
    with pytest.raises(TypeError, match="unexpected keyword"):
        ProcessPool(2, bogus=1)


def test_bad_calls(pool: Any) -> None:
    with pytest.raises(TypeError, match="callable"):
        pool.map(3, [1])
    with pytest.raises(TypeError, match="requires at least two args"):
        pool.map(abs)
    with pytest.raises(TypeError, match="at least two arguments"):
        pool.imap(abs)
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(abs, [1], chunksize=-1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        pool.map(abs, [1], z=1)


def test_default_nodes_is_the_core_count() -> None:
    assert ProcessPool(id=f"d-{next(_ids)}").nodes == pathos.helpers.cpu_count()
    assert SerialPool(5).nodes == 1
    with pytest.raises(TypeError, match="read-only"):
        SerialPool().nodes = 2


def test_cache_shares_workers_between_instances() -> None:
    pool_id = f"shared-{next(_ids)}"
    a, b = ProcessPool(2, id=pool_id), ProcessPool(2, id=pool_id)
    try:
        assert a._serve() is b._serve()
        before = {c.pid for c in children()}
        pids = set(a.map(_cases.pid, range(20)))
        workers = {c.pid for c in children()} - before  # the two that a's first call started
        assert pids <= workers and len(workers) == 2
        assert set(b.map(_cases.pid, range(20))) <= workers  # b runs on a's workers
    finally:
        a.clear()


def test_close_then_calls_raise_until_clear(parallel_pool: Any) -> None:
    pool = parallel_pool
    assert pool.map(abs, [-1]) == [1]
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(abs, [-1])
    with pytest.raises(PoolClosedError):
        pool.apipe(abs, -1)
    same = type(pool)(pool.nodes, id=pool._id)
    with pytest.raises(ValueError, match="Pool not running"):
        same.map(abs, [-1])  # the closed pool is still cached, as in pathos
    pool.join()
    pool.clear()
    assert same.map(abs, [-2]) == [2]


def test_join_while_running_raises(parallel_pool: Any) -> None:
    with pytest.raises(ValueError, match="still running"):
        parallel_pool.join()


def test_serial_join_while_running_raises_assertion_error_too() -> None:
    with pytest.raises(AssertionError):
        SerialPool().join()


def test_restart(parallel_pool: Any) -> None:
    parallel_pool.close()
    assert parallel_pool.restart() is not None
    assert parallel_pool.map(abs, [-3]) == [3]


def test_terminate_fails_pending_work() -> None:
    pool = make_pool("process")
    result = pool.amap(_cases.sleep_then, [5, 5, 5])
    pool.terminate()
    with pytest.raises(PoolClosedError):
        result.get(TIMEOUT)
    pool.clear()


def test_with_block_closes_joins_and_evicts(parallel_pool: Any) -> None:
    cls, pool_id = type(parallel_pool), parallel_pool._id
    with cls(2, id=pool_id) as pool:
        result = pool.amap(_cases.square, range(5))
        backend = pool._serve()
    assert cls.__state__.get(pool_id) is None
    assert backend.state != "RUN"
    assert result.get(TIMEOUT) == [0, 1, 4, 9, 16]  # finished inside the block: readable
    assert cls(2, id=pool_id).map(abs, [-1]) == [1]  # a new pool under the same id


def test_changing_nodes_rebuilds_the_pool() -> None:
    pool = ProcessPool(2, id=f"resize-{next(_ids)}")
    try:
        old = pool._serve()
        pool.nodes = 3
        assert pool._serve() is not old and pool._serve().nodes == 3
        assert old.state != "RUN"  # the replaced workers were closed, not leaked
        pool.ncpus = 1
        assert pool.map(abs, [-1]) == [1]
    finally:
        pool.clear()


def test_shutdown_clears_every_cache() -> None:
    pool = ThreadPool(2, id=f"sd-{next(_ids)}")
    pool.map(abs, [1])
    pathos.helpers.shutdown()
    assert pool._id not in ThreadPool.__state__
    with pytest.raises(TypeError, match=r"not one of the pathos\.pools"):
        pathos.helpers.shutdown(int)
    with pytest.raises(NotImplementedError):
        pathos.pools._clear(pathos.pools._ProcessPool)


def test_serial_pool_has_every_verb_and_map_returns_a_list() -> None:
    pool = SerialPool()
    assert pool.map(pow, [2], [3]) == [8]
    assert sorted(pool.uimap(abs, [-1, -2])) == [1, 2]
    assert pool.amap(abs, [-1]).get() == [1]
    assert pool.apipe(abs, -1).get() == 1
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(abs, [1])
    pool.clear()
    assert pool.map(abs, [-1]) == [1]


def test_abstract_pool() -> None:
    from pathos.abstract_launcher import AbstractWorkerPool

    pool = AbstractWorkerPool(3)
    assert repr(pool) == "<pool AbstractWorkerPool()>"
    with pytest.raises(NotImplementedError):
        pool.map(abs, [1])
    with pytest.raises(TypeError):
        AbstractWorkerPool(2, nodes=2)


@pytest.mark.parametrize("name", ["Map", "Imap", "Uimap", "Amap", "Smap", "Asmap", "Ismap"])
def test_maps(name: str) -> None:
    from pathos import maps

    mapper = getattr(maps, name)(ThreadPool, 2, id=f"maps-{next(_ids)}", clear=True)
    star = name in ("Smap", "Asmap", "Ismap")
    args = ([(1, 2), (3, 4)],) if star else ([1, 3], [2, 4])
    out = mapper(pow, *args)
    if hasattr(out, "get"):
        out = out.get(TIMEOUT)
    assert sorted(out) == [1, 81]


def test_maps_without_a_pool() -> None:
    from pathos.maps import Imap, Map, Smap

    assert Map()(pow, [2], [3]) == [8]
    assert list(Imap()(pow, [2], [3])) == [8]
    assert Smap()(pow, [(2, 3)]) == [8]


def test_stdlib_pool_api() -> None:
    from pathos.helpers import ProcessPool as StdPool

    done: list[Any] = []
    with StdPool(2) as pool:
        assert pool.map(_cases.square, range(4)) == [0, 1, 4, 9]
        assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
        assert list(pool.imap(_cases.square, range(3))) == [0, 1, 4]
        assert sorted(pool.imap_unordered(_cases.square, range(3))) == [0, 1, 4]
        assert pool.map_async(lambda x: -x, [1], callback=done.append).get(TIMEOUT) == [-1]
        assert pool.starmap_async(pow, [(2, 2)]).get(TIMEOUT) == [4]
        assert pool.apply(_cases.add, (1,), {"y": 2}) == 3
        assert pool.apply_async(_cases.add, (1, 1)).get(TIMEOUT) == 2
    assert done == [[-1]]


def test_helpers() -> None:
    assert mp_helper.starargs(pow)((2, 5)) == 32
    mp_helper.random_seed(1)
    rng = mp_helper.random_state(new=True, seed=5)
    assert 0 <= rng.random() < 1
    assert pathos.helpers.cpu_count() >= 1
    assert pathos.helpers.mp.get_start_method(allow_none=True) in (None, "fork", "spawn", "forkserver")
