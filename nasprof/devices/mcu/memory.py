"""Shared types of the SRAM memory models, and the first-fit placement both arena planners use.

A memory model turns an ``McuGraph`` into a ``MemoryPlan``: the peak SRAM in bytes, the op at which it peaks,
and one ``LayerMemory`` row per op saying how much memory is in use while that op runs. The three models
(``per-layer``, ``tflm``, ``tinyengine``) live in their own modules; ``planners.plan_memory`` picks one by
name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nasprof.devices.mcu.graph import McuGraph

__all__ = ["LayerMemory", "Buffer", "MemoryPlan", "MEMORY_MODELS", "place_first_fit",
           "lifetimes"]

#: Memory model names accepted by ``--memory-model``.
MEMORY_MODELS = ("per-layer", "tflm", "tinyengine")


@dataclass(frozen=True)
class LayerMemory:
    """SRAM in use while one op runs, in bytes, under one memory model.

    ``other_bytes`` are tensors alive across the op without being read or written by it (a residual branch);
    ``scratch_bytes`` are the op's own working buffers (im2col, kernel buffers); ``total_bytes`` is what the
    model charges for this step, so the plan's peak is ``max(total_bytes)`` (plus a persistent tail for
    ``tflm``).
    """

    index: int
    name: str
    op_type: str
    kind: str
    input_bytes: int
    output_bytes: int
    other_bytes: int
    scratch_bytes: int
    total_bytes: int
    macs: int
    in_place: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "name": self.name, "op_type": self.op_type, "kind": self.kind,
            "input_bytes": self.input_bytes, "output_bytes": self.output_bytes,
            "other_bytes": self.other_bytes, "scratch_bytes": self.scratch_bytes,
            "total_bytes": self.total_bytes, "macs": self.macs, "in_place": self.in_place,
        }


@dataclass(frozen=True)
class Buffer:
    """An arena buffer alive from op ``first`` to op ``last`` (inclusive), at ``[offset, offset+size)``."""

    name: str
    size: int
    first: int
    last: int
    offset: int = -1
    #: TinyEngine's in-place stride-2 depthwise: after op ``shrink_after`` only ``shrunk_size`` B are used.
    shrink_after: int | None = None
    shrunk_size: int | None = None

    def size_seen_from(self, first: int) -> int:
        """Bytes this buffer blocks for a buffer that starts at op ``first``."""
        if self.shrink_after is not None and self.shrunk_size is not None and first > self.shrink_after:
            return self.shrunk_size
        return self.size

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "first": self.first, "last": self.last,
                "offset": self.offset}


@dataclass(frozen=True)
class MemoryPlan:
    """The SRAM estimate of one model under one memory model (all sizes in bytes)."""

    memory_model: str
    peak_bytes: int
    peak_index: int
    layers: tuple[LayerMemory, ...]
    #: Part of the peak that is activations (the arena head for planners).
    activation_bytes: int
    #: Static working buffers counted once (TinyEngine's im2col/kernel buffers); 0 elsewhere.
    static_scratch_bytes: int = 0
    #: Persistent tail (TFLM's per-tensor structs and per-channel quantisation data); 0 elsewhere.
    persistent_bytes: int = 0
    buffers: tuple[Buffer, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def peak_layer(self) -> str:
        return self.layers[self.peak_index].name

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory_model": self.memory_model,
            "peak_bytes": self.peak_bytes,
            "peak_layer": self.peak_layer,
            "peak_index": self.peak_index,
            "activation_bytes": self.activation_bytes,
            "static_scratch_bytes": self.static_scratch_bytes,
            "persistent_bytes": self.persistent_bytes,
            "notes": list(self.notes),
            "per_layer": [row.to_dict() for row in self.layers],
        }


def lifetimes(graph: McuGraph) -> dict[str, tuple[int, int]]:
    """``tensor -> (first op, last op)`` inclusive: from the producer (0 for inputs) to the last reader."""
    out: dict[str, tuple[int, int]] = {}
    for t in graph.inputs:
        out[t] = (0, graph.last_use(t))
    for i, op in enumerate(graph.ops):
        for t in op.outputs:
            out.setdefault(t, (i, max(i, graph.last_use(t))))
    return out


def place_first_fit(buffers: Sequence[Buffer], order: Callable[[Buffer], Any]) -> list[Buffer]:
    """Place buffers one by one (in ``order``) at the lowest offset that overlaps no placed buffer alive at
    the same time. This is TFLM's GreedyMemoryPlanner and TinyEngine's FirstFit allocator when ``order``
    sorts largest first. Returns the buffers with offsets, in the input order."""
    placed: list[Buffer] = []
    result: dict[int, Buffer] = {}
    indexed = sorted(enumerate(buffers), key=lambda ib: order(ib[1]))
    for idx, buf in indexed:
        blockers = sorted(
            ((p.offset, p.offset + p.size_seen_from(buf.first)) for p in placed if p.overlaps_in_time(buf)),
        )
        offset = 0
        for start, end in blockers:
            if start >= offset + buf.size:
                break  # the gap below this blocker is big enough
            offset = max(offset, end)
        done = Buffer(buf.name, buf.size, buf.first, buf.last, offset, buf.shrink_after, buf.shrunk_size)
        placed.append(done)
        result[idx] = done
    return [result[i] for i in range(len(buffers))]


def extent_at(buffers: Sequence[Buffer], step: int) -> int:
    """Highest byte in use at op ``step``: the arena an op needs, fragmentation included."""
    ends = [b.offset + b.size_seen_from(step) for b in buffers if b.first <= step <= b.last]
    return max(ends, default=0)
