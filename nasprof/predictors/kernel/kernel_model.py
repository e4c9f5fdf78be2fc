"""A kernel configuration built as a one-kernel ONNX model (batch 1, float32, seeded weights), the file
``measure`` times on a device and calibration runs as an anchor.

Apart from ``sampling`` (which configurations to draw) because it is the other half of making training
data: how a ``Kernel`` becomes a graph — each kernel type's nodes, activations, pooling padding and the
memory kernels (concat, split, reorder) — whatever chose the configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.predictors.kernel.kernels import Kernel
from nasprof.predictors.kernel.split import AVGPOOL_CEIL_PAD

__all__ = ["build_kernel_model"]


def _pool_pad(k: Kernel, ceil: bool) -> int:
    """The symmetric padding that gives ``k`` its output size (0 for a 2×2 pool that halves the map, 1 for
    ResNet's 3×3 stride-2 stem pool); half the kernel, the samplers' rule, when none does."""
    h, o, s = (k.in_shape[-1] if k.in_shape else 1), (k.out_shape[-1] if k.out_shape else 1), max(k.stride, 1)
    for pad in range(k.kernel // 2 + 1):
        span = h + 2 * pad - k.kernel
        if span >= 0 and (-(-span // s) if ceil else span // s) + 1 == o:
            return pad
    return k.kernel // 2


def build_kernel_model(k: Kernel, path: Path) -> Path:
    """Write a one-kernel ONNX model (batch 1, float32) for ``k``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    f32 = TensorProto.FLOAT

    def init(name: str, shape: Sequence[int]) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)

    inputs = [helper.make_tensor_value_info("x", f32, [1, *k.in_shape])]
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    cur = "x"

    def act(op: str, x: str) -> str:
        if not op:
            return x
        y = f"{x}_{op.lower()}"
        if op == "QuickGelu":  # x * sigmoid(x): onnxruntime fuses the pair into one QuickGelu kernel
            nodes.append(helper.make_node("Sigmoid", [x], [f"{x}_sig"], name="/Sigmoid"))
            nodes.append(helper.make_node("Mul", [x, f"{x}_sig"], [y], name="/Mul"))
        elif op == "Softmax":
            nodes.append(helper.make_node("Softmax", [x], [y], name="/Softmax", axis=1))
        elif op == "Clip":
            inits.extend(
                [
                    numpy_helper.from_array(np.array(0.0, np.float32), "clip_lo"),
                    numpy_helper.from_array(np.array(6.0, np.float32), "clip_hi"),
                ]
            )
            nodes.append(helper.make_node("Clip", [x, "clip_lo", "clip_hi"], [y], name=f"/{op}"))
        else:
            nodes.append(helper.make_node(op, [x], [y], name=f"/{op}"))
        return y

    cin = k.in_shape[0]
    cout = k.out_shape[0]
    if k.type in ("conv", "dwconv"):
        inits += [init("w", (cout, cin // k.groups, k.kernel, k.kernel)), init("b", (cout,))]
        p = k.kernel // 2
        nodes.append(
            helper.make_node(
                "Conv",
                ["x", "w", "b"],
                ["conv"],
                name="/Conv",
                group=k.groups,
                kernel_shape=[k.kernel] * 2,
                strides=[k.stride] * 2,
                pads=[p] * 4,
            )
        )
        cur = "conv"
        if k.fused_add:
            inputs.append(helper.make_tensor_value_info("r", f32, [1, *k.out_shape]))
            nodes.append(helper.make_node("Add", ["conv", "r"], ["sum"], name="/Add"))
            cur = "sum"
        cur = act(k.act, cur)
    elif k.type == "fc":
        inits += [init("w", (cout, cin)), init("b", (cout,))]
        inputs = [helper.make_tensor_value_info("x", f32, [1, cin])]
        nodes.append(helper.make_node("Gemm", ["x", "w", "b"], ["fc"], name="/Gemm", transB=1))
        cur = act(k.act, "fc")
    elif k.type == "gap":
        op = k.variant if k.variant in ("GlobalAveragePool", "GlobalMaxPool") else "GlobalAveragePool"
        nodes.append(helper.make_node(op, ["x"], ["gap"], name=f"/{op}"))
        cur = "gap"
    elif k.type == "pool":
        ceil = k.variant == AVGPOOL_CEIL_PAD
        op = "AveragePool" if ceil else (k.variant or "MaxPool")
        extra: dict[str, Any] = {"ceil_mode": 1, "count_include_pad": 1} if ceil else {}
        pad = _pool_pad(k, ceil)
        nodes.append(
            helper.make_node(
                op, ["x"], ["pool"], name=f"/{op}", kernel_shape=[k.kernel] * 2, strides=[k.stride] * 2,
                pads=[pad] * 4, **extra,
            )
        )
        cur = "pool"
    elif k.type == "eltwise" and k.variant == "BatchNormalization":
        inits += [init("scale", (cin,)), init("shift", (cin,)), init("mean", (cin,)),
                  numpy_helper.from_array(np.ones(cin, np.float32), "var")]
        nodes.append(helper.make_node("BatchNormalization", ["x", "scale", "shift", "mean", "var"], ["bn"],
                                      name="/BatchNormalization"))
        cur = "bn"
    elif k.type == "eltwise":
        other = [1, cin, 1, 1] if k.broadcast else [1, *k.in_shape]
        inputs.append(helper.make_tensor_value_info("y", f32, other))
        nodes.append(helper.make_node(k.variant or "Add", ["x", "y"], ["z"], name=f"/{k.variant or 'Add'}"))
        cur = "z"
    elif k.type == "act":
        cur = act(k.act, "x")
    elif k.type == "lrn":  # AlexNet/GoogLeNet's local response normalisation across channels
        nodes.append(helper.make_node("LRN", ["x"], ["lrn"], name="/LRN", size=k.kernel or 5, alpha=1e-4,
                                      beta=0.75, bias=1.0))
        cur = "lrn"
    elif k.type == "concat":
        c1 = int(k.variant or cin)
        inputs = [
            helper.make_tensor_value_info("x", f32, [1, c1, *k.in_shape[1:]]),
            helper.make_tensor_value_info("y", f32, [1, cout - c1, *k.in_shape[1:]]),
        ]
        nodes.append(helper.make_node("Concat", ["x", "y"], ["cat"], name="/Concat", axis=1))
        cur = "cat"
    elif k.type == "memory":
        cur = _memory_nodes(k, nodes, inits)
    else:
        raise ValueError(f"cannot build a model for kernel type {k.type!r}")
    outputs = [helper.make_tensor_value_info(cur, f32, [1, *k.out_shape])]
    if k.type == "memory" and k.variant == "Split":  # both halves are used, as in a network
        shape = [1, k.in_shape[0] - k.out_shape[0], *k.in_shape[1:]]
        outputs.append(helper.make_tensor_value_info("b", f32, shape))
    graph = helper.make_graph(nodes, f"kernel_{k.type}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _memory_nodes(k: Kernel, nodes: list[Any], inits: list[Any]) -> str:
    """Nodes of a one-``memory``-kernel model reading ``x``; returns the output tensor's name.

    The channel shuffle is exported as ShuffleNet does (Reshape, Transpose, Reshape): the Reshapes are
    views, so the Transpose is the only kernel onnxruntime runs.
    """
    from onnx import helper, numpy_helper

    c, h, w = k.in_shape
    if k.variant == "Transpose":
        g = k.groups
        inits += [
            numpy_helper.from_array(np.array([1, g, c // g, h, w], np.int64), "shape5"),
            numpy_helper.from_array(np.array([1, c, h, w], np.int64), "shape4"),
        ]
        nodes += [
            helper.make_node("Reshape", ["x", "shape5"], ["x5"], name="/Reshape"),
            helper.make_node("Transpose", ["x5"], ["t5"], name="/Transpose", perm=[0, 2, 1, 3, 4]),
            helper.make_node("Reshape", ["t5", "shape4"], ["shuffled"], name="/Reshape_1"),
        ]
        return "shuffled"
    half = k.out_shape[0]
    if k.variant == "Split":
        inits.append(numpy_helper.from_array(np.array([half, c - half], np.int64), "split"))
        nodes.append(helper.make_node("Split", ["x", "split"], ["a", "b"], name="/Split", axis=1))
        return "a"  # the other half is a graph output too (see build_kernel_model)
    if k.variant == "Pad":
        inits.append(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"))
        nodes.append(helper.make_node("Pad", ["x", "pads"], ["a"], name="/Pad"))
        return "a"
    if k.variant == "Resize":
        inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
        nodes.append(helper.make_node("Resize", ["x", "", "scales"], ["a"], name="/Resize", mode="nearest"))
        return "a"
    if k.variant == "Slice":
        inits += [
            numpy_helper.from_array(np.array([0], np.int64), "starts"),
            numpy_helper.from_array(np.array([half], np.int64), "ends"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
        ]
        nodes.append(helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["a"], name="/Slice"))
        return "a"
    raise ValueError(f"cannot build a model for memory op {k.variant!r}")
