"""TinyEngine's memory schedule (MCUNet; mit-han-lab/tinyengine code_generator/GeneralMemoryScheduler.py).

What TinyEngine's code generator does, and what we model:
- tensors are int8, rounded up to 4 bytes, alive from their producer to their last reader;
- an int8 depthwise conv runs in place: its output reuses its input's buffer (one allocation spanning both
  lifetimes); after an in-place *stride-2* depthwise only a quarter of that buffer stays in use;
- buffers are placed largest first at the lowest free offset (its ``FirstFit`` allocator);
- two static working buffers are sized for the most demanding op and added once to the peak:
  ``sbuf`` (im2col) = Kh·Kw·Cin·2·2 B for a conv (two int16 columns), 2·(H+2p)·(W+2p) B for an in-place
  depthwise; ``kbuf`` (int16 copy of the weights) = 2·weights B for a conv with a kernel larger than 1x1.
- weights, biases and requantisation scales stay in Flash; there is no interpreter and no persistent tail.

Difference from the original: TinyEngine's overlap test misses two buffers with identical lifetimes; we use
the exact interval test, so our plan is never smaller than a valid one.
"""

from __future__ import annotations

from nasprof.devices.mcu.graph import McuGraph, McuOp
from nasprof.devices.mcu.memory import Buffer, LayerMemory, MemoryPlan, extent_at, lifetimes, place_first_fit

__all__ = ["plan_tinyengine", "tinyengine_buffers"]


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def tinyengine_buffers(graph: McuGraph, op: McuOp, in_place: bool) -> tuple[int, int]:
    """``(sbuf, kbuf)`` bytes TinyEngine's kernel for ``op`` needs."""
    kh, kw = op.kernel
    if op.kind == "depthwise":
        if in_place:
            _, h, w = graph.tensors[op.inputs[0]].shape[-3:]
            p = op.pads[0]
            return 2 * (h + 2 * p) * (w + 2 * p), 0
        return 2 * kh * kw * graph.tensors[op.inputs[0]].shape[0], 0
    if op.kind in ("conv", "group_conv"):
        cin = graph.tensors[op.inputs[0]].shape[0] // op.groups
        return kh * kw * cin * 2 * 2, (0 if kh == 1 else 2 * op.weight_elems)
    return 0, 0


def plan_tinyengine(graph: McuGraph, *, inplace_depthwise: bool = True) -> MemoryPlan:
    """Activation arena + static im2col/kernel buffers, as TinyEngine's code generator would lay them out."""
    life = lifetimes(graph)
    # Union-find light: in-place depthwise outputs map onto their input's allocation.
    owner: dict[str, str] = {t: t for t in life}
    shrink: dict[str, int] = {}
    in_place_ops: set[int] = set()
    for i, op in enumerate(graph.ops):
        if (inplace_depthwise and op.kind == "depthwise" and len(op.inputs) == 1
                and life[op.inputs[0]][1] <= i):
            root = owner[op.inputs[0]]
            owner[op.outputs[0]] = root
            in_place_ops.add(i)
            if op.stride == (2, 2):
                shrink[root] = i
    spans: dict[str, list[int]] = {}
    for t, (first, last) in life.items():
        root = owner[t]
        span = spans.setdefault(root, [first, last, 0])
        span[0], span[1] = min(span[0], first), max(span[1], last)
        span[2] = max(span[2], _align4(graph.size(t)))
    buffers = [
        Buffer(root, size, first, last,
               shrink_after=shrink.get(root), shrunk_size=(-(-size // 4)) if root in shrink else None)
        for root, (first, last, size) in spans.items()
    ]
    order = {b.name: k for k, b in enumerate(buffers)}
    placed = place_first_fit(buffers, order=lambda b: (-b.size, order[b.name]))
    arena = max(b.offset + b.size for b in placed)

    own = [tinyengine_buffers(graph, op, i in in_place_ops) for i, op in enumerate(graph.ops)]
    sbuf = max((s for s, _ in own), default=0)
    kbuf = max((k for _, k in own), default=0)
    static = sbuf + kbuf
    rows: list[LayerMemory] = []
    for i, op in enumerate(graph.ops):
        touched = {owner[t] for t in op.inputs + op.outputs}
        in_b = sum(_align4(graph.size(t)) for t in op.inputs)
        out_b = sum(_align4(graph.size(t)) for t in op.outputs)
        other = sum(b.size_seen_from(i) for b in placed if b.first <= i <= b.last and b.name not in touched)
        rows.append(LayerMemory(i, op.name, op.op_type, op.kind, in_b, out_b, other, sum(own[i]),
                                extent_at(placed, i) + static, op.macs, i in in_place_ops))
    peak_index = max(range(len(rows)), key=lambda k: (rows[k].total_bytes, -k))
    notes = (
        "first-fit arena, 4-byte alignment, in-place depthwise; rows include the static buffers "
        f"(im2col {sbuf} B + kernel {kbuf} B) reserved for the whole run",
    )
    return MemoryPlan("tinyengine", arena + static, peak_index, tuple(rows), activation_bytes=arena,
                      static_scratch_bytes=static, buffers=tuple(placed), notes=notes)
