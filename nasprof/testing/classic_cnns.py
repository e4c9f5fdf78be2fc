"""Classic CNNs as other tools exported them, built with ``onnx.helper`` from the published architectures:
old opsets, standalone BatchNormalization, ``Sum`` residuals, LRN, Dropout, Flatten and a final Softmax —
graphs nasprof's own exporter never writes. The kernel predictor is tested and benchmarked on them
(``benchmarks/predictor_accuracy.py --foreign``).

Weights are seeded random numbers (latency does not depend on values); every graph is checked by onnx's
checker and has fixed shapes. Written from the papers' layer tables, not copied from any model zoo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CLASSIC_CNNS", "build_classic", "GraphBuilder"]


class GraphBuilder:
    """A small NCHW graph under construction; tracks the current tensor's channels and size."""

    def __init__(self, opset: int, channels: int = 3, size: int = 224, seed: int = 0) -> None:
        from onnx import helper

        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0
        self.helper = helper
        self.input = ("data", [1, channels, size, size])

    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"

    def weight(self, shape: Sequence[int], scale: float = 0.05) -> str:
        from onnx import numpy_helper

        name = self._name("w")
        self.inits.append(numpy_helper.from_array((self.rng.standard_normal(tuple(shape)) * scale)
                                                  .astype(np.float32), name))
        return name

    def const(self, values: Sequence[float] | np.ndarray, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: Sequence[str], **attrs: Any) -> str:
        out = self._name(op.lower())
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=f"{op}_{self.n}", **attrs))
        return out

    # -- layers -------------------------------------------------------------------------------------------
    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int | None = None,
             group: int = 1, bias: bool = True) -> str:
        pad = k // 2 if pad is None else pad
        ins = [x, self.weight((cout, cin // group, k, k))] + ([self.weight((cout,))] if bias else [])
        return self.node("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                         group=group)

    def bn(self, x: str, c: int) -> str:
        ins = [x, self.const(np.ones(c)), self.const(np.zeros(c)), self.const(np.zeros(c)),
               self.const(np.ones(c))]
        attrs: dict[str, Any] = {"epsilon": 1e-5}
        if self.opset < 7:  # pragma: no cover - the builders use opset 7 and later
            attrs["is_test"] = 1
        return self.node("BatchNormalization", ins, **attrs)

    def relu(self, x: str) -> str:
        return self.node("Relu", [x])

    def conv_bn_relu(self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1) -> str:
        return self.relu(self.bn(self.conv(x, cin, cout, k, stride, group=group, bias=False), cout))

    def maxpool(self, x: str, k: int, stride: int, pad: int = 0, ceil: bool = False) -> str:
        attrs: dict[str, Any] = {"kernel_shape": [k, k], "strides": [stride, stride], "pads": [pad] * 4}
        if ceil and self.opset >= 10:
            attrs["ceil_mode"] = 1
        return self.node("MaxPool", [x], **attrs)

    def avgpool(self, x: str, k: int, stride: int, pad: int = 0) -> str:
        return self.node("AveragePool", [x], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def lrn(self, x: str) -> str:
        return self.node("LRN", [x], size=5, alpha=1e-4, beta=0.75, bias=1.0)

    def concat(self, xs: Sequence[str]) -> str:
        return self.node("Concat", list(xs), axis=1)

    def add(self, a: str, b: str, op: str = "Add") -> str:
        return self.node(op, [a, b])

    def head(self, x: str, c: int, classes: int = 1000, hidden: Sequence[int] = (),
             dropout: bool = True) -> str:
        """Global pool (or none with ``hidden`` FC layers after Flatten), Dropout, FC, Softmax."""
        x = self.node("Flatten", [x], axis=1)
        for h in hidden:
            x = self.relu(self.node("Gemm", [x, self.weight((h, c)), self.weight((h,))], transB=1))
            if dropout:
                x = self._dropout(x)
            c = h
        if dropout and not hidden:
            x = self._dropout(x)
        x = self.node("Gemm", [x, self.weight((classes, c)), self.weight((classes,))], transB=1)
        return self.node("Softmax", [x], axis=1)

    def _dropout(self, x: str) -> str:
        if self.opset < 12:
            return self.node("Dropout", [x], ratio=0.5)
        return self.node("Dropout", [x])

    def gap(self, x: str) -> str:
        return self.node("GlobalAveragePool", [x])

    def model(self, out: str, name: str) -> Any:
        import onnx
        from onnx import TensorProto

        x = self.helper.make_tensor_value_info(self.input[0], TensorProto.FLOAT, self.input[1])
        y = self.helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
        graph = self.helper.make_graph(self.nodes, name, [x], [y], self.inits)
        opsets = [self.helper.make_opsetid("", self.opset)]
        m = self.helper.make_model(graph, opset_imports=opsets, producer_name="nasprof.testing.classic_cnns")
        m.ir_version = 6 if self.opset <= 11 else 8
        return onnx.shape_inference.infer_shapes(m)


# -- the networks ----------------------------------------------------------------------------------------
def alexnet(size: int = 224) -> Any:
    """AlexNet (Krizhevsky et al., 2012), one-tower: LRN after conv1 and conv2, opset 7."""
    g = GraphBuilder(7, size=size)
    x = g.maxpool(g.lrn(g.relu(g.conv("data", 3, 96, 11, 4, pad=2))), 3, 2)
    x = g.maxpool(g.lrn(g.relu(g.conv(x, 96, 256, 5, pad=2))), 3, 2)
    x = g.relu(g.conv(x, 256, 384, 3))
    x = g.relu(g.conv(x, 384, 384, 3))
    x = g.maxpool(g.relu(g.conv(x, 384, 256, 3)), 3, 2)
    return g.model(g.head(x, 256 * 6 * 6, hidden=(4096, 4096)), "alexnet")


def vgg11(size: int = 160) -> Any:
    """VGG-11 (configuration A, Simonyan & Zisserman), opset 9; at 160 px to keep one run near 0.1 s."""
    g = GraphBuilder(9, size=size)
    x, c = "data", 3
    for v in (64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0):  # 0: a max pool
        if v == 0:
            x = g.maxpool(x, 2, 2)
        else:
            x, c = g.relu(g.conv(x, c, v, 3)), v
    s = size // 32
    return g.model(g.head(x, c * s * s, hidden=(4096, 4096)), "vgg11")


def _inception_v1(g: GraphBuilder, x: str, cin: int, c1: int, r3: int, c3: int, r5: int, c5: int,
                  pp: int) -> tuple[str, int]:
    b1 = g.relu(g.conv(x, cin, c1, 1))
    b2 = g.relu(g.conv(g.relu(g.conv(x, cin, r3, 1)), r3, c3, 3))
    b3 = g.relu(g.conv(g.relu(g.conv(x, cin, r5, 1)), r5, c5, 5))
    b4 = g.relu(g.conv(g.maxpool(x, 3, 1, pad=1), cin, pp, 1))
    return g.concat([b1, b2, b3, b4]), c1 + c3 + c5 + pp


def googlenet(size: int = 224) -> Any:
    """GoogLeNet / Inception v1 (Szegedy et al., 2014): LRN in the stem, nine inception modules, opset 8."""
    g = GraphBuilder(8, size=size)
    x = g.lrn(g.maxpool(g.relu(g.conv("data", 3, 64, 7, 2)), 3, 2, pad=1))
    x = g.relu(g.conv(g.relu(g.conv(x, 64, 64, 1)), 64, 192, 3))
    x = g.maxpool(g.lrn(x), 3, 2, pad=1)
    c = 192
    cfgs: list[tuple[int, int, int, int, int, int] | None] = [
        (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), None, (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128), None, (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),
    ]
    for cfg in cfgs:  # None: a max pool between stages
        if cfg is None:
            x = g.maxpool(x, 3, 2, pad=1)
            continue
        x, c = _inception_v1(g, x, c, *cfg)
    return g.model(g.head(g.gap(x), c), "googlenet")


def inception_bn(size: int = 224) -> Any:
    """BN-Inception (Ioffe & Szegedy, 2015): batch norm after every conv, 3x3 pairs instead of 5x5,
    average-pool branches; opset 9."""
    g = GraphBuilder(9, size=size)
    x = g.maxpool(g.conv_bn_relu("data", 3, 64, 7, 2), 3, 2, pad=1)
    x = g.maxpool(g.conv_bn_relu(g.conv_bn_relu(x, 64, 64, 1), 64, 192, 3), 3, 2, pad=1)
    c = 192

    def module(x: str, cin: int, c1: int, r3: int, c3: int, rd: int, cd: int, pp: int,
               stride: int = 1) -> tuple[str, int]:
        branches, out = [], 0
        if c1:
            branches.append(g.conv_bn_relu(x, cin, c1, 1))
            out += c1
        branches.append(g.conv_bn_relu(g.conv_bn_relu(x, cin, r3, 1), r3, c3, 3, stride))
        d = g.conv_bn_relu(g.conv_bn_relu(x, cin, rd, 1), rd, cd, 3)
        branches.append(g.conv_bn_relu(d, cd, cd, 3, stride))
        out += c3 + cd
        if stride == 1:
            branches.append(g.conv_bn_relu(g.avgpool(x, 3, 1, pad=1), cin, pp, 1))
            out += pp
        else:
            branches.append(g.maxpool(x, 3, 2, pad=1))
            out += cin
        return g.concat(branches), out

    for cfg in [(64, 64, 64, 64, 96, 32, 1), (64, 64, 96, 64, 96, 64, 1), (0, 128, 160, 64, 96, 0, 2),
                (224, 64, 96, 96, 128, 128, 1), (192, 96, 128, 96, 128, 128, 1),
                (160, 128, 160, 128, 160, 128, 1), (96, 128, 192, 160, 192, 128, 1),
                (0, 128, 192, 192, 256, 0, 2), (352, 192, 320, 160, 224, 128, 1),
                (352, 192, 320, 192, 224, 128, 1)]:
        x, c = module(x, c, *cfg)
    return g.model(g.head(g.gap(x), c), "inception_bn")


def resnet50_sum(size: int = 224) -> Any:
    """ResNet-50 (He et al., 2016) as old exporters wrote it: opset 7, BatchNormalization after every conv,
    residuals as ``Sum``."""
    g = GraphBuilder(7, size=size)
    x = g.maxpool(g.conv_bn_relu("data", 3, 64, 7, 2), 3, 2, pad=1)
    c = 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        for b in range(blocks):
            stride = 2 if b == 0 and stage > 0 else 1
            y = g.conv_bn_relu(x, c, width, 1)
            y = g.conv_bn_relu(y, width, width, 3, stride)
            y = g.bn(g.conv(y, width, width * 4, 1, bias=False), width * 4)
            short = x if b > 0 else g.bn(g.conv(x, c, width * 4, 1, stride, bias=False), width * 4)
            x, c = g.relu(g.add(y, short, "Sum")), width * 4
    return g.model(g.head(g.gap(x), c, dropout=False), "resnet50_sum")


def densenet121(size: int = 224) -> Any:
    """DenseNet-121 (Huang et al., 2017): pre-activation BN-ReLU-conv, so every BN stands alone; opset 9."""
    g = GraphBuilder(9, size=size)
    x = g.maxpool(g.conv_bn_relu("data", 3, 64, 7, 2), 3, 2, pad=1)
    c, growth = 64, 32
    for i, layers in enumerate((6, 12, 24, 16)):
        for _ in range(layers):
            y = g.conv(g.relu(g.bn(x, c)), c, 4 * growth, 1, bias=False)
            y = g.conv(g.relu(g.bn(y, 4 * growth)), 4 * growth, growth, 3, bias=False)
            x, c = g.concat([x, y]), c + growth
        if i < 3:
            x = g.avgpool(g.conv(g.relu(g.bn(x, c)), c, c // 2, 1, bias=False), 2, 2)
            c //= 2
    x = g.relu(g.bn(x, c))
    return g.model(g.head(g.gap(x), c, dropout=False), "densenet121")


def squeezenet10(size: int = 224) -> Any:
    """SqueezeNet 1.0 (Iandola et al., 2016): fire modules, a conv classifier and a global pool; opset 9."""
    g = GraphBuilder(9, size=size)
    x = g.maxpool(g.relu(g.conv("data", 3, 96, 7, 2, pad=0)), 3, 2, ceil=True)
    c = 96
    fires: list[tuple[int, int] | None] = [(16, 64), (16, 64), (32, 128), None, (32, 128), (48, 192),
                                           (48, 192), (64, 256), None, (64, 256)]
    for cfg in fires:  # (squeeze, expand) channels; None: a max pool
        if cfg is None:
            x = g.maxpool(x, 3, 2, ceil=True)
            continue
        s, e = cfg
        sq = g.relu(g.conv(x, c, s, 1))
        x, c = g.concat([g.relu(g.conv(sq, s, e, 1)), g.relu(g.conv(sq, s, e, 3))]), 2 * e
    x = g.gap(g.relu(g.conv(g._dropout(x), c, 1000, 1)))
    return g.model(g.node("Softmax", [g.node("Flatten", [x], axis=1)], axis=1), "squeezenet10")


def mobilenet_v1(size: int = 224) -> Any:
    """MobileNet v1 1.0 (Howard et al., 2017): depthwise separable convs with BN and ReLU; opset 11."""
    g = GraphBuilder(11, size=size)
    x, c = g.conv_bn_relu("data", 3, 32, 3, 2), 32
    for out, stride in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                        (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]:
        x = g.conv_bn_relu(x, c, c, 3, stride, group=c)
        x, c = g.conv_bn_relu(x, c, out, 1), out
    return g.model(g.head(g.gap(x), c), "mobilenet_v1")


def shufflenet_v2(size: int = 224) -> Any:
    """ShuffleNet v2 1.0x (Ma et al., 2018): channel split, shuffle by Reshape-Transpose-Reshape; opset 11."""
    g = GraphBuilder(11, size=size)
    x = g.maxpool(g.conv_bn_relu("data", 3, 24, 3, 2), 3, 2, pad=1)
    c, hw = 24, size // 4

    def shuffle(x: str, ch: int, h: int) -> str:
        x = g.node("Reshape", [x, g.const([1, 2, ch // 2, h, h], np.int64)])
        x = g.node("Transpose", [x], perm=[0, 2, 1, 3, 4])
        return g.node("Reshape", [x, g.const([1, ch, h, h], np.int64)])

    def branch(x: str, cin: int, cout: int, stride: int) -> str:
        y = g.conv_bn_relu(x, cin, cout, 1)
        y = g.bn(g.conv(y, cout, cout, 3, stride, group=cout, bias=False), cout)
        return g.conv_bn_relu(y, cout, cout, 1)

    for out, repeats in [(116, 4), (232, 8), (464, 4)]:
        for r in range(repeats):
            half = out // 2
            if r == 0:
                left = g.conv_bn_relu(g.bn(g.conv(x, c, c, 3, 2, group=c, bias=False), c), c, half, 1)
                x = g.concat([left, branch(x, c, half, 2)])
                hw //= 2
            else:
                a = g.node("Slice", [x, g.const([0], np.int64), g.const([half], np.int64),
                                     g.const([1], np.int64)])
                b = g.node("Slice", [x, g.const([half], np.int64), g.const([out], np.int64),
                                     g.const([1], np.int64)])
                x = g.concat([a, branch(b, half, half, 1)])
            x, c = shuffle(x, out, hw), out
    x = g.conv_bn_relu(x, c, 1024, 1)
    return g.model(g.head(g.gap(x), 1024, dropout=False), "shufflenet_v2")


CLASSIC_CNNS: dict[str, Callable[[], Any]] = {
    "alexnet": alexnet,
    "vgg11": vgg11,
    "googlenet": googlenet,
    "inception_bn": inception_bn,
    "resnet50_sum": resnet50_sum,
    "densenet121": densenet121,
    "squeezenet10": squeezenet10,
    "mobilenet_v1": mobilenet_v1,
    "shufflenet_v2": shufflenet_v2,
}


def build_classic(name: str, path: str | Path) -> Path:
    """Write classic CNN ``name`` (a key of ``CLASSIC_CNNS``) to ``path``; checked by onnx's checker."""
    import onnx

    model = CLASSIC_CNNS[name]()
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)
