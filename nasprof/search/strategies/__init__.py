"""Search strategies behind one ask/tell interface, on the one ``Registry`` every kind of plugin uses.

``get_strategy`` builds one by name. Third-party strategies come in through the ``nasprof.strategies``
entry-point group (a ``Strategy`` subclass), as backends and spaces do.
"""

from __future__ import annotations

from typing import Any

from nasprof.errors import InputError
from nasprof.registry import Registry
from nasprof.search.strategies.base import Strategy
from nasprof.search.strategies.evolution import RegularizedEvolution
from nasprof.search.strategies.optuna_samplers import OPTUNA_STRATEGIES
from nasprof.search.strategies.random_search import RandomSearch
from nasprof.search.strategies.rl import RLController

__all__ = [
    "Strategy", "RandomSearch", "RegularizedEvolution", "RLController", "STRATEGIES", "strategy_registry",
    "get_strategy",
]

#: Every strategy by name. The Optuna ones import Optuna only when built (an optional extra).
strategy_registry: Registry[type[Strategy]] = Registry(
    "strategy", entry_point_group="nasprof.strategies", error=InputError
)
_BUILT_IN: tuple[type[Strategy], ...] = (RegularizedEvolution, RandomSearch, RLController, *OPTUNA_STRATEGIES)
for _cls in _BUILT_IN:
    strategy_registry.register(_cls.name, _cls)

#: The registry under its older name (``name in STRATEGIES``, ``set(STRATEGIES)`` keep working).
STRATEGIES = strategy_registry


def get_strategy(name: str, space: Any, *, seed: int = 0, **options: Any) -> Strategy:
    """The strategy called ``name`` over ``space``; ``options`` go to the strategy's constructor."""
    return strategy_registry.get(name)(space, seed=seed, **options)
