"""The probe graphs: tiny ONNX models, each asking a device's onnxruntime one question about how it splits
a network into kernels (which block size its NCHWc layout uses, which activations it fuses into a conv or
Gemm, where it aligns channels), named ``family:parameter``.

Apart from ``probe`` (running them on a device and fitting ``KernelRules`` to what it did) because these
are the questions themselves: tests build and split them without a device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nasprof.errors import PredictorError
from nasprof.predictors.kernel.rules import ACTIVATIONS

__all__ = ["POOL_WIDTHS", "phase_one_probes", "phase_two_probes", "probe_graph"]

#: Channels of the convs around a probe's question: at least a block for any block MLAS has used (8, 16).
_C_IN = 64
_HW = 14
#: Pool widths that tell the block size apart: the largest power of two dividing every blocked one and
#: none of the plain ones.
POOL_WIDTHS = (8, 12, 16, 20, 24, 32, 40, 48, 64, 96)


def phase_one_probes() -> list[str]:
    """Probes that need no block size: pools (which tell the block) and the fusions."""
    return (
        [f"pool:{c}" for c in POOL_WIDTHS]
        + [f"conv_act:{a}" for a in ACTIVATIONS]
        + [f"gemm_act:{a}" for a in ACTIVATIONS]
        + ["conv_add", "conv_add_act:Relu", "silu"]
    )


def phase_two_probes(block: int) -> list[str]:
    """Layout probes around a block size (none without a blocked layout)."""
    if block <= 0:
        return []
    offsets = [2 * block + d for d in (2, 4, 6, 8)]
    halves = sorted({max(1, block // 2), block, block + block // 2, 2 * block})
    return (
        [f"dwconv:{c}" for c in offsets]
        + [f"conv:{c}" for c in offsets]
        + [f"concat:{c}" for c in halves]
        + [f"group:{c}" for c in halves]
        + [f"avgpool_ceil_pad:{2 * block}", f"residual_plain:{2 * block}",
           f"standalone_bn:{2 * block}"]
    )


def probe_graph(name: str) -> Any:
    """The ``onnx.ModelProto`` of probe ``name`` (``family:parameter``), with shapes inferred."""
    import onnx

    family, _, param = name.partition(":")
    builders: dict[str, Callable[[str], Any]] = {
        "pool": _chain("pool"),
        "dwconv": _chain("dwconv"),
        "conv": _chain("conv"),
        "concat": _chain("concat"),
        "group": _chain("group"),
        "avgpool_ceil_pad": _chain("avgpool_ceil_pad"),
        "residual_plain": _residual_plain,
        "standalone_bn": _standalone_bn,
        "conv_act": _conv_act,
        "gemm_act": _gemm_act,
        "conv_add": lambda p: _conv_add(""),
        "conv_add_act": _conv_add,
        "silu": lambda p: _silu(),
    }
    if family not in builders:
        raise PredictorError(f"unknown probe {name!r}")
    model = builders[family](param)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


class _G:
    """A small graph under construction (seeded weights, opset 17)."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0

    def w(self, shape: Sequence[int]) -> str:
        from onnx import numpy_helper

        self.n += 1
        name = f"w{self.n}"
        data = (self.rng.standard_normal(tuple(shape)) * 0.1).astype(np.float32)
        self.inits.append(numpy_helper.from_array(data, name))
        return name

    def const(self, value: float) -> str:
        from onnx import numpy_helper

        self.n += 1
        name = f"k{self.n}"
        self.inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    def node(self, op: str, inputs: Sequence[str], **attrs: Any) -> str:
        from onnx import helper

        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=f"/{op}_{self.n}", **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 1, group: int = 1) -> str:
        return self.node("Conv", [x, self.w((cout, cin // group, k, k))], pads=[k // 2] * 4, group=group)

    def act(self, op: str, x: str) -> str:
        if op == "Clip":  # ReLU6, as PyTorch exports it
            return self.node("Clip", [x, self.const(0.0), self.const(6.0)])
        return self.node(op, [x])

    def model(self, inputs: Sequence[tuple[str, Sequence[int]]], output: str) -> Any:
        from onnx import TensorProto, helper

        ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs]
        out = helper.make_tensor_value_info(output, TensorProto.FLOAT, None)
        graph = helper.make_graph(self.nodes, "nasprof_probe", ins, [out], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m


def _chain(case: str) -> Callable[[str], Any]:
    """x (the probe's width) -> the kernel in question -> y. Where the kernel runs blocked, the device
    converts x in and y out (two reorders); where it runs plain, none (a conv still converts its output).
    A concat reads two convs' outputs: it stays blocked only if it takes them blocked."""

    def build(param: str) -> Any:
        c = int(param)
        g = _G()
        width = 2 * c if case == "group" else c
        if case == "pool":
            y = g.node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
        elif case == "dwconv":
            y = g.conv("x", c, c, k=3, group=c)
        elif case == "conv":
            y = g.conv("x", c, _C_IN)
        elif case == "concat":
            width = _C_IN
            cat = g.node("Concat", [g.conv("x", _C_IN, c), g.conv("x", _C_IN, c)], axis=1)
            y = g.conv(cat, 2 * c, _C_IN)
        elif case == "group":  # two groups of c channels each
            y = g.conv("x", width, width, k=3, group=2)
        elif case == "avgpool_ceil_pad":
            y = g.node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1,
                       count_include_pad=1)
        else:  # pragma: no cover - the table above names every case
            raise PredictorError(f"unknown chain probe {case!r}")
        return g.model([("x", (1, width, _HW, _HW))], y)

    return build


def _residual_plain(param: str) -> Any:
    """A residual Add of a conv's output and a squeeze-excite product (a plain tensor where the layout is
    blocked): does the Add still fold into the conv?"""
    c = int(param)
    g = _G()
    a = g.conv("x", _C_IN, c)
    gate = g.act("Sigmoid", g.conv(g.node("GlobalAveragePool", [a]), c, c))
    se = g.node("Mul", [a, gate])
    b = g.node("Add", [se, g.conv(g.node("Relu", ["x"]), _C_IN, c)])
    return g.model([("x", (1, _C_IN, _HW, _HW))], g.conv(b, c, _C_IN))


def _standalone_bn(param: str) -> Any:
    """conv -> max pool -> BatchNormalization -> Relu -> conv: a batch norm no conv can fold (DenseNet's
    pre-activation). Does it run as a kernel of its own, or as a blocked conv with the Relu fused?"""
    import onnx.numpy_helper as nh

    c = int(param)
    g = _G()
    a = g.node("MaxPool", [g.conv("x", _C_IN, c)], kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4)
    stats = []
    for v in (1.0, 0.0, 0.0, 1.0):  # scale, bias, mean, variance
        g.n += 1
        name = f"bn{g.n}"
        g.inits.append(nh.from_array(np.full(c, v, np.float32), name))
        stats.append(name)
    b = g.node("Relu", [g.node("BatchNormalization", [a, *stats])])
    return g.model([("x", (1, _C_IN, _HW, _HW))], g.conv(b, c, _C_IN))


def _conv_act(act: str) -> Any:
    g = _G()
    a = g.act(act, g.conv("x", _C_IN, 32))
    return g.model([("x", (1, _C_IN, _HW, _HW))], g.conv(a, 32, _C_IN))


def _gemm_act(act: str) -> Any:
    g = _G()
    h = g.node("Gemm", ["x", g.w((64, 64)), g.w((64,))], transB=1)
    y = g.node("Gemm", [g.act(act, h), g.w((10, 64)), g.w((10,))], transB=1)
    return g.model([("x", (1, 64))], y)


def _conv_add(act: str) -> Any:
    """conv -> relu -> conv (+ the first one's output) [-> act] -> conv."""
    g = _G()
    a = g.node("Relu", [g.conv("x", _C_IN, _C_IN)])
    s = g.node("Add", [g.conv(a, _C_IN, _C_IN), a])
    if act:
        s = g.act(act, s)
    return g.model([("x", (1, _C_IN, _HW, _HW))], g.conv(s, _C_IN, _C_IN))


def _silu() -> Any:
    g = _G()
    a = g.conv("x", _C_IN, 32)
    b = g.node("Mul", [a, g.node("Sigmoid", [a])])
    return g.model([("x", (1, _C_IN, _HW, _HW))], g.conv(b, 32, _C_IN))
