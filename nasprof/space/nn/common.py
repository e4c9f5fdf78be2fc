"""Shared torch pieces: activations, conv + BN + act, squeeze-excite, shortcuts, heads, the network shell,
BatchNorm folding and deterministic random initialisation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from nasprof.space.blocks._common import se_channels
from nasprof.space.blocks.base import BlockSpec

if TYPE_CHECKING:  # pragma: no cover
    from nasprof.space.network import Network


def make_act(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "hswish": nn.Hardswish,
        "swish": nn.SiLU,
        "none": nn.Identity,
    }[name]()


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` per channel."""
    assert bn.running_mean is not None and bn.running_var is not None, "BatchNorm without running stats"
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm + activation; ``fold()`` turns it into conv-with-bias + activation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str = "none",
        pad: int | None = None,
    ) -> None:
        super().__init__()
        pad = kernel // 2 if pad is None else pad
        self.conv = nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fold(self) -> None:
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        scale, shift = bn_affine(self.bn)
        # In place (no new Conv2d): constructing one would pay for a default init we overwrite anyway.
        self.conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        self.conv.bias = nn.Parameter(shift)
        self.bn = nn.Identity()


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 reduce + act -> 1x1 expand -> gate, multiplied onto the input."""

    def __init__(self, spec: BlockSpec, channels: int, squeeze: int | None = None) -> None:
        super().__init__()
        sq = se_channels(spec, channels) if squeeze is None else squeeze
        self.reduce = nn.Conv2d(channels, sq, 1)
        self.act = make_act("swish" if spec.act == "swish" else "relu")
        self.expand = nn.Conv2d(sq, channels, 1)
        self.gate = nn.Hardsigmoid() if spec.variant == "v3" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


def make_se(spec: BlockSpec, channels: int) -> nn.Module:
    return SqueezeExcite(spec, channels) if spec.se else nn.Identity()


class Shortcut(nn.Module):
    """``pool``: avg-pool (stride) then 1x1 conv + BN if widths differ; ``proj``: strided 1x1 conv + BN."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.pool: nn.Module = nn.Identity()
        self.proj: nn.Module = nn.Identity()
        if spec.skip == "pool":
            if spec.stride > 1:
                self.pool = nn.AvgPool2d(spec.stride, spec.stride, ceil_mode=True)
            if spec.cin != spec.cout:
                self.proj = ConvBN(spec.cin, spec.cout, 1)
        elif spec.skip == "proj":
            self.proj = ConvBN(spec.cin, spec.cout, 1, spec.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x))


class Residual(nn.Module):
    """Wraps a body with the spec's shortcut (none / identity / pool / proj) and an optional final act."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.skip = spec.skip
        self.shortcut = Shortcut(spec) if spec.skip in ("pool", "proj") else None

    def add_skip(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.skip == "none":
            return y
        if self.shortcut is None:
            return y + x
        return y + self.shortcut(x)


class MaxPool(nn.Module):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        ceil = spec.variant == "ceil"
        self.pool = nn.MaxPool2d(spec.kernel, spec.stride, 0 if ceil else spec.kernel // 2, ceil_mode=ceil)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class Head(nn.Module):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.pool_only = spec.variant == "pool"
        self.hidden: nn.Module = nn.Identity()
        self.act: nn.Module = nn.Identity()
        if spec.mid:
            self.hidden, self.act = nn.Linear(spec.cin, spec.mid), make_act(spec.act)
        self.fc = nn.Identity() if self.pool_only else nn.Linear(spec.mid or spec.cin, spec.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean((2, 3))
        return self.fc(self.act(self.hidden(x)))


class NetworkModule(nn.Module):
    """``stem``, ``blocks``, ``head`` ModuleLists iterated in ``forward``: node names ``/blocks.3/...``."""

    def __init__(self, stem: list[nn.Module], blocks: list[nn.Module], head: list[nn.Module]) -> None:
        super().__init__()
        self.stem, self.blocks, self.head = nn.ModuleList(stem), nn.ModuleList(blocks), nn.ModuleList(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part in (self.stem, self.blocks, self.head):
            for module in part:
                x = module(x)
        return x


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Deterministic weights with non-trivial BatchNorm statistics, so BN folding is really exercised.

    Weights are scaled per layer (variance-preserving) so deep presets keep activations O(1) and a
    numerical comparison between torch and onnxruntime stays meaningful.
    """
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (1.0 / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            n = m.num_features
            m.weight.copy_(0.5 + torch.rand(n, generator=gen))
            m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            if m.num_batches_tracked is not None:
                m.num_batches_tracked.zero_()
    return model


def instantiate(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """``build()`` on the meta device, then materialised and filled by ``randomize``: skips torch's default
    initialisation, which ``randomize`` overwrites anyway and which dominates export time for big presets."""
    with torch.device("meta"):
        model = build()
    return randomize(model.to_empty(device="cpu"), seed)


def fold_bn(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm into its conv (re-parameterise RepVGG blocks); returns the model in eval mode."""
    model.eval()
    for m in list(model.modules()):
        fold = getattr(m, "fold", None)
        if callable(fold):
            fold()
    return model


def build_network(net: Network, seed: int = 0) -> nn.Module:
    def build() -> nn.Module:
        parts = ([s.build() for s in specs] for specs in (net.stem, net.blocks, net.head))
        return NetworkModule(*parts)

    return instantiate(build, seed)
