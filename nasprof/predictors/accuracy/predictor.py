"""``AccuracyPredictor``: a space's architectures -> accuracy, from the one-hot encoding of their decisions.

The encoding (OFA's and BRP-NAS's): one 0/1 feature per (decision, value) of the space's named decisions
(``Space.decisions``; nb201: 6 edges × 5 operations = 30 features); a decision an architecture does not
make (a layer past its stage's depth) has all its features 0. The model on top is a ridge regression (its
coefficients) or a random forest (its trees' arrays, ``nasprof.predictors.forest``): plain JSON numbers.

File format (``schema_version`` 1)::

    {"format": "nasprof.accuracy_predictor", "schema_version": 1, "kind": "onehot-ridge" | "onehot-forest",
     "space": "nb201", "target": "accuracy", "encoding": {"decisions": [[name, [value, ...]], ...]},
     "model": {...}, "validation": {"n_train", "n_test", "kendall_tau", "spearman_rho", "rmse", ...},
     "trained_on": {"source", "sha256", "pairs"}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import PredictorError, SchemaError

__all__ = [
    "ACCURACY_PREDICTOR_FORMAT",
    "ACCURACY_PREDICTOR_SCHEMA_VERSION",
    "AccuracyPredictor",
    "OneHotEncoding",
]

ACCURACY_PREDICTOR_FORMAT = "nasprof.accuracy_predictor"
#: History: 1 — first version (one-hot encoding; ridge or forest).
ACCURACY_PREDICTOR_SCHEMA_VERSION = 1
MODEL_TYPES = ("ridge", "forest")


class OneHotEncoding:
    """One feature per (decision, value); values are matched by their text (``str``)."""

    def __init__(self, decisions: Sequence[tuple[str, Sequence[Any]]]) -> None:
        if not decisions:
            raise PredictorError("an accuracy predictor needs a space with named decisions")
        self.decisions: list[tuple[str, list[str]]] = [
            (str(n), [str(v) for v in vals]) for n, vals in decisions
        ]
        self._index: dict[str, tuple[int, dict[str, int]]] = {}
        at = 0
        for name, values in self.decisions:
            self._index[name] = (at, {v: j for j, v in enumerate(values)})
            at += len(values)
        self.size = at

    @classmethod
    def for_space(cls, space: Any) -> OneHotEncoding:
        from nasprof.errors import SpaceError

        try:
            decisions = space.decisions()
        except SpaceError as exc:
            raise PredictorError(f"space {space.name!r} cannot be one-hot encoded: {exc}") from None
        return cls([(n, tuple(v)) for n, v in decisions])

    @property
    def names(self) -> list[str]:
        return [f"{n}={v}" for n, values in self.decisions for v in values]

    def encode(self, space: Any, archs: Sequence[Any]) -> NDArray[np.float64]:
        """``(n, size)`` 0/1 matrix of ``archs`` (``Arch`` objects of ``space``)."""
        x = np.zeros((len(archs), self.size), dtype=np.float64)
        for i, arch in enumerate(archs):
            for name, value in space.params(arch).items():
                where = self._index.get(name)
                if where is None:
                    raise PredictorError(f"the accuracy predictor's encoding has no decision {name!r}; "
                                         "refit it for this version of the space")
                j = where[1].get(str(value))
                if j is None:
                    raise PredictorError(f"the accuracy predictor has never seen {name}={value}; refit it")
                x[i, where[0] + j] = 1.0
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"decisions": [[n, list(v)] for n, v in self.decisions]}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> OneHotEncoding:
        try:
            decisions = [(str(n), [str(v) for v in vals]) for n, vals in doc["decisions"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictorError(f"corrupt one-hot encoding: {exc}") from None
        return cls(decisions)


class AccuracyPredictor:
    """Predicts an architecture's accuracy (the metric it was fitted on) from its one-hot encoding."""

    def __init__(
        self,
        *,
        space: str,
        encoding: OneHotEncoding,
        model: Mapping[str, Any],
        target: str = "accuracy",
        validation: Mapping[str, Any] | None = None,
        trained_on: Mapping[str, Any] | None = None,
    ) -> None:
        self.space = str(space)
        self.encoding = encoding
        self.model = dict(model)
        self.target = str(target)
        self.validation = dict(validation or {})
        self.trained_on = dict(trained_on or {})
        kind = self.model.get("type")
        if kind not in MODEL_TYPES:
            raise PredictorError(f"unknown accuracy model {kind!r}; known: {', '.join(MODEL_TYPES)}")
        if kind == "ridge":
            try:
                self._coef = np.asarray(self.model["coef"], dtype=np.float64)
                self._intercept = float(self.model["intercept"])
            except (KeyError, TypeError, ValueError) as exc:
                raise PredictorError(f"corrupt ridge model: {exc}") from None
            if self._coef.shape != (encoding.size,) or not np.all(np.isfinite(self._coef)) \
                    or not math.isfinite(self._intercept):
                raise PredictorError(f"corrupt ridge model: {encoding.size} finite coefficients needed")
            self._forest = None
        else:
            from nasprof.predictors.forest import TreeEnsemble

            self._forest = TreeEnsemble.from_dict(self.model)
            if self._forest.n_features != encoding.size:
                raise PredictorError(f"corrupt forest: {self._forest.n_features} features, the encoding has "
                                     f"{encoding.size}")

    @property
    def kind(self) -> str:
        return f"onehot-{self.model['type']}"

    @property
    def model_type(self) -> str:
        return str(self.model["type"])

    def check_space(self, space: str | None, label: str = "accuracy predictor") -> None:
        """``PredictorError`` when the predictor was fitted on another space than ``space``."""
        if space is not None and space != self.space:
            raise PredictorError(f"{label} was fitted on space {self.space!r}, not {space!r}; fit one on "
                                 f"{space} pairs with `nasprof predictor fit --accuracy PAIRS`")

    def predict_matrix(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self._forest is not None:
            return self._forest.predict(x)
        return x @ self._coef + self._intercept

    def predict_many(self, archs: Iterable[Any]) -> NDArray[np.float64]:
        """Predicted accuracy of each ``Arch`` (of this predictor's space)."""
        from nasprof.space import get_space

        items = list(archs)
        if not items:
            return np.zeros(0)
        for a in items[:1]:
            self.check_space(getattr(a, "space", None))
        space = get_space(self.space)
        return self.predict_matrix(self.encoding.encode(space, items))

    def predict(self, arch: Any) -> float:
        return float(self.predict_many([arch])[0])

    # -- files ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ACCURACY_PREDICTOR_FORMAT,
            "schema_version": ACCURACY_PREDICTOR_SCHEMA_VERSION,
            "kind": self.kind,
            "space": self.space,
            "target": self.target,
            "encoding": self.encoding.to_dict(),
            "model": self.model,
            "validation": self.validation,
            "trained_on": self.trained_on,
        }

    def save(self, path: str | Path) -> Path:
        from nasprof._io import atomic_write_text

        return atomic_write_text(Path(path), json.dumps(self.to_dict()) + "\n")

    @classmethod
    def from_dict(cls, doc: Any, where: str = "accuracy predictor") -> AccuracyPredictor:
        if not isinstance(doc, dict) or doc.get("format") != ACCURACY_PREDICTOR_FORMAT:
            raise PredictorError(f'{where} is not a nasprof accuracy predictor (no "format": '
                                 f'"{ACCURACY_PREDICTOR_FORMAT}"); fit one with `nasprof predictor fit '
                                 '--accuracy`')
        version = doc.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise PredictorError(f"{where} is corrupt: schema_version {version!r} is not an integer")
        if version > ACCURACY_PREDICTOR_SCHEMA_VERSION:
            raise SchemaError(f"{where} has schema_version {version}, newer than this nasprof understands "
                              f"({ACCURACY_PREDICTOR_SCHEMA_VERSION}); upgrade nasprof or refit it")
        try:
            model = doc["model"]
            if not isinstance(model, dict):
                raise TypeError("model must be an object")
            return cls(space=str(doc["space"]), encoding=OneHotEncoding.from_dict(doc["encoding"]),
                       model=model, target=str(doc.get("target", "accuracy")),
                       validation=doc.get("validation") or {}, trained_on=doc.get("trained_on") or {})
        except PredictorError as exc:
            raise PredictorError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictorError(f"{where} is corrupt: {type(exc).__name__}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> AccuracyPredictor:
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PredictorError(f"no accuracy predictor at {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PredictorError(f"cannot read accuracy predictor {path}: {exc}") from None
        return cls.from_dict(doc, str(path))
