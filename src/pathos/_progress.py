"""Progress reporting for the map verbs (``progress=``).

``progress=`` takes one of:

- ``True``: a tqdm bar on stderr (a widget inside a Jupyter kernel that has
  ipywidgets, the text bar in one without), with the
  number of items as its total when every input has a ``len()``, a running count
  otherwise (generators);
- a dict of tqdm keyword arguments (``{"desc": "fitting", "unit": "fit"}``): a bar
  made with them;
- a callable: called as ``progress(n)`` each time a batch of ``n`` items finishes,
  on the pathos callback thread (one thread, so keep it quick); an error it raises is
  logged to the ``pathos`` logger and the call goes on;
- ``None`` or ``False``: no reporting.

Reports never run on an engine thread: the job posts them to the callback thread
(:mod:`pathos._callbacks`), in order, and a bar is closed exactly once, after the last
report, when the call finishes, fails or is cancelled. The call returns (``map``,
``get()``, the end of an ``imap``) only after its bar is closed at its final count.
tqdm is imported only when a bar is wanted.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from . import _callbacks
from ._job import Job

__all__ = ["ProgressBar", "attach_progress", "check_progress", "sized_total"]

Progress = Union[bool, None, Callable[[int], None], Mapping[str, Any]]
ProgressCallback = Optional[Callable[[int], None]]

_MESSAGE = (
    "progress= takes True (a tqdm bar), a dict of tqdm options, or a callable that receives "
    "the number of items just finished; got {!r}"
)


def check_progress(progress: Any) -> None:
    """Raise ``ValueError`` unless ``progress`` is a value ``progress=`` accepts."""
    if progress is None or isinstance(progress, (bool, Mapping)) or callable(progress):
        return
    raise ValueError(_MESSAGE.format(progress))


def sized_total(args: Iterable[Iterable[Any]]) -> int | None:
    """The number of items the zipped inputs make, if every input has a ``len()``."""
    sizes = []
    for arg in args:
        try:
            sizes.append(len(arg))  # type: ignore[arg-type]
        except TypeError:
            return None
    return min(sizes) if sizes else None


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where ``tqdm.auto`` draws a widget)."""
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def _widgets() -> bool:
    """True when tqdm can draw a notebook widget (ipywidgets is installed)."""
    from tqdm.notebook import IProgress  # None when ipywidgets is missing; no warning here

    return IProgress is not None


@functools.cache
def _tqdm_class(notebook: bool) -> Any:
    # A widget in a notebook that has ipywidgets; tqdm's text bar everywhere else. Not
    # tqdm.auto: without ipywidgets it warns "IProgress not found" before falling back,
    # and with them it warns that it is experimental. The text bar is the quiet fallback.
    if notebook and _widgets():
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    # Our updates come from backend threads anyway: tqdm's monitor thread (which would
    # outlive the call) is not needed.
    return type("PathosTqdm", (tqdm,), {"monitor_interval": 0})


class ProgressBar:
    """A tqdm bar fed from any thread and closed exactly once.

    Args:
        total: the number of items, or None for a running count.
        options: more tqdm keyword arguments (``desc``, ``unit``, ``leave``...).
    """

    def __init__(self, total: int | None, options: Mapping[str, Any] | None = None) -> None:
        kwds: dict[str, Any] = {"total": total, "unit": "item", "file": sys.stderr, "dynamic_ncols": True}
        kwds.update(options or {})
        self._bar = _tqdm_class(in_notebook())(**kwds)
        self._lock = threading.Lock()
        self.count = 0
        self.closed = False

    def update(self, n: int) -> None:
        """Count ``n`` more finished items."""
        with self._lock:
            if not self.closed:
                self.count += n
                self._bar.update(n)

    def finish(self, job: Job | None = None) -> None:
        """Show the job's final count and close the bar (later calls do nothing)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if job is not None and job.finished > self.count:
                self._bar.update(job.finished - self.count)
                self.count = job.finished
            self._bar.close()


def attach_progress(job: Job, progress: Any, total: int | None) -> None:
    """Make ``job`` report progress as ``progress=`` asks (see the module docstring)."""
    check_progress(progress)
    if progress is None or progress is False:
        return
    _callbacks.start()
    if callable(progress):
        job.progress = progress
        return
    bar = ProgressBar(total, progress if isinstance(progress, Mapping) else None)
    job.progress = bar.update
    job.add_done_callback(bar.finish, deliver=True)
