"""``search()``: one call from names (space, predictor file, proxy, strategy, board) to a ``SearchResult``.

This is what ``nasprof search`` runs. It resolves and checks every name *before* the loop starts, so a
wrong predictor or option fails in milliseconds with a message, not after a long search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nasprof.errors import InputError, PredictorError
from nasprof.search.constraints import MemoryConstraint
from nasprof.search.evaluate import Evaluator
from nasprof.search.proxies import AccuracyProxy, CallableProxy, get_proxy
from nasprof.search.rewards import REWARD_PRESETS, Reward
from nasprof.search.runner import DEFAULT_BATCH, SearchResult, run_search
from nasprof.search.strategies import get_strategy

__all__ = ["search", "make_reward", "predictor_space", "check_predictor_space", "export_best_arch"]


def make_reward(
    target_ms: float, preset: str = "soft", alpha: float | None = None, beta: float | None = None
) -> Reward:
    """A preset reward, with ``alpha``/``beta`` overriding the preset's exponents when given."""
    if preset not in REWARD_PRESETS:
        raise InputError(f"unknown reward {preset!r}: use one of {', '.join(REWARD_PRESETS)}")
    a, b = REWARD_PRESETS[preset]
    return Reward(target_ms=target_ms, alpha=a if alpha is None else alpha, beta=b if beta is None else beta)


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
    budget: int,
    seed: int = 0,
    reward: str = "soft",
    alpha: float | None = None,
    beta: float | None = None,
    proxy: str | AccuracyProxy | Callable[[Any], float] = "macs",
    strategy: str = "evolution",
    device: str | None = None,
    resolution: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    strategy_options: Mapping[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    state: str | Path | None = None,
) -> SearchResult:
    """Search ``space`` (a name or a ``Space``) for the best reward under ``target_ms``.

    ``predictor``: a predictor file, a ``Predictor``, or any object with ``predict_many``; ``proxy``:
    ``macs``, ``naswot``, an ``AccuracyProxy`` or a callable ``arch -> accuracy``; ``device``: a
    microcontroller board whose SRAM/Flash become hard constraints; ``resolution``: of the sampled
    architectures (default: the predictor's, else the space's). Raises ``InputError`` or ``PredictorError``
    on bad input.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InputError(f"--budget must be a positive number of candidates, got {budget!r}")
    rew = make_reward(target_ms, reward, alpha, beta)
    if isinstance(space, str):
        from nasprof.space import get_space

        space = get_space(space)
    space_name = str(space.name)
    source = str(predictor) if isinstance(predictor, (str, Path)) else "predictor"
    model = _load_predictor(predictor)
    check_predictor_space(model, space_name, source)
    constraint = MemoryConstraint.for_device(device) if device else None
    acc = _make_proxy(proxy)
    evaluator = Evaluator(model, acc, rew, constraint)
    # A lookup table holds one resolution: sample there unless told otherwise (a mismatch then fails
    # in the predictor with a message naming both resolutions).
    if resolution is None:
        resolution = getattr(model, "resolution", None)
    strat = get_strategy(strategy, space, seed=seed, resolution=resolution, **dict(strategy_options or {}))
    if state is not None and not hasattr(strat, "resume"):
        raise InputError(
            f"--strategy-state keeps a learning controller's state; {strategy!r} has none (use rl)"
        )
    if state is not None and Path(state).exists():
        strat.resume(state)  # type: ignore[attr-defined]
    batch = min(batch_size, acc.max_batch)
    result = run_search(
        strat, evaluator, budget, batch_size=batch, space_name=space_name, on_progress=on_progress
    )
    if state is not None:
        strat.save(state)  # type: ignore[attr-defined]
    return result


def export_best_arch(result: SearchResult, path: str | Path) -> Path:
    """Export the best feasible architecture of ``result`` to ONNX (torch, through ``nasprof.space``)."""
    from nasprof.space import Arch, export_arch

    best = result.best
    if best is None:
        raise InputError("no feasible architecture to export")
    return Path(export_arch(Arch.from_string(best.arch), Path(path)))
