"""Scoring a batch of candidates: latency (predictor), accuracy (proxy), MACs, memory feasibility, reward.

Everything is done per *batch* so the predictor's ``predict_many`` and numpy do the work once per batch
instead of once per candidate; this is what makes >10,000 candidates/s possible with a lookup table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nasprof.errors import InputError
from nasprof.search.confidence import LatencyBound
from nasprof.search.constraints import MemoryConstraint
from nasprof.search.proxies import AccuracyProxy
from nasprof.search.rewards import Reward

if TYPE_CHECKING:
    from nasprof.space import Arch
    from nasprof.space.genotype import ChainLayout, Codes

__all__ = ["LatencyModel", "Scores", "Evaluator", "arch_macs", "MISSING_VIOLATION"]

#: Fitness of an infeasible candidate for a minimised metric: below minus any error (``Scores.fitness``).
MINIMIZED_FLOOR = 1e6
#: The violation of a candidate whose accuracy the source does not have (``--allow-missing``): below every
#: other infeasible candidate, finite so Optuna's constraints take it.
MISSING_VIOLATION = 1e9


@runtime_checkable
class LatencyModel(Protocol):
    """Anything with ``predict_many(archs) -> array of ms`` — a ``nasprof.predictors.Predictor``."""

    def predict_many(self, archs: Sequence[Any]) -> ArrayLike: ...


@dataclass(frozen=True)
class Scores:
    """Scores of one batch, aligned with the architectures it was computed for."""

    latency_ms: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    reward: NDArray[np.float64]
    macs: NDArray[np.int64]
    feasible: NDArray[np.bool_]
    #: Peak SRAM / Flash estimates in bytes when a memory constraint is set, else None.
    sram_bytes: NDArray[np.int64] | None = None
    flash_bytes: NDArray[np.int64] | None = None
    #: Relative overuse (0 when feasible) when a memory constraint or a latency bound is set, else None: the
    #: larger of the memory overuse and the latency bound's excess over the target (``MISSING_VIOLATION``
    #: where the accuracy source has no value).
    violation: NDArray[np.float64] | None = None
    #: The accuracy as a quantity to maximise (minus the error for a minimised metric); None: ``accuracy``.
    objective: NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return int(self.latency_ms.size)

    @property
    def fitness(self) -> NDArray[np.float64]:
        """What selection compares, by Deb's feasibility rule: a feasible candidate ranks by reward (>= 0, or
        minus the error for a minimised metric); an infeasible one ranks below every feasible one, and above
        another infeasible one that overuses memory (or the latency bound) by more. Without that order, a
        population with no feasible member has nothing to climb.
        """
        if self.violation is None:
            return self.reward
        # A minimised metric's reward is negative (minus the error): its infeasible floor is far below.
        floor = -1.0 if self.objective is None else -MINIMIZED_FLOOR
        return np.where(self.feasible, self.reward, floor - self.violation)

    @property
    def maximised(self) -> NDArray[np.float64]:
        """The accuracy, signed so that higher is better (what a front and NSGA-II maximise)."""
        return self.accuracy if self.objective is None else self.objective

    @staticmethod
    def concat(parts: Sequence[Scores]) -> Scores:
        """One ``Scores`` holding ``parts`` in order."""
        if not parts:
            raise InputError("no scores to concatenate")

        def cat(name: str) -> Any:
            values = [getattr(p, name) for p in parts]
            if name == "violation" and not all(v is None for v in values):
                # A batch without a violation array had nothing infeasible (no missing accuracy).
                values = [np.zeros(len(p)) if v is None else v for p, v in zip(parts, values, strict=True)]
            return None if any(v is None for v in values) else np.concatenate(values)

        return Scores(**{name: cat(name) for name in Scores.__dataclass_fields__})


def arch_macs(archs: Sequence[Arch]) -> NDArray[np.int64]:
    """Total MACs of each architecture (stem and head included)."""
    return np.fromiter(
        (sum(layer.macs for layer in a.layers()) for a in archs), dtype=np.int64, count=len(archs)
    )


class Evaluator:
    """Scores candidates: ``latency`` (a predictor, or a callable over a batch), ``proxy`` (any accuracy
    source), ``reward``, an optional memory ``constraint`` and an optional ``latency_bound``: with it, a
    candidate is feasible only when its predicted latency's upper bound (``LatencyBound``) meets the
    reward's target. Infeasible candidates get reward -inf, and so do candidates whose accuracy the source
    does not have (NaN, from a table with ``allow_missing``).
    """

    def __init__(
        self,
        latency: LatencyModel | Callable[[Sequence[Arch]], ArrayLike],
        proxy: AccuracyProxy,
        reward: Reward,
        constraint: MemoryConstraint | None = None,
        latency_bound: LatencyBound | None = None,
    ) -> None:
        from nasprof.predictors.layerwise import Layerwise

        self.latency_model = latency
        # Checked once: a runtime Protocol check costs ~40 µs, as much as scoring a small batch of genotypes.
        self._layerwise = isinstance(latency, Layerwise)
        if isinstance(latency, LatencyModel):
            self._latency: Callable[[Sequence[Arch]], ArrayLike] = latency.predict_many
        elif callable(latency):
            self._latency = latency
        else:
            raise InputError(
                f"latency model must have predict_many() or be callable, got {type(latency).__name__}"
            )
        self.proxy = proxy
        self.reward = reward
        self.constraint = constraint
        self.latency_bound = latency_bound

    #: A surrogate accuracy (``nasprof.search.surrogate``) for ``screen``, or None.
    surrogate: Any = None

    def screen(self, archs: Sequence[Arch]) -> NDArray[np.float64]:
        """Estimated fitness of ``archs`` without querying their accuracy: the surrogate's accuracy, the
        predicted latency and the latency bound (memory constraints are left to the true scoring)."""
        if self.surrogate is None:
            raise InputError("screening needs a surrogate")
        lat = np.asarray(self._latency(archs), dtype=np.float64).reshape(-1)
        acc = np.maximum(np.asarray(self.surrogate.predict_many(archs), dtype=np.float64), 0.0)
        if not self.reward.minimize:
            acc = np.minimum(acc, 100.0)
        if self.latency_bound is None:
            return np.asarray(self.reward(acc, lat), dtype=np.float64)
        over = np.maximum(self.latency_bound.overuse(lat, self.reward.target_ms), 0.0)
        feasible = over <= 0
        reward = np.asarray(self.reward(acc, lat, feasible), dtype=np.float64)
        floor = -1.0 if not self.reward.minimize else -MINIMIZED_FLOOR
        return np.where(feasible, reward, floor - over)

    def represent(self, archs: Sequence[Arch]) -> list[Arch]:
        """The networks that are scored for ``archs``: the accuracy source's stand-ins (one network per
        isomorphism class, ``QueriedAccuracy.represent``), else ``archs`` themselves."""
        represent = getattr(self.proxy, "represent", None)
        return list(archs) if represent is None else list(represent(archs))

    def __call__(self, archs: Sequence[Arch]) -> Scores:
        n = len(archs)
        lat = np.asarray(self._latency(archs), dtype=np.float64).reshape(-1)
        if lat.size != n:
            raise InputError(f"latency model returned {lat.size} values for {n} architectures")
        macs = arch_macs(archs)
        acc = np.asarray(self.proxy.score_many(archs, macs), dtype=np.float64).reshape(-1)
        if acc.size != n:
            raise InputError(f"accuracy source {self.proxy.name!r} returned {acc.size} values for {n} "
                             "architectures")
        sram = flash = violation = None
        if self.constraint is not None:
            sram, flash = self.constraint.usage(archs)
            feasible = self.constraint.fits(sram, flash)
            violation = self.constraint.violation(sram, flash)
        else:
            feasible = np.ones(n, dtype=bool)
        if self.latency_bound is not None:
            over = np.maximum(self.latency_bound.overuse(lat, self.reward.target_ms), 0.0)
            feasible = feasible & (over <= 0)
            violation = over if violation is None else np.maximum(violation, over)
        missing = np.isnan(acc)
        if missing.any():
            feasible = feasible & ~missing
            base = np.zeros(n) if violation is None else violation
            violation = np.where(missing, MISSING_VIOLATION, base)
        reward = self.reward(np.where(missing, 0.0, acc), lat, feasible)
        objective = -acc if self.reward.minimize else None
        return Scores(lat, acc, np.asarray(reward, dtype=np.float64), macs, feasible, sram, flash, violation,
                      objective)

    # -- integer genotypes ---------------------------------------------------------------------------------
    @property
    def scores_codes(self) -> bool:
        """True when a batch of integer genotypes can be scored without building architectures: a layerwise
        predictor (a lookup table), a proxy that reads only MACs, and no memory constraint."""
        return (
            self._layerwise
            and not self.proxy.needs_archs
            and self.constraint is None
            and self.latency_bound is None
        )

    def score_codes(self, codes: Codes, layout: ChainLayout) -> Scores:
        """``Scores`` of a batch of integer genotypes (``nasprof.space.genotype``) — equal to scoring their
        decoded architectures; needs ``scores_codes``."""
        from nasprof.predictors.layerwise import fill_unpriced, layerwise_table

        if not self.scores_codes:
            raise InputError(
                "integer genotypes are scored with a lookup-table predictor, a MACs-only proxy and no "
                "memory constraint; score architectures instead"
            )
        model: Any = self.latency_model
        table = layerwise_table(model, layout, {"macs": _layer_macs})
        values = fill_unpriced(model, codes, layout, table(codes))
        lat, macs = values[0], values[1].astype(np.int64)
        acc = np.asarray(self.proxy.score_many((), macs), dtype=np.float64)
        feasible = np.ones(lat.size, dtype=bool)
        reward = np.asarray(self.reward(acc, lat), dtype=np.float64)
        return Scores(lat, acc, reward, macs, feasible)


def _layer_macs(layer: Any) -> float:
    return float(layer.macs)
