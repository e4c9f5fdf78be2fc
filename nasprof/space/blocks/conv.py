"""``conv``: a plain k x k convolution + BN + activation (stems, 1x1 head convs, MnasNet's "regular conv").

Optional squeeze-excite on the output and a shortcut (MnasNet lets every ConvOp carry SE and a SkipOp).
Variant ``""`` pads ``kernel // 2``; ``"valid"`` pads nothing (SqueezeNet's and AlexNet-style stems).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.errors import SpaceError
from nasprof.space.blocks._common import check_skip, se_macs, se_params, skip_macs, skip_params
from nasprof.space.blocks.base import (
    BlockFamily,
    BlockSpec,
    check_divisible,
    conv_macs,
    conv_out,
    conv_params,
    register_block,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_block("conv")
class Conv(BlockFamily):
    key_fields = (
        ("kernel", "kernel"),
        ("stride", "stride"),
        ("groups", "groups"),
        ("se", "se"),
        ("act", "act"),
        ("skip", "skip"),
    )
    variants = ("", "valid")

    def check(self, spec: BlockSpec) -> None:
        check_divisible(spec, "cin", spec.cin, spec.groups)
        check_divisible(spec, "cout", spec.cout, spec.groups)
        check_skip(spec)
        if spec.variant == "valid" and spec.skip != "none":
            raise SpaceError("conv: a 'valid' (unpadded) conv changes the shape; it cannot carry a skip")

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        pad = 0 if spec.variant == "valid" else None
        return conv_out(h, spec.kernel, spec.stride, pad), conv_out(w, spec.kernel, spec.stride, pad)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = self.output_hw(spec, h, w)
        return (
            conv_macs(spec.cin, spec.cout, spec.kernel, ho, wo, spec.groups)
            + se_macs(spec, spec.cout)
            + skip_macs(spec, ho, wo)
        )

    def params(self, spec: BlockSpec) -> int:
        return (
            conv_params(spec.cin, spec.cout, spec.kernel, spec.groups)
            + se_params(spec, spec.cout)
            + skip_params(spec)
        )

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.mobile import ConvBlock

        return ConvBlock(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        def s(**kw: object) -> BlockSpec:
            return BlockSpec("conv", **kw)  # type: ignore[arg-type]

        return [
            (s(cin=3, cout=16, kernel=3, stride=2, act="relu6"), (3, 17, 17)),
            (s(cin=16, cout=16, kernel=5, se=0.25, act="hswish", skip="id"), (16, 9, 9)),
            (s(cin=8, cout=16, kernel=3, stride=2, skip="pool", act="swish"), (8, 9, 9)),
            (s(cin=8, cout=16, kernel=3, groups=4, act="none"), (8, 8, 8)),
            (s(cin=3, cout=8, kernel=7, stride=2, variant="valid"), (3, 21, 21)),
        ]
