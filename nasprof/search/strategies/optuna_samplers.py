"""Optuna's samplers as nasprof strategies: TPE, NSGA-II, CMA-ES, QMC and random, over a space's named
decisions (``Space.decisions`` / ``Space.build``), through Optuna's ask-and-tell interface.

Each candidate is one Optuna trial. ``Space.build`` asks the trial for each decision in order, so a decision
that only exists for some earlier answers (a layer past a stage's chosen depth) is never suggested: Optuna's
define-by-run parameters. TPE, random and QMC see categorical choices; CMA-ES models only numbers, so it
sees each decision as the integer index of its choice (ordinal: kernel 3 < 5 < 7 is natural, an operator
list's order is the space's). NSGA-II optimises two objectives, the accuracy proxy (maximised) and the latency
(minimised), and a memory constraint's overuse is its constraint value; the others maximise the reward
(``Scores.fitness``). Optuna is an optional extra (``pip install 'nasprof[optuna]'``), imported only here.

Time: TPE rebuilds its two Parzen estimators from every finished trial on every ``ask`` (Optuna's
``_get_internal_repr`` and ``_split_trials``), so n trials cost O(n²): 3,000 trials took 17 s on NAS-Bench-201
(6 decisions) and minutes on MnasNet's space, 5.8 ms a trial. ``history`` bounds that: once the study holds
``history`` + ``history // 2`` finished trials it is rebuilt from the best ``history // 4`` and the most
recent rest (``study.add_trials``), so a trial costs O(history). TPE keeps ``history=1000`` by default (no
effect below 1,000 trials); ``n_startup_trials`` (random trials first, Optuna's 10) and ``multivariate``
(one joint estimator, Optuna's False) go to the sampler. NSGA-II's generations live in the trials' system
attributes, so its history is not rebuilt; its cost per trial grows slowly (0.4 ms at 3,000 trials).
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

#: With ``avoid_repeats``: trials that repeat an earlier proposal are told its value and asked again, up to
#: this many times per candidate.
REPEAT_TRIES = 2

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
    #: Every decision suggested on every trial, active or not (``Space.build`` then reads the answers it
    #: needs): for samplers that assume a search space without conditions.
    fixed_space: ClassVar[bool] = False

    #: Sequential model-based samplers: a few trials per ask, so each sees the last answers.
    query_batch: ClassVar[int | None] = 8
    #: Default ``history`` (None: every trial is kept).
    default_history: ClassVar[int | None] = None

    def __init__(
        self,
        space: Any,
        *,
        seed: int = 0,
        resolution: int | None = None,
        population_size: int = 50,
        history: int | None = -1,
        **sampler_options: Any,
    ) -> None:
        super().__init__(space, seed=seed, resolution=resolution)
        if population_size < 2:
            raise InputError(f"population size must be at least 2, got {population_size}")
        if history == -1:
            history = self.default_history
        if history is not None:
            if self.multi_objective:
                raise InputError(f"{self.name}: a bounded history applies to single-objective samplers")
            if isinstance(history, bool) or not isinstance(history, int) or history < 8:
                raise InputError(f"{self.name}: history must be at least 8 trials, got {history!r}")
        self.history = history
        optuna = _optuna()
        # A space without named decisions cannot be searched this way: say so now.
        self._decisions = list(space.decisions())
        kwargs: dict[str, Any] = {"seed": self.seed, **sampler_options}
        # Optuna 5 reads a trial's constraints from ``Trial.set_constraint`` (and deprecates
        # constraints_func, with a FutureWarning); Optuna 4 only from constraints_func.
        self._set_constraint = self.multi_objective and hasattr(optuna.trial.Trial, "set_constraint")
        if self.multi_objective:
            kwargs.update(population_size=population_size)
            if not self._set_constraint:
                kwargs.update(constraints_func=_constraints)
        elif self.sampler in ("QMCSampler", "CmaEsSampler"):
            kwargs.update(warn_independent_sampling=False)
        with warnings.catch_warnings():
            # Optuna marks QMCSampler (and, before Optuna 5, constraints_func) experimental: the user picked
            # them by name, and a notice per search is noise. Only that warning, only for this constructor.
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            # TPE's prior_weight (``TpeSearch.query_defaults``) is deprecated since Optuna 4.9 and works
            # until 6.0: a notice about an option nasprof chose is for nasprof's developers, not its users.
            warnings.filterwarnings("ignore", message="`prior_weight` has been deprecated",
                                    category=FutureWarning)
            try:
                sampler = getattr(optuna.samplers, self.sampler)(**kwargs)
            except ImportError as exc:  # CMA-ES needs the cmaes package
                raise InputError(
                    f"Optuna's {self.sampler} needs {exc.name or 'a package Optuna did not find'}: "
                    "pip install 'nasprof[optuna]'"
                ) from None
            except TypeError as exc:
                raise InputError(f"{self.name}: {exc}") from None
        self._optuna_module = optuna
        self._directions = ["maximize", "minimize"] if self.multi_objective else ["maximize"]
        self.study = optuna.create_study(directions=self._directions, sampler=sampler)
        self._pending: list[Any] = []
        self._told: dict[Any, tuple[Any, float]] = {}
        self.rebuilds = 0

    def ask(self, n: int) -> list[Arch]:
        archs = []
        for _ in range(max(1, n)):
            trial, arch = self._trial()
            if self.avoid_repeats:
                # A repeat teaches nothing new: tell Optuna the value it had and ask again (a few times).
                for _ in range(REPEAT_TRIES):
                    key = self._key(arch)
                    if key not in self._told:
                        break
                    self._finish(trial, self._told[key])
                    trial, arch = self._trial()
            archs.append(arch)
            self._pending.append(trial)
        return archs

    def _trial(self) -> tuple[Any, Arch]:
        trial = self.study.ask()
        if self.ordinal:

            def suggest(name: str, values: tuple[Any, ...], t: Any = trial) -> Any:
                return values[t.suggest_int(name, 0, len(values) - 1)]
        else:

            def suggest(name: str, values: tuple[Any, ...], t: Any = trial) -> Any:
                return t.suggest_categorical(name, list(values))

        if self.fixed_space:
            answers = {name: suggest(name, tuple(values)) for name, values in self._decisions}
            return trial, self.space.build(lambda name, values: answers[name], self.resolution)
        return trial, self.space.build(suggest, self.resolution)

    def _key(self, arch: Arch) -> Any:
        return self.repeat_key(arch) if self.repeat_key is not None else arch.to_string()

    def _finish(self, trial: Any, told: tuple[Any, float]) -> None:
        values, violation = told
        if self.multi_objective:
            trial.set_user_attr("constraint", (violation,))
            if self._set_constraint:
                trial.set_constraint("memory", violation)
        self.study.tell(trial, values)

    def tell(self, archs: Sequence[Arch], scores: Scores) -> None:
        if len(archs) != len(scores) or len(archs) != len(self._pending):
            raise InputError(
                f"told {len(scores)} scores for {len(archs)} architectures; {len(self._pending)} were asked"
            )
        fitness = scores.fitness.tolist()
        for i, trial in enumerate(self._pending):
            violation = 0.0 if scores.violation is None else float(scores.violation[i])
            if self.multi_objective:
                lat = float(scores.latency_ms[i])
                acc = float(scores.maximised[i])
                values: Any = [acc if math.isfinite(acc) else -1e12, lat if math.isfinite(lat) else 1e12]
            else:
                values = fitness[i] if math.isfinite(fitness[i]) else -1e12
            self._finish(trial, (values, violation))
            if self.avoid_repeats:
                self._told[self._key(archs[i])] = (values, violation)
        self._pending = []
        if self.history is not None and (len(self.study.get_trials(deepcopy=False))
                                         >= self.history + self.history // 2):
            self._forget()

    def _forget(self) -> None:
        """Rebuild the study from the best ``history // 4`` trials and the most recent rest (see the
        module); the sampler (and its random state) carries on."""
        assert self.history is not None
        trials = [t for t in self.study.get_trials(deepcopy=False)
                  if t.state == self._optuna_module.trial.TrialState.COMPLETE]
        best_n = self.history // 4
        best = sorted(trials, key=lambda t: -float(t.value))[:best_n]
        chosen = {t.number for t in best}
        recent = [t for t in trials if t.number not in chosen][-(self.history - len(best)):]
        keep = sorted([*best, *recent], key=lambda t: t.number)
        study = self._optuna_module.create_study(directions=self._directions, sampler=self.study.sampler)
        study.add_trials(keep)
        self.study = study
        self.rebuilds += 1


def _constraints(trial: Any) -> Sequence[float]:
    # Optuna's rule: a trial is feasible when every value is <= 0 (here: relative memory overuse).
    return tuple(trial.user_attrs.get("constraint", (0.0,)))


class TpeSearch(OptunaStrategy):
    """Tree-structured Parzen estimator (Bergstra et al., 2011), Optuna's default sampler."""

    name: ClassVar[str] = "tpe"
    sampler: ClassVar[str] = "TPESampler"
    default_history: ClassVar[int | None] = 100
    #: A heavier prior keeps TPE's categorical estimates from collapsing onto networks it has asked: on
    #: darcy it halved the trials per new network (3,730 -> 2,199 for 1,000 queries) and the time.
    query_defaults: ClassVar[dict[str, Any]] = {"prior_weight": 4.0}


class Nsga2Search(OptunaStrategy):
    """NSGA-II (Deb et al., 2002) on (accuracy proxy, latency): a front rather than one reward."""

    name: ClassVar[str] = "nsga2"
    sampler: ClassVar[str] = "NSGAIISampler"
    multi_objective: ClassVar[bool] = True
    #: Its populations converge onto networks already asked: with Optuna's mutation rate (1/decisions)
    #: 1,000 queries took 6,000 trials on darcy (4.8 s); mutating each decision with probability 0.5 and
    #: generations of 20 took 2,300 (1.6 s), with a like regret.
    query_defaults: ClassVar[dict[str, Any]] = {"population_size": 20, "mutation_prob": 0.5}


class CmaEsSearch(OptunaStrategy):
    """CMA-ES (Hansen, 2016) over the choice indices."""

    name: ClassVar[str] = "cmaes"
    sampler: ClassVar[str] = "CmaEsSampler"
    ordinal: ClassVar[bool] = True


class QmcSearch(OptunaStrategy):
    """Quasi-random (Sobol) sampling: random search that covers the choices more evenly.

    A Sobol point has one coordinate per decision, so every trial is asked every decision (``fixed_space``),
    a layer past its stage's depth included. Asked only the active ones, QMCSampler logged "assumes that
    the search space does not include any conditions" for every trial of a batch asked together, and drew
    each decision missing from the first trial at random instead of from the sequence."""

    name: ClassVar[str] = "qmc"
    sampler: ClassVar[str] = "QMCSampler"
    fixed_space: ClassVar[bool] = True


OPTUNA_STRATEGIES: tuple[type[OptunaStrategy], ...] = (TpeSearch, Nsga2Search, CmaEsSearch, QmcSearch)
