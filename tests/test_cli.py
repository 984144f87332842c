"""The pathos and portpicker commands, run as a user runs them: the installed console
scripts (beside this interpreter), in a subprocess."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent


def command(name: str) -> str:
    """The installed console script ``name`` (``pip install -e .`` puts it beside python)."""
    path = BIN / name
    assert path.exists(), f"{path} is missing: install the project first (bash scripts/setup.sh)"
    return str(path)


def environment() -> dict[str, str]:
    # The same pathos as this test process (a checkout's src/ first, as pytest sees it).
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

MODULE = """
import time

def shout(line):
    if line == "bad":
        raise ValueError("no bad lines")
    return line.upper()

def slow_first(line):
    time.sleep(0.3 if line == "1" else 0)
    return line
"""


def pathos(
    *args: str, stdin: str = "", cwd: Path | None = None, name: str = "pathos"
) -> subprocess.CompletedProcess[str]:
    """Run the installed command ``name`` with ``args``; its output."""
    argv = [command(name), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, env=environment(), cwd=cwd)


def test_python_m_pathos_is_the_same_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pathos", "--help"], capture_output=True, text=True, timeout=60, env=environment()
    )
    assert out.returncode == 0 and "portpicker" in out.stdout


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "usermod.py").write_text(MODULE)
    return tmp_path


def test_info_names_versions_and_start_methods() -> None:
    out = pathos("info")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("pathos ")
    assert "start methods" in out.stdout and "default:" in out.stdout and "tqdm " in out.stdout


@pytest.mark.parametrize("pool", ["process", "thread", "serial"])
def test_map_prints_results_in_input_order(workdir: Path, pool: str) -> None:
    lines = [f"item {i}" for i in range(50)]
    out = pathos("map", "usermod:shout", "--pool", pool, "-n", "2", stdin="\n".join(lines) + "\n", cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [line.upper() for line in lines]


def test_a_failing_line_is_reported_and_counted(workdir: Path) -> None:
    out = pathos("map", "usermod:shout", "--chunksize", "2", stdin="a\nbad\nc\nbad\n", cwd=workdir)
    assert out.stdout.splitlines() == ["A", "C"]
    assert out.stderr.splitlines() == ["line 2: ValueError: no bad lines", "line 4: ValueError: no bad lines"]
    assert out.returncode == 2


def test_unordered_prints_as_results_finish(workdir: Path) -> None:
    out = pathos(
        "map", "usermod:slow_first", "--unordered", "--pool", "thread", "-n", "2", stdin="1\n2\n3\n", cwd=workdir
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == ["1", "2", "3"] and out.stdout.split()[-1] == "1"


def test_progress_bar_goes_to_stderr(workdir: Path) -> None:
    out = pathos("map", "usermod:shout", "--progress", stdin="a\nb\n", cwd=workdir)
    assert out.returncode == 0 and out.stdout.split() == ["A", "B"]
    assert "2line" in out.stderr


@pytest.mark.parametrize("spec", ["usermod", "usermod:", "nosuchmodule:f", "usermod:nothing"])
def test_a_bad_spec_exits_2_with_a_message(workdir: Path, spec: str) -> None:
    out = pathos("map", spec, cwd=workdir)
    assert out.returncode == 2
    assert "pathos map: error:" in out.stderr and out.stdout == ""


@pytest.mark.parametrize("argv", [("portpicker",), ("pathos", "portpicker")])
def test_portpicker_prints_a_port_that_can_be_bound(argv: tuple[str, ...]) -> None:
    out = pathos(*argv[1:], name=argv[0])
    assert out.returncode == 0, out.stderr
    port = int(out.stdout)
    with socket.socket() as sock:
        sock.bind(("", port))


@pytest.mark.parametrize("argv", [("portpicker", "--help"), ("portpicker", "-h"), ("pathos", "portpicker", "-h")])
def test_portpicker_help_is_help_not_a_port(argv: tuple[str, ...]) -> None:
    out = pathos(*argv[1:], name=argv[0])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:") and "--min" in out.stdout and "free" in out.stdout


def test_portpicker_range_options() -> None:
    out = pathos("--min", "20000", "--max", "20100", name="portpicker")
    assert out.returncode == 0 and 20000 <= int(out.stdout) <= 20100
    bad = pathos("--min", "5000", "--max", "4000", name="portpicker")
    assert bad.returncode == 2 and "no free port" in bad.stderr and bad.stdout == ""


# -- map --type / --json ----------------------------------------------------------------------
def test_map_type_float_seq_sqrt() -> None:
    out = pathos("map", "--type", "float", "math:sqrt", stdin="".join(f"{i}\n" for i in range(1, 6)))
    assert out.returncode == 0, out.stderr
    assert [float(x) for x in out.stdout.split()] == pytest.approx([i**0.5 for i in range(1, 6)])


def test_map_type_int_reports_a_line_that_is_not_an_int() -> None:
    out = pathos("map", "--type", "int", "math:factorial", "--chunksize", "2", stdin="3\nx\n4\n")
    assert out.stdout.split() == ["6", "24"]
    assert out.stderr.splitlines() == ["line 2: --type int: cannot read 'x' as int"]
    assert out.returncode == 1


def test_map_json_lines_in_and_out() -> None:
    lines = ["[3, 1, 2]", '{"b": 1, "a": 2}', '"text"', "not json"]
    out = pathos("map", "--json", "builtins:sorted", stdin="\n".join(lines) + "\n")
    assert [json.loads(line) for line in out.stdout.splitlines()] == [[1, 2, 3], ["a", "b"], ["e", "t", "t", "x"]]
    assert out.stderr.startswith("line 4: not JSON (") and out.returncode == 1


def test_map_json_names_a_result_that_is_not_json() -> None:
    out = pathos("map", "--json", "builtins:set", stdin="[1]\n")
    assert out.returncode == 1 and out.stderr.startswith("line 1: the result is not JSON: TypeError")


def test_map_help_names_type_and_json() -> None:
    out = pathos("map", "--help")
    assert out.returncode == 0
    assert "--type {str,int,float}" in out.stdout and "--json" in out.stdout and "JSON" in out.stdout
    both = pathos("map", "--json", "--type", "int", "math:sqrt")
    assert both.returncode == 2 and "not allowed with" in both.stderr


# -- --progress on a terminal --------------------------------------------------------------
def _render(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw``: a carriage return goes back to the start of
    the line, later characters overwrite earlier ones."""
    raw = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    shown = []
    for segment in raw.split("\n"):
        line: list[str] = []
        col = 0
        for char in segment:
            if char == "\r":
                col = 0
                continue
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
        shown.append("".join(line).rstrip())
    return shown


def _run_on_terminal(argv: list[str], stdin: str, cwd: Path) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on one pseudo-terminal (80 columns); its output."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=follower, stderr=follower, env=environment(), cwd=cwd
    )
    os.close(follower)
    assert proc.stdin is not None
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    chunks, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_progress_bar_never_glued_to_results_on_a_shared_terminal(workdir: Path) -> None:
    lines = [f"item {i}" for i in range(30)]
    status, raw = _run_on_terminal(
        [command("pathos"), "map", "usermod:shout", "--progress", "--chunksize", "1"], "\n".join(lines) + "\n", workdir
    )
    assert status == 0, raw
    shown = _render(raw)
    results = [line for line in shown if line.startswith("ITEM")]
    assert results == [line.upper() for line in lines], shown  # each alone on its line, none glued to the bar
    assert any("30line" in line for line in shown), shown  # the bar, with its final count, below them


# -- bench ---------------------------------------------------------------------------------
def test_bench_prints_medians_spread_and_load() -> None:
    out = pathos("bench", "--quick", "--rounds", "2", "-n", "2")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "load before:" in text and "load after:" in text and "usable cores" in text
    assert "2 rounds interleaved" in text and "median (min-max over rounds)" in text
    rows = {line.split()[0] for line in text.splitlines() if line.split()}
    assert {"serial", "thread", "process"} <= rows
    help_text = pathos("bench", "--help").stdout
    assert "--rounds" in help_text and "default 5" in help_text


def _fake_rounds(speedup: float) -> Any:
    def rounds(nodes: int, sizes: Any, count: int, loops: int) -> dict[str, list[dict[str, float]]]:
        run = {"start": 1.0, "tiny": 1e6, "overhead": 10.0, "cpu": 1.0}
        return {
            "serial": [{**run, "speedup": 1.0}] * count,
            "thread": [{**run, "speedup": 1.0}] * count,
            "process": [{**run, "speedup": speedup + 0.1 * i} for i in range(count)],
        }

    return rounds


def test_bench_flags_a_speedup_above_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathos import _bench

    monkeypatch.setattr(_bench, "_rounds", _fake_rounds(3.21))
    monkeypatch.setattr(_bench, "machine_load", lambda: (0.1, 4))
    lines: list[str] = []
    rows = _bench.run_bench(2, _bench.Sizes(spin_seconds=0.001), lines.append, rounds=3)
    assert [row["impossible"] for row in rows] == [0, 0, 3]
    text = "\n".join(lines)
    assert "3.31x (3.21x-3.41x) !" in text
    assert "above what 2 workers can give (2x) in 3 of 3 rounds (up to 3.41x)" in text and "loaded" not in text


def test_bench_flags_a_single_impossible_round(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathos import _bench

    monkeypatch.setattr(_bench, "_rounds", _fake_rounds(1.85))  # rounds of 1.85x, 1.95x, 2.05x
    monkeypatch.setattr(_bench, "machine_load", lambda: (0.1, 2))
    lines: list[str] = []
    rows = _bench.run_bench(2, _bench.Sizes(spin_seconds=0.001), lines.append, rounds=3)
    assert rows[2]["impossible"] == 1 and "in 1 of 3 rounds (up to 2.05x)" in "\n".join(lines)


def test_bench_warns_when_the_machine_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathos import _bench

    monkeypatch.setattr(_bench, "_rounds", _fake_rounds(1.8))
    monkeypatch.setattr(_bench, "machine_load", lambda: (5.5, 2))
    lines: list[str] = []
    rows = _bench.run_bench(2, _bench.Sizes(spin_seconds=0.001), lines.append, rounds=2)
    assert not any(row["impossible"] for row in rows)
    text = "\n".join(lines)
    assert "load before: 5.50" in text and "warning: the machine was loaded (load 5.50 on 2 cores)" in text


@pytest.mark.parametrize("argv", [("pathos", "info"), ("pathos", "portpicker"), ("portpicker",)])
def test_a_reader_that_goes_away_is_not_an_error(argv: tuple[str, ...]) -> None:
    # `pathos info | head -1`: the pipe is closed before the command writes.
    proc = subprocess.Popen(
        [command(argv[0]), *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment()
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    status = proc.wait(timeout=60)
    assert proc.stderr.read() == b"" and status in (0, 141)
    proc.stderr.close()
