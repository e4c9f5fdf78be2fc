"""``LutPredictor``: a network's latency as the sum of its layers' lookup-table entries.

latency(arch) = overhead_ms + c + Σ_layers [ f_family · r_key · (entry_ms(key) − overhead_ms) + β·weight_MB ]

Every table entry was measured as a one-layer model, so each includes the fixed cost of one
``session.run`` call (``overhead_ms``, measured once on a near-empty model); a network pays it once, not
once per layer. With ``overhead_ms = 0``, every ``f = 1`` and ``β = 0`` this is the plain ProxylessNAS sum.

What a layer measured alone misses, and why the correction has this form: alone, a layer's weights stay
in the L2 cache from one timed run to the next, and it pays for converting its input and output between
onnxruntime's plain and blocked (NCHWc) layouts. Inside a network the weights of every other layer pass
through the cache in between (so each layer's weights arrive cold: a cost per MB of weights, ``β``), and
the blocked layout is kept from layer to layer (so wide early layers run *faster* than alone). On the
local x86 CPU, per-node profiles of whole networks showed late 7×7/14×14 layers at 1.3-2.5× their table
time, the classifier at 2.5× and 112×112 layers at 0.6-0.9×. ``calibrate`` fits one factor per layer
family (``f_family``: ``conv``, ``mbconv``, ``dwsep``, ...; ``scale`` for a family without its own) and
``β`` on a few end-to-end measurements of other architectures, with a per-network constant ``c`` (either
sign: a network converts layouts once at each end, where every entry paid for its own conversions). The
weight sizes come from the table's ``params`` column (float32 weights: 4 bytes each). With profiles of the
calibration networks, ``calibrate`` first learns a ratio ``r_key`` (in-network ÷ alone) for every key of
the table (``nasprof.predictors.calibration.in_network``); without, every ``r = 1``.

Speed: every term is per layer, so the corrected latency of each key is computed once and put in a numpy
vector (with one extra slot worth 0 ms for padding). An architecture becomes a row of key ids
(``encode``, by ``nasprof.predictors.lut.encoding.KeyIds``, which caches segments and strings); a batch is
then one gather and one row sum — ``predict_many`` on an encoded ``(n, max_layers)`` id matrix runs at tens
of millions of architectures per second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import PredictorError
from nasprof.predictors.base import Prediction, PredictionPart, Predictor
from nasprof.predictors.calibration.in_network import RATIO_RANGE, TooFewLayersError
from nasprof.predictors.calibration.lut import fit_families
from nasprof.predictors.kernel.features import FLOAT_BYTES
from nasprof.predictors.lut.encoding import KeyIds
from nasprof.predictors.lut.keys import key_family
from nasprof.space.layer import priced_layers

__all__ = ["LutPredictor"]

#: Ridge weight pulling family factors to the single scale (and β to 0) in ``calibrate``: small, so the
#: data decide wherever they can, but a family that is a sliver of every calibration network keeps the
#: single scale instead of an arbitrary factor.
_PRIOR_WEIGHT = 0.02



def _check_factor(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.2 <= value <= 5.0:
        raise PredictorError(f"{name} must lie in [0.2, 5], got {value!r}; recalibrate")
    return float(value)


class LutPredictor(Predictor):
    """Sums table entries. ``fallback`` (another predictor able to predict a layer) fills missing keys."""

    kind = "lut"
    calibrates_on = "space"

    def __init__(
        self,
        entries: Mapping[str, float],
        *,
        overhead_ms: float = 0.0,
        scale: float = 1.0,
        group_factors: Mapping[str, float] | None = None,
        ms_per_weight_mb: float = 0.0,
        weight_mb: Mapping[str, float] | None = None,
        offset_ms: float = 0.0,
        space: str | None = None,
        resolution: int | None = None,
        fallback: Predictor | None = None,
        layer_ratios: Mapping[str, float] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        bad = [
            k for k, v in entries.items() if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)
        ]
        if bad:
            raise PredictorError(f"table entries must be positive latencies in ms; bad: {', '.join(bad[:3])}")
        if not math.isfinite(overhead_ms) or overhead_ms < 0:
            raise PredictorError(f"overhead_ms must be finite and >= 0, got {overhead_ms!r}")
        if entries and overhead_ms >= min(entries.values()):
            # Every entry holds one call's overhead; one larger than an entry would make layers cost less
            # than nothing and networks negative.
            key = min(entries, key=entries.__getitem__)
            raise PredictorError(
                f"per-call overhead {overhead_ms:g} ms is not below the smallest entry ({key}: "
                f"{entries[key]:g} ms), which contains it; measure the overhead on the table's device"
            )
        self.scale = _check_factor("scale", scale)
        self.group_factors = {
            str(g): _check_factor(f"factor of {g}", v) for g, v in (group_factors or {}).items()
        }
        if not isinstance(ms_per_weight_mb, (int, float)) or not math.isfinite(ms_per_weight_mb) or (
            ms_per_weight_mb < 0
        ):
            raise PredictorError(f"ms_per_weight_mb must be finite and >= 0, got {ms_per_weight_mb!r}")
        self.ms_per_weight_mb = float(ms_per_weight_mb)
        self.weight_mb = {str(k): float(v) for k, v in (weight_mb or {}).items()}
        if not all(math.isfinite(v) and v >= 0 for v in self.weight_mb.values()):
            raise PredictorError("weight_mb must map layer keys to finite sizes >= 0 (MB)")
        if not isinstance(offset_ms, (int, float)) or not math.isfinite(offset_ms):
            raise PredictorError(f"offset_ms must be finite, got {offset_ms!r}")
        self.offset_ms = float(offset_ms)
        self.entries = dict(entries)
        lo, hi = RATIO_RANGE
        self.layer_ratios = {str(k): float(v) for k, v in (layer_ratios or {}).items()}
        if not all(isinstance(v, float) and lo <= v <= hi for v in self.layer_ratios.values()):
            raise PredictorError(f"layer_ratios must lie in [{lo}, {hi}]; recalibrate")
        self.overhead_ms = float(overhead_ms)
        # What every network pays once: the per-call overhead and the calibrated per-network constant.
        self._base_ms = self.overhead_ms + self.offset_ms
        self.space = space
        if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)
                                       or not 1 <= resolution <= 4096):
            raise PredictorError(f"resolution {resolution!r} is not a positive number of pixels; refit the "
                                 "predictor from its table")
        self.resolution = resolution
        self.fallback = fallback
        self._keys = list(self.entries)
        self._key_ids = KeyIds(self._keys, space, resolution)
        # Per-layer cost with the per-call overhead removed; the last slot (0 ms) pads short architectures.
        self._lat = np.append(np.array([self.layer_ms(k) for k in self._keys], np.float64), 0.0)
        self.pad_id = self._key_ids.pad_id

    @property
    def features(self) -> list[str]:
        return (
            ["layer keys"]
            + (["weight MB per layer"] if self.ms_per_weight_mb else [])
            + (["in-network ratio per key"] if self.layer_ratios else [])
        )

    def factor(self, key: str) -> float:
        """The calibration factor of ``key``'s family (``scale`` for a family without its own)."""
        return self.group_factors.get(key_family(key), self.scale)

    def layer_ms(self, key: str) -> float:
        """The calibrated in-network cost of one table entry (ms): what a layer adds to a network."""
        return self.net_ms(key) * self.factor(key) + self.ms_per_weight_mb * self.weight_mb.get(key, 0.0)

    def net_ms(self, key: str) -> float:
        """The entry without the per-call overhead, times the key's in-network ratio (1 without)."""
        return (self.entries[key] - self.overhead_ms) * self.layer_ratios.get(key, 1.0)

    # -- summaries --------------------------------------------------------------------------------------
    def calibration_summary(self) -> str:
        """In-network ratios, family factors and cost per weight MB, or the single scale, in a phrase."""
        ratios = ""
        if self.layer_ratios:
            lo, mid, hi = np.percentile(list(self.layer_ratios.values()), [10, 50, 90])
            ratios = (f"in-network ratios p10/p50/p90 {lo:.2f}/{mid:.2f}/{hi:.2f} on "
                      f"{len(self.layer_ratios)} keys, ")
        if not self.group_factors:
            return f"{ratios}scale {self.scale:.4f}"
        factors = ", ".join(f"{g} ×{f:.3f}" for g, f in sorted(self.group_factors.items()))
        return (f"{ratios}factors {factors} (others ×{self.scale:.3f}), {self.ms_per_weight_mb:.4f} ms per "
                f"MB of weights, per-network constant {self.offset_ms:+.4f} ms")

    def details(self) -> dict[str, str]:
        out = {"entries": str(len(self.entries)), "overhead_ms": f"{self.overhead_ms:.4f}",
               "calibration": self.calibration_summary()}
        loo = self.training_error.get("leave_one_out")
        if loo is not None:
            before, n = self.training_error["before"]["rmspe"], self.training_error["networks"]
            out["calibration RMSPE"] = (f"{before:.1%} uncalibrated, {loo['rmspe']:.1%} leave-one-out "
                                        f"({n} networks)")
        return out

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_table(cls, table: Any, *, overhead_ms: float | None = None) -> LutPredictor:
        """Build from a ``LatencyTable`` (or its path). Failed entries are left out (predicting an
        architecture that needs one raises, naming the key)."""
        from nasprof.tables.store import LatencyTable

        tbl = table if isinstance(table, LatencyTable) else LatencyTable.load(table)
        meta = tbl.metadata
        good = [e for e in tbl.entries() if e.ok and e.median_ms is not None]
        entries = {e.key: float(e.median_ms) for e in good if e.median_ms is not None}
        weight_mb = {e.key: e.params * FLOAT_BYTES / 1e6 for e in good if e.params is not None}
        if not entries:
            raise PredictorError(f"table {tbl.path} holds no measured entries; build it first")
        if overhead_ms is None:
            overhead_ms = float(meta.get("overhead_ms", 0.0) or 0.0)
        spec = meta.get("measure_spec") or meta.get("spec") or {}
        res = meta.get("resolution")
        return cls(
            entries,
            overhead_ms=overhead_ms,
            weight_mb=weight_mb,
            space=meta.get("space"),
            resolution=int(res) if res is not None else None,
            device=str(meta.get("device") or tbl.device),
            measure_spec=spec if isinstance(spec, dict) else {},
            training_error={"method": "none: entries are measurements; see `nasprof validate`"},
            metadata={
                "table": str(tbl.path),
                "entries": len(entries),
                "failed_entries": sum(1 for e in tbl.entries() if not e.ok),
                "precision": meta.get("precision", "fp32"),
                "batch": meta.get("batch", 1),
                # Every device the table was measured on (a farm's phones of one model).
                "devices": list(meta.get("devices") or [meta.get("device") or tbl.device]),
            },
        )

    # -- encoding (``nasprof.predictors.lut.encoding``) ---------------------------------------------------
    def _arch(self, target: Any) -> Any:
        return self._key_ids.arch(target)

    def layer_keys(self, target: Any) -> list[str]:
        return self._key_ids.layer_keys(target)

    def ids_of_keys(self, keys: Sequence[str]) -> tuple[int, ...]:
        """Key ids of ``keys``; ``PredictorError`` names the first key the table lacks."""
        return self._key_ids.ids_of_keys(keys)

    def encode(self, target: Any) -> np.ndarray:
        """Key ids of the architecture's layers. ``PredictorError`` names a key the table lacks."""
        return self._key_ids.encode(target)

    def encode_many(self, targets: Iterable[Any]) -> np.ndarray:
        """An ``(n, max_layers)`` id matrix padded with ``pad_id`` (0 ms): the input of ``predict_many``."""
        return self._key_ids.encode_many(targets)

    # -- integer genotypes (nasprof.predictors.layerwise) -------------------------------------------------
    @property
    def network_constant_ms(self) -> float:
        """What every network pays once: the per-call overhead and the calibrated per-network constant."""
        return self._base_ms

    def layer_latency(self, layer: Any) -> float:
        """What ``layer`` adds to a network (ms); NaN when the table lacks its key."""
        i = self._key_ids.index.get(layer.key)
        return math.nan if i is None else float(self._lat[i])

    def predict_codes(self, codes: Any, *, width: float = 1.0) -> np.ndarray:
        """Latencies (ms) of a batch of integer genotypes of the predictor's space
        (``nasprof.space.genotype``) at its resolution: one gather per block, no ``Arch`` objects
        (except for keys the table lacks)."""
        from nasprof.predictors.layerwise import predict_codes
        from nasprof.space import get_space

        if not self.space:
            raise PredictorError("this predictor records no search space; predict architectures instead")
        layout = get_space(self.space).chain_layout(self.resolution, width)
        return predict_codes(self, codes, layout)

    # -- prediction -------------------------------------------------------------------------------------
    def predict(self, target: Any) -> float:
        if self.fallback is not None:
            return super().predict(target)
        return float(self._lat[self.encode(target)].sum()) + self._base_ms

    def predict_many(self, targets: Iterable[Any] | np.ndarray) -> np.ndarray:
        """Latencies (ms). Pass ``encode_many(archs)`` (an int id matrix) for the fast path."""
        if isinstance(targets, np.ndarray) and targets.dtype.kind in "iu":
            ids = targets if targets.ndim == 2 else targets.reshape(1, -1)
            if ids.size and (ids.min() < 0 or ids.max() > self.pad_id):
                raise PredictorError(f"key ids must lie in 0..{self.pad_id}; encode with this predictor")
            return self._lat[ids].sum(axis=1) + self._base_ms
        targets = list(targets)
        if self.fallback is not None:
            return np.array([self.predict(t) for t in targets], np.float64)
        return self._lat[self.encode_many(targets)].sum(axis=1) + self._base_ms

    def explain(self, target: Any) -> Prediction:
        arch = self._arch(target)
        if self.resolution is not None and getattr(arch, "resolution", self.resolution) != self.resolution:
            # Every key carries its shapes: at another resolution none would be found ("0 ms, partial").
            raise PredictorError(
                f"this lookup table is for {self.resolution} px, the architecture is {arch.resolution} px; "
                f"build a table at {arch.resolution} (`nasprof table build --resolution "
                f"{arch.resolution}`) or predict the architecture at {self.resolution} px")
        layers = priced_layers(arch.layers())
        parts: list[PredictionPart] = []
        missing: list[str] = []
        fallback: list[str] = []
        for layer in layers:
            key = layer.key
            if key in self.entries:
                parts.append(PredictionPart(key, "layer", self.layer_ms(key), "table"))
            elif self.fallback is not None:
                estimate = self._fallback_layer(layer)
                if estimate is None:
                    missing.append(key)
                else:
                    fallback.append(key)
                    parts.append(PredictionPart(key, "layer", estimate * self.factor(key), "fallback"))
            else:
                missing.append(key)
        if self.offset_ms:
            parts.append(PredictionPart("per-network constant", "constant", self.offset_ms, "calibration"))
        total = self.overhead_ms + sum(p.latency_ms for p in parts)
        return Prediction(
            total,
            tuple(parts),
            overhead_ms=self.overhead_ms,
            missing=tuple(missing),
            fallback=tuple(fallback),
        )

    def _fallback_layer(self, layer: Any) -> float | None:
        """Predict one layer with the fallback by exporting it alone (slow; flagged in the result)."""
        import tempfile

        from nasprof.space import export_layer

        with tempfile.TemporaryDirectory(prefix="nasprof-fallback-") as tmp:
            path = export_layer(layer, Path(tmp) / "layer.onnx")
            p = self.fallback.explain(path)  # type: ignore[union-attr]
        if p.missing:
            return None
        # The fallback's one-layer estimate includes one per-call overhead; drop it, as for entries.
        return max(p.latency_ms - p.overhead_ms, 0.0)

    # -- files ------------------------------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        return {
            "overhead_ms": self.overhead_ms,
            "scale": self.scale,
            "group_factors": dict(sorted(self.group_factors.items())),
            "ms_per_weight_mb": self.ms_per_weight_mb,
            "offset_ms": self.offset_ms,
            "space": self.space,
            "resolution": self.resolution,
            "entries": dict(sorted(self.entries.items())),
            "weight_mb": dict(sorted(self.weight_mb.items())),
            "layer_ratios": dict(sorted(self.layer_ratios.items())),
        }

    @classmethod
    def _from_body(cls, body: Mapping[str, Any], header: Mapping[str, Any]) -> LutPredictor:
        entries = body["entries"]
        if not isinstance(entries, dict):
            raise PredictorError("predictor body 'entries' must map layer keys to ms")
        space = body.get("space")
        if space is not None:
            from nasprof.space import list_spaces

            if not isinstance(space, str) or space not in list_spaces():
                raise PredictorError(
                    f"predictor file is for search space {space!r}, which this nasprof does not have "
                    f"(known: {', '.join(list_spaces())}); refit it on a table of a known space"
                )
        res = body.get("resolution")
        factors = body.get("group_factors") or {}
        weights = body.get("weight_mb") or {}
        ratios = body.get("layer_ratios") or {}  # absent in files written before in-network ratios
        if not all(isinstance(v, dict) for v in (factors, weights, ratios)):
            raise PredictorError(
                "predictor body 'group_factors', 'weight_mb' and 'layer_ratios' must be objects"
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ratios.values()):
            raise PredictorError("predictor body 'layer_ratios' must map layer keys to numbers")
        return cls(
            {str(k): float(v) for k, v in entries.items()},
            overhead_ms=float(body.get("overhead_ms", 0.0)),
            scale=float(body.get("scale", 1.0)),
            group_factors=factors,
            ms_per_weight_mb=float(body.get("ms_per_weight_mb", 0.0)),
            weight_mb=weights,
            offset_ms=float(body.get("offset_ms", 0.0)),
            space=body.get("space"),
            resolution=int(res) if res is not None else None,
            layer_ratios={str(k): float(v) for k, v in ratios.items()},
            device=str(header["device"]),
            measure_spec=header.get("measure_spec"),
            training_error=header.get("training_error"),
            metadata=header.get("metadata"),
        )

    def copy_with(self, **changes: Any) -> LutPredictor:
        kw: dict[str, Any] = {
            "overhead_ms": self.overhead_ms,
            "scale": self.scale,
            "group_factors": self.group_factors,
            "ms_per_weight_mb": self.ms_per_weight_mb,
            "weight_mb": self.weight_mb,
            "offset_ms": self.offset_ms,
            "space": self.space,
            "resolution": self.resolution,
            "fallback": self.fallback,
            "layer_ratios": self.layer_ratios,
            "device": self.device,
            "measure_spec": self.measure_spec,
            "training_error": self.training_error,
            "metadata": self.metadata,
        }
        kw.update(changes)
        return LutPredictor(self.entries, **kw)

    def with_fallback(self, fallback: Predictor | None) -> LutPredictor:
        """A copy that predicts missing keys with ``fallback`` (flagged in ``explain``'s result)."""
        return self.copy_with(fallback=fallback)

    def learn_layer_ratios(
        self, archs: Sequence[Any], measured_ms: Sequence[float], profiles: Sequence[Sequence[Any]]
    ) -> LutPredictor:
        """A copy with an in-network ratio (in-network ÷ alone) for every key of the table, learned from one
        profiled pass per architecture and its end-to-end time (see
        ``nasprof.predictors.calibration.in_network``).
        Ratios are relative to the raw entries: learning again replaces them."""
        from nasprof.predictors.calibration.in_network import learn_ratios

        return learn_ratios(self, archs, measured_ms, profiles)  # type: ignore[no-any-return]

    def calibrate(
        self,
        archs: Sequence[Any],
        measured_ms: Sequence[float],
        *,
        model: str = "families",
        prior_weight: float = _PRIOR_WEIGHT,
        profiles: Sequence[Sequence[Any]] | None = None,
    ) -> LutPredictor:
        """A copy fitted to these end-to-end measurements (use architectures other than those you validate
        on), minimising the squared *relative* error of the networks' totals.

        ``profiles`` (one profiled pass per architecture: ``NodeTime`` lists, from
        ``in_network.profile_networks``) first learns an in-network ratio for every key
        (``learn_layer_ratios``); the fit below then runs on entries × ratio.

        ``model="scale"``: one factor for every layer, in closed form: with x_i = Σ(entry − overhead) and
        y_i = measured − overhead, scale = Σ x_i·y_i / m_i² ÷ Σ x_i² / m_i².
        ``model="families"`` (default): that scale, then one factor per layer family and the cost per MB
        of weights ``β`` by non-negative least squares, with a weak ridge prior (``prior_weight``) pulling
        the factors to the scale and ``β`` to 0. It needs at least 3 networks per fitted parameter and the
        table's ``params`` column; with fewer networks it keeps the single scale (and says so in
        ``training_error``).
        The leave-one-out error (each network predicted by a fit on the others) is reported as the honest
        held-out figure.
        """
        if profiles is not None:
            try:
                learned = self.learn_layer_ratios(archs, measured_ms, profiles)
            except TooFewLayersError as exc:
                # Too few networks to learn from (`--calibrate 2`): calibrate without, and say so.
                out = self.calibrate(archs, measured_ms, model=model, prior_weight=prior_weight)
                out.training_error = {**out.training_error, "in_network": f"skipped: {exc}"}
                return out
            out = learned.calibrate(archs, measured_ms, model=model, prior_weight=prior_weight)
            out.training_error = {
                **out.training_error,
                "method": out.training_error["method"] + ", on in-network layer ratios",
                "in_network": learned.training_error["in_network"],
                # Honest reading of the figure: only the family fit is redone without the held-out network.
                "leave_one_out_note": "refits the family factors per held-out network; the in-network "
                "ratios were learned on all of them",
            }
            return out
        return fit_families(self, archs, measured_ms, model=model, prior_weight=prior_weight)
