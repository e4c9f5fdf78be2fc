"""Regret against the truth: how far a search's pick is from the best network that truly meets the target.

The truth is a complete accuracy table (``TableAccuracy``) and real latencies of the space's networks (a
measurement set, ``--truth``). The **true constrained optimum** is the most accurate network whose measured
latency meets the target; the **regret** of a pick is the optimum's accuracy minus the pick's true accuracy
(the pick's error minus the optimum's for a minimised metric), in percentage points: the metric × 100 when
it is a fraction (95% of the table's values within [0, 1]), else as given. A pick whose measured latency
breaks the target is flagged ``over_target``; its regret is still reported.

Architectures are matched by their string, else by isomorphism class where the space has ``canonical``
(isomorphic networks share one measurement in NAS-Bench-201's device benchmarks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nasprof.errors import InputError
from nasprof.search.accuracy import TableAccuracy, normalize_keys
from nasprof.search.options import class_keys

__all__ = ["Truth", "regret_report", "points_scale", "hypervolume"]


def points_scale(values: ArrayLike) -> float:
    """100 when the metric is a fraction (95% of |values| within 1), else 1 (already a percentage)."""
    v = np.abs(np.asarray(values, dtype=np.float64))
    return 100.0 if v.size and float(np.quantile(v, 0.95)) <= 1.0 else 1.0


@dataclass(frozen=True, eq=False)
class Truth:
    """Every network of the truth (its string as the space writes it) with its measured latency and its
    true accuracy (from a complete table)."""

    archs: tuple[str, ...]
    latency_ms: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    minimize: bool
    label: str
    scale: float

    @classmethod
    def build(cls, latencies: Mapping[str, float], table: TableAccuracy, space: Any, *,
              label: str = "truth") -> Truth:
        """``latencies`` maps architecture strings (as the space writes them) to measured milliseconds;
        every one must have an accuracy in ``table`` (exactly or by class)."""
        from nasprof.space.parse import parse_arch

        keys = list(latencies)
        if not keys:
            raise InputError(f"{label} holds no networks")
        name = str(space.name)
        acc = table.lookup(keys)
        missing = np.isnan(acc)
        if missing.any():  # by isomorphism class
            idx = np.flatnonzero(missing)
            some = [keys[int(i)] for i in idx]
            acc[idx] = table.lookup(some, [parse_arch(k, name) for k in some])
            missing = np.isnan(acc)
        if missing.any():
            raise InputError(
                f"the accuracy table lacks {int(missing.sum())} of the {len(keys)} networks of {label} (e.g. "
                f"{keys[int(np.flatnonzero(missing)[0])][:80]}); regret needs a complete accuracy table"
            )
        lat = np.array([float(latencies[k]) for k in keys], dtype=np.float64)
        return cls(tuple(keys), lat, acc, table.minimize, label, points_scale(acc))

    @classmethod
    def from_measurements(cls, ref: str | Path, table: TableAccuracy, space: Any,
                          store: str | Path | None = None) -> Truth:
        """The truth from a measurement set (``NAME[@vN]`` or a CSV/Parquet file of arch, latency_ms)."""
        from nasprof.tables.measurements import load_measurement_set

        ms = load_measurement_set(ref, store=store)
        if ms.space is not None and ms.space != space.name:
            raise InputError(f"--truth {ref} measured {ms.space} networks, not {space.name} ones")
        mine = getattr(space, "options", None)
        if ms.arch_options and mine is not None:
            theirs = dict(space.base.normalize_options(dict(ms.arch_options)))
            if theirs != mine:
                raise InputError(f"--truth {ref} measured networks with options {dict(ms.arch_options)}, not "
                                 "the searched ones; give the same --input/--outputs")
        rows = [r for r in ms.rows if r.arch is not None]
        if not rows:
            raise InputError(f"--truth {ref} holds no architectures (only model files)")
        keys = normalize_keys([str(r.arch) for r in rows], space, f"--truth {ref}")
        latencies: dict[str, float] = {}
        for k, r in zip(keys, rows, strict=True):
            latencies.setdefault(k, float(r.latency_ms))
        return cls.build(latencies, table, space, label=f"--truth {ms.label}")

    @property
    def quality(self) -> NDArray[np.float64]:
        """The accuracy signed so that higher is better."""
        return -self.accuracy if self.minimize else self.accuracy

    def optimum(self, target_ms: float) -> int | None:
        """Index of the most accurate network measured within ``target_ms`` (None if none is)."""
        ok = self.latency_ms <= target_ms
        if not ok.any():
            return None
        return int(np.argmax(np.where(ok, self.quality, -np.inf)))

    def locate(self, arch: Any, space: Any) -> int | None:
        """Index of ``arch`` (an ``Arch``) in the truth: by string, else by isomorphism class."""
        index = self._index()
        i = index.get(str(arch.to_string()))
        if i is None:
            i = self._class_index(space).get(class_keys(space, [arch])[0])
        return i

    def _index(self) -> dict[str, int]:
        if "_idx" not in self.__dict__:
            self.__dict__["_idx"] = {k: i for i, k in enumerate(self.archs)}
        return self.__dict__["_idx"]  # type: ignore[no-any-return]

    def _class_index(self, space: Any) -> dict[str, int]:
        if "_cls" not in self.__dict__:
            from nasprof.space.parse import parse_arch

            name = str(space.name)
            keys = class_keys(space, [parse_arch(k, name) for k in self.archs])
            out: dict[str, int] = {}
            for i, k in enumerate(keys):
                out.setdefault(k, i)
            self.__dict__["_cls"] = out
        return self.__dict__["_cls"]  # type: ignore[no-any-return]


def regret_report(pick: Any, truth: Truth, target_ms: float, space: Any) -> dict[str, Any]:
    """The true optimum under ``target_ms``, the pick's (an ``Arch`` or None) true accuracy and latency,
    and the regret in percentage points (see the module)."""
    opt = truth.optimum(target_ms)
    doc: dict[str, Any] = {
        "truth": truth.label,
        "networks": len(truth.archs),
        "target_ms": float(target_ms),
        "feasible_networks": int((truth.latency_ms <= target_ms).sum()),
        "points_scale": truth.scale,
        "minimize": truth.minimize,
        "optimum": None,
        "returned": None,
        "regret_points": None,
    }
    if opt is not None:
        doc["optimum"] = {"arch": truth.archs[opt], "accuracy": float(truth.accuracy[opt]),
                          "latency_ms": float(truth.latency_ms[opt])}
    if pick is None:
        return doc
    i = truth.locate(pick, space)
    if i is None:
        doc["returned"] = {"arch": str(pick.to_string()), "accuracy": None, "latency_ms": None,
                           "over_target": None}
        return doc
    over = bool(truth.latency_ms[i] > target_ms)
    doc["returned"] = {"arch": str(pick.to_string()), "accuracy": float(truth.accuracy[i]),
                       "latency_ms": float(truth.latency_ms[i]), "over_target": over}
    if opt is not None:
        doc["regret_points"] = float((truth.quality[opt] - truth.quality[i]) * truth.scale)
    return doc


def hypervolume(
    latency_ms: ArrayLike, quality: ArrayLike, ref_latency_ms: float, ref_quality: float
) -> float:
    """Area dominated by the points (lower latency, higher quality) within the reference box
    [0, ``ref_latency_ms``] × [``ref_quality``, ∞): the 2-D hypervolume."""
    lat = np.asarray(latency_ms, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    keep = (lat <= ref_latency_ms) & (q >= ref_quality) & np.isfinite(lat) & np.isfinite(q)
    lat, q = lat[keep], q[keep]
    if not lat.size:
        return 0.0
    order = np.lexsort((-q, lat))
    lat, q = lat[order], q[order]
    area, best = 0.0, ref_quality
    for i in range(lat.size):
        if q[i] > best:
            nxt = ref_latency_ms
            # this point dominates from its latency up to the reference latency, above the previous best
            area += (nxt - lat[i]) * (q[i] - best)
            best = q[i]
    return float(area)
