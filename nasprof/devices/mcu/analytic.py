"""The ``McuGraph`` of a search-space layer built from its ``BlockSpec`` alone: no torch, no ONNX export.

Search evaluates thousands of candidates; exporting each block to ONNX costs ~0.1-1 s, building its graph
here costs microseconds. The graph mirrors what ``nasprof.space.export_layer`` + ``load_graph`` produce for
the same layer (same ops in the same order, same tensor shapes, weights, biases, MACs), so every memory model
gives the same bytes on both paths (tests/devices/test_mcu_analytic.py checks this on whole search spaces).

Covered: ``conv``, ``dwsep`` and ``mbconv`` (default variant) with squeeze-excite or not, skip none / id /
pool, activations relu, relu6, hswish or none, and the classifier ``head`` (global mean, optional hidden
linear, linear): every layer of the ``mobilenetv2`` and ``mnasnet`` spaces. Anything else returns ``None``
and callers fall back to the ONNX path.
"""

from __future__ import annotations

from typing import Any

from nasprof.devices.mcu.graph import McuGraph, McuOp, graph_from_ops

__all__ = ["graph_from_layer", "ANALYTIC_ACTIVATIONS"]

#: Activations that fold into the producing conv (one ONNX op each: Relu, Clip, HardSwish) or are absent.
#: swish exports as x * sigmoid(x), two ops and an extra tensor: left to the ONNX path.
ANALYTIC_ACTIVATIONS = frozenset({"relu", "relu6", "hswish", "none"})


def _conv_out(size: int, kernel: int, stride: int) -> int:
    pad = kernel // 2
    return (size + 2 * pad - kernel) // stride + 1


class _Builder:
    """Appends ops in the order the exported ONNX graph runs them (body first, then the shortcut)."""

    def __init__(self, cin: int, h: int, w: int) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {"input": (cin, h, w)}
        self.ops: list[McuOp] = []

    def _out(self, name: str, shape: tuple[int, ...]) -> str:
        out = f"{name}:out"
        self.shapes[out] = shape
        return out

    def conv(self, name: str, src: str, cout: int, kernel: int, stride: int, groups: int, act: str) -> str:
        cin, h, w = self.shapes[src]
        ho, wo = _conv_out(h, kernel, stride), _conv_out(w, kernel, stride)
        out = self._out(name, (cout, ho, wo))
        cin_g = cin // groups
        kind = "conv" if groups == 1 else ("depthwise" if groups == cin == cout else "group_conv")
        pad = kernel // 2
        self.ops.append(McuOp(
            name, "Conv", kind, (src,), (out,), macs=cout * ho * wo * cin_g * kernel * kernel,
            weight_elems=cout * cin_g * kernel * kernel, bias_elems=cout, quant_channels=cout,
            kernel=(kernel, kernel), stride=(stride, stride), pads=(pad, pad, pad, pad), groups=groups,
            fused=() if act == "none" else (f"{name}:{act}",)))
        return out

    def squeeze_excite(self, name: str, src: str, squeeze: int) -> str:
        # x.mean((2, 3)) -> 1x1 conv + ReLU -> 1x1 conv + sigmoid -> x * gate
        c, h, w = self.shapes[src]
        pooled = self._out(f"{name}/mean", (c, 1, 1))
        self.ops.append(McuOp(f"{name}/mean", "ReduceMean", "pool", (src,), (pooled,), macs=c * h * w))
        gate = self.conv(f"{name}/reduce", pooled, squeeze, 1, 1, 1, "relu")
        gate = self.conv(f"{name}/expand", gate, c, 1, 1, 1, "sigmoid")
        out = self._out(f"{name}/mul", (c, h, w))
        self.ops.append(McuOp(f"{name}/mul", "Mul", "mul", (src, gate), (out,), macs=c * h * w))
        return out

    def avg_pool(self, name: str, src: str, k: int) -> str:
        c, h, w = self.shapes[src]
        out = self._out(name, (c, -(-h // k), -(-w // k)))  # ceil_mode=True
        self.ops.append(McuOp(name, "AveragePool", "pool", (src,), (out,),
                              macs=c * -(-h // k) * -(-w // k) * k * k, kernel=(k, k), stride=(k, k)))
        return out

    def global_mean(self, name: str, src: str) -> str:
        # x.mean((2, 3)): a ReduceMean to (C,), no Flatten
        c, h, w = self.shapes[src]
        out = self._out(name, (c,))
        self.ops.append(McuOp(name, "ReduceMean", "pool", (src,), (out,), macs=c * h * w))
        return out

    def dense(self, name: str, src: str, cout: int, act: str) -> str:
        (cin,) = self.shapes[src]
        out = self._out(name, (cout,))
        self.ops.append(McuOp(
            name, "Gemm", "dense", (src,), (out,), macs=cin * cout, weight_elems=cout * cin, bias_elems=cout,
            quant_channels=cout, fused=() if act == "none" else (f"{name}:{act}",)))
        return out

    def add(self, name: str, body: str, shortcut: str) -> str:
        out = self._out(name, self.shapes[body])
        c, h, w = self.shapes[body]
        self.ops.append(McuOp(name, "Add", "add", (body, shortcut), (out,), macs=c * h * w))
        return out

    def graph(self, out: str, name: str) -> McuGraph:
        return graph_from_ops(self.ops, self.shapes, ["input"], [out], name)


def graph_from_layer(layer: Any) -> McuGraph | None:
    """The int8 graph of one ``nasprof.space.Layer``; ``None`` when its block is not covered (see module)."""
    from nasprof.space.blocks._common import se_channels

    spec = layer.spec
    if spec.variant != "" or spec.act not in ANALYTIC_ACTIVATIONS or spec.skip == "proj":
        return None
    cin, h, w = layer.input_shape
    b = _Builder(cin, h, w)

    def se(x: str, channels: int) -> str:
        return b.squeeze_excite("se", x, se_channels(spec, channels)) if spec.se else x

    if spec.op == "conv":
        x = b.conv("conv", "input", spec.cout, spec.kernel, spec.stride, spec.groups, spec.act)
        out = se(x, spec.cout)
    elif spec.op == "dwsep":
        x = b.conv("dw", "input", spec.cin, spec.kernel, spec.stride, spec.cin, spec.act)
        out = b.conv("pw", se(x, spec.cin), spec.cout, 1, 1, 1, spec.act)
    elif spec.op == "head":
        x = b.global_mean("pool", "input")
        if spec.mid:
            x = b.dense("hidden", x, spec.mid, spec.act)
        return b.graph(b.dense("fc", x, spec.cout, "none"), str(getattr(layer, "key", "")))
    elif spec.op == "mbconv":
        mid = spec.mid or round(spec.cin * spec.expand)
        x = "input" if mid == spec.cin else b.conv("expand", "input", mid, 1, 1, 1, spec.act)
        x = b.conv("dw", x, mid, spec.kernel, spec.stride, mid, spec.act)
        out = b.conv("project", se(x, mid), spec.cout, 1, 1, 1, "none")
    else:
        return None
    if spec.skip == "id":
        out = b.add("add", out, "input")
    elif spec.skip == "pool":
        sc = b.avg_pool("skip/pool", "input", spec.stride) if spec.stride > 1 else "input"
        if spec.cin != spec.cout:
            sc = b.conv("skip/proj", sc, spec.cout, 1, 1, 1, "none")
        out = b.add("add", out, sc)
    return b.graph(out, str(getattr(layer, "key", "")))
