"""How many perf_test processes to run, and when to stop (fixed plan, then optional adaptive repetition)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from nasprof.devices.android.device_info import ThermalWait
from nasprof.devices.android.perf_output import PerfTestOutput
from nasprof.devices.base import MeasureSpec
from nasprof.profiler.spec import max_timed_runs

__all__ = ["Sampled", "sample", "split_runs"]


def split_runs(runs: int, per_sample: int, max_processes: int | None = None) -> list[int]:
    """Runs of each perf_test process in one session: ``(100, 10)`` -> ten 10s; ``(5, 2)`` -> 2, 2, 1.

    With ``max_processes``, a session that would need more processes gets that many longer ones instead
    (``(500, 10, 10)`` -> ten 50s): each process costs a session creation and a warm-up (about a second on a
    phone), so when the table builder's planner raises a tiny layer's runs into the hundreds the extra runs
    must go into the processes, not multiply them."""
    if max_processes is not None and math.ceil(runs / per_sample) > max_processes:
        per_sample = math.ceil(runs / max_processes)
    n = math.ceil(runs / per_sample)
    return [min(per_sample, runs - i * per_sample) for i in range(n)]


@dataclass
class Sampled:
    plan: list[int]
    #: The requested session each process belongs to (``session_index`` of the Measurement).
    session: list[int]
    outputs: list[PerfTestOutput]
    waits: list[ThermalWait]
    rel_ci: float
    stopped_by: str


def sample(
    run: Callable[[int], tuple[ThermalWait, PerfTestOutput]],
    spec: MeasureSpec,
    per_sample: int,
    max_processes: int | None = None,
) -> Sampled:
    """Run the planned perf_test processes, then (with ``spec.target_rel_ci``) more until the 95% CI of the
    median sample is within the target or ``max_timed_runs(spec)`` timed runs are reached."""
    from nasprof.profiler import progress
    from nasprof.profiler.ort_runner import relative_ci

    per_session = split_runs(spec.runs, per_sample, max_processes)
    per_sample = per_session[0]  # adaptive extra processes are as long as the planned ones
    plan = [r for _ in range(spec.sessions) for r in per_session]
    cap = max_timed_runs(spec)
    out = Sampled(plan=[], session=[], outputs=[], waits=[], rel_ci=math.inf, stopped_by="runs")
    while True:
        if len(out.plan) < len(plan):
            runs = plan[len(out.plan)]
            session = len(out.plan) // len(per_session)
        else:
            out.rel_ci = (
                relative_ci([o.average_ms for o in out.outputs]) if len(out.outputs) > 1 else math.inf
            )
            if spec.target_rel_ci is None:
                break
            if out.rel_ci <= spec.target_rel_ci:
                out.stopped_by = "target"
                break
            if sum(out.plan) >= cap:
                out.stopped_by = "max_runs"
                break
            runs = min(per_sample, cap - sum(out.plan))
            session = (len(out.plan) - len(plan)) % spec.sessions  # extra processes: round robin
        wait, output = run(runs)
        out.plan.append(runs)
        out.session.append(session)
        out.waits.append(wait)
        out.outputs.append(output)
        progress.report(
            f"perf_test {len(out.plan)}/{max(len(plan), len(out.plan))}",
            sum(out.plan),
            max(sum(plan), sum(out.plan)),
        )
    return out
