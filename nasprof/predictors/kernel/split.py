"""Split an ONNX graph into the kernels a device really executes, following that device's ``KernelRules``.

What is the same on every onnxruntime device from level ``basic`` on: constant sub-graphs are folded,
``Identity``/``Dropout`` vanish, and a ``BatchNormalization`` (or a ``Mul``/``Add`` by a constant) right
after a ``Conv`` is folded into the conv's weights. What differs per device, and so comes from the rules
(detected by ``nasprof.predictors.kernel.probe``): which activations fuse into a conv or a Gemm, whether a
residual ``Add`` (and a ``Relu`` after it) fuses into the conv producing one of its inputs, whether
``x * sigmoid(x)`` is one kernel, and on x86 the NCHWc layout: its block size, which kernels run blocked under
which channel conditions, and so where ``ReorderInput``/``ReorderOutput`` kernels go.

A fused pattern fires only when the producer's output has exactly one consumer (as in onnxruntime).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nasprof.errors import ModelError
from nasprof.predictors.kernel.graph_io import GraphView, chw, fold3, load_graph, node_attr
from nasprof.predictors.kernel.kernels import Kernel
from nasprof.predictors.kernel.rules import LEVELS, KernelRules

__all__ = [
    "ACT_CODES", "AVGPOOL_CEIL_PAD", "FREE_OPS", "LEVELS", "MEMORY_OPS", "SPLIT_RULES", "split_kernels",
]

#: Ops that move no data worth timing (views or tiny shape arithmetic); they predict 0 ms.
FREE_OPS = frozenset(
    {
        "Identity",
        "Dropout",
        "Constant",
        "Shape",
        "Flatten",
        "Reshape",
        "Squeeze",
        "Unsqueeze",
        "Gather",
        "Cast",
        "ConstantOfShape",
    }
)
#: Ops that only move data (a copy with another layout or a part of a tensor): one ``memory`` kernel type,
#: predicted from the bytes moved, with the op as its variant.
MEMORY_OPS = frozenset(
    {"Transpose", "Split", "Slice", "Pad", "Expand", "Tile", "DepthToSpace", "SpaceToDepth"}
)
#: Activation codes used as a feature (the regressors treat them as categories).
ACT_CODES: Mapping[str, int] = {
    "": 0,
    "Relu": 1,
    "Clip": 2,
    "Sigmoid": 3,
    "HardSigmoid": 4,
    "HardSwish": 5,
    "Tanh": 6,
    "LeakyRelu": 7,
    "QuickGelu": 8,
    "Softmax": 10,
    "LogSoftmax": 11,
}
#: Activations the NCHWc layout has no kernel for: they run plain, between reorders.
_PLAIN_ACTS = frozenset({"Softmax", "LogSoftmax"})
_ELTWISE = frozenset({"Add", "Mul", "Sub", "Div"})


#: The NCHWc block of the host the fallback rules were written on (AVX-512): predictor files written before
#: the block was recorded were fitted there.
DEFAULT_NCHWC_BLOCK = 16


def split_kernels(model: Any, rules: KernelRules | str = "all") -> list[Kernel]:
    """The kernels of ``model`` (an ``onnx.ModelProto`` with inferred shapes, or a path) on a device that
    follows ``rules``. A level name instead of rules takes the hand-written fallback rules of that level
    without layout reorders (``KernelRules.fallback``)."""
    if isinstance(rules, str):
        if rules not in LEVELS:
            raise ModelError(f"unknown optimisation level {rules!r}: use one of {', '.join(LEVELS)}")
        rules = KernelRules.fallback(rules)
    g = GraphView(*load_graph(model)) if isinstance(model, (str, Path)) else GraphView(model)
    lvl = rules.level
    const = set(g.inits)
    done: set[int] = set()
    kernels: list[Kernel] = []
    alias: dict[str, str] = {}  # output of a removed Identity/Dropout -> the tensor it passes on
    for i, node in enumerate(g.nodes):
        if i in done:
            continue
        done.add(i)
        inputs = [x for x in node.input if x]
        if lvl >= 1 and (node.op_type == "Constant" or (inputs and all(x in const for x in inputs))):
            const.update(node.output)  # constant folding: computed once at load time
            continue
        if node.op_type == "Constant":
            const.update(node.output)
        if lvl >= 1 and node.op_type in ("Identity", "Dropout"):
            if inputs and node.output:  # its consumers read its input: the tensor is one and the same
                alias[node.output[0]] = alias.get(inputs[0], inputs[0])
            continue
        if node.op_type == "Conv":
            kernels.append(_conv_kernel(g, i, node, rules, const, done))
        else:
            kernels.append(_other_kernel(g, node, rules, const, done, i))
    if alias:
        kernels = [dataclasses.replace(k, inputs=tuple(alias.get(t, t) for t in k.inputs)) for k in kernels]
    kernels = _topological(kernels, const)
    if rules.nchwc_block:
        return _with_reorders(g, kernels, const, rules)
    return kernels


def _topological(kernels: list[Kernel], const: set[str]) -> list[Kernel]:
    """Kernels in an order where each runs after its inputs' producers (a fused residual add can make a
    kernel read a tensor that a later node of the file produces, as onnxruntime's own order shows)."""
    produced = {k.output for k in kernels if k.output}
    ready = {t for k in kernels for t in k.inputs if t not in produced} | const
    pending, out = list(kernels), []
    while pending:
        for i, k in enumerate(pending):
            if all(t in ready for t in k.inputs):
                out.append(pending.pop(i))
                ready.add(k.output)
                break
        else:  # a cycle cannot happen in a valid graph; keep file order rather than loop forever
            return out + pending
    return out


#: Kernel types onnxruntime's NCHWc transformer runs in the blocked layout.
_NCHWC_TYPES = frozenset({"conv", "dwconv", "gap", "pool"})
#: Version of the split's layout rules and kernel variants. A predictor stores the version it was fitted
#: with: its regressors never saw the kernels a later version tells apart. 2 (2026-11-23): the
#: ``AVGPOOL_CEIL_PAD`` variant and the width rules of ``_blocked_kernel``. 3 (2026-12-04): the split follows
#: the ``KernelRules`` detected on the device and stored in the file (an older nasprof would ignore them).
SPLIT_RULES = 3

#: Variant of an ``AveragePool`` with both ``ceil_mode`` and ``count_include_pad`` set (PyTorch's
#: ``AvgPool2d(2, ceil_mode=True)``, the pooling shortcut of the mnasnet space). onnxruntime 1.32 gives it no
#: NCHWc kernel: it runs in plain NCHW between reorders, on a generic loop that took 0.10 ms for 16×80×80
#: where the blocked pool of the same shape takes 0.004 ms. Either attribute alone keeps the blocked kernel.
AVGPOOL_CEIL_PAD = "AveragePoolCeilPad"


def _blocked_kernel(k: Kernel, rules: KernelRules, input_channels: Sequence[int] = ()) -> bool:
    """Whether the device's NCHWc transformer gives ``k`` a blocked kernel.

    An ungrouped conv gets one (output channels are padded to the block) unless it reads at least a block
    of channels that do not fill ``conv_align``; a depthwise conv needs its channels to fill
    ``dwconv_align``. A grouped conv needs each group's input and output channels to fill ``group_align``
    (with blocks of 16: 240->960 in 3 groups does; 120->480 and 240->60 do not). Pools need their channel
    count to fill blocks (with 16: 96 and 48 do, 24 and 40 run in plain NCHW between a ReorderOutput and the
    next ReorderInput) and an ``AVGPOOL_CEIL_PAD`` needs ``avgpool_ceil_pad_blocked``. A concat needs every
    input (``input_channels``) to fill ``concat_align`` (16+16 and 32+48 stay blocked; 24+24 and 16+24 are
    reordered out, joined plain, and reordered back)."""
    block = rules.nchwc_block
    c = k.in_shape[0] if k.in_shape else 0
    if k.type == "conv" and k.groups > 1:
        cout = k.out_shape[0] if k.out_shape else 0
        a = rules.group_align
        return (c // k.groups) % a == 0 and (cout // k.groups) % a == 0
    if k.type == "conv":
        return c < block or c % rules.conv_align == 0
    if k.type == "dwconv":
        return c % rules.dwconv_align == 0
    if k.type == "pool" and k.variant == AVGPOOL_CEIL_PAD and not rules.avgpool_ceil_pad_blocked:
        return False
    if k.type in ("pool", "gap"):
        return c % block == 0
    if k.type == "concat":
        return all(ch % rules.concat_align == 0 for ch in input_channels)
    return True


def _with_reorders(g: GraphView, kernels: list[Kernel], const: set[str], rules: KernelRules) -> list[Kernel]:
    block = rules.nchwc_block
    blocked: set[str] = set()
    converted: set[str] = set()  # blocked tensors already reordered back to plain
    reordered_in: set[str] = set()  # plain tensors already given a blocked copy
    out: list[Kernel] = []

    def reorder(tensor: str, variant: str) -> Kernel:
        shape = chw(g.shapes.get(tensor))
        return Kernel(
            "reorder",
            f"{variant}({tensor})",
            (),
            shape,
            shape,
            variant=variant,
            inputs=(tensor,),
            output=tensor,
        )

    pending = list(kernels)
    while pending:
        k = pending.pop(0)
        later = None
        if k.fused_add:
            later = next((i for i, x in enumerate(pending) if x.output == k.inputs[-1]), None)
        if later is not None:
            # The residual is produced further down the export's node order (a shortcut projection
            # exported after the main path): decide the layout once its producer has been placed.
            pending.insert(later + 1, k)
            continue
        if (
            k.fused_add
            and k.type == "conv"
            and k.inputs[-1] not in blocked
            and rules.residual_needs_blocked
            and _blocked_kernel(k, rules)
        ):
            # onnxruntime folds a residual Add into a blocked conv only when the other operand is blocked
            # too (a squeeze-excite gate's output is plain): the conv, then a plain Add (and its Relu). A
            # plain conv takes any residual (its FusedConv's Sum input).
            pending[:0] = _unfuse_add(g, k)
            continue
        nchwc = (
            k.type in _NCHWC_TYPES
            # Layout-agnostic kernels keep a blocked tensor blocked (no reorder around an activation); an
            # element-wise op with one plain input runs plain (its blocked inputs are reordered out).
            or (k.type == "concat" and all(t in blocked for t in k.inputs))
            or (k.type == "act" and k.act not in _PLAIN_ACTS and all(t in blocked for t in k.inputs))
            or (k.type == "eltwise" and not k.broadcast and k.variant != "BatchNormalization"
                and all(t in blocked for t in k.inputs))
        ) and not (k.type == "gap" and k.variant != "GlobalAveragePool")  # ReduceMean has no NCHWc kernel
        # Only a concat's rule reads its inputs' widths.
        channels = []
        if k.type == "concat":
            channels = [(chw(g.shapes.get(t)) or (0,))[0] for t in k.inputs if t not in const]
        nchwc = nchwc and _blocked_kernel(k, rules, channels)
        # A conv with fewer input channels than the block reads the plain layout (the stem's 3 channels);
        # a depthwise conv reads blocks whatever its width (12 channels: a ReorderInput before it).
        narrow_conv = k.type == "conv" and bool(k.in_shape) and k.in_shape[0] < block
        nchwc_input = nchwc and not narrow_conv
        for i, t in enumerate(k.inputs):
            if t in const:
                continue
            # A fused residual is accumulated into the conv's output, so it takes the output's layout
            # even where the conv reads its own input plain (a bottleneck's 8-channel conv3).
            blocked_in = nchwc if (k.fused_add and i > 0) else nchwc_input
            if blocked_in and t not in blocked and t not in reordered_in:
                shape = chw(g.shapes.get(t))
                if shape and not (t not in g.producers and shape[0] < block):
                    out.append(reorder(t, "ReorderInput"))
                    # onnxruntime reuses the blocked copy for every later blocked consumer (ShuffleNet's
                    # stride-2 unit feeds one input to a grouped conv and to its average pool).
                    reordered_in.add(t)
            elif not blocked_in and t in blocked and t not in converted:
                out.append(reorder(t, "ReorderOutput"))
                converted.add(t)
        out.append(k)
        if nchwc and k.output:
            blocked.add(k.output)
    for t in sorted(g.graph_outputs & blocked):
        out.append(reorder(t, "ReorderOutput"))
    return out


def _unfuse_add(g: GraphView, k: Kernel) -> list[Kernel]:
    """``k`` (a conv with a fused residual Add) as the conv alone, the Add, and the Relu after it, if any.

    The fused chain is conv [, BN ...], Add [, Relu] (``_conv_kernel``), so the Add is found from the
    residual and the kernel's output, not by name: exported graphs may leave nodes unnamed."""
    residual = k.inputs[1]

    def ends_chain(j: int) -> bool:
        out = g.nodes[j].output[0]
        if not k.act:
            return bool(out == k.output)
        nxt = g.sole_consumer(out)
        return nxt is not None and g.nodes[nxt].output[0] == k.output

    j = next(j for j in g.consumers.get(residual, [])
             if g.nodes[j].op_type in ("Add", "Sum") and ends_chain(j))
    add = g.nodes[j]
    conv_out = next(x for x in add.input if x != residual)
    at = len(k.covers) - (2 if k.act else 1)  # the Add's place in the chain
    conv = dataclasses.replace(
        k, covers=k.covers[:at], fused_add=False, act="", inputs=k.inputs[:1], output=conv_out
    )
    shape = chw(g.shapes.get(add.output[0]))
    add_name = add.name or f"Add_{j}"
    out = [
        conv,
        Kernel("eltwise", add_name, (add.name,), shape, shape, variant="Add", inputs=(conv_out, residual),
               output=add.output[0]),
    ]
    if k.act:  # the Relu that followed the Add
        relu = k.covers[at + 1]
        out.append(Kernel("act", relu or f"{k.act}_{j}", (relu,), shape, shape, act=k.act,
                          inputs=(add.output[0],), output=k.output))
    return out


def _conv_kernel(
    g: GraphView, i: int, node: Any, rules: KernelRules, const: set[str], done: set[int]
) -> Kernel:
    lvl = rules.level
    covers = [node.name]  # type: ignore[attr-defined]
    w = g.shapes.get(node.input[1], ())  # type: ignore[attr-defined]
    x_shape = chw(g.shapes.get(node.input[0]))  # type: ignore[attr-defined]
    groups = int(node_attr(node, "group", 1))  # type: ignore[arg-type]
    k = int(w[2]) if len(w) >= 3 else 1
    strides = node_attr(node, "strides", [1])
    stride = int(strides[0]) if strides else 1  # type: ignore[index]
    params = int(math.prod(w)) if w else 0
    if len(node.input) > 2 and node.input[2]:  # type: ignore[attr-defined]
        params += int(w[0]) if w else 0
    out = node.output[0]  # type: ignore[attr-defined]
    act, fused_add = "", False
    residual: list[str] = []
    while True:
        j = g.sole_consumer(out)
        if j is None or j in done:
            break
        nxt = g.nodes[j]
        others = [x for x in nxt.input if x and x != out]
        if (
            lvl >= 1
            and not act
            and not fused_add
            and (
                nxt.op_type == "BatchNormalization"
                or (nxt.op_type in ("Mul", "Add") and others and all(x in const for x in others))
            )
        ):
            pass  # folded into the conv's weights/bias
        elif not act and nxt.op_type in rules.conv_acts:
            act = nxt.op_type
        elif (
            rules.conv_add
            and not act
            and not fused_add
            and (nxt.op_type == "Add" or (nxt.op_type == "Sum" and len(nxt.input) == 2))
            and len(others) == 1
            and others[0] not in const
            and g.shapes.get(others[0]) == g.shapes.get(out)
        ):
            fused_add = True
            residual = list(others)
        elif fused_add and not act and nxt.op_type in rules.conv_add_acts:
            act = nxt.op_type
        else:
            break
        done.add(j)
        covers.append(nxt.name)
        out = nxt.output[0]
    cin = x_shape[0] if x_shape else 0
    cout = int(w[0]) if w else 0
    ktype = "dwconv" if groups > 1 and groups == cin and cout % cin == 0 else "conv"
    return Kernel(
        type=ktype,
        name=node.name,
        covers=tuple(covers),
        in_shape=x_shape,  # type: ignore[attr-defined]
        out_shape=chw(g.shapes.get(out)),
        kernel=k,
        stride=stride,
        groups=groups,
        act=act,
        fused_add=fused_add,
        params=params,
        inputs=(node.input[0], *residual),  # type: ignore[attr-defined]
        output=out,
    )


def _other_kernel(
    g: GraphView, node: Any, rules: KernelRules, const: set[str], done: set[int], i: int
) -> Kernel:
    k = _other_kernel_shapes(g, node, rules, const, done, i)
    data_inputs = tuple(x for x in node.input if x and x not in const)  # type: ignore[attr-defined]
    return dataclasses.replace(k, inputs=data_inputs, output=k.output or node.output[0])  # type: ignore[attr-defined]


def _other_kernel_shapes(
    g: GraphView, node: Any, rules: KernelRules, const: set[str], done: set[int], i: int
) -> Kernel:
    op = node.op_type  # type: ignore[attr-defined]
    name = node.name or f"{op}_{i}"  # type: ignore[attr-defined]
    data_inputs = [x for x in node.input if x and x not in const]  # type: ignore[attr-defined]
    in_shape = chw(g.shapes.get(data_inputs[0])) if data_inputs else ()
    out = node.output[0]  # type: ignore[attr-defined]
    out_shape = chw(g.shapes.get(out))
    covers = [name]
    if op in FREE_OPS:
        return Kernel("free", name, tuple(covers), in_shape, out_shape, variant=op)
    if op in ("Gemm", "MatMul") and len(data_inputs) == 1:
        wname = [x for x in node.input if x in const]  # type: ignore[attr-defined]
        params = sum(int(math.prod(g.shapes.get(x, (0,)))) for x in wname)
        act = ""
        j = g.sole_consumer(out)
        if j is not None and j not in done and g.nodes[j].op_type in rules.gemm_acts:
            act = g.nodes[j].op_type
            done.add(j)
            covers.append(g.nodes[j].name)
            out_shape = chw(g.shapes.get(g.nodes[j].output[0]))
        return Kernel(
            "fc",
            name,
            tuple(covers),
            in_shape,
            out_shape,
            act=act,
            params=params,
            output=g.nodes[j].output[0] if act and j is not None else out,
        )
    spatial_mean = (
        op == "ReduceMean" and len(in_shape) == 3 and out_shape and int(math.prod(out_shape)) == in_shape[0]
    )
    if op in ("GlobalAveragePool", "GlobalMaxPool") or spatial_mean:
        return Kernel("gap", name, tuple(covers), in_shape, out_shape, variant=op)
    if op == "Sum" and len(data_inputs) == 2:  # older exporters' residual: the same kernel as Add
        op = "Add"
    if op == "BatchNormalization" and data_inputs:
        # Not after a conv (those fold into its weights): a per-channel scale and shift of its own, or, where
        # the device runs it so (``bn_as_conv``), a blocked 1x1 depthwise conv with the activation after it.
        c = in_shape[0] if in_shape else 0
        if rules.bn_as_conv and rules.nchwc_block and c and c % rules.nchwc_block == 0:
            act = ""
            j = g.sole_consumer(out)
            if j is not None and j not in done and g.nodes[j].op_type in rules.conv_acts:
                act = g.nodes[j].op_type
                done.add(j)
                covers.append(g.nodes[j].name)
                out = g.nodes[j].output[0]
            return Kernel("dwconv", name, tuple(covers), in_shape, out_shape, kernel=1, groups=c, act=act,
                          params=2 * c, output=out)
        return Kernel("eltwise", name, tuple(covers), in_shape, out_shape, variant=op, broadcast=True)
    if op in ("Resize", "Upsample") and data_inputs:
        return Kernel("memory", name, tuple(covers), fold3(in_shape), fold3(out_shape), variant="Resize")
    if op in ("MaxPool", "AveragePool"):
        ks = node_attr(node, "kernel_shape", [1])
        st = node_attr(node, "strides", [1])
        variant = op
        if (op == "AveragePool" and node_attr(node, "ceil_mode", 0)
                and node_attr(node, "count_include_pad", 0)):
            variant = AVGPOOL_CEIL_PAD
        return Kernel(
            "pool",
            name,
            tuple(covers),
            in_shape,
            out_shape,
            kernel=int(ks[0]),  # type: ignore[index]
            stride=int(st[0]) if st else 1,
            variant=variant,
        )  # type: ignore[index]
    if op in _ELTWISE and len(data_inputs) == 2:
        a, b = (g.shapes.get(x) for x in data_inputs)
        bcast = a != b
        main = a if a is not None and (b is None or math.prod(a) >= math.prod(b)) else b
        return Kernel("eltwise", name, tuple(covers), chw(main), out_shape, variant=op, broadcast=bcast)
    if op in _ELTWISE and len(data_inputs) == 1:  # scaling by a constant
        return Kernel("eltwise", name, tuple(covers), in_shape, out_shape, variant=op, broadcast=True)
    if op == "Sigmoid" and rules.silu and data_inputs:
        # x * sigmoid(x) (SiLU/Swish) becomes one QuickGelu kernel from level extended on.
        j = g.sole_consumer(out)
        if (
            j is not None
            and j not in done
            and g.nodes[j].op_type == "Mul"
            and set(g.nodes[j].input) == {data_inputs[0], out}
        ):
            done.add(j)
            return Kernel(
                "act",
                name,
                (name, g.nodes[j].name),
                in_shape,
                out_shape,
                act="QuickGelu",
                output=g.nodes[j].output[0],
            )
    if op == "LRN":
        # A kernel type of its own: onnxruntime's LRN costs tens of ns per element, 30x an activation's
        # (GoogLeNet's two took 20 of 50 ms); as an ``act`` variant it was predicted at 0.2 ms for 5 ms.
        size = int(node_attr(node, "size", 5))  # type: ignore[arg-type]
        return Kernel("lrn", name, tuple(covers), in_shape, out_shape, kernel=size)
    if op in ACT_CODES:
        return Kernel("act", name, tuple(covers), in_shape, out_shape, act=op)
    if op in MEMORY_OPS and data_inputs:
        # Rank-5 views (a channel shuffle's (g, C/g, H, W)) fold into (C, H, W): the bytes are what count.
        # A channel shuffle's groups (the leading dim of the 5-D view) is kept as the kernel's ``groups``.
        groups = int(in_shape[0]) if op == "Transpose" and len(in_shape) == 4 else 1
        return Kernel(
            "memory", name, tuple(covers), fold3(in_shape), fold3(out_shape), groups=groups, variant=op
        )
    if op == "Concat":
        return Kernel("concat", name, tuple(covers), in_shape, out_shape, variant=str(len(data_inputs)))
    return Kernel(op, name, tuple(covers), in_shape, out_shape)
