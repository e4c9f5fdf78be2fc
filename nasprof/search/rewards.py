"""MnasNet's multi-objective reward, vectorised over numpy arrays.

reward(m) = ACC(m) · (LAT(m) / T)^w,  w = α if LAT(m) ≤ T else β      (Tan et al., arXiv 1807.11626)

For a metric where lower is better (an error), ``minimize``: reward(m) = −ERR(m) · (LAT(m) / T)^(−w), the
same latency factor applied the other way round (a slow network's error is inflated, a fast one's shrunk
by the soft reward), negated so that higher is still better for every strategy.

Presets from the paper: ``soft`` (α = β = −0.07: doubling latency costs about 5% relative accuracy) and
``hard`` (α = 0, β = −1: no bonus below the target, a steep penalty above it).

Hard constraints that are not latency (a microcontroller's SRAM and Flash) enter as a ``feasible`` mask:
an infeasible candidate gets reward ``-inf``, so it ranks below every feasible one — even one whose accuracy
estimate is 0 — and can never be chosen as a parent or as the best architecture. (MnasNet's formula has no
such term; a finite penalty would let a huge-but-accurate model win whenever the proxy is large enough.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nasprof.errors import InputError

__all__ = ["Reward", "REWARD_PRESETS", "mnasnet_reward"]

#: name -> (alpha, beta), as published.
REWARD_PRESETS: dict[str, tuple[float, float]] = {
    "soft": (-0.07, -0.07),
    "hard": (0.0, -1.0),
}


def _check_target(target_ms: float) -> float:
    try:
        t = float(target_ms)
    except (TypeError, ValueError):
        raise InputError(f"--target-ms must be a number, got {target_ms!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise InputError(f"--target-ms must be a positive latency in milliseconds, got {target_ms}")
    return t


def mnasnet_reward(
    accuracy: ArrayLike,
    latency_ms: ArrayLike,
    *,
    target_ms: float,
    alpha: float,
    beta: float,
    feasible: ArrayLike | None = None,
    minimize: bool = False,
) -> NDArray[np.float64]:
    """ACC · (LAT/T)^w element-wise (−ERR · (LAT/T)^−w with ``minimize``); ``-inf`` where ``feasible`` is
    False.

    Raises ``InputError`` for a non-positive target, a latency that is not a positive finite number (the
    power of 0 is infinite) or an accuracy that is negative or not finite (a negative ACC would turn the
    latency penalty into a bonus).
    """
    t = _check_target(target_ms)
    acc = np.asarray(accuracy, dtype=np.float64)
    lat = np.asarray(latency_ms, dtype=np.float64)
    if acc.shape != lat.shape:
        raise InputError(f"accuracy and latency have different shapes: {acc.shape} vs {lat.shape}")
    bad_lat = ~np.isfinite(lat) | (lat <= 0)
    if bad_lat.any():
        raise InputError(
            f"latencies must be positive finite milliseconds; got {lat[bad_lat].ravel()[0]!r} "
            "(check the predictor covers every layer of the space)"
        )
    bad_acc = ~np.isfinite(acc) | (acc < 0)
    if bad_acc.any():
        raise InputError(
            f"accuracy estimates must be finite and >= 0 for MnasNet's reward; "
            f"got {acc[bad_acc].ravel()[0]!r} "
            "(shift or rescale the estimator)"
        )
    w = np.where(lat <= t, alpha, beta)
    reward = -acc * np.power(lat / t, -w) if minimize else acc * np.power(lat / t, w)
    if feasible is not None:
        mask = np.asarray(feasible, dtype=bool)
        if mask.shape != reward.shape:
            raise InputError(f"feasible mask has shape {mask.shape}, expected {reward.shape}")
        reward = np.where(mask, reward, -np.inf)
    return reward


@dataclass(frozen=True)
class Reward:
    """A configured MnasNet reward. ``target_ms`` > 0; ``alpha``/``beta`` are the exponents below/above it."""

    target_ms: float
    alpha: float = REWARD_PRESETS["soft"][0]
    beta: float = REWARD_PRESETS["soft"][1]
    #: The accuracy is an error (lower is better): see the module.
    minimize: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_ms", _check_target(self.target_ms))
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                raise InputError(f"--{name} must be a finite number, got {value!r}")
            if number > 0:  # (LAT/T)^w with w > 0 grows with latency: slower models would win
                raise InputError(f"--{name} must be <= 0 (a positive exponent rewards slower models), "
                                 f"got {value!r}")
            object.__setattr__(self, name, number)

    @classmethod
    def preset(cls, name: str, target_ms: float) -> Reward:
        """``soft`` or ``hard`` at latency target ``target_ms``."""
        if name not in REWARD_PRESETS:
            raise InputError(f"unknown reward {name!r}: use one of {', '.join(REWARD_PRESETS)}")
        alpha, beta = REWARD_PRESETS[name]
        return cls(target_ms=target_ms, alpha=alpha, beta=beta)

    @property
    def name(self) -> str:
        """The preset this reward equals, or ``custom``."""
        for name, (a, b) in REWARD_PRESETS.items():
            if (self.alpha, self.beta) == (a, b):
                return name
        return "custom"

    @overload
    def __call__(self, accuracy: float, latency_ms: float, feasible: bool | None = None) -> float: ...

    @overload
    def __call__(
        self, accuracy: ArrayLike, latency_ms: ArrayLike, feasible: ArrayLike | None = None
    ) -> NDArray[np.float64]: ...

    def __call__(self, accuracy: Any, latency_ms: Any, feasible: Any = None) -> Any:
        """Reward of one candidate (floats in, float out) or of many (arrays in, array out)."""
        out = mnasnet_reward(
            accuracy,
            latency_ms,
            target_ms=self.target_ms,
            alpha=self.alpha,
            beta=self.beta,
            feasible=feasible,
            minimize=self.minimize,
        )
        return float(out) if out.ndim == 0 else out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "alpha": self.alpha, "beta": self.beta,
                             "target_ms": self.target_ms}
        if self.minimize:
            d["minimize"] = True
        return d
