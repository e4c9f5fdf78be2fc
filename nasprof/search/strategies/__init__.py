"""Search strategies behind one ask/tell interface; ``get_strategy`` builds one by name."""

from __future__ import annotations

from typing import Any

from nasprof.errors import InputError
from nasprof.search.strategies.base import Strategy
from nasprof.search.strategies.evolution import RegularizedEvolution
from nasprof.search.strategies.random_search import RandomSearch

__all__ = ["Strategy", "RandomSearch", "RegularizedEvolution", "STRATEGIES", "get_strategy"]

STRATEGIES: dict[str, type[Strategy]] = {
    RegularizedEvolution.name: RegularizedEvolution,
    RandomSearch.name: RandomSearch,
}


def get_strategy(name: str, space: Any, *, seed: int = 0, **options: Any) -> Strategy:
    """``evolution`` or ``random`` over ``space``; ``options`` go to the strategy's constructor."""
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name](space, seed=seed, **options)
