"""Optuna's samplers as nasprof strategies: TPE, NSGA-II, CMA-ES, QMC and random, over a space's named
decisions (``Space.decisions`` / ``Space.build``), through Optuna's ask-and-tell interface.

Each candidate is one Optuna trial. ``Space.build`` asks the trial for each decision in order, so a decision
that only exists for some earlier answers (a layer past a stage's chosen depth) is never suggested: Optuna's
define-by-run parameters. TPE, random and QMC see categorical choices; CMA-ES models only numbers, so it
sees each decision as the integer index of its choice (ordinal: kernel 3 < 5 < 7 is natural, an operator
list's order is the space's). NSGA-II optimises two objectives, the accuracy proxy (maximised) and the latency
(minimised), and a memory constraint's overuse is its constraint value; the others maximise the reward
(``Scores.fitness``). Optuna is an optional extra (``pip install 'nasprof[optuna]'``), imported only here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from nasprof.errors import InputError
from nasprof.search.strategies.base import Strategy

if TYPE_CHECKING:
    from nasprof.search.evaluate import Scores
    from nasprof.space import Arch

__all__ = ["OptunaStrategy", "TpeSearch", "Nsga2Search", "CmaEsSearch", "QmcSearch", "OPTUNA_STRATEGIES"]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise InputError(
            "the Optuna strategies need Optuna: pip install 'nasprof[optuna]' (or pip install optuna)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class OptunaStrategy(Strategy):
    """One Optuna sampler (``sampler``: the class name in ``optuna.samplers``); subclasses name it."""

    name: ClassVar[str] = ""
    sampler: ClassVar[str] = ""
    #: Two objectives (accuracy proxy up, latency down) instead of the reward.
    multi_objective: ClassVar[bool] = False
    #: Decisions as choice indices (samplers that model numbers only).
    ordinal: ClassVar[bool] = False

    def __init__(
        self, space: Any, *, seed: int = 0, resolution: int | None = None, population_size: int = 50
    ) -> None:
        super().__init__(space, seed=seed, resolution=resolution)
        if population_size < 2:
            raise InputError(f"population size must be at least 2, got {population_size}")
        optuna = _optuna()
        space.decisions()  # a space without named decisions cannot be searched this way: say so now
        kwargs: dict[str, Any] = {"seed": self.seed}
        if self.multi_objective:
            kwargs.update(population_size=population_size, constraints_func=_constraints)
        elif self.sampler in ("QMCSampler", "CmaEsSampler"):
            kwargs.update(warn_independent_sampling=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning on constraints_func and QMC
            try:
                sampler = getattr(optuna.samplers, self.sampler)(**kwargs)
            except ImportError as exc:  # CMA-ES needs the cmaes package
                raise InputError(
                    f"Optuna's {self.sampler} needs {exc.name or 'a package Optuna did not find'}: "
                    "pip install 'nasprof[optuna]'"
                ) from None
        directions = ["maximize", "minimize"] if self.multi_objective else ["maximize"]
        self.study = optuna.create_study(directions=directions, sampler=sampler)
        self._pending: list[Any] = []

    def ask(self, n: int) -> list[Arch]:
        archs = []
        for _ in range(max(1, n)):
            trial = self.study.ask()
            if self.ordinal:

                def suggest(name: str, values: tuple[Any, ...], t: Any = trial) -> Any:
                    return values[t.suggest_int(name, 0, len(values) - 1)]
            else:

                def suggest(name: str, values: tuple[Any, ...], t: Any = trial) -> Any:
                    return t.suggest_categorical(name, list(values))

            archs.append(self.space.build(suggest, self.resolution))
            self._pending.append(trial)
        return archs

    def tell(self, archs: Sequence[Arch], scores: Scores) -> None:
        if len(archs) != len(scores) or len(archs) != len(self._pending):
            raise InputError(
                f"told {len(scores)} scores for {len(archs)} architectures; {len(self._pending)} were asked"
            )
        fitness = scores.fitness.tolist()
        for i, trial in enumerate(self._pending):
            if self.multi_objective:
                violation = 0.0 if scores.violation is None else float(scores.violation[i])
                trial.set_user_attr("constraint", (violation,))
                lat = float(scores.latency_ms[i])
                values: Any = [float(scores.accuracy[i]), lat if math.isfinite(lat) else 1e12]
            else:
                values = fitness[i] if math.isfinite(fitness[i]) else -1e12
            self.study.tell(trial, values)
        self._pending = []


def _constraints(trial: Any) -> Sequence[float]:
    # Optuna's rule: a trial is feasible when every value is <= 0 (here: relative memory overuse).
    return tuple(trial.user_attrs.get("constraint", (0.0,)))


class TpeSearch(OptunaStrategy):
    """Tree-structured Parzen estimator (Bergstra et al., 2011), Optuna's default sampler."""

    name: ClassVar[str] = "tpe"
    sampler: ClassVar[str] = "TPESampler"


class Nsga2Search(OptunaStrategy):
    """NSGA-II (Deb et al., 2002) on (accuracy proxy, latency): a front rather than one reward."""

    name: ClassVar[str] = "nsga2"
    sampler: ClassVar[str] = "NSGAIISampler"
    multi_objective: ClassVar[bool] = True


class CmaEsSearch(OptunaStrategy):
    """CMA-ES (Hansen, 2016) over the choice indices."""

    name: ClassVar[str] = "cmaes"
    sampler: ClassVar[str] = "CmaEsSampler"
    ordinal: ClassVar[bool] = True


class QmcSearch(OptunaStrategy):
    """Quasi-random (Sobol) sampling: random search that covers the choices more evenly."""

    name: ClassVar[str] = "qmc"
    sampler: ClassVar[str] = "QMCSampler"


OPTUNA_STRATEGIES: tuple[type[OptunaStrategy], ...] = (TpeSearch, Nsga2Search, CmaEsSearch, QmcSearch)
