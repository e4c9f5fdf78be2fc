"""In-network layer ratios for lookup tables, learned from profiled calibration networks.

A table entry is a layer measured *alone*: its weights stay in cache from one timed run to the next, and it
converts its input and output to and from onnxruntime's NCHWc layout. Inside a network neither holds, and
how much that matters depends on the layer: per-node profiles of whole ``mnasnet`` networks put 7×7 layers
at ~1.3× their table time, 112×112 layers at 0.6–0.9× and the classifier at ~2.5×. The per-key ratio is
steady across networks (median CV 2% over 40), but the end-to-end calibration (one factor per family)
cannot see it: it only sees one total per network.

So the calibration networks, already measured end to end, also get one profiled pass each:

1. Each profiled kernel belongs to a layer through its block (``NodeTime.block`` is the layer's scope,
   ``stem.0`` / ``blocks.3`` / ``head.1``).
2. The profiler adds a fixed cost to every node (whole microseconds, about 3 µs per node on the local
   CPU). ``profiler_node_cost`` fits it across the networks: Σ node times = a·(end-to-end) + δ·nodes.
3. A layer's in-network time is Σ (node time − δ) over its nodes, scaled so the network adds up to its
   end-to-end time minus the per-call overhead (``layer_times``). Its ratio is that ÷ (entry − overhead).
4. A random forest on the layer's key (family, shapes, kernel, stride, expansion, SE, skip, weights, entry
   time) learns log(ratio), weighted by the entry's time, and predicts a ratio for *every* key of the
   table (``fit_layer_ratios``). The predictor stores those ratios, not the forest: a LUT only ever
   predicts its own keys.

The family calibration (``LutPredictor.calibrate``) then runs on top, on entries × ratio. Profiles are
taken at another moment than the end-to-end rounds, so only their *shares* within a network are used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import PredictorError

__all__ = [
    "RATIO_RANGE",
    "TooFewLayersError",
    "key_fields",
    "key_feature_matrix",
    "profiler_node_cost",
    "layer_times",
    "fit_layer_ratios",
    "learn_ratios",
    "profile_networks",
]

#: Ratios are clipped to this range: a profile can misattribute a kernel, a ratio can not run away.
RATIO_RANGE = (0.25, 4.0)
#: Forest settings, chosen on one study (40 calibration + 100 validation ``mnasnet`` networks): leaves of
#: 3 put 88% within ±5% (20 calibration networks, 6 random subsets), leaves of 10 / 30 did worse.
_TREES = 300
_MIN_LEAF = 3
_MAX_FEATURES = 0.6

Progress = Callable[[int, int, str], None]


class TooFewLayersError(PredictorError):
    """Too few profiled layers to learn ratios from: calibration can go on without them."""


def key_fields(key: str) -> tuple[str, dict[str, str]]:
    """A table key's family and its ``name:value`` fields (``conv-input:112x112x16-kernel:3-...``).

    A part without ``:`` continues the previous value (a value may itself contain ``-``)."""
    family, sep, rest = key.partition("-input:")
    if not sep:
        return key, {}
    fields: dict[str, str] = {}
    last = ""
    for part in ("input:" + rest).split("-"):
        name, colon, value = part.partition(":")
        if colon and name:
            fields[name] = value
            last = name
        elif last:
            fields[last] += "-" + part
    return family, fields


def _numbers(value: str) -> list[float] | None:
    """``112x112x16`` -> [112, 112, 16]; ``0.25`` -> [0.25]; None for a word."""
    try:
        return [float(v) for v in value.split("x")]
    except ValueError:
        return None


def key_feature_matrix(
    keys: Sequence[str], net_ms: Mapping[str, float], weight_mb: Mapping[str, float]
) -> np.ndarray:
    """One row per key: family (one-hot over ``keys``' families), every numeric field (shapes split into
    their numbers), every word field as a category code, then log weight MB and log (entry − overhead).

    The columns depend on ``keys`` as a whole, so a forest must be fitted and applied on rows of one call
    (``fit_layer_ratios`` builds the matrix over the whole table once)."""
    parsed = [key_fields(k) for k in keys]
    families = sorted({f for f, _ in parsed})
    values: dict[str, set[str]] = {}
    for _, fields in parsed:
        for name, value in fields.items():
            values.setdefault(name, set()).add(value)
    # A field with any non-numeric value (``skip``: 0 / 1 / pool) is a category over all its values.
    words = {
        name: {v: i + 1 for i, v in enumerate(sorted(vals))}  # 0: field absent
        for name, vals in values.items()
        if any(_numbers(v) is None for v in vals)
    }
    widths = {
        name: max(len(_numbers(v) or ()) for v in vals) for name, vals in values.items() if name not in words
    }
    num_names = sorted(widths)
    word_names = sorted(words)
    cols = len(families) + sum(widths.values()) + len(word_names) + 2
    x = np.zeros((len(keys), cols))
    for r, (key, (family, fields)) in enumerate(zip(keys, parsed, strict=True)):
        x[r, families.index(family)] = 1.0
        c = len(families)
        for name in num_names:
            nums = _numbers(fields[name]) if name in fields else None
            if nums is not None:
                x[r, c : c + len(nums)] = nums
            c += widths[name]
        for name in word_names:
            x[r, c] = words[name].get(fields.get(name, ""), 0)
            c += 1
        x[r, c] = math.log(weight_mb.get(key, 0.0) + 1e-3)
        x[r, c + 1] = math.log(max(net_ms[key], 1e-6))
    return x


def profiler_node_cost(totals_ms: Sequence[float], e2e_ms: Sequence[float], nodes: Sequence[int]) -> float:
    """The profiler's cost per node (ms): least squares of Σ node times = a·(end-to-end) + δ·nodes on
    relative error, over networks of different sizes. Clipped to [0, 10 µs]; 0 with fewer than 3
    networks (nothing to separate it from a)."""
    t, e, n = (np.asarray(v, np.float64) for v in (totals_ms, e2e_ms, nodes))
    if len(t) < 3 or np.ptp(n / e) <= 0:
        return 0.0
    a = np.column_stack([e, n]) / e[:, None]
    (_, delta), *_ = np.linalg.lstsq(a, t / e, rcond=None)
    return float(np.clip(delta, 0.0, 0.01))


def layer_times(
    nodes: Sequence[Any], scopes: Sequence[str], e2e_ms: float, overhead_ms: float, node_cost_ms: float
) -> list[float]:
    """In-network time (ms) of each layer (``scopes`` in layer order) from one profiled pass: Σ (node time −
    ``node_cost_ms``) over the nodes of its block, scaled so the whole network sums to ``e2e_ms`` −
    ``overhead_ms``. NaN for a layer with no profiled node (its block name was not found)."""
    per_block: dict[str, float] = {}
    total = 0.0
    for n in nodes:
        t = max(float(n.duration_ms) - node_cost_ms, 0.0)
        per_block[n.block] = per_block.get(n.block, 0.0) + t
        total += t
    if total <= 0:
        return [math.nan] * len(scopes)
    s = (e2e_ms - overhead_ms) / total
    return [per_block[sc] * s if sc in per_block else math.nan for sc in scopes]


def fit_layer_ratios(
    observed: Sequence[tuple[str, float]],
    net_ms: Mapping[str, float],
    weight_mb: Mapping[str, float],
) -> tuple[dict[str, float], dict[str, Any]]:
    """Ratios (in-network ÷ alone) for every key of ``net_ms`` (entry − overhead, ms), learned from
    ``observed`` (key, in-network ms) pairs of profiled calibration layers. Returns (ratios, info)."""
    from sklearn.ensemble import RandomForestRegressor

    pairs = [(k, t) for k, t in observed if k in net_ms and math.isfinite(t) and t > 0 and net_ms[k] > 0]
    if len(pairs) < 10:
        raise TooFewLayersError(
            f"only {len(pairs)} profiled layers to learn in-network ratios from; calibrate on more networks"
        )
    keys = sorted(net_ms)
    row = {k: i for i, k in enumerate(keys)}
    x_all = key_feature_matrix(keys, net_ms, weight_mb)
    x = x_all[[row[k] for k, _ in pairs]]
    y = np.log([t / net_ms[k] for k, t in pairs])
    w = np.array([net_ms[k] for k, _ in pairs])
    forest = RandomForestRegressor(
        _TREES, min_samples_leaf=_MIN_LEAF, max_features=_MAX_FEATURES, random_state=0, n_jobs=1
    ).fit(x, y, sample_weight=w)
    r = np.clip(np.exp(forest.predict(x_all)), *RATIO_RANGE)
    ratios = {k: float(v) for k, v in zip(keys, r, strict=True)}
    seen = np.exp(y)
    info = {
        "profiled_layers": len(pairs),
        "distinct_profiled_keys": len({k for k, _ in pairs}),
        "observed_ratio_p10_p50_p90": [float(v) for v in np.percentile(seen, [10, 50, 90])],
        "table_ratio_p10_p50_p90": [float(v) for v in np.percentile(r, [10, 50, 90])],
        "model": f"random forest of log(in-network / alone) on the key ({_TREES} trees, leaf {_MIN_LEAF})",
    }
    return ratios, info


def profile_networks(
    paths: Sequence[Path], backend: Any, spec: Any, *, progress: Progress | None = None
) -> list[list[Any]] | None:
    """One profiled pass (5 warm-ups, 10 runs, the spec's threads and optimisation level) per network:
    lists of ``NodeTime``. None when the device gives no per-node times (an MCU estimate, a perf_test
    build without profiling)."""
    pspec = dataclasses.replace(
        spec, warmup=5, runs=1, sessions=1, per_node=True, per_node_runs=10, target_rel_ci=None, max_runs=None
    )
    out: list[list[Any]] = []
    for i, path in enumerate(paths):
        if progress is not None:
            progress(i, len(paths), "profiling calibration networks")
        m = backend.measure(path, pspec)
        if not m.per_node:
            return None
        out.append(list(m.per_node))
    if progress is not None:
        progress(len(paths), len(paths), "profiling calibration networks")
    return out


def learn_ratios(lut: Any, archs: Sequence[Any], measured_ms: Sequence[float],
                 profiles: Sequence[Sequence[Any]]) -> Any:
    """What ``LutPredictor.learn_layer_ratios`` returns: ``lut`` with an in-network ratio per key, learned
    from one profiled pass per architecture and its end-to-end time."""
    if not len(archs) == len(measured_ms) == len(profiles):
        raise PredictorError("learn_layer_ratios needs one measurement and one profile per architecture")
    parsed = [lut._arch(a) for a in archs]
    delta = profiler_node_cost(
        [sum(n.duration_ms for n in p) for p in profiles], measured_ms, [len(p) for p in profiles]
    )
    observed: list[tuple[str, float]] = []
    for arch, ms, nodes in zip(parsed, measured_ms, profiles, strict=True):
        times = layer_times(nodes, arch.network().scopes(), float(ms), lut.overhead_ms, delta)
        observed += zip(lut.layer_keys(arch), times, strict=True)
    alone = {k: e - lut.overhead_ms for k, e in lut.entries.items()}
    ratios, info = fit_layer_ratios(observed, alone, lut.weight_mb)
    out = lut.copy_with(layer_ratios=ratios)
    out.training_error = {
        **lut.training_error,
        "in_network": {"networks": len(parsed), "profiler_node_cost_ms": delta, **info},
    }
    return out
