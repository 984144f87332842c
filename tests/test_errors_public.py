"""Public exceptions read as public: ``pathos.WorkerCrashedError``, not ``pathos._errors...``,
and they still pickle, in this process and into another one."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import traceback
from typing import Any

import pytest

import pathos
from pathos.pools import ProcessPool

from .conftest import TIMEOUT

PUBLIC = [obj for name, obj in vars(pathos).items() if not name.startswith("_")]
EXCEPTIONS = [obj for obj in PUBLIC if isinstance(obj, type) and issubclass(obj, BaseException)]

SAMPLES: list[BaseException] = [
    pathos.PathosError("base"),
    pathos.PoolClosedError("Pool not running"),
    pathos.PoolRunningError("Pool is still running"),
    pathos.WorkerCrashedError("died", pid=12, exitcode=-9, signal="SIGKILL", task=3),
    pathos.WorkerInitError("init raised"),
    pathos.ClusterError("lost", address="tcp://h:8786"),
    pathos.TaskTimeoutError("late", task=4, timeout=1.5),
    pathos.SerializationError("cannot serialize"),
    pathos.RemoteError("mod.Odd", "text", "Traceback ..."),
    pathos.ResultTimeoutError("waited"),
    pathos.RemoteTraceback("Traceback ..."),
]


def facts(exc: BaseException) -> tuple[Any, ...]:
    """What must survive a round trip: the type, the text and the attributes."""
    return (type(exc), str(exc), sorted(vars(exc).items()))


def test_every_public_exception_is_shown_as_pathos() -> None:
    assert {type(e) for e in SAMPLES} == set(EXCEPTIONS)  # the samples cover them all
    for cls in EXCEPTIONS:
        assert cls.__module__ == "pathos", cls
        assert repr(cls) == f"<class 'pathos.{cls.__name__}'>"
        assert getattr(pathos, cls.__qualname__) is cls  # where pickle will look for it


def test_traceback_names_the_public_class() -> None:
    exc = pathos.WorkerCrashedError("worker 12 died", pid=12)
    text = "".join(traceback.format_exception_only(type(exc), exc))
    assert text.startswith("pathos.WorkerCrashedError: worker 12 died")


@pytest.mark.parametrize("exc", SAMPLES, ids=lambda e: type(e).__name__)
def test_pickles_in_this_process(exc: BaseException) -> None:
    assert facts(pickle.loads(pickle.dumps(exc))) == facts(exc)


def test_pickles_into_another_process() -> None:
    # A fresh interpreter finds every class by its public name and rebuilds the same facts.
    script = (
        "import pickle, sys\n"
        "for exc in pickle.loads(sys.stdin.buffer.read()):\n"
        "    print(type(exc).__module__, type(exc).__name__, sorted(vars(exc).items()), repr(str(exc)))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, "-c", script], input=pickle.dumps(SAMPLES), capture_output=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr.decode()
    expected = [f"pathos {type(e).__name__} {sorted(vars(e).items())} {str(e)!r}" for e in SAMPLES]
    assert out.stdout.decode().splitlines() == expected


def raise_timeout(task: int) -> None:
    raise pathos.TaskTimeoutError("late", task=task, timeout=2.0)


def test_raised_in_a_worker_arrives_with_its_attributes() -> None:
    with ProcessPool(1, id="errors-public") as pool, pytest.raises(pathos.TaskTimeoutError) as info:
        pool.amap(raise_timeout, [7]).get(TIMEOUT)
    assert (info.value.task, info.value.timeout, type(info.value).__module__) == (7, 2.0, "pathos")
