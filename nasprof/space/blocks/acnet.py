"""``acnet``: ACNet's asymmetric convolution block (Ding et al., ICCV 2019). Training form: a square k x k
conv + BN, a horizontal 1 x k conv + BN and a vertical k x 1 conv + BN on the same input (same stride,
"same" padding, so the three outputs align), summed, then the activation. Deployed form (what is exported
and counted): the 1 x k and k x 1 kernels, each with its BN folded, added onto the centre row and column of
the folded k x k kernel -- one k x k conv with bias + activation, like ``repvgg``.

Groups are supported: the three branches share ``groups``, so their kernels add group by group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.errors import SpaceError
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


@register_block("acnet")
class ACNet(BlockFamily):
    key_fields = (("kernel", "kernel"), ("stride", "stride"), ("groups", "groups"), ("act", "act"))

    def check(self, spec: BlockSpec) -> None:
        # Odd: the 1 x k / k x 1 branches must sit on the square kernel's centre row/column for the fusion.
        # >= 3: at k = 1 all three branches are the same 1x1 conv, so there is nothing asymmetric to add.
        if spec.kernel < 3 or spec.kernel % 2 == 0:
            raise SpaceError(
                f"acnet: kernel must be odd and at least 3 (the 1xk and kx1 branches are folded into the "
                f"centre row and column of the kxk kernel), got {spec.kernel}"
            )
        # The fields this family ignores must stay at their defaults: they would otherwise give distinct
        # specs (and stored tables) for the same module, since the key does not show them.
        if spec.skip != "none" or spec.se or spec.expand != 1.0 or spec.mid:
            raise SpaceError("acnet: leave skip, se, expand and mid at their defaults (the block has none)")
        check_divisible(spec, "cin", spec.cin, spec.groups)
        check_divisible(spec, "cout", spec.cout, spec.groups)

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        # The exported graph: one fused k x k conv (the asymmetric branches cost nothing once folded).
        ho, wo = self.output_hw(spec, h, w)
        return conv_macs(spec.cin, spec.cout, spec.kernel, ho, wo, spec.groups)

    def params(self, spec: BlockSpec) -> int:
        return conv_params(spec.cin, spec.cout, spec.kernel, spec.groups)

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.acnet import ACBlock

        return ACBlock(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("acnet", 8, 8, kernel=3), (8, 9, 9)),
            (BlockSpec("acnet", 8, 16, kernel=3, stride=2, act="relu6"), (8, 9, 9)),
            (BlockSpec("acnet", 8, 8, kernel=5, groups=4, act="none"), (8, 8, 8)),
            (BlockSpec("acnet", 8, 16, kernel=5, stride=2, act="hswish"), (8, 10, 10)),
        ]
