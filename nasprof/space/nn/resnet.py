"""torch modules of the ResNet families (basic, bottleneck/ResNeXt) and RepVGG with re-parameterisation."""

from __future__ import annotations

import torch
from torch import nn

from nasprof.space.blocks._common import bottleneck_mid, bottleneck_se, has_identity
from nasprof.space.blocks.base import BlockSpec
from nasprof.space.nn.common import ConvBN, Residual, SqueezeExcite, bn_affine, make_act


class BasicBlock(Residual):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        self.conv1 = ConvBN(spec.cin, spec.cout, spec.kernel, spec.stride, act="relu")
        self.conv2 = ConvBN(spec.cout, spec.cout, spec.kernel)
        self.act = make_act("relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.add_skip(x, self.conv2(self.conv1(x))))


class Bottleneck(Residual):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        mid = bottleneck_mid(spec)
        self.conv1 = ConvBN(spec.cin, mid, 1, act="relu")
        self.conv2 = ConvBN(mid, mid, spec.kernel, spec.stride, spec.groups, act="relu")
        self.conv3 = ConvBN(mid, spec.cout, 1)
        self.act = make_act("relu")
        channels, squeeze = bottleneck_se(spec)
        self.se_out = spec.variant == "se_out"
        self.se: nn.Module = SqueezeExcite(spec, channels, squeeze) if channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.se_out:
            y = self.se(self.conv3(self.conv2(self.conv1(x))))
        else:
            y = self.conv3(self.se(self.conv2(self.conv1(x))))
        return self.act(self.add_skip(x, y))


class RepVGGBlock(nn.Module):
    """Training form: ``dense`` (3x3+BN) + ``pointwise`` (1x1+BN) + ``identity`` (BN) -> act.
    ``fold()`` re-parameterises into ``dense`` alone (3x3 conv with bias), the exported form."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.dense = ConvBN(spec.cin, spec.cout, 3, spec.stride)
        self.pointwise: ConvBN | None = ConvBN(spec.cin, spec.cout, 1, spec.stride)
        self.identity: nn.BatchNorm2d | None = nn.BatchNorm2d(spec.cin) if has_identity(spec) else None
        self.act = make_act(spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dense(x)
        if self.pointwise is not None:
            y = y + self.pointwise(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)

    @torch.no_grad()
    def fold(self) -> None:
        if self.pointwise is None:
            return
        self.dense.fold()
        self.pointwise.fold()
        dense, pointwise = self.dense.conv, self.pointwise.conv
        assert dense.bias is not None and pointwise.bias is not None  # fold() gave them biases
        weight, bias = dense.weight.clone(), dense.bias.clone()
        # A 1x1 kernel is a 3x3 kernel that is zero except at the centre.
        weight[:, :, 1:2, 1:2] += pointwise.weight
        bias += pointwise.bias
        if self.identity is not None:
            # The identity is a 3x3 kernel with 1 at the centre of channel i -> i, then scaled by its BN.
            scale, shift = bn_affine(self.identity)
            idx = torch.arange(weight.shape[0])
            weight[idx, idx, 1, 1] += scale
            bias += shift
        dense.weight.copy_(weight)
        dense.bias.copy_(bias)
        self.pointwise, self.identity = None, None
