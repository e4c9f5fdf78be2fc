"""Search: MnasNet's reward, memory constraints, accuracy proxies, strategies and the search loop.

Nothing here imports torch at module level (only the ``naswot`` proxy does, when it runs), so a search that
queries a lookup-table predictor starts in well under a second.
"""

from __future__ import annotations

from nasprof.search.accuracy import (
    CallableAccuracy,
    PredictedAccuracy,
    QueriedAccuracy,
    TableAccuracy,
    resolve_accuracy,
)
from nasprof.search.api import export_best_arch, make_reward, search
from nasprof.search.confidence import LatencyBound
from nasprof.search.constraints import McuArchMemory, MemoryConstraint
from nasprof.search.evaluate import Evaluator, LatencyModel, Scores, arch_macs
from nasprof.search.pareto import pareto_front
from nasprof.search.plot import plot_search
from nasprof.search.proxies import (
    AccuracyProxy,
    CallableProxy,
    MacsProxy,
    NaswotProxy,
    get_proxy,
    naswot_score,
)
from nasprof.search.regret import Truth, hypervolume, regret_report
from nasprof.search.rewards import REWARD_PRESETS, Reward, mnasnet_reward
from nasprof.search.runner import SEARCH_SCHEMA_VERSION, Candidate, SearchResult, run_search
from nasprof.search.strategies import STRATEGIES, RandomSearch, RegularizedEvolution, Strategy, get_strategy
from nasprof.search.surrogate import OnlineSurrogate

__all__ = [
    "search",
    "TableAccuracy",
    "CallableAccuracy",
    "PredictedAccuracy",
    "QueriedAccuracy",
    "resolve_accuracy",
    "LatencyBound",
    "Truth",
    "regret_report",
    "hypervolume",
    "OnlineSurrogate",
    "make_reward",
    "export_best_arch",
    "plot_search",
    "McuArchMemory",
    "Reward",
    "REWARD_PRESETS",
    "mnasnet_reward",
    "MemoryConstraint",
    "pareto_front",
    "AccuracyProxy",
    "MacsProxy",
    "NaswotProxy",
    "CallableProxy",
    "get_proxy",
    "naswot_score",
    "Evaluator",
    "LatencyModel",
    "Scores",
    "arch_macs",
    "Strategy",
    "RandomSearch",
    "RegularizedEvolution",
    "STRATEGIES",
    "get_strategy",
    "Candidate",
    "SearchResult",
    "run_search",
    "SEARCH_SCHEMA_VERSION",
]
