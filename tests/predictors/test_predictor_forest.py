"""JSON forests: a round trip through the file format predicts exactly what scikit-learn predicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

from nasprof.errors import PredictorError
from nasprof.predictors.forest import ForestBank, TreeEnsemble, forest_to_dict


@pytest.mark.parametrize("cls", [RandomForestRegressor, ExtraTreesRegressor])
def test_round_trip_is_bit_identical(cls: type) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((200, 4)) * np.array([224, 1280, 7, 1e8])
    y = np.log1p(x[:, 0] * x[:, 1]) + rng.random(200)
    model = cls(n_estimators=20, random_state=0).fit(x, y)
    ens = TreeEnsemble.from_dict(json.loads(json.dumps(forest_to_dict(model))))
    x_new = rng.random((500, 4)) * np.array([300, 1500, 9, 2e8])  # also outside the training range
    assert np.array_equal(ens.predict(x_new), model.predict(x_new))
    assert ens.n_trees == 20


def test_wrong_feature_count() -> None:
    model = RandomForestRegressor(n_estimators=2, random_state=0).fit(np.eye(3), [1.0, 2.0, 3.0])
    ens = TreeEnsemble.from_dict(forest_to_dict(model))
    with pytest.raises(PredictorError, match="expected 3 features"):
        ens.predict(np.zeros((1, 2)))


def test_corrupt_tree_is_refused() -> None:
    model = RandomForestRegressor(n_estimators=2, random_state=0).fit(np.eye(3), [1.0, 2.0, 3.0])
    d = forest_to_dict(model)
    d["trees"][0]["left"][0] = 999  # child index out of range
    with pytest.raises(PredictorError, match="out of range"):
        TreeEnsemble.from_dict(d)
    d = forest_to_dict(model)
    del d["trees"][1]["value"]
    with pytest.raises(PredictorError, match="corrupt tree ensemble"):
        TreeEnsemble.from_dict(d)


def test_forest_bank_is_bit_identical_to_each_ensemble() -> None:
    """Ensembles of different sizes and depths walked together give each row its own ensemble's mean."""
    rng = np.random.default_rng(1)
    x = rng.random((300, 5)) * np.array([224, 1280, 7, 1e8, 3])
    ensembles = []
    for i, (n, depth) in enumerate([(20, None), (7, 3), (1, 1), (12, 8)]):
        y = np.sin(x[:, i]) + rng.random(300)
        model = RandomForestRegressor(n_estimators=n, max_depth=depth, random_state=i).fit(x, y)
        ensembles.append(TreeEnsemble.from_dict(forest_to_dict(model)))
    bank = ForestBank(ensembles)
    x_new = rng.random((400, 5)) * np.array([300, 1500, 9, 2e8, 4])
    which = rng.integers(0, len(ensembles), 400)
    got = bank.predict(x_new, which)
    for i, ens in enumerate(ensembles):
        assert np.array_equal(got[which == i], ens.predict(x_new[which == i]))
    assert bank.predict(np.zeros((0, 5)), np.zeros(0)).shape == (0,)
    with pytest.raises(PredictorError, match="expected 5 features"):
        bank.predict(np.zeros((1, 4)), np.zeros(1))
