"""Tree ensembles as plain JSON, evaluated with numpy — no pickle, no scikit-learn needed to predict.

scikit-learn fits the forest; ``forest_to_dict`` copies each tree's arrays (children, split feature,
threshold, leaf value) into lists, and ``TreeEnsemble`` walks all trees for all rows at once. The walk
reproduces scikit-learn's arithmetic exactly: features are compared as float32 (sklearn casts ``X`` to
float32) against float64 thresholds, and tree outputs are summed in estimator order before dividing, so a
round-tripped forest gives bit-identical predictions (tested). A pickled forest would break on the next
scikit-learn release (nn-Meter's issue #131); these lists will not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasprof.errors import PredictorError

__all__ = ["TreeEnsemble", "ForestBank", "forest_to_dict", "fit_forest"]

_LEAF = -1


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A forest of regression trees stored as flat arrays, one row of nodes per tree (padded with leaves)."""

    left: np.ndarray  # (n_trees, max_nodes) int32; -1 marks a leaf
    right: np.ndarray
    feature: np.ndarray  # (n_trees, max_nodes) int32
    threshold: np.ndarray  # (n_trees, max_nodes) float64
    value: np.ndarray  # (n_trees, max_nodes) float64
    sizes: tuple[int, ...]  # real node count of each tree (the rest of its row is padding)
    n_features: int
    max_depth: int

    @property
    def n_trees(self) -> int:
        return int(self.left.shape[0])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Mean of the trees' outputs for each row of ``x`` (shape ``(n, n_features)``)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise PredictorError(f"expected {self.n_features} features per row, got shape {x.shape}")
        # sklearn compares float32(X) <= float64(threshold); do the same so splits fall identically.
        x32 = x.astype(np.float32).astype(np.float64)
        n = x32.shape[0]
        trees = np.arange(self.n_trees)[None, :]
        rows = np.arange(n)[:, None]
        node = np.zeros((n, self.n_trees), dtype=np.int64)
        for _ in range(self.max_depth):
            feat = self.feature[trees, node]
            go_left = x32[rows, np.maximum(feat, 0)] <= self.threshold[trees, node]
            nxt = np.where(go_left, self.left[trees, node], self.right[trees, node])
            node = np.where(nxt == _LEAF, node, nxt)
        leaf_values = self.value[trees, node]  # (n, n_trees)
        # Accumulate tree by tree, in order, as sklearn does: keeps results bit-identical.
        out = np.zeros(n, dtype=np.float64)
        for t in range(self.n_trees):
            out += leaf_values[:, t]
        return out / self.n_trees

    def to_dict(self) -> dict[str, Any]:
        trees = []
        for t in range(self.n_trees):
            size = self.sizes[t]
            trees.append(
                {
                    "left": self.left[t, :size].tolist(),
                    "right": self.right[t, :size].tolist(),
                    "feature": self.feature[t, :size].tolist(),
                    "threshold": self.threshold[t, :size].tolist(),
                    "value": self.value[t, :size].tolist(),
                }
            )
        return {"n_features": self.n_features, "max_depth": self.max_depth, "trees": trees}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TreeEnsemble:
        try:
            trees: Sequence[Mapping[str, Any]] = d["trees"]
            n_features = int(d["n_features"])
            max_depth = int(d["max_depth"])
            width = max(len(t["left"]) for t in trees)
            shape = (len(trees), width)
            left = np.full(shape, _LEAF, np.int64)
            right = np.full(shape, _LEAF, np.int64)
            feature = np.full(shape, -2, np.int64)  # -2 pads: sklearn's TREE_UNDEFINED
            threshold = np.zeros(shape, np.float64)
            value = np.zeros(shape, np.float64)
            for i, t in enumerate(trees):
                k = len(t["left"])
                if not (len(t["right"]) == len(t["feature"]) == len(t["threshold"]) == len(t["value"]) == k):
                    raise ValueError("tree arrays differ in length")
                left[i, :k], right[i, :k] = t["left"], t["right"]
                feature[i, :k], threshold[i, :k], value[i, :k] = t["feature"], t["threshold"], t["value"]
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictorError(f"corrupt tree ensemble in predictor file: {exc}") from None
        if len(trees) == 0 or left.max() >= width or right.max() >= width or feature.max() >= n_features:
            raise PredictorError(
                "corrupt tree ensemble in predictor file: node or feature index out of range"
            )
        sizes = tuple(len(t["left"]) for t in trees)
        return cls(left, right, feature, threshold, value, sizes, n_features, max_depth)


class ForestBank:
    """Several ``TreeEnsemble`` walked in one pass: each row of ``x`` goes down the trees of its own ensemble.

    Predicting a graph asks a dozen small forests (one per kernel type) for a few rows each; walked one by
    one, numpy's per-call overhead (16 levels × a dozen forests) is most of the time. The bank lays every tree
    of every ensemble into one flat node array whose leaves point at themselves, so one walk of the deepest
    tree's depth serves all rows of all ensembles. Results are bit-identical to ``TreeEnsemble.predict``
    (same float32 comparisons; leaf values summed in tree order, padding trees adding exact zeros).
    """

    def __init__(self, ensembles: Sequence[TreeEnsemble]) -> None:
        if not ensembles:
            raise PredictorError("a forest bank needs at least one ensemble")
        n_features = {e.n_features for e in ensembles}
        if len(n_features) != 1:
            raise PredictorError(f"ensembles differ in their number of features: {sorted(n_features)}")
        self.n_features = n_features.pop()
        self.n_trees = np.array([e.n_trees for e in ensembles], dtype=np.float64)
        width = max(e.n_trees for e in ensembles)
        sizes = [s for e in ensembles for s in e.sizes]
        total = sum(sizes) + 1  # node 0 is a shared zero leaf that pads ensembles with fewer trees
        left = np.zeros(total, np.int64)
        right = np.zeros(total, np.int64)
        feature = np.zeros(total, np.int64)
        threshold = np.zeros(total, np.float64)
        value = np.zeros(total, np.float64)
        roots = np.zeros((len(ensembles), width), np.int64)
        at = 1
        for i, e in enumerate(ensembles):
            for t, size in enumerate(e.sizes):
                idx = np.arange(at, at + size)
                leaf = e.left[t, :size] == _LEAF
                left[idx] = np.where(leaf, idx, e.left[t, :size] + at)
                right[idx] = np.where(leaf, idx, e.right[t, :size] + at)
                feature[idx] = np.where(leaf, 0, e.feature[t, :size])
                threshold[idx] = e.threshold[t, :size]
                value[idx] = e.value[t, :size]
                roots[i, t] = at
                at += size
        # children[2i] / children[2i + 1]: left / right child of node i (a leaf's are itself), so one gather
        # moves every walker down a level.
        self._children = np.stack([left, right], axis=1).ravel()
        self._feature, self._threshold, self._value, self._roots = feature, threshold, value, roots
        self._leaf = left == np.arange(total)
        self.max_depth = max(e.max_depth for e in ensembles)

    def predict(self, x: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Mean over its ensemble's trees for each row of ``x``; ``which[i]`` is row i's ensemble index."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise PredictorError(f"expected {self.n_features} features per row, got shape {x.shape}")
        which = np.asarray(which, dtype=np.int64)
        n = x.shape[0]
        if n == 0:
            return np.zeros(0)
        flat = x.astype(np.float32).astype(np.float64).ravel()
        width = self._roots.shape[1]
        # One walker per (row, tree); walkers that reached a leaf are retired every few levels, so the work
        # follows the paths' real lengths rather than the deepest tree's depth.
        node = self._roots[which].ravel()
        slot = np.arange(n * width)
        base = np.repeat(np.arange(n, dtype=np.int64) * self.n_features, width)
        leaf_of = np.empty(n * width, dtype=np.int64)
        for depth in range(self.max_depth + 1):
            # ~(x <= t) rather than x > t: a NaN feature goes right, as in scikit-learn.
            go_right = ~(flat[base + self._feature[node]] <= self._threshold[node])
            node = self._children[2 * node + go_right]
            if depth % 3 == 2 or depth == self.max_depth:
                done = self._leaf[node]
                leaf_of[slot[done]] = node[done]
                if done.all():
                    break
                keep = ~done
                node, slot, base = node[keep], slot[keep], base[keep]
        else:  # not reached: after max_depth levels every walker stands on a leaf
            leaf_of[slot] = node
        # cumsum adds left to right, as sklearn sums its trees: bit-identical means.
        values = self._value[leaf_of].reshape(n, width)
        return np.cumsum(values, axis=1)[:, -1] / self.n_trees[which]


def forest_to_dict(model: Any) -> dict[str, Any]:
    """Serialise a fitted ``RandomForestRegressor``/``ExtraTreesRegressor`` (single output) to a dict."""
    trees = []
    depth = 0
    for est in model.estimators_:
        t = est.tree_
        if t.value.shape[1] != 1 or t.value.shape[2] != 1:
            raise PredictorError("only single-output regression forests can be stored")
        depth = max(depth, int(t.max_depth))
        trees.append(
            {
                "left": t.children_left.tolist(),
                "right": t.children_right.tolist(),
                "feature": t.feature.tolist(),
                "threshold": t.threshold.tolist(),
                "value": t.value[:, 0, 0].tolist(),
            }
        )
    return {"n_features": int(model.n_features_in_), "max_depth": depth, "trees": trees}


def fit_forest(
    x: np.ndarray, y: np.ndarray, *, n_estimators: int = 100, max_depth: int | None = 16, seed: int = 0
) -> TreeEnsemble:
    """Fit a random forest with scikit-learn (imported here, only when training) and return its JSON form."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(
        n_estimators=n_estimators, max_depth=max_depth, min_samples_leaf=1, random_state=seed, n_jobs=1
    )
    model.fit(np.asarray(x, np.float64), np.asarray(y, np.float64))
    return TreeEnsemble.from_dict(forest_to_dict(model))
