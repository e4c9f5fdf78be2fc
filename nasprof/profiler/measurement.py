"""The result of measuring one model on one device: raw samples, statistics, metadata.

A ``Measurement`` is immutable and self-describing: it keeps every timed sample and warm-up (in ms), which
fresh session produced each sample, the environment it was taken in, and (optionally) a per-node breakdown.
Statistics are derived properties, so they can never disagree with the samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from nasprof.errors import SchemaError
from nasprof.profiler.stats import SampleStats, modified_z_scores, stability_warnings

__all__ = ["Measurement", "NodeTime", "MEASUREMENT_SCHEMA_VERSION"]

#: History: 1 — first version (samples_ms, warmup_ms, session_index, metadata, per_node, memory).
MEASUREMENT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class NodeTime:
    """Time of one executed kernel (a node after onnxruntime's graph optimisation).

    ``duration_ms`` is the median over the profiled runs.
    """

    name: str
    op_type: str
    block: str
    duration_ms: float
    provider: str = ""
    #: Names of the exported nodes this kernel covers (more than one when onnxruntime fused nodes).
    covers: tuple[str, ...] = ()
    output_shape: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op_type": self.op_type,
            "block": self.block,
            "duration_ms": self.duration_ms,
            "provider": self.provider,
            "covers": list(self.covers),
            "output_shape": list(self.output_shape),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeTime:
        return cls(
            name=str(d["name"]),
            op_type=str(d["op_type"]),
            block=str(d["block"]),
            duration_ms=float(d["duration_ms"]),
            provider=str(d.get("provider", "")),
            covers=tuple(d.get("covers", ())),
            output_shape=tuple(int(v) for v in d.get("output_shape", ())),
        )


@dataclass(frozen=True, eq=False)
class Measurement:
    """Latency of one model on one device.

    ``samples_ms`` are the timed end-to-end runs (profiling off) of all sessions, in order;
    ``session_index[i]`` is the fresh session that produced ``samples_ms[i]``. ``warmup_ms`` are the untimed
    warm-up runs, kept as evidence. An estimate (the MCU backend) sets ``estimated=True``; its samples are the
    estimate itself and ``memory`` holds its memory report.
    """

    device: str
    backend: str
    samples_ms: tuple[float, ...]
    warmup_ms: tuple[float, ...] = ()
    session_index: tuple[int, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    per_node: tuple[NodeTime, ...] | None = None
    estimated: bool = False
    memory: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        samples = tuple(float(v) for v in self.samples_ms)
        if not samples:
            raise ValueError("a Measurement needs at least one sample")
        if any(not math.isfinite(v) or v <= 0 for v in samples):
            raise ValueError("samples_ms must be finite and > 0")
        object.__setattr__(self, "samples_ms", samples)
        object.__setattr__(self, "warmup_ms", tuple(float(v) for v in self.warmup_ms))
        sid = tuple(int(v) for v in self.session_index) or (0,) * len(samples)
        if len(sid) != len(samples):
            raise ValueError("session_index must have one entry per sample")
        object.__setattr__(self, "session_index", sid)
        if self.per_node is not None:
            object.__setattr__(self, "per_node", tuple(self.per_node))

    # -- statistics -------------------------------------------------------------------------------------
    @cached_property
    def stats(self) -> SampleStats:
        return SampleStats(self.samples_ms)

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return self.stats.median

    @property
    def mean_ms(self) -> float:
        return self.stats.mean

    @property
    def min_ms(self) -> float:
        return self.stats.min

    @property
    def max_ms(self) -> float:
        return self.stats.max

    @property
    def p90_ms(self) -> float:
        return self.stats.p90

    @property
    def p99_ms(self) -> float:
        return self.stats.p99

    @property
    def mad_ms(self) -> float:
        return self.stats.mad

    @property
    def std_ms(self) -> float:
        return self.stats.std

    @property
    def cv(self) -> float:
        return self.stats.cv

    @property
    def sessions(self) -> int:
        return len(set(self.session_index))

    @property
    def session_medians_ms(self) -> tuple[float, ...]:
        out = []
        for s in sorted(set(self.session_index)):
            vals = [v for v, i in zip(self.samples_ms, self.session_index, strict=True) if i == s]
            out.append(SampleStats(vals).median)
        return tuple(out)

    @property
    def n_outliers(self) -> int:
        return int((modified_z_scores(self.samples_ms) > 10.0).sum())

    @cached_property
    def warnings(self) -> tuple[str, ...]:
        if self.estimated:
            return ("estimate: computed from a model of the device, not measured on hardware",)
        # Backends add what the samples cannot show (a loaded host, more threads than cores) as
        # metadata["host_warnings"], so the evidence travels with the result.
        host = tuple(str(w) for w in self.metadata.get("host_warnings", ()))
        nodes: tuple[str, ...] = ()
        coverage = self.node_coverage
        # Nodes summing to well over the end-to-end time means the profiled pass ran slower than the timed
        # one (profiler overhead, seen on small models): the per-node shares then overstate every node.
        if coverage is not None and coverage > 1.10:
            nodes = (f"per-node times sum to {coverage:.0%} of the end-to-end median: the profiled pass ran "
                     "slower than the timed runs; read node shares as relative, not absolute",)
        return tuple(stability_warnings(self.samples_ms, self.session_index)) + host + nodes

    def latency_ms(self) -> dict[str, float]:
        s = self.stats
        return {"median": s.median, "p90": s.p90, "p99": s.p99, "mean": s.mean, "min": s.min,
                "max": s.max, "mad": s.mad, "cv": s.cv}

    # -- per-node aggregates ----------------------------------------------------------------------------
    def _group(self, key: str) -> list[dict[str, Any]]:
        if not self.per_node:
            return []
        total: dict[str, float] = {}
        count: dict[str, int] = {}
        for node in self.per_node:
            k = getattr(node, key)
            total[k] = total.get(k, 0.0) + node.duration_ms
            count[k] = count.get(k, 0) + 1
        e2e = self.median_ms
        rows = [
            {key: k, "duration_ms": v, "share": v / e2e, "nodes": count[k]}
            for k, v in total.items()
        ]
        return sorted(rows, key=lambda r: -r["duration_ms"])

    @property
    def per_op_type(self) -> list[dict[str, Any]]:
        return self._group("op_type")

    @property
    def per_block(self) -> list[dict[str, Any]]:
        return self._group("block")

    @property
    def node_coverage(self) -> float | None:
        """Sum of per-node times ÷ end-to-end median (how much of the latency the nodes explain)."""
        if not self.per_node:
            return None
        return sum(n.duration_ms for n in self.per_node) / self.median_ms

    # -- serialisation ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": MEASUREMENT_SCHEMA_VERSION,
            "kind": "nasprof.measurement",
            "device": self.device,
            "backend": self.backend,
            "estimated": self.estimated,
            "latency_ms": self.latency_ms(),
            "n": self.n,
            "sessions": self.sessions,
            "session_medians_ms": list(self.session_medians_ms),
            "warnings": list(self.warnings),
            "samples_ms": list(self.samples_ms),
            "warmup_ms": list(self.warmup_ms),
            "session_index": list(self.session_index),
            "metadata": dict(self.metadata),
        }
        if self.per_node is not None:
            d["per_node"] = [
                {**n.to_dict(), "share": n.duration_ms / self.median_ms} for n in self.per_node
            ]
            d["per_op_type"] = self.per_op_type
            d["per_block"] = self.per_block
            d["node_coverage"] = self.node_coverage
        if self.memory is not None:
            d["memory"] = dict(self.memory)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement:
        version = d.get("schema_version")
        if not isinstance(version, int) or version > MEASUREMENT_SCHEMA_VERSION:
            raise SchemaError(
                f"measurement schema_version {version!r} is newer than this nasprof understands "
                f"({MEASUREMENT_SCHEMA_VERSION}); upgrade nasprof"
            )
        per_node = d.get("per_node")
        return cls(
            device=str(d["device"]),
            backend=str(d.get("backend", d["device"])),
            samples_ms=tuple(d["samples_ms"]),
            warmup_ms=tuple(d.get("warmup_ms", ())),
            session_index=tuple(d.get("session_index", ())),
            metadata=dict(d.get("metadata", {})),
            per_node=None if per_node is None else tuple(NodeTime.from_dict(n) for n in per_node),
            estimated=bool(d.get("estimated", False)),
            memory=d.get("memory"),
        )

    def save_json(self, path: str | Path) -> Path:
        """Write the versioned JSON document atomically (a crash never leaves half a file)."""
        from nasprof._io import atomic_write_text

        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def load_json(cls, path: str | Path) -> Measurement:
        return cls.from_dict(json.loads(Path(path).read_text()))


