"""Regret against the truth: the true constrained optimum, the pick's true accuracy and latency, points,
and the 2-D hypervolume the benchmark compares fronts with. Hand-made figures only."""

from __future__ import annotations

import numpy as np
import pytest

from nasprof.errors import InputError
from nasprof.search.accuracy import TableAccuracy
from nasprof.search.regret import Truth, hypervolume, points_scale, regret_report
from nasprof.space import get_space

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
B = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|"
C = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
# isomorphic to C: the edges into node 1 and 2 feed nothing that reaches node 3
C_ISO = "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|none~2|"


@pytest.fixture
def truth() -> Truth:
    space = get_space("nb201")
    table = TableAccuracy({A: 0.72, B: 0.69, C: 0.40}, space)
    return Truth.build({A: 9.0, B: 4.0, C: 1.0}, table, space, label="toy")


def test_optimum_regret_and_over_target(truth: Truth) -> None:
    space = get_space("nb201")
    assert truth.scale == 100.0  # a fraction: points are x 100
    r = regret_report(space.arch(C), truth, 5.0, space)
    assert r["optimum"] == {"arch": B, "accuracy": 0.69, "latency_ms": 4.0}
    assert r["returned"]["over_target"] is False and r["feasible_networks"] == 2
    assert r["regret_points"] == pytest.approx(29.0)
    over = regret_report(space.arch(A), truth, 5.0, space)
    assert over["returned"]["over_target"] is True and over["regret_points"] == pytest.approx(-3.0)
    iso = regret_report(space.arch(C_ISO), truth, 5.0, space)  # found by its isomorphism class
    assert iso["returned"]["accuracy"] == 0.40 and iso["returned"]["arch"] == C_ISO
    assert regret_report(None, truth, 5.0, space)["returned"] is None
    none = regret_report(space.arch(C), truth, 0.5, space)
    assert none["optimum"] is None and none["regret_points"] is None


def test_minimized_metrics_and_incomplete_tables() -> None:
    space = get_space("nb201")
    errors = TableAccuracy({A: 12.0, B: 20.0, C: 55.0}, space, minimize=True)
    t = Truth.build({A: 9.0, B: 4.0, C: 1.0}, errors, space)
    assert t.scale == 1.0
    r = regret_report(space.arch(C), t, 5.0, space)
    assert r["optimum"]["arch"] == B and r["regret_points"] == pytest.approx(35.0)
    with pytest.raises(InputError, match="lacks 1 of the 3 networks"):
        Truth.build({A: 9.0, B: 4.0, C: 1.0}, TableAccuracy({A: 1.0, B: 2.0}, space), space)


def test_points_scale_and_hypervolume() -> None:
    assert points_scale([0.5, 0.9, 0.7]) == 100.0 and points_scale([55.0, 71.2]) == 1.0
    # two points, reference (10 ms, quality 0): 8 x 5 + (10 - 6) x (7 - 5)
    assert hypervolume([2.0, 6.0], [5.0, 7.0], 10.0, 0.0) == pytest.approx(48.0)
    # a dominated point adds nothing; points outside the box are ignored
    assert hypervolume([2.0, 6.0, 7.0, 12.0], [5.0, 7.0, 6.0, 9.0], 10.0, 0.0) == pytest.approx(48.0)
    assert hypervolume(np.array([]), np.array([]), 10.0, 0.0) == 0.0
