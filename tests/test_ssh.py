"""pathos.secure and pathos.core against a real OpenSSH server on 127.0.0.1.

A session fixture starts ``sshd`` on a free port with keys made in a temporary directory
(see ``_sshd.py``) and points pathos at it with ``PATHOS_SSH_OPTIONS="-F <config>"``.
The "remote" machine is this one, so the tests can see both ends. Without root or
OpenSSH the tests skip, saying how to enable them.
"""

from __future__ import annotations

import os
import queue
import random
import re
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from pathos import core
from pathos.connection import PipeException
from pathos.secure import Copier, Pipe, Tunnel, TunnelException

from . import _sshd
from .conftest import HAVE_DASK, TIMEOUT

pytestmark = pytest.mark.skipif(_sshd.missing() is not None, reason=_sshd.missing() or "")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_sshd.Sshd]:
    server = _sshd.start_sshd(tmp_path_factory.mktemp("sshd"))
    saved = os.environ.get("PATHOS_SSH_OPTIONS")
    os.environ["PATHOS_SSH_OPTIONS"] = f"-F {server.client_config}"
    try:
        yield server
    finally:
        if saved is None:
            os.environ.pop("PATHOS_SSH_OPTIONS", None)
        else:
            os.environ["PATHOS_SSH_OPTIONS"] = saved
        server.stop()


def _eventually(check: Callable[[], bool], seconds: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _response(launcher: Pipe) -> str | None:
    """A background launcher's response, asked again while None (a loaded machine is slow)."""
    deadline = time.monotonic() + TIMEOUT
    out: str | None = launcher.response()
    while out is None and time.monotonic() < deadline:
        out = launcher.response()
    return out


def _gone(pattern: str | int, host: str | None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            core.getpid(pattern, host)
        except OSError as exc:
            if "No such process" not in str(exc):
                raise  # ps failed: that is not "gone"
            return True
        return False

    return check


# The "remote" host is this machine, so its ps also lists our local ssh commands, whose
# command lines contain the remote command: patterns are anchored to the remote process.
def _sleeping(mark: str) -> str:
    return f"^sleep {re.escape(mark)}$"


def _supervisor(port: int) -> str:
    return f"^\\S+ -m pathos[.]_serve --port {port} "


def _marker() -> str:
    """A sleep duration no other process on this shared machine is running."""
    return f"{random.randrange(100, 200)}.{random.randrange(10**6)}"


def test_execute_remote_foreground_and_background(sshd: _sshd.Sshd) -> None:
    launcher = core.execute('echo $((6 * 7)) "two  spaces"', sshd.host, bg=False)
    assert isinstance(launcher, Pipe) and launcher.message.startswith("ssh ")
    assert launcher.response() == "42 two  spaces\n"  # expanded by the remote shell, quoting kept
    assert launcher.wait(TIMEOUT) == 0
    mark = _marker()
    background = core.execute(f"echo started; sleep {mark}", sshd.host)
    assert background.pid() > 0
    assert _response(background) == "started\n"  # output so far; the command runs on
    remote_pid = _wait_pid(_sleeping(mark), sshd.host)
    assert core.getppid(remote_pid, sshd.host) > 1
    assert core.getchild(core.getppid(remote_pid, sshd.host), sshd.host) == [remote_pid]
    assert core.kill(remote_pid, sshd.host) == ""
    assert _eventually(_gone(_sleeping(mark), sshd.host))
    assert background.wait(TIMEOUT) is not None  # ssh ended with its command
    with pytest.raises(OSError, match="No such process"):
        core.kill(remote_pid, sshd.host)


def test_secure_pipe_takes_ssh_options_like_pathos(sshd: _sshd.Sshd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATHOS_SSH_OPTIONS")
    pipe = Pipe("p", command="echo $HOME", host=f"root@{sshd.host}", options=sshd.options)
    assert pipe.message == f"ssh {sshd.options} root@{sshd.host} 'echo $HOME'"
    pipe.launch()
    assert pipe.response() == "/root\n"
    copier = Copier(source="/etc/hostname", destination=f"{sshd.directory}/by-options", options=sshd.options)
    copier(source=f"{sshd.host}:/etc/hostname")
    copier.launch()
    copier.response()
    assert copier.wait(TIMEOUT) == 0
    assert Path(sshd.directory, "by-options").read_text() == Path("/etc/hostname").read_text()
    with pytest.raises(KeyError):
        copier(command="ls")


def test_kill_kills_the_remote_process_whatever_the_shell(sshd: _sshd.Sshd) -> None:
    """pathos 0.3.5 ran ``kill -n TERM``, which dash (Debian's sh) rejects; ours is POSIX."""
    mark = _marker()
    core.execute(f"sleep {mark}", sshd.host)
    pid = _wait_pid(_sleeping(mark), sshd.host)
    assert core.execute(f"sh -c 'kill -TERM {pid}' && echo ok", sshd.host, bg=False).response() == "ok\n"
    assert _eventually(_gone(_sleeping(mark), sshd.host))


def _wait_pid(pattern: str, host: str | None) -> int:
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return int(core.getpid(pattern, host))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_copy_both_ways_and_a_failed_copy(sshd: _sshd.Sshd, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "data.txt").write_text("payload")
    copier = core.copy(str(tmp_path / "out"), f"{sshd.host}:{tmp_path}/there")
    assert copier.message.startswith("scp ") and " -q -r " in copier.message
    assert (tmp_path / "there" / "data.txt").read_text() == "payload"
    core.copy(f"{sshd.host}:{tmp_path}/there/data.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "payload"
    with pytest.raises(PipeException, match="copy failed"):
        core.copy(f"{sshd.host}:{tmp_path}/missing.txt", str(tmp_path / "x"))


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


def _echo_through(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(4096):
            got += chunk
    return got


def test_tunnel_carries_a_tcp_echo(sshd: _sshd.Sshd, echo_port: int) -> None:
    tunnel = core.connect(sshd.host, echo_port)
    try:
        assert tunnel.connected and tunnel._rport == echo_port and tunnel._host == sshd.host
        assert tunnel._lport is not None and tunnel._lport != echo_port
        assert "-L" in repr(tunnel)
        assert _echo_through(tunnel._lport, b"ping" * 1000) == b"ping" * 1000
        ssh_pid = tunnel._pid
    finally:
        tunnel.disconnect()
    assert not tunnel.connected and tunnel._lport is None
    with pytest.raises(ProcessLookupError):
        os.kill(ssh_pid, 0)


def test_tunnel_reports_a_failed_login_and_a_dead_ssh(sshd: _sshd.Sshd, echo_port: int) -> None:
    """pathos 0.3.5 said connected=True for a tunnel whose ssh had already exited."""
    tunnel = Tunnel("t")
    with pytest.raises(TunnelException, match=r"Connection failed.*Permission denied"):
        tunnel.connect(f"nobody-here@{sshd.host}", echo_port)
    assert not tunnel.connected and repr(tunnel) == "Tunnel('t')"
    local = tunnel.connect(sshd.host, echo_port)
    assert tunnel.connected and _echo_through(local, b"x") == b"x"
    os.kill(tunnel._pid, 9)  # ssh dies behind the tunnel's back
    assert _eventually(lambda: not tunnel.connected)
    tunnel.disconnect()


def test_tunnel_skips_a_local_port_taken_by_another_program(
    sshd: _sshd.Sshd, echo_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathos.secure import tunnel as tunnel_module

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    ports = iter([busy, _free_port()])
    monkeypatch.setattr(tunnel_module, "portnumber", lambda lo, hi: lambda: next(ports))
    t = Tunnel()
    try:
        assert t.connect(sshd.host, echo_port) != busy and _echo_through(t._lport or 0, b"y") == b"y"
    finally:
        t.disconnect()
        taken.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_randomport_on_the_remote_host(sshd: _sshd.Sshd) -> None:
    port = core.randomport(sshd.host)
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free over there (which is here)


def test_pathos_connect_tunnel_only(sshd: _sshd.Sshd, echo_port: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pathos._connect", sshd.host, "tunnel", str(echo_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _read_until(proc, "Press <Enter>")
        local = int(next(line for line in lines if "Connected to localhost" in line).rsplit("=", 1)[1])
        assert _echo_through(local, b"via cli") == b"via cli"
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(TIMEOUT) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", local), timeout=2).close()
    finally:
        proc.kill()
        proc.wait(TIMEOUT)


def test_a_tunnel_ends_when_its_python_is_killed(sshd: _sshd.Sshd, echo_port: int) -> None:
    code = f"from pathos import core\nt = core.connect({sshd.host!r}, {echo_port})\nprint(t._pid, flush=True)\n"
    code += "input()\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ssh_pid = int(_read_until(proc, "")[0])
        os.kill(ssh_pid, 0)
    finally:
        proc.kill()  # SIGKILL: no atexit runs
        proc.wait(TIMEOUT)
    assert _eventually(lambda: not _alive(ssh_pid))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie of init is gone for us
    except OSError:
        return False


def _read_until(proc: subprocess.Popen[str], text: str, seconds: float = 120) -> list[str]:
    """Lines of ``proc``'s output up to the one containing ``text`` (a thread reads them)."""
    assert proc.stdout is not None
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    got: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            break
        if text in got[-1]:
            return got
    raise AssertionError(f"{text!r} not printed within {seconds} s; got {got!r}")


# -- ParallelPool on a Dask scheduler started over ssh ----------------------------------

dask = pytest.mark.skipif(not HAVE_DASK, reason="needs pathos[dask]")


def _descends_from(pid: int, ancestor: int) -> bool:
    psutil = pytest.importorskip("psutil")
    try:
        return any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.NoSuchProcess:
        return False


@dask
@pytest.mark.dask
@pytest.mark.slow
def test_parallel_pool_through_a_tunnel_to_dask_started_over_ssh(sshd: _sshd.Sshd) -> None:
    from pathos.pools import ParallelPool

    port = core.randomport(sshd.host)
    server = core.serve("dask", sshd.host, port, python=sys.executable, workers=2, timeout=90)
    tunnel = pool = None
    try:
        tunnel = core.connect(sshd.host, port)
        pool = ParallelPool(nodes=0, servers=(f"localhost:{tunnel._lport}",), id=f"ssh-{port}", strict=True)
        assert pool.map(pow, [1, 2, 3, 4], [2, 2, 2, 2]) == [1, 4, 9, 16]
        # A lambda as a script's __main__ defines it: sent by value. (One defined in this
        # test module refers to `tests.test_ssh`, which the remote machine cannot import,
        # with pathos 0.3.5's dill settings as with ours.)
        inc = eval("lambda x: x + 1", {"__name__": "__main__"})
        assert pool.map(inc, range(5)) == [1, 2, 3, 4, 5]
        assert ParallelPool.__state__[pool._id]._address == f"tcp://localhost:{tunnel._lport}"  # the tunnel
        assert _descends_from(pool.pipe(os.getpid), sshd.process.pid)  # a worker that ssh started
        supervisor = core.getpid(_supervisor(port), sshd.host)
        assert server.response() is None  # running, nothing more to say
    finally:
        if pool is not None:
            pool.clear()
        if tunnel is not None:
            tunnel.disconnect()
        server.kill()
    # the ssh connection closed, so the remote side stopped the scheduler and the workers
    assert _eventually(_gone(_supervisor(port), sshd.host), 60)
    assert _eventually(_gone(f"dask_scheduler --host 127.0.0.1 --port {port}", sshd.host), 60)
    assert _eventually(_gone(f"dask_worker tcp://127.0.0.1:{port}", sshd.host), 60)
    # by its pid too: a process that just exited may stay a zombie a moment, until reaped
    assert _eventually(_gone(supervisor, sshd.host), 60)


@dask
@pytest.mark.dask
@pytest.mark.slow
def test_pathos_connect_starts_dask_and_stops_it_on_enter(sshd: _sshd.Sshd) -> None:
    from pathos.pools import ParallelPool

    proc = subprocess.Popen(
        [sys.executable, "-m", "pathos._connect", sshd.host, "dask", "--python", sys.executable],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _read_until(proc, "Press <Enter>")
        port = int(next(line for line in lines if "Server running at port=" in line).split("=")[1].split()[0])
        servers = next(line for line in lines if "ParallelPool(" in line)
        local = servers.split('"localhost:')[1].split('"')[0]
        pool = ParallelPool(nodes=0, servers=(f"localhost:{local}",), id=f"cli-{local}", strict=True)
        try:
            assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]
        finally:
            pool.clear()
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(TIMEOUT) == 0
        assert _eventually(_gone(_supervisor(port), sshd.host), 60)
        assert _eventually(_gone(f"dask_scheduler --host 127.0.0.1 --port {port}", sshd.host), 60)
    finally:
        proc.kill()
        proc.wait(TIMEOUT)


@dask
@pytest.mark.dask
@pytest.mark.slow
def test_a_dask_server_stops_when_the_python_that_started_it_is_killed(sshd: _sshd.Sshd) -> None:
    port = core.randomport(sshd.host)
    code = (
        "import sys, time\n"
        "from pathos import core\n"
        f"core.serve('dask', {sshd.host!r}, {port}, python=sys.executable, timeout=90)\n"
        "print('up', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        _read_until(proc, "up")
        assert core.getpid(f"dask_scheduler --host 127.0.0.1 --port {port}", sshd.host)
    finally:
        proc.kill()  # no cleanup runs: only the closed ssh connection tells the remote side
        proc.wait(TIMEOUT)
    assert _eventually(_gone(f"dask_scheduler --host 127.0.0.1 --port {port}", sshd.host), 60)
    assert _eventually(_gone(f"dask_worker tcp://127.0.0.1:{port}", sshd.host), 60)


@dask
@pytest.mark.dask
@pytest.mark.slow
def test_a_script_that_just_ends_leaves_nothing_behind(sshd: _sshd.Sshd) -> None:
    """No cleanup code: the pool, the tunnel and the remote Dask all end with the script."""
    port = core.randomport(sshd.host)
    code = (
        "import sys\n"
        "from pathos import core\n"
        "from pathos.pools import ParallelPool\n"
        f"core.serve('dask', {sshd.host!r}, {port}, python=sys.executable, timeout=90)\n"
        f"tunnel = core.connect({sshd.host!r}, {port})\n"
        "pool = ParallelPool(nodes=0, servers=(f'localhost:{tunnel._lport}',))\n"
        "print(pool.map(abs, [-1, -2]), tunnel._pid, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr  # the pool stopped before its tunnel closed
    assert done.stdout.startswith("[1, 2] ")
    ssh_pid = int(done.stdout.split()[-1])
    assert _eventually(lambda: not _alive(ssh_pid))
    assert _eventually(_gone(f"dask_scheduler --host 127.0.0.1 --port {port}", sshd.host), 60)
    assert _eventually(_gone(f"dask_worker tcp://127.0.0.1:{port}", sshd.host), 60)


def test_serve_reports_a_server_that_cannot_start(sshd: _sshd.Sshd) -> None:
    with pytest.raises(PipeException, match=r"(?s)did not start.*must import this pathos"):
        core.serve("dask", sshd.host, core.randomport(sshd.host), python="/nonexistent/python", timeout=5)
