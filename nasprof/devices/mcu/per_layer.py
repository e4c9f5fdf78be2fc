"""MCUNet's analytic per-layer peak memory (Lin et al. 2020; MCUNetV2, arXiv 2110.15352, Fig. 1/2).

Convention (this is what reproduces MCUNetV2's MobileNetV2-1.0 @ 224 figures exactly):
- A *layer* is one kernel call of the int8 graph (``McuGraph``): an inverted bottleneck is three layers
  (1x1 expand, depthwise, 1x1 project) plus its residual Add; activations and BN are fused, views are free.
- Memory while a layer runs = its input tensor(s) + its output tensor(s) + every other tensor that is alive
  across it (produced earlier, read later: the residual branch during expand/depthwise/project). Each
  tensor is int8, 1 byte per element, counted once; no alignment, no scratch buffers, no runtime overhead.
- In-place depthwise: a depthwise conv whose input is not read again writes over its input, so it costs
  max(input, output) instead of input + output.
- Peak = the maximum over layers.

MobileNetV2-1.0 at 224 peaks at block 2's 1x1 expand: 112·112·16 + 112·112·96 = 1,404,928 B (1372 KiB).
Without in-place depthwise the next depthwise (112·112·96 in, 56·56·96 out) peaks at 1,505,280 B (1470 KiB).
"""

from __future__ import annotations

from nasprof.devices.mcu.graph import McuGraph
from nasprof.devices.mcu.memory import LayerMemory, MemoryPlan, lifetimes

__all__ = ["plan_per_layer"]


def plan_per_layer(graph: McuGraph, *, inplace_depthwise: bool = True) -> MemoryPlan:
    """Peak activation memory per MCUNet's analytic definition (see module docstring)."""
    life = lifetimes(graph)
    inputs = set(graph.inputs)
    rows: list[LayerMemory] = []
    for i, op in enumerate(graph.ops):
        in_b = sum(graph.size(t) for t in op.inputs)
        out_b = sum(graph.size(t) for t in op.outputs if t not in op.inputs)
        touched = set(op.inputs) | set(op.outputs)
        # Alive across op i: written before it (graph inputs exist from the start) and read after it.
        other = sum(graph.size(t) for t, (first, last) in life.items()
                    if t not in touched and (first < i or t in inputs) and last > i)
        in_place = (
            inplace_depthwise
            and op.kind == "depthwise"
            and len(op.inputs) == 1
            and life[op.inputs[0]][1] <= i  # nobody reads the input after this op
        )
        io = max(in_b, out_b) if in_place else in_b + out_b
        rows.append(LayerMemory(i, op.name, op.op_type, op.kind, in_b, out_b, other, 0, io + other, op.macs,
                                in_place))
    peak_index = max(range(len(rows)), key=lambda k: (rows[k].total_bytes, -k))
    peak = rows[peak_index].total_bytes
    notes = ("int8 activations, 1 B/element; input + output per layer; tensors alive across a layer added; "
             + ("depthwise in place" if inplace_depthwise else "depthwise not in place"),)
    return MemoryPlan("per-layer", peak, peak_index, tuple(rows), activation_bytes=peak, notes=notes)
