"""Strategies and the search loop on a toy space (the real spaces are exercised in test_cli.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from search_toy import ToySpace, toy_latency

from nasprof.errors import InputError
from nasprof.search import (
    Evaluator,
    MacsProxy,
    RandomSearch,
    RegularizedEvolution,
    Reward,
    get_strategy,
    run_search,
)


def _evaluator(target_ms: float = 1.0, reward: str = "hard") -> Evaluator:
    return Evaluator(toy_latency, MacsProxy(), Reward.preset(reward, target_ms))


@pytest.mark.parametrize("name", ["evolution", "random"])
def test_same_seed_same_result(name: str) -> None:
    runs = [run_search(get_strategy(name, ToySpace(), seed=7), _evaluator(), budget=300) for _ in range(2)]
    other = run_search(get_strategy(name, ToySpace(), seed=8), _evaluator(), budget=300)
    assert runs[0].archs == runs[1].archs
    np.testing.assert_array_equal(runs[0].scores.reward, runs[1].scores.reward)
    assert runs[0].best == runs[1].best
    assert runs[0].archs != other.archs
    assert runs[0].evaluated == 300


def test_evolution_ages_out_the_oldest_and_breeds_after_filling() -> None:
    evo = RegularizedEvolution(ToySpace(), seed=0, population_size=10, sample_size=3, max_batch=4)
    ev = _evaluator()
    first = evo.ask(64)
    assert len(first) == 10  # fills the population with random archs first
    evo.tell(first, ev(first))
    children = evo.ask(64)
    assert len(children) == 4  # then at most max_batch children per ask
    evo.tell(children, ev(children))
    members = [a for a, _ in evo.population]
    assert members == first[4:] + children  # the 4 oldest left, whatever their reward


def test_evolution_beats_random_on_average() -> None:
    # hard reward, target 1.0 ms: best = most MACs under 1 ms. Compare the mean reward of the last 100
    # candidates: evolution concentrates near the optimum, random search does not.
    evo = run_search(
        RegularizedEvolution(ToySpace(), seed=3, population_size=40, sample_size=10), _evaluator(), budget=600
    )
    rnd = run_search(RandomSearch(ToySpace(), seed=3), _evaluator(), budget=600)
    assert evo.scores.reward[-100:].mean() > rnd.scores.reward[-100:].mean()


def test_result_views() -> None:
    res = run_search(RandomSearch(ToySpace(), seed=1), _evaluator(), budget=200, batch_size=64)
    best = res.best
    assert best is not None
    assert best.reward == res.scores.reward.max()
    top = res.top(5)
    assert [c.reward for c in top] == sorted((c.reward for c in top), reverse=True)
    assert len({c.arch for c in top}) == len(top)
    front = res.pareto
    assert [c.latency_ms for c in front] == sorted(c.latency_ms for c in front)
    doc = res.to_dict()
    assert doc["evaluated"] == 200 and doc["seed"] == 1
    assert doc["reward"] == {"name": "hard", "alpha": 0.0, "beta": -1.0, "target_ms": 1.0}
    assert set(doc["pareto"][0]) >= {"arch", "latency_ms", "accuracy", "reward", "macs"}
    # the toy arch with one width-8 block: 64 MACs, 0.1 + 0.064 ms; log10(64) accuracy
    c = next(c for i in range(res.evaluated) if (c := res.candidate(i)).arch == "8")
    assert (c.macs, c.latency_ms, c.accuracy) == (64, pytest.approx(0.164), pytest.approx(math.log10(64)))


def test_progress_callback_and_bad_budget() -> None:
    seen: list[tuple[int, int]] = []
    run_search(
        RandomSearch(ToySpace(), seed=0),
        _evaluator(),
        budget=10,
        batch_size=4,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(4, 10), (8, 10), (10, 10)]
    with pytest.raises(InputError, match="--budget"):
        run_search(RandomSearch(ToySpace(), seed=0), _evaluator(), budget=0)
    with pytest.raises(InputError, match="unknown strategy"):
        get_strategy("annealing", ToySpace())
    with pytest.raises(InputError, match="tournament size"):
        RegularizedEvolution(ToySpace(), population_size=10, sample_size=11)
