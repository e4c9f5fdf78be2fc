"""``mbconv``: MobileNetV2's inverted bottleneck (MnasNet, EfficientNet, MobileNetV3 use it too).

1x1 expansion to ``mid`` channels (skipped when ``mid == cin``, MobileNetV2's t = 1 block) + BN + act,
depthwise k x k (stride) + BN + act, optional squeeze-excite, linear 1x1 projection + BN, optional shortcut.
``mid`` defaults to ``round(cin * expand)``; MobileNetV3's irregular widths (16 -> 72) set ``mid`` directly.
Variant ``"v3"``: MobileNetV3's SE (squeeze = make_divisible(mid * se, 8), hard-sigmoid gate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.space.blocks._common import (
    check_skip,
    mid_channels,  # noqa: F401 - re-exported
    se_macs,
    se_params,
    skip_macs,
    skip_params,
)
from nasprof.space.blocks.base import BlockFamily, BlockSpec, conv_macs, conv_out, conv_params, register_block

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_block("mbconv")
class MBConv(BlockFamily):
    key_fields = (
        ("expand", "expand"),
        ("kernel", "kernel"),
        ("stride", "stride"),
        ("se", "se"),
        ("act", "act"),
        ("skip", "skip"),
    )
    variants = ("", "v3")

    def key_value(self, spec: BlockSpec, field_name: str) -> object:
        if field_name == "expand" and spec.mid:  # explicit widths (MobileNetV3): show the effective ratio
            return round(spec.mid / spec.cin, 2)
        return getattr(spec, field_name)

    def check(self, spec: BlockSpec) -> None:
        check_skip(spec)

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = self.output_hw(spec, h, w)
        mid = mid_channels(spec)
        expand = conv_macs(spec.cin, mid, 1, h, w) if mid != spec.cin else 0
        dw = conv_macs(mid, mid, spec.kernel, ho, wo, groups=mid)
        project = conv_macs(mid, spec.cout, 1, ho, wo)
        return expand + dw + se_macs(spec, mid) + project + skip_macs(spec, ho, wo)

    def params(self, spec: BlockSpec) -> int:
        mid = mid_channels(spec)
        expand = conv_params(spec.cin, mid, 1) if mid != spec.cin else 0
        dw = conv_params(mid, mid, spec.kernel, groups=mid)
        project = conv_params(mid, spec.cout, 1)
        return expand + dw + se_params(spec, mid) + project + skip_params(spec)

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.mobile import MBConvBlock

        return MBConvBlock(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("mbconv", 16, 24, kernel=5, stride=2, expand=3.0, act="relu6"), (16, 15, 15)),
            (BlockSpec("mbconv", 16, 16, kernel=7, expand=6.0, se=0.25, act="swish", skip="id"), (16, 8, 8)),
            (
                BlockSpec("mbconv", 16, 16, kernel=3, act="relu6", skip="id"),
                (16, 8, 8),
            ),  # t = 1: no expansion
            (BlockSpec("mbconv", 16, 24, kernel=3, stride=2, expand=6.0, skip="pool"), (16, 9, 9)),
            (
                BlockSpec("mbconv", 24, 24, kernel=5, mid=72, se=0.25, act="hswish", skip="id", variant="v3"),
                (24, 8, 8),
            ),
        ]
