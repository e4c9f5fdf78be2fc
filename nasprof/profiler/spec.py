"""``MeasureSpec``: what to measure and how, shared by the timing loops and the device backends, and the one
rule (``max_timed_runs``) that caps how many timed runs adaptive repetition may take."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nasprof.errors import InputError

__all__ = ["DEFAULT_MAX_RUNS_FACTOR", "MeasureSpec", "max_timed_runs"]

#: With ``target_rel_ci`` set and no ``max_runs``, sampling stops at this many times the planned runs.
DEFAULT_MAX_RUNS_FACTOR = 10


@dataclass(frozen=True)
class MeasureSpec:
    """What to measure and how. Times are in runs (not seconds) so results are comparable across devices.

    ``input_shapes`` fixes symbolic dimensions: ``{"input": (1, 3, 224, 224)}``.
    ``target_rel_ci`` turns on adaptive repetition: after the planned ``runs`` × ``sessions`` samples,
    fresh sessions of up to ``runs`` samples are added until the 95% confidence interval of the median is
    within ±``target_rel_ci`` of it, or ``max_runs`` samples in total are reached (``None``: 10× the plan;
    never fewer than the plan: see ``max_timed_runs``).
    Without ``target_rel_ci`` the plan is what runs and ``max_runs`` is not used.
    """

    threads: int = 1
    warmup: int = 20
    runs: int = 100
    sessions: int = 3
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    per_node: bool = False
    per_node_runs: int = 20
    #: Graph optimisation level for the timed runs: "disable" | "basic" | "extended" | "all".
    opt_level: str = "all"
    seed: int = 0
    target_rel_ci: float | None = None
    max_runs: int | None = None
    #: Backend-specific extras (e.g. ``{"runtime": "cmsis-nn"}`` for MCU boards).
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("threads", "runs", "sessions", "per_node_runs"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise InputError(f"--warmup must be >= 0, got {self.warmup}")
        # Written as `not 0 < x < inf`: NaN fails every comparison, so it is refused, not sampled forever.
        if self.target_rel_ci is not None and not 0 < self.target_rel_ci < float("inf"):
            raise InputError(f"--target-ci must be a positive fraction, e.g. 0.01, got {self.target_rel_ci}")
        if self.seed < 0:  # numpy's SeedSequence takes non-negative integers only
            raise InputError(f"--seed must be >= 0, got {self.seed}")
        if self.max_runs is not None and self.max_runs < 1:
            raise InputError(f"--max-runs must be at least 1, got {self.max_runs}")
        if self.opt_level not in ("disable", "basic", "extended", "all"):
            raise InputError(
                f"unknown optimisation level {self.opt_level!r}: use disable, basic, extended or all"
            )


def max_timed_runs(spec: MeasureSpec) -> int:
    """The most timed runs one measurement of ``spec`` takes, in all sessions: the plan (``runs`` ×
    ``sessions``) without adaptive repetition; with it, ``max_runs`` (``None``: ``DEFAULT_MAX_RUNS_FACTOR``
    × the plan), floored at the plan, since the planned runs are always taken.

    Every timing loop (onnxruntime in this process, CUDA, perf_test processes on a phone) stops at this."""
    planned = spec.runs * spec.sessions
    if spec.target_rel_ci is None:
        return planned
    cap = spec.max_runs if spec.max_runs is not None else DEFAULT_MAX_RUNS_FACTOR * planned
    return max(cap, planned)
