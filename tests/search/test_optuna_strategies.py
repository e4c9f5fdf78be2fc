"""Optuna's samplers over the real spaces' named decisions, and the decisions' exact inverse."""

from __future__ import annotations

import numpy as np
import pytest

from nasprof.errors import SpaceError
from nasprof.predictors import LutPredictor
from nasprof.search import Evaluator, MacsProxy, Reward, get_strategy, run_search
from nasprof.space import Arch, get_space

RES = 96


def _lut(space: str) -> LutPredictor:
    entries = {layer.key: 0.01 + layer.macs / 1e7 for layer in get_space(space).distinct_layers(RES)}
    return LutPredictor(entries, space=space, resolution=RES, device="synthetic")


@pytest.fixture(scope="module")
def luts() -> dict[str, LutPredictor]:
    return {name: _lut(name) for name in ("mnasnet", "mobilenetv2")}


@pytest.mark.parametrize("name", ["mnasnet", "mobilenetv2"])
def test_params_are_an_exact_inverse(name: str) -> None:
    space = get_space(name)
    names = [n for n, _ in space.decisions()]
    assert len(names) == len(set(names))
    for arch in space.sample(300, seed=4, resolution=RES):
        params = space.params(arch)
        assert set(params) <= set(names)
        assert space.from_params(params, arch.resolution, arch.width) == arch
        assert all(isinstance(v, (int, float, str)) for v in params.values())  # Optuna categorical types


def test_mobilenetv2_asks_only_the_layers_that_exist() -> None:
    space = get_space("mobilenetv2")
    asked: list[str] = []

    def ask(name: str, values: tuple) -> object:
        asked.append(name)
        return values[0]  # depth 2 everywhere, kernel 3, expand 3

    arch = space.build(ask, RES)
    assert [s.depth for s in arch.blocks] == [2, 2, 2, 2, 2, 1]
    assert "s0.l2.kernel" not in asked and "s0.l1.kernel" in asked
    # Inactive decisions given anyway (a fixed-length vector) are ignored, not refused.
    params = dict(space.params(arch), **{"s0.l3.kernel": 7})
    assert space.from_params(params, RES) == arch


def test_bad_params_are_refused_with_what_is_allowed() -> None:
    space = get_space("mnasnet")
    params = space.params(space.sample(1, seed=0)[0])
    with pytest.raises(SpaceError, match="no decision named 'b9.op'"):
        space.from_params({**params, "b9.op": "mb6"})
    with pytest.raises(SpaceError, match="'b0.kernel' is 4; allowed: 3, 5"):
        space.from_params({**params, "b0.kernel": 4})
    with pytest.raises(SpaceError, match="lack the decision 'b0.op'"):
        space.from_params({k: v for k, v in params.items() if k != "b0.op"})
    with pytest.raises(SpaceError, match="allowed"):
        space.from_params({**params, "b0.layers": True})  # a bool is not the integer 1


def _run(strategy: str, space: str, luts: dict[str, LutPredictor], seed: int, budget: int = 120) -> object:
    evaluator = Evaluator(luts[space], MacsProxy(), Reward.preset("hard", 6.0))
    strat = get_strategy(strategy, get_space(space), seed=seed, resolution=RES)
    return run_search(strat, evaluator, budget=budget, batch_size=20)


@pytest.mark.parametrize(
    ("strategy", "space"),
    [("tpe", "mnasnet"), ("tpe", "mobilenetv2"), ("nsga2", "mnasnet"), ("cmaes", "mobilenetv2"),
     ("qmc", "mnasnet")],
)
def test_optuna_strategies_are_seeded_and_propose_valid_archs(
    strategy: str, space: str, luts: dict[str, LutPredictor]
) -> None:
    a, b = (_run(strategy, space, luts, seed=5, budget=40) for _ in range(2))
    assert a.archs == b.archs  # type: ignore[attr-defined]
    sp = get_space(space)
    for text in a.archs:  # type: ignore[attr-defined]
        arch = Arch.from_string(text)
        sp.validate(arch)
        assert arch.resolution == RES
    assert a.evaluated == 40 and a.strategy == strategy  # type: ignore[attr-defined]


def test_tpe_learns_from_the_reward(luts: dict[str, LutPredictor]) -> None:
    """Hard reward at 6 ms: TPE's later proposals score better than its random start (10 trials)."""
    res = _run("tpe", "mnasnet", luts, seed=1, budget=100)
    reward = res.scores.reward  # type: ignore[attr-defined]
    assert np.median(reward[-40:]) > np.median(reward[:10])


def test_nsga2_sees_two_objectives(luts: dict[str, LutPredictor]) -> None:
    strat = get_strategy("nsga2", get_space("mnasnet"), seed=0, resolution=RES, population_size=10)
    evaluator = Evaluator(luts["mnasnet"], MacsProxy(), Reward.preset("soft", 6.0))
    run_search(strat, evaluator, budget=40, batch_size=10)
    trials = strat.study.trials  # type: ignore[attr-defined]
    assert len(trials) == 40 and all(len(t.values) == 2 for t in trials)
    front = strat.study.best_trials  # type: ignore[attr-defined]
    assert front and all(t.user_attrs["constraint"] == [0.0] or t.user_attrs["constraint"] == (0.0,)
                         for t in front)
