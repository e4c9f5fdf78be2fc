"""``MeasureSpec``: what to measure and how, shared by the timing loops (here) and the device backends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nasprof.errors import InputError

__all__ = ["MeasureSpec"]


@dataclass(frozen=True)
class MeasureSpec:
    """What to measure and how. Times are in runs (not seconds) so results are comparable across devices.

    ``input_shapes`` fixes symbolic dimensions: ``{"input": (1, 3, 224, 224)}``.
    ``max_runs``/``target_rel_ci`` enable adaptive repetition: after ``runs`` samples per session, keep
    sampling until the 95% confidence interval of the median is within ±``target_rel_ci`` of it or
    ``max_runs`` samples in total are reached (``None`` disables it).
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
