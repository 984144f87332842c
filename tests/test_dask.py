"""ParallelPool on real Dask schedulers and workers, all on 127.0.0.1.

A module fixture starts a ``dask scheduler`` and two ``dask worker`` processes (one
thread each); every test that needs another scheduler starts its own, so the shared one
stays valid. Every process started here is killed at teardown.
"""

from __future__ import annotations

import asyncio
import http.server
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from pathos import ClusterError, PathosError, PoolClosedError, SerializationError, TaskTimeoutError, WorkerCrashedError
from pathos._backends.dask import FETCH_IN_ROW, FETCH_TRIES, DaskBackend, _Task, scheduler_address
from pathos._job import Job
from pathos.parallel import stats
from pathos.pools import ParallelPool

from . import _cases
from .conftest import TIMEOUT

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.dask

START_SECONDS = 60  # bound on a scheduler or workers coming up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    """Workers import this checkout's pathos and the tests' helper modules."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: killed with every child
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(TIMEOUT)


class Cluster:
    """A scheduler and its workers, as subprocesses."""

    def __init__(self, workers: int) -> None:
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.scheduler = _spawn(
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
        )
        self.workers = [
            _spawn(
                "distributed.cli.dask_worker",
                self.address,
                "--nthreads",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--death-timeout",
                "30",
            )
            for _ in range(workers)
        ]
        self.wait_for_workers(workers)

    def wait_for_workers(self, n: int) -> None:
        with distributed.Client(self.address, timeout=START_SECONDS, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=START_SECONDS)

    def worker_pids(self) -> set[int]:
        """Every process under the worker commands (nannies and the workers they run)."""
        pids = set()
        for proc in self.workers:
            pids.add(proc.pid)
            try:
                pids.update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return pids

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            _kill(proc)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(workers=2)
    yield c
    c.stop()


_ids = iter(range(10**6))


def remote_pool(address: str, **kwds: Any) -> Any:
    return ParallelPool(nodes=0, servers=(address,), id=f"dask-test-{next(_ids)}", **kwds)


@pytest.fixture
def pool(cluster: Cluster) -> Iterator[Any]:
    p = remote_pool(cluster.address)
    yield p
    p.terminate()
    p.clear()


# -- every verb, in the workers --------------------------------------------------------------


def test_every_verb_runs_in_the_workers(cluster: Cluster, pool: Any) -> None:
    offset = 100

    def shifted_pid(x: int, y: int) -> tuple[int, int]:
        return x + y + offset, os.getpid()

    out = pool.map(shifted_pid, range(40), range(40))
    assert [v for v, _ in out] == [2 * x + 100 for x in range(40)]
    pids = {p for _, p in out}
    assert os.getpid() not in pids and pids <= cluster.worker_pids()
    assert list(pool.imap(lambda x: x * 2, range(10))) == [x * 2 for x in range(10)]
    assert sorted(pool.uimap(_cases.add, range(10), range(10))) == [2 * x for x in range(10)]
    assert pool.amap(pow, [2, 3], [3, 2]).get(TIMEOUT) == [8, 9]
    assert pool.pipe(_cases.add, 1, y=41) == 42
    assert pool.apipe(_cases.pid).get(TIMEOUT) in cluster.worker_pids()


def test_pathos_host_port_form(cluster: Cluster) -> None:
    host_port = cluster.address.removeprefix("tcp://")
    pool = remote_pool(host_port)
    try:
        assert pool.map(_cases.square, range(5)) == [0, 1, 4, 9, 16]
    finally:
        pool.clear()


def test_exceptions_keep_their_type_and_remote_traceback(pool: Any) -> None:
    with pytest.raises(ValueError, match="bad item 3") as info:
        pool.map(_cases.boom_on(3), range(6))
    assert "bad item 3" in str(info.value.__cause__)
    assert pool.map(_cases.square, [4]) == [16]


def test_a_result_that_will_not_serialize_names_its_item(pool: Any) -> None:
    from pathos import SerializationError

    results = pool.imap(lambda x: (i for i in range(x)) if x == 2 else x, range(4), chunksize=4)
    assert [next(results), next(results)] == [0, 1]
    with pytest.raises(SerializationError, match=r"cannot serialize the result of item 2 \(generator: "):
        next(results)
    assert next(results) == 3


def test_stats_names_the_scheduler_workers_and_counts(cluster: Cluster, pool: Any) -> None:
    pool.map(_cases.square, range(20))
    text = stats(pool)
    assert cluster.address in text and "2 workers" in text
    assert "items run: 20" in text


# -- faults ----------------------------------------------------------------------------------


def test_a_worker_killed_mid_map_loses_no_item(cluster: Cluster, pool: Any, tmp_path: Path) -> None:
    marker = str(tmp_path / "killed")

    def kill_once(x: int) -> int:
        if x == 7:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass  # the rerun after the kill
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.01)
        return x * 3

    assert pool.map(kill_once, range(30), chunksize=2) == [x * 3 for x in range(30)]
    assert os.path.exists(marker)
    cluster.wait_for_workers(2)  # the nanny restarts it, for the tests after this one


def test_an_item_that_keeps_killing_its_worker_fails_with_worker_crashed(cluster: Cluster, pool: Any) -> None:
    def deadly(x: int) -> int:
        if x == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    outcomes: list[Any] = []
    it = pool.imap(deadly, range(5))
    while True:
        try:
            outcomes.append(it.next(120))  # Dask restarts the worker and retries it first
        except StopIteration:
            break
        except WorkerCrashedError:
            outcomes.append("crashed")
    # An item queued on the same worker when it died may be blamed too (Dask counts
    # every task assigned to a dying worker); none is lost or silently dropped.
    assert len(outcomes) == 5 and outcomes[2] == "crashed"
    assert all(o in (i, "crashed") for i, o in enumerate(outcomes))
    cluster.wait_for_workers(2)


def test_timeout_fails_the_late_item_and_cancels_it(pool: Any) -> None:
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        pool.map(_cases.sleep_then, [0.01, 4.0, 0.01], timeout=0.5)
    assert info.value.task == 1 and isinstance(info.value, TimeoutError)
    assert time.monotonic() - started < 3.5  # not waiting for the late item
    assert pool.map(_cases.square, range(3)) == [0, 1, 4]


def test_timeout_is_per_item_even_in_a_chunk(pool: Any) -> None:
    # With chunksize=3 the chunk ran as one task under one clock: item 0 was blamed.
    it = pool.imap(_cases.sleep_then, [0.0, 1.5, 0.0], chunksize=3, timeout=0.5)
    assert it.next(TIMEOUT) == 0.0
    with pytest.raises(TaskTimeoutError, match=r"^item 1 ran longer than the timeout of 0.5 s") as info:
        it.next(TIMEOUT)
    assert info.value.task == 1
    assert it.next(TIMEOUT) == 0.0


def test_the_timeout_clock_starts_when_the_item_starts_running(pool: Any) -> None:
    # Loading the argument in the worker takes 2 s, calling the function no time: the
    # clock measures the call, not the wait for a worker, the transfer or the loading.
    assert pool.map(_cases.seconds_of, [_cases.SlowToLoad(2.0)], timeout=1.0) == [2.0]


def test_a_result_lost_with_its_worker_is_run_again_and_the_pool_stays_usable() -> None:
    backend = DaskBackend(1)
    backend._client = SimpleNamespace(status="running")
    job = Job(_cases.square)
    job.feed([(3,)], last=True)
    batch = job.next_batch()
    assert batch is not None
    for status in ("lost", "pending", "cancelled"):  # lost, lost while fetched, dropped
        backend._settle(_Task(batch, SimpleNamespace(status=status, key="k"), None))
        assert backend._lost_reason is None and job.in_flight == 0 and not job.done_or_failed()
        assert job.next_batch() is batch

    def gone(timeout: float) -> Any:
        raise TimeoutError("timed out after 10 s.")

    # Under load: the worker holding the result died, and Dask reschedules the task while
    # the client still calls it finished. This broke the pool ("lost the Dask scheduler").
    unfetchable = SimpleNamespace(status="finished", key="k", result=gone)
    for _ in range(FETCH_TRIES - 1):
        backend._settle(_Task(batch, unfetchable, None))
        assert backend._lost_reason is None and not job.done_or_failed()
        assert job.next_batch() is batch
    backend._settle(_Task(batch, unfetchable, None))  # the last try: its item fails, the pool stays
    assert backend._lost_reason is None and job.done_or_failed()
    with pytest.raises(ClusterError, match="could not be fetched from the Dask cluster 3 times"):
        job.result()
    other = Job(_cases.square)  # every fetch fails: the cluster serves no results; the pool breaks
    other.feed([(4,)], last=True)
    for _ in range(FETCH_IN_ROW - FETCH_TRIES):
        batch = other.next_batch()
        assert batch is not None and backend._lost_reason is None
        backend._settle(_Task(batch, unfetchable, None))
    assert backend._lost_reason is not None and "results in a row could not be fetched" in str(backend._lost_reason)
    backend._client = None
    backend.terminate()


def test_closing_an_imap_early_cancels_its_tasks(pool: Any) -> None:
    it = pool.imap(_cases.sleep_then, [0.2] * 30)
    assert next(it) == 0.2
    it.close()
    backend = ParallelPool.__state__[pool._id]
    deadline = time.monotonic() + TIMEOUT
    while backend._running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not backend._running
    assert pool.map(_cases.square, [5]) == [25]


def test_losing_the_scheduler_fails_the_call_promptly() -> None:
    own = Cluster(workers=1)
    pool = remote_pool(own.address)
    try:
        result = pool.amap(_cases.sleep_then, [0.5] * 20)
        streams = [pool.imap(_cases.sleep_then, [0.5] * 20), pool.uimap(_cases.sleep_then, [0.5] * 20)]
        time.sleep(1.0)
        _kill(own.scheduler)
        started = time.monotonic()
        with pytest.raises(ClusterError, match="lost the Dask scheduler") as info:
            result.get(TIMEOUT)
        assert info.value.address == own.address
        assert time.monotonic() - started < 15
        for stream in streams:  # a stream said why it ended, not a silent StopIteration
            with pytest.raises(ClusterError, match="lost the Dask scheduler"):
                for _ in range(21):
                    stream.next(TIMEOUT)
        pool.close()  # does not hide the reason either
        for call in (lambda: pool.map(_cases.square, [1]), lambda: list(pool.imap(_cases.square, [1]))):
            with pytest.raises(PoolClosedError, match="stopped because ClusterError: lost the Dask scheduler") as err:
                call()  # later calls say why the pool stopped, not "it was terminated"
            assert isinstance(err.value.__cause__, ClusterError)
    finally:
        own.stop()
        pool.clear()


# -- lifecycle: close, terminate, errors that end a call ---------------------------------------


def _join(pool: Any) -> None:
    """``pool.join()``, bounded: it must return once the pool's work has run."""
    done = threading.Event()

    def join() -> None:
        pool.join()
        done.set()

    threading.Thread(target=join, daemon=True).start()
    assert done.wait(TIMEOUT), "join() did not return"


@pytest.mark.parametrize("verb", ["imap", "uimap"])
def test_a_stream_begun_before_close_finishes_all_its_items(cluster: Cluster, verb: str) -> None:
    # pathos's and multiprocessing's contract: close() lets submitted work finish. The
    # pool went idle at join() and shut its client down, so the refill raised
    # PoolClosedError after the first window.
    pool = remote_pool(cluster.address)
    try:
        it = getattr(pool, verb)(_cases.square, (x for x in range(100)))
        first = it.next(TIMEOUT)
        pool.close()
        _join(pool)
        rest = [it.next(TIMEOUT) for _ in range(99)]
        assert sorted([first, *rest]) == [x * x for x in range(100)]
        if verb == "imap":
            assert [first, *rest] == [x * x for x in range(100)]
        with pytest.raises(StopIteration):
            it.next(TIMEOUT)
        backend = ParallelPool.__state__[pool._id]
        deadline = time.monotonic() + TIMEOUT
        while backend._client is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backend._client is None  # the finished pool let its cluster go
    finally:
        pool.terminate()
        pool.clear()


def test_the_cluster_is_let_go_when_nothing_can_use_it_again(cluster: Cluster) -> None:
    pool = remote_pool(cluster.address)
    backend = ParallelPool.__state__[pool._id]
    try:
        assert pool.map(_cases.square, [2]) == [4]
        pool.close()
        _join(pool)
        assert backend._client is None  # closed, no call open
        pool.clear()
        it = pool.imap(_cases.square, (x for x in range(100)))
        assert it.next(TIMEOUT) == 0
        backend = ParallelPool.__state__[pool._id]
        pool.close()
        _join(pool)
        assert backend._client is not None  # the imap begun before close() still reads input
        pool.terminate()
        assert backend._client is None
        with pytest.raises(PoolClosedError, match="terminated"):
            for _ in range(100):
                it.next(TIMEOUT)
    finally:
        pool.terminate()
        pool.clear()


def test_terminate_stops_a_refilling_imap_with_pool_closed(cluster: Cluster) -> None:
    pool = remote_pool(cluster.address)
    try:
        it = pool.imap(_cases.square, itertools.count())
        assert it.next(TIMEOUT) == 0
        pool.terminate()
        with pytest.raises(PoolClosedError, match="terminated"):
            for _ in range(10_000):
                it.next(TIMEOUT)
    finally:
        pool.clear()


def test_terminate_right_after_a_call_returned_keeps_its_results(cluster: Cluster) -> None:
    # Its batches filled the engine's room, so the finished call may still be queued
    # when terminate() comes: it must not become PoolClosedError.
    pool = remote_pool(cluster.address)
    try:
        done = pool.amap(_cases.square, [1, 2, 3])
        assert done.get(TIMEOUT) == [1, 4, 9]
        pool.terminate()
        assert done.successful() and not done.cancelled() and done.get(0) == [1, 4, 9]
    finally:
        pool.clear()


def test_terminate_never_rewrites_a_finished_call(cluster: Cluster) -> None:
    pool = remote_pool(cluster.address)
    try:
        done = pool.amap(_cases.square, [1, 2, 3])
        assert done.get(TIMEOUT) == [1, 4, 9]
        finished = pool.imap(_cases.square, range(3))  # all of it run, none of it read yet
        deadline = time.monotonic() + TIMEOUT
        while not finished._job.done_or_failed() and time.monotonic() < deadline:
            time.sleep(0.01)
        pool.terminate()
        assert done.get(0) == [1, 4, 9] and done.successful() and not done.cancelled()
        assert list(finished) == [0, 1, 4]
    finally:
        pool.clear()


@pytest.mark.parametrize("verb", ["map", "imap", "uimap", "amap"])
def test_an_unserializable_function_fails_every_verb(pool: Any, verb: str) -> None:
    # imap and uimap gave an empty iterator: the job was cancelled with the error, and
    # only PoolClosedError was raised from a cancelled iterator.
    generator = (i for i in range(3))  # neither pickle nor dill can send a generator
    with pytest.raises(SerializationError, match="function"):
        out = getattr(pool, verb)(lambda x: (next(generator), x), range(5))
        if verb == "amap":
            out.get(TIMEOUT)
        elif verb != "map":
            out.next(TIMEOUT)
    assert pool.map(_cases.square, [2]) == [4]


def test_an_engine_that_failed_says_why_in_later_calls(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = remote_pool(cluster.address)
    try:
        assert pool.map(_cases.square, [2]) == [4]

        def broken(self: Any) -> None:
            raise RuntimeError("a bug in the engine")

        monkeypatch.setattr(DaskBackend, "_fill", broken)
        with pytest.raises(PathosError, match="thread failed: RuntimeError: a bug in the engine"):
            pool.map(_cases.square, [3])
        monkeypatch.undo()  # the bug is gone, but the pool it killed stays stopped, and says why
        with pytest.raises(PoolClosedError, match=r"stopped because PathosError: .*a bug in the engine"):
            pool.map(_cases.square, [3])
        pool.clear()
        assert pool.map(_cases.square, [3]) == [9]  # a new one connects
    finally:
        pool.terminate()
        pool.clear()


# -- connecting ------------------------------------------------------------------------------


def test_an_unreachable_server_warns_then_the_work_runs_on_the_next(cluster: Cluster) -> None:
    dead = f"127.0.0.1:{_free_port()}"
    pool = ParallelPool(nodes=0, servers=(dead, cluster.address), id=f"dask-test-{next(_ids)}")
    try:
        started = time.monotonic()
        with pytest.warns(RuntimeWarning, match=f"cannot reach the Dask scheduler at tcp://{dead}"):
            pids = pool.map(_cases.pid, range(4))
        assert time.monotonic() - started < 15
        assert set(pids) <= cluster.worker_pids()
    finally:
        pool.clear()


def test_strict_raises_for_an_unreachable_server() -> None:
    dead = f"tcp://127.0.0.1:{_free_port()}"
    pool = ParallelPool(nodes=0, servers=(dead,), strict=True, id=f"dask-test-{next(_ids)}")
    try:
        with pytest.raises(ClusterError, match="cannot reach") as info:
            pool.map(_cases.square, [1])
        assert info.value.address == dead and isinstance(info.value, ConnectionError)
    finally:
        pool.clear()


def test_a_client_that_times_out_connecting_is_cannot_reach(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    # distributed raises asyncio's TimeoutError, the builtin one only from Python 3.11:
    # on 3.9 and 3.10 it was reported as "not a Dask scheduler".
    def slow(*args: Any, **kwds: Any) -> Any:
        raise asyncio.TimeoutError("timed out after 3 s.")

    monkeypatch.setattr(distributed, "Client", slow)
    pool = ParallelPool(nodes=0, servers=(cluster.address,), strict=True, id=f"dask-test-{next(_ids)}")
    try:
        with pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler .*\(timed out after 3 s"):
            pool.map(_cases.square, [1])
    finally:
        pool.clear()


def test_nothing_reachable_and_no_local_nodes_is_a_clear_error() -> None:
    pool = ParallelPool(nodes=0, servers=(f"127.0.0.1:{_free_port()}",), id=f"dask-test-{next(_ids)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ClusterError, match="no Dask scheduler could be reached"):
                pool.map(_cases.square, [1])
    finally:
        pool.clear()


def test_an_unreachable_server_falls_back_to_a_local_cluster() -> None:
    dead = f"127.0.0.1:{_free_port()}"
    pool = ParallelPool(nodes=1, servers=(dead,), id=f"dask-test-{next(_ids)}")
    try:
        with pytest.warns(RuntimeWarning, match="local cluster"):
            assert pool.map(_cases.square, [3]) == [9]
        assert "local cluster" in stats(pool)
    finally:
        pool.clear()


def test_a_local_cluster_starts_with_no_dask_command_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A virtual environment run without activating it: its ``dask`` command is not on
    # PATH. distributed 2024.8 (the last for Python 3.9) ran its workers as ``dask spec``
    # found on PATH, so the local cluster never came up.
    monkeypatch.setenv("PATH", str(tmp_path))
    pool = ParallelPool(nodes=1, id=f"dask-test-{next(_ids)}")
    try:
        assert pool.map(_cases.square, [3, 4]) == [9, 16]
    finally:
        pool.clear()


class SshLike:
    """A TCP server on 127.0.0.1 that greets each connection as an SSH server does,
    then holds it open (reading and discarding) until stopped."""

    GREETING = b"SSH-2.0-OpenSSH_9.2\r\n"

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # stopped
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.sendall(self.GREETING)
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def stop(self) -> None:
        self._listener.close()
        for conn in self._conns:
            conn.close()


class HttpServer:
    """The standard library's HTTP server on 127.0.0.1, in a thread."""

    def __init__(self) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def ssh_like() -> Iterator[SshLike]:
    server = SshLike()
    yield server
    server.stop()


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.stop()


def test_an_ssh_port_is_a_clear_cluster_error(ssh_like: SshLike) -> None:
    # Read as a Dask frame length, the greeting asked numpy for 2.82 EiB (MemoryError).
    pool = ParallelPool(nodes=0, servers=(ssh_like.address,), strict=True, id=f"dask-test-{next(_ids)}")
    try:
        with pytest.raises(ClusterError, match=r"is not a Dask scheduler: it greeted with 'SSH-2\.0") as info:
            pool.map(_cases.square, [1])
        assert info.value.address == f"tcp://{ssh_like.address}"
        assert "check the host and the port" in str(info.value)
    finally:
        pool.clear()


def test_an_http_server_is_a_clear_cluster_error_within_the_connect_time(http_server: HttpServer) -> None:
    # An HTTP server waits for the client to speak first: the Dask handshake waited 60 s+.
    pool = ParallelPool(nodes=0, servers=(http_server.address,), strict=True, id=f"dask-test-{next(_ids)}")
    try:
        started = time.monotonic()
        with pytest.raises(ClusterError, match=r"is not a Dask scheduler: .* no Dask greeting within 3 s"):
            pool.map(_cases.square, [1])
        assert time.monotonic() - started < 15  # 3 s stated; a hang guard, not a speed check
    finally:
        pool.clear()


def test_foreign_services_warn_then_the_work_runs_on_the_scheduler(
    cluster: Cluster, ssh_like: SshLike, http_server: HttpServer
) -> None:
    servers = (ssh_like.address, http_server.address, cluster.address)
    pool = ParallelPool(nodes=0, servers=servers, id=f"dask-test-{next(_ids)}")
    try:
        with pytest.warns(RuntimeWarning, match="is not a Dask scheduler") as caught:
            assert pool.map(_cases.square, range(3)) == [0, 1, 4]
        texts = [str(w.message) for w in caught]
        assert any("SSH-2.0" in t for t in texts) and any("no Dask greeting" in t for t in texts)
        assert {w.filename for w in caught} == {__file__}  # the line that called the pool
    finally:
        pool.clear()


def test_only_foreign_services_and_no_local_nodes_says_what_each_was(ssh_like: SshLike) -> None:
    pool = ParallelPool(nodes=0, servers=(ssh_like.address,), id=f"dask-test-{next(_ids)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ClusterError, match=r"no Dask scheduler could be reached .*SSH-2\.0"):
                pool.map(_cases.square, [1])
    finally:
        pool.clear()


def test_a_malformed_address_is_a_cluster_error() -> None:
    pool = ParallelPool(nodes=0, servers=("tcp://127.0.0.1:port",), strict=True, id=f"dask-test-{next(_ids)}")
    try:
        with pytest.raises(ClusterError, match="is not a scheduler address"):
            pool.map(_cases.square, [1])
    finally:
        pool.clear()


def test_scheduler_addresses() -> None:
    assert scheduler_address("tcp://h:1") == "tcp://h:1"
    assert scheduler_address("h:1") == "tcp://h:1"
    assert scheduler_address("h") == "tcp://h:8786"


def test_without_distributed_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    # Into this interpreter's environment; never the registry's "pathos[dask]" (pathos 0.3.5).
    with pytest.raises(ImportError, match=r'-m pip install "distributed>=') as info:
        ParallelPool(2, id=f"dask-test-{next(_ids)}")
    assert sys.executable in str(info.value) and "pathos[" not in str(info.value)
