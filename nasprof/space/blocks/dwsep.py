"""``dwsep``: MobileNetV1's depthwise separable conv: depthwise k x k + BN + act, pointwise 1x1 + BN + act.

Optional SE after the depthwise conv and a shortcut, so it can serve as MnasNet's "SepConv" ConvOp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.space.blocks._common import check_skip, se_macs, se_params, skip_macs, skip_params
from nasprof.space.blocks.base import BlockFamily, BlockSpec, conv_macs, conv_out, conv_params, register_block

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_block("dwsep")
class DwSep(BlockFamily):
    key_fields = (("kernel", "kernel"), ("stride", "stride"), ("se", "se"), ("act", "act"), ("skip", "skip"))

    def check(self, spec: BlockSpec) -> None:
        check_skip(spec)

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = self.output_hw(spec, h, w)
        dw = conv_macs(spec.cin, spec.cin, spec.kernel, ho, wo, groups=spec.cin)
        pw = conv_macs(spec.cin, spec.cout, 1, ho, wo)
        return dw + se_macs(spec, spec.cin) + pw + skip_macs(spec, ho, wo)

    def params(self, spec: BlockSpec) -> int:
        dw = conv_params(spec.cin, spec.cin, spec.kernel, groups=spec.cin)
        pw = conv_params(spec.cin, spec.cout, 1)
        return dw + se_params(spec, spec.cin) + pw + skip_params(spec)

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.mobile import DwSepBlock

        return DwSepBlock(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("dwsep", 16, 24, kernel=3, stride=2), (16, 15, 15)),
            (BlockSpec("dwsep", 16, 16, kernel=5, se=0.25, skip="id", act="relu6"), (16, 8, 8)),
            (BlockSpec("dwsep", 16, 24, kernel=3, skip="pool"), (16, 8, 8)),
        ]
