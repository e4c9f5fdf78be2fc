"""torch modules of the mobile families: conv, dwsep, mbconv, fire, shuffle."""

from __future__ import annotations

import torch
from torch import nn

from nasprof.space.blocks._common import branch_channels, input_groups, mid_channels, shuffle_mid
from nasprof.space.blocks.base import BlockSpec
from nasprof.space.nn.common import ConvBN, Residual, make_act, make_se


class ConvBlock(Residual):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        pad = 0 if spec.variant == "valid" else None
        self.conv = ConvBN(spec.cin, spec.cout, spec.kernel, spec.stride, spec.groups, spec.act, pad)
        self.se = make_se(spec, spec.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_skip(x, self.se(self.conv(x)))


class DwSepBlock(Residual):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        self.dw = ConvBN(spec.cin, spec.cin, spec.kernel, spec.stride, spec.cin, spec.act)
        self.se = make_se(spec, spec.cin)
        self.pw = ConvBN(spec.cin, spec.cout, 1, act=spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_skip(x, self.pw(self.se(self.dw(x))))


class MBConvBlock(Residual):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        mid = mid_channels(spec)
        self.expand = ConvBN(spec.cin, mid, 1, act=spec.act) if mid != spec.cin else nn.Identity()
        self.dw = ConvBN(mid, mid, spec.kernel, spec.stride, mid, spec.act)
        self.se = make_se(spec, mid)
        self.project = ConvBN(mid, spec.cout, 1)  # linear bottleneck: no activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_skip(x, self.project(self.se(self.dw(self.expand(x)))))


class FireBlock(nn.Module):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        e = spec.cout // 2
        self.squeeze = ConvBN(spec.cin, spec.mid, 1, act=spec.act)
        self.expand1 = ConvBN(spec.mid, e, 1, act=spec.act)
        self.expand3 = ConvBN(spec.mid, e, spec.kernel, act=spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], 1)


class ChannelShuffle(nn.Module):
    #: Its reshapes read the input's spatial size, so it must be traced at the real size (see export_layer).
    needs_static_trace = True

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleBlock(nn.Module):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        mid, g = shuffle_mid(spec), spec.groups
        self.stride = spec.stride
        self.gconv1 = ConvBN(spec.cin, mid, 1, groups=input_groups(spec), act="relu")
        self.shuffle = ChannelShuffle(g)
        self.dw = ConvBN(mid, mid, spec.kernel, spec.stride, mid)
        self.gconv2 = ConvBN(mid, branch_channels(spec), 1, groups=g)
        self.pool = nn.AvgPool2d(3, 2, 1) if spec.stride == 2 else nn.Identity()
        self.act = make_act("relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gconv2(self.dw(self.shuffle(self.gconv1(x))))
        if self.stride == 2:
            return self.act(torch.cat([self.pool(x), y], 1))
        return self.act(x + y)


class ShuffleV2Block(nn.Module):
    """ShuffleNet V2's unit (see ``nasprof.space.blocks.shuffle_v2``)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        half, k = spec.cout // 2, spec.kernel
        self.stride, self.split_at = spec.stride, half
        right_in = spec.cin if spec.stride == 2 else half
        self.right = nn.Sequential(
            ConvBN(right_in, half, 1, act="relu"),
            ConvBN(half, half, k, spec.stride, half),
            ConvBN(half, half, 1, act="relu"),
        )
        self.left: nn.Module = nn.Identity()
        if spec.stride == 2:
            self.left = nn.Sequential(
                ConvBN(spec.cin, spec.cin, k, spec.stride, spec.cin), ConvBN(spec.cin, half, 1, act="relu")
            )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            # Constant slices, not chunk(): chunk exports a Split whose sizes shape inference cannot read.
            out = torch.cat([x[:, : self.split_at], self.right(x[:, self.split_at :])], 1)
        else:
            out = torch.cat([self.left(x), self.right(x)], 1)
        return self.shuffle(out)
