"""``shuffle_v2``: the ShuffleNet V2 unit (Ma et al., ECCV 2018), as torchvision builds it.

Stride 1: the input is split into two halves; one passes untouched, the other goes through 1x1 + BN + ReLU,
depthwise k x k + BN, 1x1 + BN + ReLU (``cout / 2`` channels throughout); the halves are concatenated and
shuffled (2 groups). Stride 2: no split; a left branch (depthwise k x k stride 2 + BN, 1x1 to ``cout / 2`` +
BN + ReLU) and the right branch (1x1 to ``cout / 2``, depthwise stride 2, 1x1) both see the whole input.
The paper's guidelines (equal widths, no group conv, fewer fragments, fewer element-wise ops) are why the
unit looks like this: it is the hardware-aware counterpart of ShuffleNet V1's unit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockFamily, BlockSpec, conv_macs, conv_out, conv_params, register_block

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_block("shuffle_v2")
class ShuffleV2(BlockFamily):
    key_fields = (("kernel", "kernel"), ("stride", "stride"))

    def check(self, spec: BlockSpec) -> None:
        if spec.stride not in (1, 2):
            raise SpaceError(f"shuffle_v2: stride must be 1 or 2, got {spec.stride}")
        if spec.cout % 2:
            raise SpaceError(f"shuffle_v2: cout must be even (two branches of cout / 2), got {spec.cout}")
        if spec.stride == 1 and spec.cin != spec.cout:
            raise SpaceError(
                f"shuffle_v2: a stride-1 unit splits its input in two halves, so cin ({spec.cin}) must "
                f"equal cout ({spec.cout})"
            )

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = self.output_hw(spec, h, w)
        half, k = spec.cout // 2, spec.kernel
        right_in = spec.cin if spec.stride == 2 else half
        right = (
            conv_macs(right_in, half, 1, h, w)
            + conv_macs(half, half, k, ho, wo, half)
            + conv_macs(half, half, 1, ho, wo)
        )
        if spec.stride == 1:
            return right
        left = conv_macs(spec.cin, spec.cin, k, ho, wo, spec.cin) + conv_macs(spec.cin, half, 1, ho, wo)
        return right + left

    def params(self, spec: BlockSpec) -> int:
        half, k = spec.cout // 2, spec.kernel
        right_in = spec.cin if spec.stride == 2 else half
        right = conv_params(right_in, half, 1) + conv_params(half, half, k, half) + conv_params(half, half, 1)
        if spec.stride == 1:
            return right
        return right + conv_params(spec.cin, spec.cin, k, spec.cin) + conv_params(spec.cin, half, 1)

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.mobile import ShuffleV2Block

        return ShuffleV2Block(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("shuffle_v2", 24, 48, kernel=3, stride=2), (24, 9, 9)),
            (BlockSpec("shuffle_v2", 48, 48, kernel=3), (48, 5, 5)),
            (BlockSpec("shuffle_v2", 32, 32, kernel=5), (32, 6, 6)),
        ]
