"""Torch modules of NAS-Bench-201 (see ``nasprof.space.blocks.nb201``), built as AutoDL-Projects' reference
``TinyNetwork`` builds them, so that the exported graphs have the same nodes."""

from __future__ import annotations

import torch
from torch import nn

from nasprof.space.nn.common import ConvBN


class ReluConvBN(nn.Module):
    """ReLU, then conv (no bias, padding k // 2) + BN (folded on export)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.op = ConvBN(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(self.relu(x))


class Zero(nn.Module):
    """The reference's ``none`` at stride 1: ``x * 0`` (a Mul node, as in the reference's graph)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(op: str, c: int) -> nn.Module:
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReluConvBN(c, c, 1)
    if op == "nor_conv_3x3":
        return ReluConvBN(c, c, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {op!r}")  # specs are validated before building


class InferCell(nn.Module):
    """Node j = Python ``sum`` over i < j of ``op_{i->j}(node i)`` (so ``0 + ...``, as the reference sums)."""

    def __init__(self, ops: tuple[str, ...], c: int, edges: tuple[tuple[int, int], ...]) -> None:
        # ``edges`` are ``nasprof.space.blocks.nb201.EDGES``, handed over by the block (no import back).
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, c) for op in ops)
        self.reads = [[(k, i) for k, (i, t) in enumerate(edges) if t == j] for j in (1, 2, 3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for reads in self.reads:
            nodes.append(sum(self.edges[k](nodes[i]) for k, i in reads))  # type: ignore[arg-type]
        return nodes[-1]


class ResNetBasicBlock(nn.Module):
    """The reference's ``ResNetBasicblock`` at stride 2: ``shortcut(x) + b(a(x))``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_a = ReluConvBN(cin, cout, 3, 2)
        self.conv_b = ReluConvBN(cout, cout, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2, 0), nn.Conv2d(cin, cout, 1, 1, 0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class Nb201HeadModule(nn.Module):
    """``lastact`` (BN, ReLU), global average pooling, flatten, classifier."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.lastact = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.lastact(x))
        return self.classifier(out.view(out.size(0), -1))
