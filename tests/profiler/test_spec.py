"""The adaptive-repetition cap (``max_timed_runs``): one rule for every timing loop."""

from __future__ import annotations

import pytest

from nasprof.profiler.spec import DEFAULT_MAX_RUNS_FACTOR, MeasureSpec, max_timed_runs


@pytest.mark.parametrize(
    ("spec", "cap"),
    [
        (MeasureSpec(runs=10, sessions=3), 30),  # no adaptive repetition: the plan, max_runs unused
        (MeasureSpec(runs=10, sessions=3, max_runs=5), 30),
        (MeasureSpec(runs=10, sessions=3, target_rel_ci=0.01), DEFAULT_MAX_RUNS_FACTOR * 30),
        (MeasureSpec(runs=10, sessions=3, target_rel_ci=0.01, max_runs=100), 100),
        (MeasureSpec(runs=10, sessions=3, target_rel_ci=0.01, max_runs=5), 30),  # floored at the plan
    ],
)
def test_max_timed_runs(spec: MeasureSpec, cap: int) -> None:
    assert max_timed_runs(spec) == cap

