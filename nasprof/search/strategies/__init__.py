"""Search strategies behind one ask/tell interface; ``get_strategy`` builds one by name."""

from __future__ import annotations

from typing import Any

from nasprof.errors import InputError
from nasprof.search.strategies.base import Strategy
from nasprof.search.strategies.evolution import RegularizedEvolution
from nasprof.search.strategies.optuna_samplers import OPTUNA_STRATEGIES
from nasprof.search.strategies.random_search import RandomSearch
from nasprof.search.strategies.rl import RLController

__all__ = ["Strategy", "RandomSearch", "RegularizedEvolution", "RLController", "STRATEGIES", "get_strategy"]

#: Every strategy by name. The Optuna ones import Optuna only when built (an optional extra).
STRATEGIES: dict[str, type[Strategy]] = {
    RegularizedEvolution.name: RegularizedEvolution,
    RandomSearch.name: RandomSearch,
    RLController.name: RLController,
    **{s.name: s for s in OPTUNA_STRATEGIES},
}


def get_strategy(name: str, space: Any, *, seed: int = 0, **options: Any) -> Strategy:
    """A strategy of ``STRATEGIES`` over ``space``; ``options`` go to the strategy's constructor."""
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name](space, seed=seed, **options)
