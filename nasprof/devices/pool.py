"""Several interchangeable devices working through one list of jobs: the way ``validate`` and kernel sampling
use a phone farm (``--device pixel-a,pixel-b`` or ``--ray ADDRESS --device 'pixel-*'``).

One thread per device takes the next job from a shared queue, so a fast phone does more and a slow one
holds up nothing. A device that becomes unavailable mid-job (a phone unplugged, a Ray worker or its node
dead: ``DeviceUnavailableError``) gives the job back to the queue and leaves the pool; another device
measures it from the start, so no job is lost or done twice. Any other error stops the pool: the threads
finish their current job and the first error is raised. Results come back in job order, each with the
name of the device that produced it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from nasprof.devices.base import Backend
from nasprof.errors import DeviceUnavailableError, InputError

__all__ = ["Done", "JobProgress", "spread"]

J = TypeVar("J")
R = TypeVar("R")

#: ``progress(done, total, what)`` of one job, as the measuring code below the pool reports it.
JobProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Done(Generic[R]):
    """One job's result and the device (instance name) that produced it."""

    result: R
    device: str


class _Progress:
    """Sums the jobs' own ``progress(done, total, what)`` calls into one count over all jobs (threads call it
    at once; a job given back and redone starts its count again)."""

    def __init__(self, outer: JobProgress | None, totals: Sequence[int]) -> None:
        self._outer = outer
        self._done = [0] * len(totals)
        self._total = sum(totals)
        self._lock = threading.Lock()

    def for_job(self, i: int, device: str) -> JobProgress:
        def report(done: int, _total: int, what: str) -> None:
            with self._lock:
                self._done[i] = done
                if self._outer is not None:
                    self._outer(sum(self._done), self._total, f"{device}: {what}")

        return report


def spread(
    backends: Sequence[Backend],
    jobs: Sequence[J],
    run: Callable[[Backend, J, JobProgress], R],
    *,
    sizes: Sequence[int] | None = None,
    progress: JobProgress | None = None,
    left: dict[str, str] | None = None,
) -> list[Done[R]]:
    """Run ``run(backend, job, job_progress)`` for every job on whichever device is free.

    ``sizes``: each job's count of progress steps (default 1); a job reports its own with
    ``job_progress(done, size, what)`` and the outer ``progress`` gets the sum over all jobs, ``what``
    prefixed with the device (a job given back starts its count again). ``left``, when given, receives the
    devices that left the pool and why, so a caller measures its next step on one still there. Raises
    ``DeviceUnavailableError`` naming each device's reason when every device has left with jobs still to
    do.
    """
    if not backends:
        raise InputError("no device to measure on")
    names = [b.device for b in backends]
    if len(set(names)) != len(names):
        raise InputError(f"device list {', '.join(names)} names a device more than once; give each once")
    todo = collections.deque(range(len(jobs)))
    results: list[Done[R] | None] = [None] * len(jobs)
    meter = _Progress(progress, sizes or [1] * len(jobs))
    cond = threading.Condition()
    in_flight = [0]
    gone: dict[str, str] = {} if left is None else left  # device -> why it left the pool
    failure: list[BaseException] = []

    def take() -> int | None:
        """The next job; while others are in flight and none is queued, wait: one of them may come back."""
        with cond:
            while not todo and in_flight[0] and not failure:
                cond.wait()
            if failure or not todo:
                return None
            in_flight[0] += 1
            return todo.popleft()

    def work(backend: Backend) -> None:
        while (i := take()) is not None:
            try:
                results[i] = Done(run(backend, jobs[i], meter.for_job(i, backend.device)), backend.device)
            except DeviceUnavailableError as exc:
                with cond:
                    todo.appendleft(i)  # measured from the start by the next free device
                    gone[backend.device] = " ".join(str(exc).split())
                return
            except BaseException as exc:  # the first failure stops the others at their next job
                with cond:
                    failure.append(exc)
                return
            finally:
                with cond:  # the job is settled (done, queued again or failed): waiting devices look again
                    in_flight[0] -= 1
                    cond.notify_all()

    threads = [threading.Thread(target=work, args=(b,), name=f"nasprof-pool-{b.device}", daemon=True)
               for b in backends]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException as exc:  # Ctrl-C, SIGTERM: the devices finish their job in flight and take no more
        with cond:
            failure.append(exc)
            cond.notify_all()
        raise
    if failure:
        raise failure[0]
    if any(r is None for r in results):
        why = "; ".join(f"{d}: {msg}" for d, msg in gone.items())
        undone = sum(r is None for r in results)
        raise DeviceUnavailableError(
            f"every device left with {undone} of {len(jobs)} job(s) not done ({why}); reconnect the devices "
            "(or restart their Ray workers) and run again"
        )
    return [r for r in results if r is not None]
