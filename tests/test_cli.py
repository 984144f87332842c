"""The pathos command, run as a user runs it: ``python -m pathos ...`` in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


def pathos(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    command = [sys.executable, "-m", "pathos", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


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
    assert "2item" in out.stderr


@pytest.mark.parametrize("spec", ["usermod", "usermod:", "nosuchmodule:f", "usermod:nothing"])
def test_a_bad_spec_exits_2_with_a_message(workdir: Path, spec: str) -> None:
    out = pathos("map", spec, cwd=workdir)
    assert out.returncode == 2
    assert "pathos map: error:" in out.stderr and out.stdout == ""


def test_portpicker_prints_a_port_that_can_be_bound() -> None:
    out = pathos("portpicker")
    assert out.returncode == 0, out.stderr
    port = int(out.stdout)
    with socket.socket() as sock:
        sock.bind(("", port))


def test_bench_quick_prints_a_table(capsys: Any) -> None:
    from pathos._bench import Sizes, run_bench

    rows = run_bench(2, Sizes(tiny=2000, single=200, spin_seconds=0.005))
    assert [row["pool"] for row in rows] == ["serial", "thread", "process"]
    assert "cpu speedup" in capsys.readouterr().out
