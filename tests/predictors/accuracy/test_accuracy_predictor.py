"""`nasprof predictor fit --accuracy`: a one-hot accuracy predictor, validated on held-out pairs, stored as
plain JSON (never pickled). Synthetic NB201 pairs: an additive accuracy plus noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nasprof.cli import app
from nasprof.errors import InputError, PredictorError, SchemaError
from nasprof.predictors.accuracy import AccuracyPredictor, fit_accuracy_predictor
from nasprof.space import get_space

WEIGHT = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 3.0, "nor_conv_3x3": 4.0, "avg_pool_3x3": 0.5}


def pairs(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    archs = get_space("nb201").sample(n, seed=seed)
    rng = np.random.default_rng(seed)
    y = np.array([50 + sum(WEIGHT[o] * (1 + 0.2 * i) for i, o in enumerate(a.blocks)) for a in archs])
    return [a.to_string() for a in archs], y + rng.normal(0, 0.3, n)


def test_fit_validate_save_and_load(tmp_path: Path) -> None:
    texts, y = pairs(200)
    p = fit_accuracy_predictor((texts, y), model="ridge", seed=1)
    v = p.validation
    assert v["n_train"] == 160 and v["n_test"] == 40 and v["kendall_tau"] > 0.8 and v["spearman_rho"] > 0.9
    path = p.save(tmp_path / "acc.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "nasprof.accuracy_predictor" and doc["schema_version"] == 1
    assert doc["kind"] == "onehot-ridge" and doc["space"] == "nb201" and len(doc["model"]["coef"]) == 30
    q = AccuracyPredictor.load(path)
    archs = get_space("nb201").sample(25, seed=9)
    assert np.array_equal(q.predict_many(archs), p.predict_many(archs))
    forest = fit_accuracy_predictor((texts, y), model="forest")
    f2 = AccuracyPredictor.from_dict(json.loads(json.dumps(forest.to_dict())))
    assert np.array_equal(f2.predict_many(archs), forest.predict_many(archs))  # bit-identical trees
    assert forest.kind == "onehot-forest" and forest.validation["kendall_tau"] > 0.5


def test_cli_prints_the_held_out_ranking(tmp_path: Path) -> None:
    texts, y = pairs(120, seed=3)
    csv = tmp_path / "pairs.csv"
    csv.write_text("architecture,accuracy\n" + "".join(f"{t},{v}\n" for t, v in zip(texts, y, strict=True)))
    out = tmp_path / "acc.json"
    res = CliRunner().invoke(app, ["predictor", "fit", "--accuracy", str(csv), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "Kendall τ" in res.stdout and "Spearman ρ" in res.stdout and "24 held-out pairs" in res.stdout
    doc = json.loads(out.read_text())
    assert doc["trained_on"]["pairs"] == 120 and len(doc["trained_on"]["sha256"]) == 64
    assert doc["validation"]["model_choice"]["chosen"] in ("ridge", "forest")


def test_bad_pairs_and_files(tmp_path: Path) -> None:
    texts, y = pairs(20)
    y[3] = np.nan
    with pytest.raises(InputError, match="not numbers"):
        fit_accuracy_predictor((texts, y))
    with pytest.raises(InputError, match="too few"):
        fit_accuracy_predictor((texts[:5], np.ones(5)))
    csv = tmp_path / "bad.csv"
    csv.write_text("arch,accuracy\nnot-an-arch,3\n" + "".join(f"{t},1\n" for t in texts))
    res = CliRunner().invoke(app, ["predictor", "fit", "--accuracy", str(csv), "-o",
                                   str(tmp_path / "o.json")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    good = fit_accuracy_predictor(pairs(30)).to_dict()
    with pytest.raises(SchemaError, match="newer"):
        AccuracyPredictor.from_dict({**good, "schema_version": 99})
    with pytest.raises(PredictorError, match="not a nasprof accuracy predictor"):
        AccuracyPredictor.from_dict({**good, "format": "pickle"})
    with pytest.raises(PredictorError, match="corrupt ridge"):
        AccuracyPredictor.from_dict({**good, "model": {"type": "ridge", "coef": [1.0], "intercept": 0.0}})
    with pytest.raises(PredictorError, match="not 'mnasnet'"):
        AccuracyPredictor.from_dict(good).check_space("mnasnet")
