"""The remote-execution modules on this machine alone: util, hosts, selector, server,
xmlrpc, connection.Pipe, and pathos.core without a host. (Over ssh: test_ssh.py.)"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest

import pathos
from pathos import core, hosts, util
from pathos.connection import Pipe, PipeException
from pathos.selector import Selector
from pathos.server import Server
from pathos.xmlrpc import XMLRPCServer

from .conftest import TIMEOUT

LAZY = ("connection", "core", "hosts", "secure", "selector", "server", "util", "xmlrpc")


def test_import_pathos_does_not_load_the_remote_modules() -> None:
    code = (
        "import sys, pathos\n"
        f"loaded = [m for m in {LAZY!r} if 'pathos.' + m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "import pathos as p\n"
        f"assert all(getattr(p, m).__name__ == 'pathos.' + m for m in {LAZY!r})\n"
        "from pathos.secure import Copier, Pipe, Tunnel\n"
        "assert (p.SSH_Launcher, p.SCP_Launcher, p.SSH_Tunnel) == (Pipe, Copier, Tunnel)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pathos.nope  # noqa: B018


# The public names of these modules in pathos 0.3.5 (from its installed package).
NAMES_035 = {
    "connection": ["Pipe", "PipeException"],
    "secure": ["Copier", "Pipe", "Tunnel", "TunnelException"],
    "secure.connection": ["Pipe"],
    "secure.copier": ["Copier", "FileNotFound"],
    "secure.tunnel": ["Tunnel", "TunnelException"],
    "core": ["connect", "copy", "execute", "getchild", "getpid", "getppid", "kill", "randomport", "serve"],
    "hosts": ["default_profile", "get_profile", "get_profiles", "register", "register_profiles"],
    "util": ["_b", "_str", "print_exc_info", "spawn", "spawn2"],
    "selector": ["Selector"],
    "server": ["Server"],
    "xmlrpc": ["XMLRPCRequestHandler", "XMLRPCServer"],
    "xmlrpc.server": ["XMLRPCRequestHandler", "XMLRPCServer", "print_exc_info", "spawn2", "logger", "_b", "_str"],
}
METHODS_035 = {
    "connection.Pipe": ["config", "launch", "response", "pid", "kill", "verbose"],
    "secure.Tunnel": ["connect", "disconnect", "MINPORT", "MAXPORT", "verbose", "_connect"],
    "selector.Selector": [
        "watch",
        "notifyOnReadReady",
        "notifyOnWriteReady",
        "notifyOnException",
        "notifyOnInterrupt",
        "notifyWhenIdle",
    ],
    "server.Server": ["selector", "activate", "deactivate", "serve"],
    "xmlrpc.XMLRPCServer": ["activate", "serve", "register_function"],
}


@pytest.mark.parametrize("module", sorted(NAMES_035))
def test_the_names_of_pathos_035(module: str) -> None:
    import importlib

    mod = importlib.import_module(f"pathos.{module}")
    assert [n for n in NAMES_035[module] if not hasattr(mod, n)] == []


def test_the_methods_of_pathos_035() -> None:
    import importlib

    for dotted, names in METHODS_035.items():
        module, cls = dotted.rsplit(".", 1)
        klass = getattr(importlib.import_module(f"pathos.{module}"), cls)
        assert [n for n in names if not hasattr(klass, n)] == [], dotted


def test_util_conversions_and_traceback() -> None:
    assert util._b("abc") == b"abc" and util._str(b"abc") == "abc"
    assert util._str(b"\xc3\xa9", "utf-8") == "é" and util._b("é", "utf-8") == b"\xc3\xa9"
    assert util._str(b"x", False) == b"x" and util._str(3) == 3 and util._b(3) == 3
    try:
        raise KeyError("boom")
    except KeyError:
        text = util.print_exc_info()
    assert "KeyError: 'boom'" in text and "Traceback" in text


def test_spawn_and_spawn2_connect_parent_and_child() -> None:
    def child(pid: int, toparent: Any) -> None:
        toparent.write(f"{pid}\n".encode())
        os._exit(0)

    def parent(pid: int, fromchild: Any) -> int:
        said = int(fromchild.readline())
        os.waitpid(pid, 0)
        return said - pid

    assert util.spawn(parent, child) == 0

    def child2(pid: int, fromparent: Any, toparent: Any) -> None:
        toparent.write(fromparent.readline().upper())
        os._exit(0)

    def parent2(pid: int, fromchild: Any, tochild: Any) -> bytes:
        tochild.write(b"echo\n")
        line: bytes = fromchild.readline()
        os.waitpid(pid, 0)
        return line

    assert util.spawn2(parent2, child2) == b"ECHO\n"


def test_hosts_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosts, "_profiles", {})
    assert hosts.get_profile("h1") == hosts.default_profile == ".bash_profile"
    assert hosts.get_profile("h1", assume=False) is None
    hosts.register("h1", ".profile")
    hosts.register("h2")
    hosts.register_profiles({"h3": ".cshrc"})
    assert hosts.get_profiles() == {"h1": ".profile", "h2": ".bash_profile", "h3": ".cshrc"}
    with pytest.raises(TypeError, match="rhost"):
        hosts.register("")


def test_selector_dispatches_reads_and_idle_and_stops() -> None:
    read_fd, write_fd = os.pipe()
    seen: list[Any] = []
    sel = Selector()

    def on_read(selector: Selector, fd: int) -> bool:
        seen.append(os.read(fd, 10))
        return True

    def on_idle(selector: Selector) -> bool:
        seen.append("idle")
        selector.state = False
        return False

    sel.notifyOnReadReady(read_fd, on_read)
    sel.notifyWhenIdle(on_idle)
    os.write(write_fd, b"hi")
    sel.watch(0.05)
    assert seen == [b"hi", "idle"]
    os.close(read_fd)
    os.close(write_fd)


def test_selector_returns_when_no_handler_is_left_and_calls_interrupt_handlers() -> None:
    Selector().watch(0.01)  # nothing registered: returns at once
    sel = Selector()
    called = []
    sel.notifyWhenIdle(lambda s: (_ for _ in ()).throw(KeyboardInterrupt))
    sel.notifyOnInterrupt(lambda s: called.append(s))
    with pytest.raises(KeyboardInterrupt):
        sel.watch(0.01)
    assert called == [sel]


def test_server_base() -> None:
    server = Server()
    assert server.selector() is None
    with pytest.raises(RuntimeError, match="activate"):
        server.serve(0.01)
    ticks = []

    def on_timeout(selector: Selector) -> bool:
        ticks.append(1)
        if len(ticks) == 2:
            server.deactivate()
        return True

    server.activate(onTimeout=on_timeout)
    server.serve(0.01)
    assert len(ticks) == 2


def test_xmlrpc_server_answers_calls_and_faults() -> None:
    server = XMLRPCServer("127.0.0.1", 0)
    server.register_function(pow)
    server.register_function(lambda x: x * 2, "run")  # answered by a forked child
    server.activate()
    selector = server.selector()
    assert selector is not None
    thread = threading.Thread(target=selector.watch, args=(0.05,), daemon=True)
    thread.start()
    try:
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{server.port}")
        assert proxy.pow(2, 5) == 32
        assert proxy.run(21) == 42
        with pytest.raises(xmlrpc.client.Fault, match="ZeroDivisionError"):
            proxy.pow(0, -1)
    finally:
        server.deactivate()
        thread.join(TIMEOUT)
        server._socket.close()
    assert not server._activeProcesses or all(os.waitpid(p, os.WNOHANG) for p in server._activeProcesses.values())


def test_pipe_foreground_background_kill() -> None:
    pipe = Pipe(command="echo hello")
    assert pipe.message == "echo hello" and repr(pipe) == "Pipe('echo hello')"
    with pytest.raises(PipeException, match="launch"):
        pipe.response()
    pipe.launch()
    assert pipe.response() == "hello\n" and pipe.pid() == 0
    settings = pipe(command="echo $((6 * 7)); sleep 30 & wait", background=True)
    assert settings["message"] == pipe.message and settings["background"] is True
    pipe.launch()
    assert pipe.pid() > 0
    assert pipe.response() == "42\n"  # the output so far; the command runs on
    started = time.monotonic()
    pipe.kill()  # the shell and the sleep it started: the whole group
    assert time.monotonic() - started < TIMEOUT and pipe.pid() == 0 and pipe.wait(TIMEOUT) is not None
    assert Pipe(name="abc").message == "echo abc" and len(Pipe().name) == 16


def test_pipe_background_response_is_none_until_output_then_everything() -> None:
    pipe = Pipe(command="sleep 5; echo late", background=True)
    pipe.launch()
    assert pipe.response() is None  # nothing within 2 s
    deadline = time.monotonic() + TIMEOUT
    while (out := pipe.response()) is None and time.monotonic() < deadline:
        pass
    assert out == "late\n"
    assert pipe.wait(TIMEOUT) == 0


def test_pipe_stdin_decode_and_unknown_keyword() -> None:
    pipe = Pipe(command="cat", stdin=io.StringIO("from a StringIO\n"))
    pipe.launch()
    assert pipe.response() == "from a StringIO\n"
    pipe(command="printf '\\303\\251'", decode="utf-8", stdin=subprocess.DEVNULL)
    pipe.launch()
    assert pipe.response() == "é"
    pipe(decode=False)
    pipe.launch()
    assert pipe.response() == b"\xc3\xa9"
    with pytest.warns(RuntimeWarning, match="ignores the unknown keyword 'rhost'"):
        assert Pipe(command="true", rhost="elsewhere").message == "true"  # as pathos 0.3.5's examples do


def test_core_locally(tmp_path: Path) -> None:
    assert core.execute("echo hi", bg=False, options="-q").response() == "hi\n"
    assert core.getpid() == os.getpid() and core.getppid() == os.getppid()
    assert core.getppid(group=True) == os.getpgrp()
    sleeper = subprocess.Popen(["sleep", "60.5"])
    try:
        assert core.getpid("sleep 60[.]5") == sleeper.pid == core.getpid(sleeper.pid)
        assert core.getppid(sleeper.pid) == os.getpid()
        assert sleeper.pid in core.getchild()
        assert f"{sleeper.pid} {os.getpid()}" in core.getpid(sleeper.pid, all=True)
        assert core.kill(sleeper.pid) == ""
        assert sleeper.wait(TIMEOUT) == -15
    finally:
        sleeper.kill()
        sleeper.wait(TIMEOUT)
    with pytest.raises(OSError, match="No such process"):
        core.getpid("no-such-process-[0-9]{40}")
    with pytest.raises(OSError, match="No such process"):
        core.getppid(2**22 + 12345)
    with pytest.raises(OSError, match="No such process"):
        core.getchild(2**22 + 12345)
    with pytest.raises(OSError, match="No such process"):
        core.kill(2**22 + 12345)


def test_core_copy_locally(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("data")
    copier = core.copy(str(tmp_path / "a"), str(tmp_path / "b"))
    assert copier.message.startswith("cp -r ")
    assert (tmp_path / "b" / "f.txt").read_text() == "data"
    with pytest.raises(PipeException, match="copy failed with exit status"):
        core.copy(str(tmp_path / "missing"), str(tmp_path / "c"))


@pytest.mark.dask
@pytest.mark.slow
def test_serve_dask_locally_and_stop_it() -> None:
    pytest.importorskip("distributed")
    from pathos.pools import ParallelPool

    port = core.randomport()
    server = core.serve("dask", None, port, python=sys.executable, timeout=90)
    assert server.pid() > 0 and "pathos._serve --port" in server.message
    pool = ParallelPool(nodes=0, servers=(f"127.0.0.1:{port}",), id=f"local-serve-{port}", strict=True)
    try:
        assert pool.map(pow, [2, 3], [3, 2]) == [8, 9]
    finally:
        pool.clear()
        server.kill()
    deadline = time.monotonic() + TIMEOUT
    while _accepts(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _accepts(port)  # the scheduler is gone


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_serve_checks_its_worker_counts() -> None:
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        core.serve("dask", None, 1, workers=0)


def test_randomport_locally_is_free() -> None:
    port = core.randomport()
    with socket.socket() as s:
        s.bind(("", port))
