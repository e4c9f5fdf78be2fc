"""Decompositions: a network's latency as a sum of parts whose costs are re-weighted for a new device.

A decomposition turns each network into a row of amounts ``z`` (one column per kind of work) such that, on
the device the amounts come from, the latency is about ``b + s * sum(z)``. ``predictor adapt`` learns a
weight per column for the target device with a prior toward one common scale ``s``.

- ``CellGraph`` (NAS-Bench-201): the space's own structure, no device needed. Columns are the executed
  operations of the cell under a rewrite hypothesis (``rewrites.py``), in units of work (multiply-adds for
  convolutions, element operations otherwise) summed over the three stages.
- ``SourceParts``: another device's predictor (a lookup table or kernel predictor nasprof built), its
  prediction split by layer family or kernel type, in that device's milliseconds.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from nasprof.errors import PredictorError
from nasprof.predictors.adapt.rewrites import CELL_COUNT_NAMES, Rewrites, cell_counts
from nasprof.predictors.lut.keys import key_family

__all__ = ["Decomposition", "CellGraph", "SourceParts", "decomposition_from_dict", "nb201_ops"]

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class Decomposition(abc.ABC):
    """Rows of amounts per network; ``matrix`` is the only hot path (vectorised over networks)."""

    name: ClassVar[str] = ""

    @property
    @abc.abstractmethod
    def columns(self) -> list[str]:
        """One name per column of ``matrix``."""

    @abc.abstractmethod
    def matrix(self, targets: Sequence[Any]) -> np.ndarray:
        """(n, columns) amounts, in the source's units (work or ms)."""

    def constant(self, targets: Sequence[Any]) -> np.ndarray:
        """Per network: whether the runtime can fold all of it into a constant (no work left)."""
        return np.zeros(len(targets), dtype=bool)

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str:
        return self.name


def nb201_ops(target: Any) -> tuple[str, ...]:
    """The six edge operations of an NB201 cell, from an ``Arch`` of the ``nb201`` space or a standard
    NAS-Bench-201 string (``|nor_conv_3x3~0|+|...|``)."""
    if not isinstance(target, str):
        if getattr(target, "space", None) != "nb201":
            raise PredictorError(
                f"this predictor was adapted on NAS-Bench-201 networks; {target} is from space "
                f"{getattr(target, 'space', '?')!r}"
            )
        return tuple(str(b) for b in target.blocks)
    text = target.strip()
    nodes = text.strip("|").split("|+|") if text.startswith("|") else []
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        tokens = node.strip("|").split("|")
        if len(tokens) != j:
            ops = []
            break
        for i, tok in enumerate(tokens):
            op, _, src = tok.partition("~")
            if op not in NB201_OPS or src != str(i):
                ops = []
                break
            ops.append(op)
    if len(ops) != 6:
        raise PredictorError(
            f"{target!r} is not a NAS-Bench-201 architecture string; expected e.g. "
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
        )
    return tuple(ops)


def _stage_shapes(options: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """(channels, height, width) of the three stages of TinyNetwork for these options."""
    _, h, w = (int(v) for v in options["input"])
    c = int(options["C"])
    shapes = []
    for stage in range(3):
        shapes.append((c << stage, h, w))
        h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1  # the reduction block's stride-2 3x3 convolution
    return shapes


class CellGraph(Decomposition):
    """The NB201 cell's executed operations under one rewrite hypothesis, in units of work."""

    name = "cell_graph"

    def __init__(self, rewrites: Rewrites, options: Mapping[str, Any]) -> None:
        self.rewrites = rewrites
        self.options: dict[str, Any] = {
            "input": tuple(int(v) for v in options["input"]), "C": int(options["C"]),
            "N": int(options["N"]), "outputs": int(options["outputs"]),
        }
        n = self.options["N"]
        # Work per executed operation of one kind, summed over the stages' cells (each stage repeats its
        # cell N times): multiply-adds for convolutions, element operations for the rest.
        elems = sum(c * h * w for c, h, w in _stage_shapes(self.options)) * n
        macs1 = sum(c * c * h * w for c, h, w in _stage_shapes(self.options)) * n
        self._unit = np.array([macs1, 9 * macs1, 9 * elems, elems, elems], dtype=np.float64)
        self._cache: dict[tuple[str, ...], tuple[np.ndarray, bool]] = {}

    @property
    def columns(self) -> list[str]:
        return list(CELL_COUNT_NAMES)

    def _row(self, ops: tuple[str, ...]) -> tuple[np.ndarray, bool]:
        hit = self._cache.get(ops)
        if hit is None:
            counts, const = cell_counts(ops, self.rewrites)
            hit = self._cache[ops] = (np.asarray(counts, np.float64) * self._unit, const)
        return hit

    def check_options(self, target: Any) -> None:
        opts = getattr(target, "options", None)
        if not opts:
            return
        given = dict(opts)
        mine = {"input": self.options["input"], "C": self.options["C"], "N": self.options["N"],
                "outputs": self.options["outputs"]}
        for key, value in mine.items():
            if key in given and _as_tuple(given[key]) != _as_tuple(value):
                raise PredictorError(
                    f"this predictor is for NB201 networks with {key} {_fmt(value)}, the architecture has "
                    f"{_fmt(given[key])}; adapt one on measurements of those networks"
                )

    def matrix(self, targets: Sequence[Any]) -> np.ndarray:
        rows = []
        for t in targets:
            self.check_options(t)
            rows.append(self._row(nb201_ops(t))[0])
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(CELL_COUNT_NAMES))

    def constant(self, targets: Sequence[Any]) -> np.ndarray:
        return np.array([self._row(nb201_ops(t))[1] for t in targets], dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rewrites": self.rewrites.to_dict(),
                "options": {**self.options, "input": list(self.options["input"])}}

    def describe(self) -> str:
        return f"NB201 cell graph, runtime rewrites {self.rewrites.name}"


def _as_tuple(v: Any) -> tuple[Any, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _fmt(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return "x".join(str(x) for x in v)
    return str(v)


class SourceParts(Decomposition):
    """Another device's predictor, its prediction split by layer family (LUT) or kernel type."""

    name = "source"

    def __init__(self, source: Any, columns: Sequence[str] | None = None) -> None:
        self.source = source
        self._columns = list(columns) if columns is not None else None

    def _parts(self, target: Any) -> dict[str, float]:
        p = self.source.explain(target)
        self.source._check_complete(p, where="the source predictor: ")
        out: dict[str, float] = {}
        for part in p.parts:
            fam = key_family(part.name) if part.kind == "layer" else part.kind
            out[fam] = out.get(fam, 0.0) + part.latency_ms
        out["overhead"] = out.get("overhead", 0.0) + p.overhead_ms
        return out

    @property
    def columns(self) -> list[str]:
        if self._columns is None:
            raise PredictorError("the source decomposition has no columns before it has seen networks")
        return list(self._columns)

    def matrix(self, targets: Sequence[Any]) -> np.ndarray:
        parts = [self._parts(t) for t in targets]
        if self._columns is None:
            self._columns = sorted({k for p in parts for k in p})
        col = {c: i for i, c in enumerate(self._columns)}
        z = np.zeros((len(parts), len(col)))
        for r, p in enumerate(parts):
            for k, v in p.items():
                if k not in col:
                    raise PredictorError(
                        f"the source predictor splits this network into a part ({k}) none of the "
                        "measured networks had; measure a network that contains it"
                    )
                z[r, col[k]] = v
        return z

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": self.columns, "source": self.source.to_dict()}

    def describe(self) -> str:
        return f"{self.source.kind} predictor of {self.source.device}, by layer family"


def decomposition_from_dict(doc: Mapping[str, Any]) -> Decomposition:
    name = doc.get("name")
    if name == CellGraph.name:
        opts = dict(doc["options"])
        return CellGraph(Rewrites.from_dict(doc["rewrites"]), opts)
    if name == SourceParts.name:
        from nasprof.predictors.base import Predictor

        body = doc["source"]
        kind = body.get("kind")
        if kind not in Predictor._kinds:
            raise PredictorError(f"the embedded source predictor has unknown kind {kind!r}")
        source = Predictor._kinds[kind]._from_body(body["body"], body)
        return SourceParts(source, doc["columns"])
    raise PredictorError(f"unknown decomposition {name!r}")
