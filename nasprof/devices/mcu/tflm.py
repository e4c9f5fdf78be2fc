"""TensorFlow Lite Micro's arena: the greedy memory planner, CMSIS-NN scratch buffers, the persistent tail.

Model of ``tflite::GreedyMemoryPlanner`` (tflite-micro, tensorflow/lite/micro/memory_planner/
greedy_memory_planner.cc) as driven by ``MicroAllocator``:
- every activation tensor lives from the op that writes it (graph inputs: op 0) to the last op that reads it
  (graph outputs: the last op), inclusive;
- each buffer is rounded up to 16 bytes (``MicroArenaBufferAlignment()``);
- buffers are placed largest first (ties in creation order), each at the lowest offset where it overlaps no
  already-placed buffer whose lifetime overlaps its own;
- kernels request scratch buffers that live for their own op only. With the CMSIS-NN kernels (the usual
  build for Cortex-M4/M7, DSP extension) the sizes are those of CMSIS-NN's ``*_get_buffer_size`` functions:
  ``arm_convolve_s8``: 2·Cin·Kh·Kw int16 (im2col of two columns); 1x1 convs without padding
  (``arm_convolve_1x1_s8_fast``) and 3x3 depthwise convs with padding ≤ 1 (``arm_depthwise_conv_3x3_s8``):
  none; other depthwise convs (``arm_depthwise_conv_s8_opt``): Cin·Kh·Kw int16; fully connected: none.

The arena head (the plan above) is followed by the persistent tail. We count, for a 32-bit build:
``TfLiteEvalTensor`` (data pointer, dims pointer, type: 12 B) per tensor, weights and biases included;
one ``NodeAndRegistration`` (TfLiteNode + registration pointer, ≈ 40 B) per op; and the per-channel
requantisation data conv kernels keep in the arena (``per_channel_output_multiplier`` and
``per_channel_output_shift``, int32 each: 8 B × Cout per conv). Kernel ``OpData`` structs, the interpreter
object and the allocator's own bookkeeping are not counted, so the tail is a lower bound.
"""

from __future__ import annotations

from nasprof.devices.mcu.graph import McuGraph, McuOp
from nasprof.devices.mcu.memory import Buffer, LayerMemory, MemoryPlan, extent_at, lifetimes, place_first_fit

__all__ = ["plan_tflm", "cmsis_nn_scratch_bytes", "ALIGNMENT", "EVAL_TENSOR_BYTES", "NODE_BYTES",
           "PER_CHANNEL_BYTES"]

ALIGNMENT = 16
EVAL_TENSOR_BYTES = 12
NODE_BYTES = 40
PER_CHANNEL_BYTES = 8


def _align(n: int, a: int = ALIGNMENT) -> int:
    return (n + a - 1) // a * a


def cmsis_nn_scratch_bytes(graph: McuGraph, op: McuOp) -> int:
    """Scratch buffer a CMSIS-NN int8 kernel asks TFLM for (see module docstring)."""
    kh, kw = op.kernel
    cin = graph.tensors[op.inputs[0]].shape[0] if op.inputs else 0
    if op.kind in ("conv", "group_conv"):
        if (kh, kw) == (1, 1) and not any(op.pads) and op.stride == (1, 1) and cin % 4 == 0:
            return 0
        return 2 * (cin // op.groups) * kh * kw * 2
    if op.kind == "depthwise":
        if (kh, kw) == (3, 3) and max(op.pads) <= 1:
            return 0
        return cin * kh * kw * 2
    return 0


def plan_tflm(graph: McuGraph, *, scratch: bool = True) -> MemoryPlan:
    """Arena size under TFLM's greedy planner: head (planned buffers) + persistent tail."""
    life = lifetimes(graph)
    buffers: list[Buffer] = [Buffer(t, _align(graph.size(t)), f, last) for t, (f, last) in life.items()]
    scratch_of: dict[int, int] = {}
    for i, op in enumerate(graph.ops):
        s = cmsis_nn_scratch_bytes(graph, op) if scratch else 0
        if s:
            scratch_of[i] = s
            buffers.append(Buffer(f"{op.name}#scratch", _align(s), i, i))
    order = {b.name: k for k, b in enumerate(buffers)}
    placed = place_first_fit(buffers, order=lambda b: (-b.size, order[b.name]))
    head = max(b.offset + b.size for b in placed)

    n_weight_tensors = sum((op.weight_elems > 0) + (op.bias_elems > 0) for op in graph.ops)
    tail = (
        EVAL_TENSOR_BYTES * (len(graph.tensors) + n_weight_tensors)
        + NODE_BYTES * len(graph.ops)
        + PER_CHANNEL_BYTES * sum(op.quant_channels for op in graph.ops
                                  if op.kind in ("conv", "depthwise", "group_conv"))
    )
    rows: list[LayerMemory] = []
    for i, op in enumerate(graph.ops):
        touched = set(op.inputs) | set(op.outputs)
        in_b = sum(_align(graph.size(t)) for t in op.inputs)
        out_b = sum(_align(graph.size(t)) for t in op.outputs if t not in op.inputs)
        other = sum(b.size for b in placed
                    if b.first <= i <= b.last and b.name in life and b.name not in touched)
        rows.append(LayerMemory(i, op.name, op.op_type, op.kind, in_b, out_b, other, scratch_of.get(i, 0),
                                extent_at(placed, i), op.macs))
    peak_index = max(range(len(rows)), key=lambda k: (rows[k].total_bytes, -k))
    notes = (
        f"greedy arena planner, {ALIGNMENT}-byte alignment, CMSIS-NN scratch buffers; rows show the arena "
        "extent in use at each op (fragmentation included)",
        f"persistent tail {tail} B: {EVAL_TENSOR_BYTES} B/tensor, {NODE_BYTES} B/op, "
        f"{PER_CHANNEL_BYTES} B x Cout per conv (a lower bound)",
    )
    return MemoryPlan("tflm", head + tail, peak_index, tuple(rows), activation_bytes=head,
                      persistent_bytes=tail, buffers=tuple(placed), notes=notes)
