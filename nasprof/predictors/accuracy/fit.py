"""Fitting an ``AccuracyPredictor`` from (architecture, accuracy) pairs, validated on held-out pairs.

The pairs are split once (``holdout``, seeded): the model is chosen and fitted on the training part only,
and Kendall's τ, Spearman's ρ and the RMSE reported in the file are those of the held-out part, so they
describe the saved model. ``model="auto"`` picks ridge or forest by 5-fold Kendall τ on the training part:
with ~100 pairs the additive ridge fit ranks NAS-Bench-201 better, with ~300 the forest does (it sees that
a ``none`` edge cuts what follows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import InputError
from nasprof.predictors.accuracy.predictor import MODEL_TYPES, AccuracyPredictor, OneHotEncoding

__all__ = ["fit_accuracy_predictor", "detect_space"]

#: Fewest pairs worth fitting on (8 to train, 2 held out at the least).
MIN_PAIRS = 10
RIDGE_ALPHA = 1.0


def detect_space(text: str) -> str:
    """The space an architecture text belongs to: nb201 for NB201's own strings, else its ``SPACE:``
    prefix."""
    t = text.strip()
    if t.startswith("|") and "~" in t:
        return "nb201"
    if ":" in t:
        return t.split(":", 1)[0]
    raise InputError(f"cannot tell the space of {t[:60]!r}: give NB201 strings or nasprof strings "
                     "(SPACE:...)")


def _fit_model(kind: str, x: NDArray[np.float64], y: NDArray[np.float64], seed: int) -> dict[str, Any]:
    if kind == "ridge":
        from sklearn.linear_model import Ridge

        m = Ridge(alpha=RIDGE_ALPHA).fit(x, y)
        return {"type": "ridge", "alpha": RIDGE_ALPHA, "coef": [float(v) for v in m.coef_],
                "intercept": float(m.intercept_)}
    from sklearn.ensemble import RandomForestRegressor

    from nasprof.predictors.forest import forest_to_dict

    m = RandomForestRegressor(n_estimators=100, min_samples_leaf=1, random_state=seed, n_jobs=1).fit(x, y)
    return {"type": "forest", "n_estimators": 100, **forest_to_dict(m)}


def _predict(doc: dict[str, Any], x: NDArray[np.float64]) -> NDArray[np.float64]:
    if doc["type"] == "ridge":
        return x @ np.asarray(doc["coef"]) + float(doc["intercept"])
    from nasprof.predictors.forest import TreeEnsemble

    return TreeEnsemble.from_dict(doc).predict(x)


def _tau(pred: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    from scipy.stats import kendalltau

    if np.ptp(pred) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(kendalltau(pred, y)[0])


def _choose(x: NDArray[np.float64], y: NDArray[np.float64], seed: int) -> tuple[str, dict[str, float]]:
    """The model type with the best 5-fold Kendall τ on the training pairs."""
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(len(y)), min(5, len(y) // 2))
    scores: dict[str, float] = {}
    for kind in MODEL_TYPES:
        taus = []
        for f in folds:
            train = np.setdiff1d(np.arange(len(y)), f)
            taus.append(_tau(_predict(_fit_model(kind, x[train], y[train], seed), x[f]), y[f]))
        scores[kind] = float(np.mean(taus))
    return max(MODEL_TYPES, key=lambda k: (scores[k], k == "ridge")), scores


def fit_accuracy_predictor(
    pairs: str | Path | tuple[Sequence[str], Sequence[float]],
    *,
    space: str | None = None,
    model: str = "auto",
    holdout: float = 0.2,
    seed: int = 0,
) -> AccuracyPredictor:
    """Fit on ``pairs`` (a CSV/Parquet file of architecture, accuracy; or two sequences); ``space`` is
    read from the architecture strings when not given. Raises ``InputError`` on bad pairs."""
    from scipy.stats import spearmanr

    from nasprof.space import get_space
    from nasprof.space.parse import parse_arch
    from nasprof.tables.accuracy_pairs import normalize_keys, read_accuracy_pairs

    if model not in ("auto", *MODEL_TYPES):
        raise InputError(f"unknown accuracy model {model!r}: use auto, {', '.join(MODEL_TYPES)}")
    if not 0.05 <= holdout <= 0.5:
        raise InputError(f"holdout must be a share of the pairs in [0.05, 0.5], got {holdout}")
    trained_on: dict[str, Any] = {}
    if isinstance(pairs, (str, Path)):
        path = Path(pairs)
        texts, values, column = read_accuracy_pairs(path)
        trained_on = {"source": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        where = f"accuracy pairs {path}"
    else:
        texts, values, column = list(pairs[0]), np.asarray(pairs[1], dtype=np.float64), "accuracy"
        where = "accuracy pairs"
        if len(texts) != values.size:
            raise InputError(f"{where}: {len(texts)} architectures but {values.size} accuracies")
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where}: {int(bad.sum())} accuracies are missing or not numbers (the first is row "
                         f"{i + 1})")
    if len(texts) < MIN_PAIRS:
        raise InputError(f"{where}: {len(texts)} pairs are too few to fit and validate; give at least "
                         f"{MIN_PAIRS} (a few hundred for a useful ranking)")
    space_name = space or detect_space(texts[0])
    sp = get_space(space_name)
    keys = normalize_keys(texts, sp, where)
    archs = [parse_arch(k, space_name) for k in keys]
    encoding = OneHotEncoding.for_space(sp)
    x = encoding.encode(sp, archs)
    y = values
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = max(2, int(round(holdout * len(y))))
    test, train = order[:n_test], order[n_test:]
    cv: dict[str, float] = {}
    kind = model
    if model == "auto":
        kind, cv = _choose(x[train], y[train], seed)
    doc = _fit_model(kind, x[train], y[train], seed)
    predictor = AccuracyPredictor(space=space_name, encoding=encoding, model=doc, target=column)
    pred = predictor.predict_matrix(x[test])
    rho = float(spearmanr(pred, y[test])[0]) if np.ptp(pred) > 0 and np.ptp(y[test]) > 0 else 0.0
    validation = {
        "n_train": int(train.size), "n_test": int(test.size), "holdout": holdout, "seed": seed,
        "kendall_tau": _tau(pred, y[test]), "spearman_rho": rho,
        "rmse": float(np.sqrt(np.mean((pred - y[test]) ** 2))),
        "model_choice": {"chosen": kind, **({"cv_kendall_tau": cv} if cv else {"given": True})},
    }
    trained_on["pairs"] = len(y)
    return AccuracyPredictor(space=space_name, encoding=encoding, model=doc, target=column,
                             validation=validation, trained_on=trained_on)
