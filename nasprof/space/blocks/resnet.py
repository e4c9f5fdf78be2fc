"""ResNet units (torchvision's v1.5: the stride sits on the 3x3 conv). The shortcut is identity when shapes
match, else ``proj`` (strided 1x1 conv + BN).

``resnet_basic``: 3x3 + BN + ReLU, 3x3 + BN, add, ReLU.
``resnet_bottleneck``: 1x1 to ``mid`` (default ``cout // 4``) + BN + ReLU, 3x3 (stride, ``groups``) + BN +
ReLU, 1x1 to ``cout`` + BN, add, ReLU. With ``se`` > 0 it carries squeeze-excite, where the two families
that use it put it: after the 3x3 on the ``mid`` channels, squeezing to ``int(cin * se)`` (RegNetY, as pycls
builds it: ``se=0.25``), or, with variant ``"se_out"``, after the last 1x1 on the ``cout`` channels before
the addition, squeezing to ``int(cout * se)`` (SE-ResNet, Hu et al.: ``se=1/16``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.errors import SpaceError
from nasprof.space.blocks._common import bottleneck_mid, bottleneck_se, check_skip, skip_macs, skip_params  # noqa: F401 - re-exported
from nasprof.space.blocks.base import (
    BlockFamily,
    BlockSpec,
    _fmt,
    check_divisible,
    conv_macs,
    conv_out,
    conv_params,
    register_block,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _check_residual(spec: BlockSpec) -> None:
    if spec.skip == "none":
        raise SpaceError(f"{spec.op}: a ResNet unit always has a shortcut; use skip 'id' or 'proj'")
    check_skip(spec, allowed=("id", "proj"))


@register_block("resnet_basic")
class ResNetBasic(BlockFamily):
    key_fields = (("kernel", "kernel"), ("stride", "stride"), ("skip", "skip"))

    def check(self, spec: BlockSpec) -> None:
        _check_residual(spec)

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = self.output_hw(spec, h, w)
        return (
            conv_macs(spec.cin, spec.cout, spec.kernel, ho, wo)
            + conv_macs(spec.cout, spec.cout, spec.kernel, ho, wo)
            + skip_macs(spec, ho, wo)
        )

    def params(self, spec: BlockSpec) -> int:
        return (
            conv_params(spec.cin, spec.cout, spec.kernel)
            + conv_params(spec.cout, spec.cout, spec.kernel)
            + skip_params(spec)
        )

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.resnet import BasicBlock

        return BasicBlock(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("resnet_basic", 8, 8, kernel=3, skip="id"), (8, 8, 8)),
            (BlockSpec("resnet_basic", 8, 16, kernel=3, stride=2, skip="proj"), (8, 9, 9)),
        ]


@register_block("resnet_bottleneck")
class ResNetBottleneck(BlockFamily):
    variants = ("", "se_out")
    key_fields = (
        ("mid", "mid"),
        ("kernel", "kernel"),
        ("stride", "stride"),
        ("groups", "groups"),
        ("skip", "skip"),
    )

    def key_value(self, spec: BlockSpec, field_name: str) -> object:
        return bottleneck_mid(spec) if field_name == "mid" else getattr(spec, field_name)

    def check(self, spec: BlockSpec) -> None:
        _check_residual(spec)
        check_divisible(spec, "mid", bottleneck_mid(spec), spec.groups)
        if spec.variant == "se_out" and not spec.se:
            raise SpaceError(f"{spec.op}: variant 'se_out' places squeeze-excite; set se (e.g. 0.0625)")

    def key(self, spec: BlockSpec, input_shape: tuple[int, int, int]) -> str:
        # ``se`` joins the key only when set, so keys of plain bottlenecks (stored tables) do not change.
        key = super().key(spec, input_shape)
        return f"{key}-se:{_fmt(spec.se)}" if spec.se else key

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = self.output_hw(spec, h, w)
        mid = bottleneck_mid(spec)
        return (
            conv_macs(spec.cin, mid, 1, h, w)
            + conv_macs(mid, mid, spec.kernel, ho, wo, spec.groups)
            + conv_macs(mid, spec.cout, 1, ho, wo)
            + skip_macs(spec, ho, wo)
            + _se_macs(spec)
        )

    def params(self, spec: BlockSpec) -> int:
        mid = bottleneck_mid(spec)
        return (
            conv_params(spec.cin, mid, 1)
            + conv_params(mid, mid, spec.kernel, spec.groups)
            + conv_params(mid, spec.cout, 1)
            + skip_params(spec)
            + _se_params(spec)
        )

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.resnet import Bottleneck

        return Bottleneck(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec(self.name, 32, 32, kernel=3, skip="id"), (32, 8, 8)),
            (BlockSpec(self.name, 16, 64, kernel=3, stride=2, skip="proj"), (16, 9, 9)),
            (BlockSpec(self.name, 16, 32, kernel=3, stride=2, groups=4, mid=32, se=0.25, skip="proj"),
             (16, 9, 9)),
            (BlockSpec(self.name, 64, 64, kernel=3, se=0.0625, variant="se_out", skip="id"), (64, 6, 6)),
        ]


def _se_macs(spec: BlockSpec) -> int:
    channels, squeeze = bottleneck_se(spec)
    return 2 * channels * squeeze  # two 1x1 convs on the pooled 1x1 map


def _se_params(spec: BlockSpec) -> int:
    channels, squeeze = bottleneck_se(spec)
    return conv_params(channels, squeeze, 1) + conv_params(squeeze, channels, 1) if channels else 0
