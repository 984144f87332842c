"""pathos 0.3.5 compatibility, issue 10 items 1-4 and 6: removed names, ``helpers.mp``, the
legacy map modules, ``AbstractWorkerPool`` subclassing and semantic differences."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import pathos
from pathos.pools import ProcessPool, SerialPool, ThreadPool

from . import _cases
from .conftest import TIMEOUT, make_pool

# -- item 1: removed names --------------------------------------------------------------


def test_multiprocessing_and_threading_names() -> None:
    from pathos.helpers import ProcessPool as StdPool
    from pathos.multiprocessing import AbstractWorkerPool, Pool, cpu_count, freeze_support, star
    from pathos.threading import cpu_count as tcpu
    from pathos.threading import star as tstar

    assert Pool is StdPool and cpu_count() >= 1 and tcpu() == cpu_count()
    assert star(pow)((2, 3)) == 8 and tstar(pow)((3, 2)) == 9
    freeze_support()
    assert issubclass(ProcessPool, AbstractWorkerPool)
    with Pool(2) as pool:
        assert pool.map(lambda x: x + 1, [1, 2]) == [2, 3]  # the stdlib API, with dill's reach


def test_cache_names_are_the_live_caches() -> None:
    import pathos.multiprocessing as pmp
    import pathos.parallel as ppar
    import pathos.serial as pser
    import pathos.threading as pth

    assert pmp.__STATE is pmp._ProcessPool__STATE is ProcessPool.__state__  # type: ignore[attr-defined]
    assert pth._ThreadPool__STATE is ThreadPool.__state__  # type: ignore[attr-defined]
    assert pser._SerialPool__STATE is SerialPool.__state__  # type: ignore[attr-defined]
    assert ppar._ParallelPool__STATE is pathos.ParallelPool.__state__  # type: ignore[attr-defined]


def test_fixture_idiom_terminates_and_joins_every_pool() -> None:
    """What public test fixtures do: iterate the cache, terminate and join each pool."""
    from pathos.multiprocessing import _ProcessPool__STATE as state  # type: ignore[attr-defined]

    pool = make_pool("process")
    assert pool.map(abs, [-1]) == [1]
    for backend in list(state.values()):
        backend.terminate()
        backend.join()
    state.clear()
    assert pool._id not in ProcessPool.__state__
    assert pool.map(abs, [-2]) == [2]  # a new pool under the same id
    pool.clear()


def test_instance_clear_then_serve() -> None:
    pool = make_pool("thread")
    old = pool._serve()
    pool._clear()
    assert pool._id not in ThreadPool.__state__
    assert pool._serve() is not old and pool.map(abs, [-3]) == [3]
    pool.clear()


def test_package_attributes() -> None:
    assert isinstance(pathos.__author__, str) and "BSD" in pathos.__license__
    from pathos.__info__ import __version__

    assert __version__ == pathos.__version__
    assert pathos.abstract_launcher.AbstractWorkerPool is pathos.pools.ProcessPool.__mro__[2]
    assert not hasattr(pathos, "no_such_module")
    assert {"core", "hosts", "server", "selector", "connection", "util", "secure"} <= set(dir(pathos))


def test_import_pathos_imports_neither_multiprocess_nor_remote_modules() -> None:
    code = (
        "import sys, pathos, pathos.helpers, pathos.multiprocessing; "
        "bad = [m for m in ('multiprocess', 'ppft', 'pathos.core', 'pathos.secure') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert out.stdout.strip() == "[]", out.stderr


# -- item 2: helpers.mp is multiprocess ----------------------------------------------

MP_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathos.helpers import mp

    def run(q, f):
        q.put(f(1))

    if __name__ == "__main__":
        ctx = mp.get_context(sys.argv[1])
        assert mp.__name__ == "multiprocess"
        with ctx.Pool(2) as pool:
            assert pool.map(lambda x: x + 1, [1, 2]) == [2, 3]
        q = ctx.Queue()
        p = ctx.Process(target=lambda queue: queue.put("lambda ran"), args=(q,))
        p.start(); p.join(20)
        assert q.get(timeout=20) == "lambda ran"
        q.put(lambda x: x * 3)
        assert q.get(timeout=20)(2) == 6
        with ctx.Manager() as manager:
            d = manager.dict(a=1)
            assert d["a"] == 1
        print("ok")
    """
)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_helpers_mp_is_multiprocessing_with_dill(tmp_path: Any, method: str) -> None:
    script = tmp_path / "mp_script.py"
    script.write_text(MP_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"


# -- item 3: legacy map modules -------------------------------------------------------


@pytest.fixture
def default_pools() -> Any:
    """mp_map and pp_map use the cached pools of 2 nodes: shut them down afterwards."""
    yield
    ProcessPool(2).clear()
    ThreadPool(2).clear()


@pytest.mark.usefixtures("default_pools")
def test_mp_map() -> None:
    from pathos.mp_map import mp_map

    assert mp_map(pow, [1, 2, 3], [2, 2, 2], nproc=2) == [1, 4, 9]
    assert list(mp_map(abs, [-1, -2], type="non-blocking", threads=True, nproc=2)) == [1, 2]
    assert sorted(mp_map(abs, [-1, -2], type="unordered", nproc=2, servers=(), ncpus=3)) == [1, 2]
    import pathos.mp_map as module

    assert isinstance(module.mp, ProcessPool) and isinstance(module.tp, ThreadPool)


@pytest.mark.usefixtures("default_pools")
def test_pp_map(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathos.pools import ParallelPool
    from pathos.pp_map import pp_map, ppmap, print_stats, stats

    gen = ppmap(2, lambda n: (n, sum(range(n))), range(1, 4))
    assert list(gen) == [(1, 0), (2, 1), (3, 3)]
    assert pp_map(pow, [2, 3], [2, 2], ncpus=2) == [4, 9]
    # With no cached ParallelPool (other tests may leave one with a cluster, which
    # stats() would then report), pathos's wording:
    monkeypatch.setattr(ParallelPool, "__state__", {})
    assert stats().startswith("Stats are not available")
    print_stats()


def test_ppft_stand_ins_say_how_to_install_it() -> None:
    from pathos.helpers import parallelpython
    from pathos.helpers.pp_helper import Server

    try:
        import ppft  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install ppft"):
            Server()
        with pytest.raises(ImportError, match="pip install ppft"):
            parallelpython.Server  # noqa: B018


# -- item 4: AbstractWorkerPool subclassing (pyina) ---------------------------------


def test_abstract_pool_as_035() -> None:
    from pathos.abstract_launcher import AbstractPipeConnection, AbstractWorkerPool

    pool = AbstractWorkerPool(3)
    assert pool.nodes == 3 and pool._id is None and AbstractWorkerPool(id=5)._id == 5  # type: ignore[attr-defined]
    assert pool._AbstractWorkerPool__get_nodes() == 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="read-only"):
        pool._AbstractWorkerPool__set_nodes(2)  # type: ignore[attr-defined]
    with pytest.raises(NotImplementedError):
        pool._serve()
    with pytest.raises(NotImplementedError):
        pool.clear()
    with pool as same:
        assert same is pool
    assert repr(AbstractPipeConnection("x", name="y")) == "<pipe AbstractPipeConnection>"


class _Mapper(pathos.abstract_launcher.AbstractWorkerPool):
    """A pool written as pyina writes one."""

    def __init__(self, *args: Any, **kwds: Any) -> None:
        self.seen: list[Any] = []
        pathos.abstract_launcher.AbstractWorkerPool.__init__(self, *args, **kwds)
        self.scheduler = kwds.get("scheduler")

    def __get_nodes(self) -> Any:
        return self.__nodes

    def __set_nodes(self, nodes: Any) -> None:
        self.seen.append(nodes)
        self.__nodes = nodes

    nodes = property(__get_nodes, __set_nodes)

    def map(self, f: Any, *args: Any, **kwds: Any) -> Any:
        pathos.abstract_launcher.AbstractWorkerPool._AbstractWorkerPool__map(self, f, *args, **kwds)  # type: ignore[attr-defined]
        return list(map(f, *args))

    def imap(self, f: Any, *args: Any, **kwds: Any) -> Any:
        pathos.abstract_launcher.AbstractWorkerPool._AbstractWorkerPool__imap(self, f, *args, **kwds)  # type: ignore[attr-defined]
        return map(f, *args)

    def pipe(self, f: Any, *args: Any, **kwds: Any) -> Any:
        pathos.abstract_launcher.AbstractWorkerPool._AbstractWorkerPool__pipe(self, f, *args, **kwds)  # type: ignore[attr-defined]
        return f(*args, **kwds)


def test_pyina_style_subclass() -> None:
    pool = _Mapper(4, scheduler="torque")
    assert pool.seen == [4] and pool.nodes == 4 and pool.scheduler == "torque"
    assert _Mapper(nodes="32:ppn=4").nodes == "32:ppn=4"
    assert _Mapper().seen == [1]
    with pytest.raises(TypeError, match="multiple values"):
        _Mapper(2, nodes=3)
    assert pool.map(pow, [2], [3]) == [8] and list(pool.imap(abs, [-1])) == [1] and pool.pipe(abs, -2) == 2
    with pytest.raises(TypeError, match="requires at least two args"):
        pool.map(abs)
    with pytest.raises(TypeError, match="at least two arguments"):
        pool.imap(abs)
    with pytest.raises(NotImplementedError):
        pool.uimap(abs, [1])
    assert repr(pool) == "<pool _Mapper()>"


def test_subclass_with_a_read_only_nodes() -> None:
    from pathos.abstract_launcher import AbstractWorkerPool

    class Fixed(AbstractWorkerPool):
        nodes = property(lambda self: 1, AbstractWorkerPool._AbstractWorkerPool__set_nodes)  # type: ignore[attr-defined]

    assert Fixed(4).nodes == 1


# -- item 6: semantics ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["serial", "thread", "process"])
def test_chunksize_zero_as_035(kind: str) -> None:
    pool = make_pool(kind)
    try:
        assert pool.map(_cases.square, [1, 2, 3], chunksize=0) == [None, None, None]
        assert pool.amap(_cases.square, [1, 2], chunksize=0).get(TIMEOUT) == [None, None]
        with pytest.raises(ValueError, match="Chunksize must be 1\\+, not 0"):
            pool.imap(_cases.square, [1], chunksize=0)
        with pytest.raises(ValueError, match="Chunksize must be 1\\+, not 0"):
            pool.uimap(_cases.square, [1], chunksize=0)
    finally:
        pool.clear()


def test_chunksize_zero_on_the_stdlib_pool() -> None:
    from pathos.pools import _ProcessPool

    with _ProcessPool(2) as pool:
        assert pool._processes == 2
        assert pool.map(_cases.square, [1, 2], chunksize=0) == [None, None]
        with pytest.raises(ValueError, match="Chunksize must be 1\\+"):
            pool.imap(_cases.square, [1], chunksize=0)


def test_ports_ranges_are_inclusive() -> None:
    from pathos.portpicker import is_free, portnumber, randomport

    port = randomport()
    if is_free(port):
        assert randomport(min=port, max=port) == port
    pick = portnumber(min=port, max=port)
    assert isinstance(pick, portnumber) and pick() == port and pick.first == port
    with pytest.raises(RuntimeError, match="Range exhausted"):
        pick()


def test_logger_handler_not_added_twice() -> None:
    handler = logging.NullHandler()
    log = pathos.logger(handler=handler, name="pathos-compat-test")
    pathos.logger(handler=handler, name="pathos-compat-test")
    assert log.handlers == [handler]


def test_profile_as_035(tmp_path: Any) -> None:
    import pathos.profile as pr

    pr.disable_profiling()
    with pytest.raises(NameError):
        pr.get_stats()
    assert pr.profiled()(abs).__name__ == "proactive"
    assert pr.profiled(gen=True).pid is str and pr.profiled(gen="calls").sort == "calls"
    plain = pr.not_profiled(pr.profiled()(abs))
    assert plain.__name__ == "wrapper" and plain(-1) == 1
    pr.start_profiling()
    sum(range(10))
    pr.stop_profiling()
    try:
        pr.print_stats(sort="calls", junk=1)
        path = pr.dump_stats(gen=lambda: "x", prefix=str(tmp_path / "p-"), suffix=".out", other=2)
        assert path is not None and os.path.exists(path)
    finally:
        pr.disable_profiling()


def test_random_state_with_numpy() -> None:
    np = pytest.importorskip("numpy")
    from pathos.helpers.mp_helper import random_state

    a = random_state("numpy", new=True, seed=3)
    b = random_state(np, new=True, seed=3)
    assert a.randint(0, 1000) == b.randint(0, 1000)
    assert random_state("numpy") is np.random
    assert random_state(np.random, seed="*") is np.random
    assert 0 <= random_state("random", new=True, seed="*").random() < 1


def test_map_object_shuts_its_pool_down_when_deleted() -> None:
    from pathos.maps import Map

    pool_id = "compat-map-del"
    mapper = Map(ThreadPool, 2, id=pool_id)
    assert mapper(abs, [-1]) == [1]
    assert pool_id in ThreadPool.__state__
    del mapper
    assert pool_id not in ThreadPool.__state__


def test_parallel_pool_autodetect() -> None:
    pytest.importorskip("distributed")
    pool = pathos.ParallelPool("autodetect", id="compat-autodetect")
    other = pathos.ParallelPool(ncpus="autodetect", id="compat-autodetect2")
    try:
        assert pool.nodes == other.nodes == pathos.helpers.cpu_count()
    finally:
        pool.clear()
        other.clear()
