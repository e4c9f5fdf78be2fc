"""A progress hook that library code can report to without printing.

Backends keep the ``Backend.measure(model, spec)`` signature, so progress travels through a context variable:
the CLI installs a callback (which draws a rich progress bar on stderr) with ``progress_to(callback)``, and
library code calls ``report(stage, done, total)``. Without a callback, ``report`` does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

__all__ = ["ProgressCallback", "progress_to", "report"]

#: ``callback(stage, done, total)``: ``stage`` is a short label ("session 2/3", "profiled pass"),
#: ``done``/``total`` count work units (runs) of the whole job.
ProgressCallback = Callable[[str, int, int], None]

_callback: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar(
    "nasprof_progress", default=None
)


@contextlib.contextmanager
def progress_to(callback: ProgressCallback | None) -> Iterator[None]:
    """Send ``report`` calls made inside the ``with`` block to ``callback``."""
    token = _callback.set(callback)
    try:
        yield
    finally:
        _callback.reset(token)


def report(stage: str, done: int, total: int) -> None:
    cb = _callback.get()
    if cb is not None:
        cb(stage, done, total)
