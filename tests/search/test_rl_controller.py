"""MnasNet's RL controller (LSTM + PPO) on real spaces with a LUT predictor: seeded, learning, resumable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasprof.errors import InputError
from nasprof.predictors import LutPredictor
from nasprof.search import Evaluator, MacsProxy, Reward, get_strategy, run_search
from nasprof.search.strategies.rl import RLController
from nasprof.space import get_space

RES = 96


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    entries = {layer.key: 0.01 + layer.macs / 1e7 for layer in get_space("mnasnet").distinct_layers(RES)}
    lut = LutPredictor(entries, space="mnasnet", resolution=RES, device="synthetic")
    return Evaluator(lut, MacsProxy(), Reward.preset("hard", 6.0))


def _controller(seed: int = 0, space: str = "mnasnet") -> RLController:
    strat = get_strategy("rl", get_space(space), seed=seed, resolution=RES)
    assert isinstance(strat, RLController)
    return strat


def test_same_seed_same_proposals_and_training(evaluator: Evaluator) -> None:
    runs = [run_search(_controller(3), evaluator, budget=100, batch_size=50) for _ in range(2)]
    assert runs[0].archs == runs[1].archs
    assert runs[0].archs != run_search(_controller(4), evaluator, budget=50, batch_size=50).archs


def test_ppo_learns_the_reward(evaluator: Evaluator) -> None:
    """Hard reward at 6 ms (best: most MACs under the target): after 15 PPO updates the controller's
    proposals score above its first, nearly uniform batch."""
    res = run_search(_controller(1), evaluator, budget=1600, batch_size=100)
    reward = res.scores.reward
    assert np.median(reward[-200:]) > np.median(reward[:100])


def test_inactive_decisions_get_no_credit() -> None:
    """mobilenetv2: layers past a stage's sampled depth are not part of the architecture, so their
    tokens are masked out of the log-probability PPO raises or lowers."""
    strat = _controller(0, "mobilenetv2")
    archs = strat.ask(30)
    assert strat._pending is not None
    tokens, mask, _ = strat._pending
    names = strat.names
    for b, arch in enumerate(archs):
        active = {n for n, m in zip(names, mask[b].tolist(), strict=True) if m}
        assert active == set(get_space("mobilenetv2").params(arch))


def test_state_saves_and_resumes_exactly(evaluator: Evaluator, tmp_path: Path) -> None:
    a = _controller(2)
    for _ in range(2):
        batch = a.ask(40)
        a.tell(batch, evaluator(batch))
    path = a.save(tmp_path / "rl.json")
    json.loads(path.read_text())  # plain JSON, no pickle
    b = _controller(2)
    b.resume(path)
    assert b.ask(40) == a.ask(40)
    assert b.baseline == a.baseline and b.updates == a.updates == 2


def test_resume_refuses_another_space_seed_or_a_corrupt_file(tmp_path: Path) -> None:
    path = _controller(2).save(tmp_path / "rl.json")
    with pytest.raises(InputError, match="seed 2; this search is space 'mnasnet' with seed 5"):
        _controller(5).resume(path)
    with pytest.raises(InputError, match="space 'mnasnet'"):
        _controller(2, "mobilenetv2").resume(path)
    doc = json.loads(path.read_text())
    doc["weights"]["lstm.weight_ih_l0"] = [[1.0]]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"key 'weights.lstm.weight_ih_l0' has shape \(1, 1\), expected"):
        _controller(2).resume(path)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(InputError, match="junk.json is not valid JSON"):
        _controller(2).resume(tmp_path / "junk.json")


def test_bad_hyperparameters_are_refused() -> None:
    with pytest.raises(InputError, match="learning rate"):
        get_strategy("rl", get_space("mnasnet"), lr=float("nan"))
    with pytest.raises(InputError, match="PPO clip"):
        get_strategy("rl", get_space("mnasnet"), clip=1.5)


def test_strategies_import_without_torch() -> None:
    code = (
        "import sys\n"
        "from nasprof.search import get_strategy, STRATEGIES\n"
        "assert {'rl', 'tpe', 'nsga2', 'evolution'} <= set(STRATEGIES)\n"
        "assert 'torch' not in sys.modules and 'optuna' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
