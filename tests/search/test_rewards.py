"""MnasNet reward: values computed by hand from ACC · (LAT/T)^w."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasprof.errors import InputError
from nasprof.search.rewards import Reward, mnasnet_reward


def test_hard_reward_exact_values() -> None:
    r = Reward.preset("hard", target_ms=80.0)
    assert (r.alpha, r.beta) == (0.0, -1.0)
    # below or at the target: (LAT/T)^0 = 1; above: ACC * T / LAT
    assert r(0.75, 40.0) == 0.75
    assert r(0.75, 80.0) == 0.75
    assert r(0.75, 160.0) == 0.375
    assert r(0.6, 120.0) == pytest.approx(0.4, rel=1e-15)


def test_soft_reward_matches_hand_computation() -> None:
    r = Reward.preset("soft", target_ms=80.0)
    two_pow = math.exp(0.07 * math.log(2.0))  # 2^0.07 = 1.0497166836...
    assert r(0.75, 40.0) == pytest.approx(0.75 * two_pow, rel=1e-12)
    assert r(0.75, 40.0) == pytest.approx(0.787287512, rel=1e-9)
    assert r(0.75, 160.0) == pytest.approx(0.75 / two_pow, rel=1e-12)
    assert r(0.75, 80.0) == 0.75
    # the paper's reading: doubling latency costs ~5% relative accuracy (2^-0.07 = 0.9526)
    assert r(1.0, 160.0) / r(1.0, 80.0) == pytest.approx(0.952638, abs=1e-6)


def test_custom_exponents_and_vectorised_form() -> None:
    r = Reward(target_ms=10.0, alpha=-0.5, beta=-2.0)
    assert r.name == "custom"
    acc = np.array([0.5, 0.5, 0.8])
    lat = np.array([2.5, 10.0, 20.0])
    out = r(acc, lat)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [0.5 * 0.25**-0.5, 0.5, 0.8 * 2.0**-2], rtol=1e-15)
    assert out.tolist() == [1.0, 0.5, 0.2]
    # the functional form agrees with the object
    np.testing.assert_array_equal(mnasnet_reward(acc, lat, target_ms=10.0, alpha=-0.5, beta=-2.0), out)


def test_infeasible_candidates_get_minus_infinity() -> None:
    r = Reward.preset("hard", target_ms=10.0)
    out = r([0.5, 0.9, 0.0], [5.0, 5.0, 5.0], feasible=[True, False, True])
    assert out[0] == 0.5
    assert out[1] == -math.inf
    assert out[2] == 0.0  # a feasible zero still beats an infeasible candidate
    assert np.argmax(out) == 0


@pytest.mark.parametrize("target", [0, -1.0, float("nan"), float("inf"), "abc"])
def test_target_must_be_positive(target: object) -> None:
    with pytest.raises(InputError, match="--target-ms"):
        Reward.preset("soft", target_ms=target)  # type: ignore[arg-type]


def test_bad_latency_accuracy_and_names() -> None:
    r = Reward.preset("soft", target_ms=10.0)
    with pytest.raises(InputError, match="positive finite"):
        r(0.5, 0.0)
    with pytest.raises(InputError, match=">= 0"):
        r(-0.1, 5.0)
    with pytest.raises(InputError, match="unknown reward 'medium'"):
        Reward.preset("medium", 10.0)
    with pytest.raises(InputError, match="--alpha"):
        Reward(target_ms=10.0, alpha=float("nan"))
    with pytest.raises(InputError, match="--beta must be <= 0"):
        Reward(target_ms=10.0, beta=1.0)  # would make every model above the target better the slower it is
    assert Reward.preset("hard", 5.0).to_dict() == {
        "name": "hard",
        "alpha": 0.0,
        "beta": -1.0,
        "target_ms": 5.0,
    }
