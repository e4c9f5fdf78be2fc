"""``shuffle``: the ShuffleNet v1 unit: 1x1 group conv + BN + ReLU, channel shuffle, depthwise 3x3 (stride)
+ BN, 1x1 group conv + BN, then add the input (stride 1) or concatenate a 3x3/2 average pool of it
(stride 2, the branch then makes ``cout - cin`` channels), then ReLU. ``mid`` defaults to ``cout // 4``.
Variant ``"dense_in"``: the first 1x1 conv is not grouped (the paper's first unit after the stem, which sees
only 24 channels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.errors import SpaceError
from nasprof.space.blocks._common import branch_channels, input_groups, shuffle_mid  # noqa: F401 - re-exported
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


@register_block("shuffle")
class Shuffle(BlockFamily):
    key_fields = (("groups", "groups"), ("kernel", "kernel"), ("stride", "stride"))
    variants = ("", "dense_in")

    def check(self, spec: BlockSpec) -> None:
        if spec.stride not in (1, 2):
            raise SpaceError(f"shuffle: stride must be 1 or 2, got {spec.stride}")
        if spec.stride == 1 and spec.cin != spec.cout:
            raise SpaceError(
                f"shuffle: a stride-1 unit adds its input, so cin ({spec.cin}) must equal cout ({spec.cout})"
            )
        if spec.stride == 2 and spec.cout <= spec.cin:
            raise SpaceError(
                f"shuffle: a stride-2 unit concatenates its input, so cout ({spec.cout}) must "
                f"exceed cin ({spec.cin})"
            )
        check_divisible(spec, "cin", spec.cin, input_groups(spec))
        check_divisible(spec, "mid", shuffle_mid(spec), spec.groups)
        check_divisible(spec, "branch output", branch_channels(spec), spec.groups)

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = self.output_hw(spec, h, w)
        mid, g = shuffle_mid(spec), spec.groups
        return (
            conv_macs(spec.cin, mid, 1, h, w, input_groups(spec))
            + conv_macs(mid, mid, spec.kernel, ho, wo, mid)
            + conv_macs(mid, branch_channels(spec), 1, ho, wo, g)
        )

    def params(self, spec: BlockSpec) -> int:
        mid, g = shuffle_mid(spec), spec.groups
        return (
            conv_params(spec.cin, mid, 1, input_groups(spec))
            + conv_params(mid, mid, spec.kernel, mid)
            + conv_params(mid, branch_channels(spec), 1, g)
        )

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.mobile import ShuffleBlock

        return ShuffleBlock(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("shuffle", 24, 48, kernel=3, stride=2, groups=3), (24, 9, 9)),
            (BlockSpec("shuffle", 16, 48, kernel=3, stride=2, groups=4, variant="dense_in"), (16, 9, 9)),
            (BlockSpec("shuffle", 48, 48, kernel=3, groups=3), (48, 5, 5)),
        ]
