"""The integer-genotype search path: the same candidates and scores as the architecture path, faster."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from nasprof.errors import InputError, PredictorError
from nasprof.predictors.lut.predictor import LutPredictor
from nasprof.search import Evaluator, MacsProxy, Reward, get_strategy, run_search
from nasprof.search.runner import DecodedArchs
from nasprof.search.strategies.evolution import _winner_rank_cdf
from nasprof.space import get_space

RES = 128


def _lut(space: str) -> LutPredictor:
    entries = {layer.key: 0.01 + layer.macs / 1e7 for layer in get_space(space).distinct_layers(RES)}
    return LutPredictor(entries, space=space, resolution=RES, overhead_ms=0.005, device="synthetic")


@pytest.mark.parametrize("name", ["mnasnet", "mobilenetv2"])
def test_predict_codes_equals_predict_many(name: str) -> None:
    lut = _lut(name)
    gt = get_space(name).genotypes()
    codes = gt.sample(400, np.random.default_rng(0))
    np.testing.assert_allclose(
        lut.predict_codes(codes), lut.predict_many(gt.decode(codes, RES)), rtol=0, atol=1e-9
    )


def test_a_missing_table_key_fails_as_on_the_architecture_path() -> None:
    lut = _lut("mnasnet")
    gt = get_space("mnasnet").genotypes()
    codes = gt.sample(50, np.random.default_rng(1))
    arch = gt.decode(codes[:1], RES)[0]
    key = arch.layers()[3].key
    partial = LutPredictor({k: v for k, v in lut.entries.items() if k != key}, space="mnasnet",
                           resolution=RES, overhead_ms=0.005, device="synthetic")
    with pytest.raises(PredictorError, match="no entry for"):
        partial.predict_codes(codes)
    with pytest.raises(PredictorError, match="records no search space"):
        LutPredictor(dict(lut.entries), device="synthetic").predict_codes(codes)


def _pair(name: str, strategy: str, budget: int, target: float) -> tuple:
    lut = _lut(name)
    reward = Reward.preset("hard", target)
    space = get_space(name)
    fast = run_search(get_strategy(strategy, space, seed=4, resolution=RES),
                      Evaluator(lut, MacsProxy(), reward), budget)
    # A plain callable is not a lookup table: this search builds and scores architecture objects.
    slow = run_search(get_strategy(strategy, space, seed=4, resolution=RES),
                      Evaluator(lambda archs: lut.predict_many(archs), MacsProxy(), reward), budget)
    return fast, slow


@pytest.mark.parametrize(("name", "strategy"), [("mnasnet", "random"), ("mobilenetv2", "random"),
                                                ("mnasnet", "evolution"), ("regnet", "evolution")])
def test_both_paths_propose_and_score_the_same_candidates(name: str, strategy: str) -> None:
    fast, slow = _pair(name, strategy, 700, target=1.5)
    assert isinstance(fast.archs, DecodedArchs) and isinstance(slow.archs, tuple)
    assert list(fast.archs) == list(slow.archs)
    np.testing.assert_allclose(fast.scores.latency_ms, slow.scores.latency_ms, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(fast.scores.macs, slow.scores.macs)
    np.testing.assert_allclose(fast.scores.reward, slow.scores.reward, rtol=1e-12)
    assert fast.best is not None and fast.best.arch == slow.best.arch  # type: ignore[union-attr]
    assert [c["arch"] for c in fast.to_dict()["top"]] == [c["arch"] for c in slow.to_dict()["top"]]


def test_decoded_archs_behave_like_a_tuple_of_strings() -> None:
    fast, slow = _pair("mnasnet", "random", 40, target=1.5)
    archs = fast.archs
    assert len(archs) == 40
    assert archs[-1] == slow.archs[-1] and archs[3:6] == list(slow.archs[3:6])
    assert archs == list(slow.archs) and archs == fast.archs
    with pytest.raises(IndexError):
        archs[40]


def test_tournament_winner_ranks_follow_the_exact_distribution() -> None:
    for p, s in [(100, 25), (10, 3), (7, 7), (5, 1)]:
        pmf = [comb(p - 1 - r, s - 1) / comb(p, s) for r in range(p - s + 1)]
        np.testing.assert_allclose(_winner_rank_cdf(p, s), np.cumsum(pmf), rtol=0, atol=1e-12)


def test_evolution_on_codes_ages_out_the_oldest() -> None:
    lut = _lut("mnasnet")
    ev = Evaluator(lut, MacsProxy(), Reward.preset("hard", 1.5))
    layout = get_space("mnasnet").chain_layout(RES)
    evo = get_strategy("evolution", get_space("mnasnet"), seed=0, resolution=RES, population_size=10,
                       sample_size=3, max_batch=4)
    first = evo.ask_codes(64)
    assert len(first) == 10
    evo.tell_codes(first, ev.score_codes(first, layout))
    children = evo.ask_codes(64)
    assert len(children) == 4
    evo.tell_codes(children, ev.score_codes(children, layout))
    members = [a.to_string() for a, _ in evo.population]
    expected = get_space("mnasnet").genotypes().decode(np.concatenate([first[4:], children]), RES)
    assert members == [a.to_string() for a in expected]
    with pytest.raises(InputError, match="told 3 scores for 4"):
        evo.tell_codes(children, ev.score_codes(children[:3], layout))


def test_codes_need_a_lookup_table_and_a_macs_proxy() -> None:
    ev = Evaluator(lambda archs: np.ones(len(archs)), MacsProxy(), Reward.preset("hard", 1.5))
    assert not ev.scores_codes
    layout = get_space("mnasnet").chain_layout(RES)
    with pytest.raises(InputError, match="lookup-table predictor"):
        ev.score_codes(get_space("mnasnet").genotypes().sample(2, np.random.default_rng()), layout)
