"""``search()``: one call from names (space, predictor file, proxy, strategy, board) to a ``SearchResult``.

This is what ``nasprof search`` runs. It resolves and checks every name *before* the loop starts, so a
wrong predictor or option fails in milliseconds with a message, not after a long search.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nasprof.errors import InputError, PredictorError
from nasprof.search.accuracy import QueriedAccuracy, TableAccuracy, resolve_accuracy
from nasprof.search.confidence import DEFAULT_CONFIDENCE, LatencyBound
from nasprof.search.constraints import MemoryConstraint
from nasprof.search.evaluate import Evaluator
from nasprof.search.options import class_keys, has_classes, resolve_options, with_options
from nasprof.search.proxies import AccuracyProxy, CallableProxy, get_proxy
from nasprof.search.regret import Truth, regret_report
from nasprof.search.rewards import REWARD_PRESETS, Reward
from nasprof.search.runner import DEFAULT_BATCH, SearchResult, run_search
from nasprof.search.strategies import STRATEGIES, get_strategy
from nasprof.search.strategies.state import StatefulStrategy, resume_state, save_state
from nasprof.search.surrogate import make_surrogate

#: Candidates a query-bounded search may evaluate per query (repeats and isomorphic networks cost none).
QUERY_BUDGET_FACTOR = 10

__all__ = ["search", "make_reward", "predictor_space", "check_predictor_space", "export_best_arch",
           "evolution_options", "check_search_files"]


def make_reward(
    target_ms: float, preset: str = "soft", alpha: float | None = None, beta: float | None = None,
    *, minimize: bool = False,
) -> Reward:
    """A preset reward, with ``alpha``/``beta`` overriding the preset's exponents when given; ``minimize``
    for an error metric."""
    if preset not in REWARD_PRESETS:
        raise InputError(f"unknown reward {preset!r}: use one of {', '.join(REWARD_PRESETS)}")
    a, b = REWARD_PRESETS[preset]
    return Reward(target_ms=target_ms, alpha=a if alpha is None else alpha, beta=b if beta is None else beta,
                  minimize=minimize)


def predictor_space(predictor: Any) -> str | None:
    """The search space a predictor was built for, when its file records one."""
    value = getattr(predictor, "space", None)
    if value is None:
        value = (getattr(predictor, "metadata", None) or {}).get("space")
    return None if value is None else str(value)


def check_predictor_space(predictor: Any, space_name: str, source: str = "predictor") -> None:
    """``PredictorError`` when the predictor records a different space than the one searched."""
    recorded = predictor_space(predictor)
    if recorded is not None and recorded != space_name:
        raise PredictorError(
            f"{source} was built for space {recorded!r}, not {space_name!r}; "
            f"use --space {recorded} or build a table and predictor for {space_name!r}"
        )


def _load_predictor(predictor: Any) -> Any:
    if isinstance(predictor, (str, Path)):
        from nasprof.predictors import Predictor

        return Predictor.load(predictor)
    return predictor


def _make_proxy(proxy: str | AccuracyProxy | Callable[[Any], float]) -> AccuracyProxy:
    if isinstance(proxy, AccuracyProxy):
        return proxy
    if isinstance(proxy, str):
        return get_proxy(proxy)
    return CallableProxy(proxy)


def search(
    space: Any,
    predictor: Any,
    target_ms: float,
    *,
    budget: int | None = None,
    seed: int = 0,
    reward: str = "soft",
    alpha: float | None = None,
    beta: float | None = None,
    proxy: str | AccuracyProxy | Callable[[Any], float] | None = None,
    strategy: str = "evolution",
    device: str | None = None,
    resolution: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    strategy_options: Mapping[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    state: str | Path | None = None,
    accuracy: str | Path | AccuracyProxy | Callable[[list[str]], Any] | None = None,
    minimize_metric: bool = False,
    allow_missing: bool = False,
    max_queries: int | None = None,
    confidence: float | None = None,
    options: Mapping[str, Any] | None = None,
    truth: str | Path | Truth | None = None,
    surrogate: Any = None,
    avoid_repeats: bool | None = None,
    on_note: Callable[[str], None] | None = None,
) -> SearchResult:
    """Search ``space`` (a name or a ``Space``) for the best reward under ``target_ms``.

    ``predictor``: a predictor file, a ``Predictor``, or any object with ``predict_many``; ``proxy``:
    ``macs`` (the default), ``naswot``, an ``AccuracyProxy`` or a callable ``arch -> accuracy``;
    ``accuracy``: real accuracy instead of a proxy (a table, ``module:function``, an accuracy predictor
    file or object: ``nasprof.search.accuracy``), lower-is-better with ``minimize_metric``; every
    accuracy asked for is a query, at most ``max_queries`` (``budget`` candidates, default 10 per query,
    bounds the search too). ``confidence``: the hard latency target holds with this confidence by the
    predictor's own error (default 0.95 for the ``hard`` reward, none for ``soft``). ``options``: nb201's
    network options (``input``, ``outputs``, ``C``, ``N``; default: the predictor's). ``truth``: real
    latencies (a measurement set name or file, or a ``Truth``) to report the regret with, when
    ``accuracy`` is a complete table. ``surrogate``: ``"online"`` (a ridge refitted on the queries so
    far), an accuracy predictor (file or object): a strategy that screens (evolution) then queries only the
    children the surrogate rates best. ``avoid_repeats``: whether a strategy that can should propose only
    networks (isomorphism classes) it has not proposed (default: when accuracy queries are counted).
    ``device``: a microcontroller board whose SRAM/Flash become hard constraints; ``resolution``: of the
    sampled architectures (default: the predictor's, else the space's). ``state``: a learning strategy's
    state file (``nasprof.search.strategies.state``), resumed when it exists and saved after a search that
    found a feasible candidate (a file it refuses is left as it is); ``on_note(line)`` hears what happened
    to it. ``SearchResult.seconds`` is this call's wall time. Raises ``InputError`` (``StateError`` for the
    state file) or ``PredictorError`` on bad input.
    """
    started = time.perf_counter()
    if max_queries is not None and (
        isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1
    ):
        raise InputError(f"--max-queries must be a positive number of accuracy queries, got {max_queries!r}")
    if budget is None:
        if max_queries is None:
            raise InputError("give --budget (candidates) or --max-queries (accuracy queries)")
        budget = QUERY_BUDGET_FACTOR * max_queries
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InputError(f"--budget must be a positive number of candidates, got {budget!r}")
    if accuracy is not None and proxy is not None:
        raise InputError("give --accuracy (a real accuracy source) or --proxy, not both")
    if isinstance(space, str):
        from nasprof.space import get_space

        space = get_space(space)
    space_name = str(space.name)
    source = str(predictor) if isinstance(predictor, (str, Path)) else "predictor"
    model = _load_predictor(predictor)
    check_predictor_space(model, space_name, source)
    net_options = resolve_options(space, options, model)
    searched = with_options(space, net_options)
    constraint = MemoryConstraint.for_device(device) if device else None
    if accuracy is not None:
        acc: AccuracyProxy = resolve_accuracy(accuracy, searched, minimize=minimize_metric,
                                              allow_missing=allow_missing)
    else:
        if minimize_metric or allow_missing:
            flag = "--minimize-metric" if minimize_metric else "--allow-missing"
            raise InputError(f"{flag} applies to --accuracy (a table, callable or predictor)")
        acc = _make_proxy(proxy if proxy is not None else "macs")
    minimize = bool(getattr(acc, "minimize", False))
    if max_queries is not None or accuracy is not None:
        acc = QueriedAccuracy(acc, searched, max_queries)
    rew = make_reward(target_ms, reward, alpha, beta, minimize=minimize)
    if confidence is None and rew.alpha == 0.0 and rew.beta == REWARD_PRESETS["hard"][1]:
        confidence = DEFAULT_CONFIDENCE
    bound = LatencyBound.for_predictor(model, confidence) if confidence is not None else None
    table = getattr(acc, "inner", acc)
    if truth is not None and not isinstance(truth, Truth):
        if not isinstance(table, TableAccuracy):
            raise InputError("--truth reports regret against a complete accuracy table: give --accuracy "
                             "TABLE")
        truth = Truth.from_measurements(truth, table, searched)
    evaluator = Evaluator(model, acc, rew, constraint, bound)
    # A lookup table holds one resolution: sample there unless told otherwise (a mismatch then fails
    # in the predictor with a message naming both resolutions).
    if resolution is None and net_options is None:
        resolution = getattr(model, "resolution", None)
    counting = isinstance(acc, QueriedAccuracy)
    given = dict(strategy_options or {})
    if counting and strategy in STRATEGIES:
        defaults = STRATEGIES.get(strategy).query_options(max_queries)
        if "population_size" in given and "sample_size" in defaults:
            defaults.pop("sample_size")  # the caller's population keeps its own tournament default
        given = {**defaults, **given}
    strat = get_strategy(strategy, searched, seed=seed, resolution=None if net_options else resolution,
                         **given)
    strat.avoid_repeats = counting if avoid_repeats is None else bool(avoid_repeats)
    if counting and has_classes(searched):
        strat.repeat_key = lambda a: class_keys(searched, [a])[0]
    if state is not None:
        _note(on_note, resume_state(_stateful(strat), state))
    if surrogate is not None:
        screening = hasattr(strat, "screen")
        if not screening:
            raise InputError(f"--strategy {strategy} does not screen with a surrogate (evolution does)")
        evaluator.surrogate = make_surrogate(
            surrogate, searched, acc if isinstance(acc, QueriedAccuracy) else None
        )
        strat.screen = evaluator.screen  # type: ignore[attr-defined]
    batch = min(batch_size, acc.max_batch)
    if counting and strat.query_batch is not None:
        batch = min(batch, strat.query_batch)
    result = run_search(
        strat, evaluator, budget, batch_size=batch, space_name=space_name, on_progress=on_progress,
        max_queries=max_queries,
    )
    extra: dict[str, Any] = {"options": net_options}
    if surrogate is not None:
        extra["surrogate"] = surrogate if isinstance(surrogate, str) else str(
            getattr(surrogate, "path", None) or type(surrogate).__name__)
    if isinstance(acc, QueriedAccuracy):
        extra["accuracy_source"] = acc.describe()
    if truth is not None:
        from nasprof.space.parse import parse_arch

        best = result.best
        pick = None if best is None else parse_arch(best.arch, space_name, **(net_options or {}))
        extra["regret"] = regret_report(pick, truth, rew.target_ms, searched)
    if state is not None and isinstance(strat, StatefulStrategy):
        if result.best is not None:
            _note(on_note, save_state(strat, state))
        else:  # the search failed: its state file stays what it was
            _note(on_note, f"not saving the {strat.name} state to {state}: no candidate was feasible")
    return dataclasses.replace(result, **extra, seconds=time.perf_counter() - started)


def _stateful(strat: Any) -> StatefulStrategy:
    """``strat`` when it keeps a state to resume; else the ``InputError`` naming the strategies that do."""
    if not isinstance(strat, StatefulStrategy):
        learning = [name for name, cls in STRATEGIES.items() if issubclass(cls, StatefulStrategy)]
        raise InputError(f"--strategy-state keeps a learning strategy's state; {strat.name!r} has none (use "
                         f"{', '.join(learning)})")
    return strat


def _note(on_note: Callable[[str], None] | None, line: str) -> None:
    if on_note is not None:
        on_note(line)


def evolution_options(strategy: str, population: int | None = None, tournament: int | None = None
                      ) -> dict[str, int]:
    """Aging evolution's constructor options from ``--population`` and ``--tournament`` (refused for another
    strategy). A smaller population than the default 100 keeps Real et al.'s tournament of a quarter."""
    options: dict[str, int] = {}
    for flag, key, value in (("--population", "population_size", population),
                             ("--tournament", "sample_size", tournament)):
        if value is not None:
            if strategy != "evolution":
                raise InputError(f"{flag} sets aging evolution; --strategy {strategy} has no population")
            options[key] = value
    if population is not None and tournament is None and population < 100:
        options["sample_size"] = max(1, population // 4)
    if tournament is not None and population is None and tournament > 100:
        raise InputError(f"--tournament {tournament} is larger than the default population of 100; "
                         "raise --population too")
    return options


def check_search_files(plot: str | Path | None = None, export_best: str | Path | None = None) -> None:
    """Refuse, before a search, output paths that could not be written as asked: ``plot`` must end in .png
    and ``export_best`` in .onnx."""
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise InputError(f"--plot writes a PNG; give a path ending in .png, got {plot}")
    if export_best is not None and Path(export_best).suffix.lower() != ".onnx":
        raise InputError(f"--export-best writes ONNX; give a path ending in .onnx, got {export_best}")


def export_best_arch(result: SearchResult, path: str | Path) -> Path:
    """Export the best feasible architecture of ``result`` to ONNX (torch, through ``nasprof.space``)."""
    from nasprof.space import Arch, export_arch

    best = result.best
    if best is None:
        raise InputError("no feasible architecture to export")
    return Path(export_arch(Arch.from_string(best.arch), Path(path)))
