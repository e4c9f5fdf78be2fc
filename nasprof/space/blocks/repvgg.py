"""``repvgg``: RepVGG's block. Training form: 3x3 conv + BN, 1x1 conv + BN and (when shapes match) an
identity BN, summed, then ReLU. Deployed form (what is exported and counted): the three branches folded into
one 3x3 conv with bias + ReLU (Ding et al., 2021, structural re-parameterisation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.errors import SpaceError
from nasprof.space.blocks._common import has_identity  # noqa: F401 - re-exported
from nasprof.space.blocks.base import BlockFamily, BlockSpec, conv_macs, conv_out, conv_params, register_block

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_block("repvgg")
class RepVGG(BlockFamily):
    key_fields = (("kernel", "kernel"), ("stride", "stride"), ("act", "act"))

    def check(self, spec: BlockSpec) -> None:
        if spec.kernel != 3:
            raise SpaceError(
                f"repvgg: kernel must be 3 (the 1x1 branch is folded into the 3x3), got {spec.kernel}"
            )
        if spec.skip != "none" or spec.groups != 1:
            raise SpaceError(
                "repvgg: leave skip and groups at their defaults (the identity branch is implied "
                "when stride is 1 and cin == cout)"
            )

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return conv_out(h, 3, spec.stride), conv_out(w, 3, spec.stride)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = self.output_hw(spec, h, w)
        return conv_macs(spec.cin, spec.cout, 3, ho, wo)

    def params(self, spec: BlockSpec) -> int:
        return conv_params(spec.cin, spec.cout, 3)

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.resnet import RepVGGBlock

        return RepVGGBlock(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("repvgg", 8, 8, kernel=3), (8, 9, 9)),  # identity branch
            (BlockSpec("repvgg", 8, 16, kernel=3, stride=2), (8, 9, 9)),
        ]
