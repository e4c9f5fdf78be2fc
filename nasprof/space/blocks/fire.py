"""``fire``: SqueezeNet's module: 1x1 squeeze to ``mid`` + act, then 1x1 and k x k expands (``cout / 2`` each)
+ act, concatenated. Convs carry biases and no BN in the paper; with BN folded the count is the same."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockFamily, BlockSpec, conv_macs, conv_params, register_block

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_block("fire")
class Fire(BlockFamily):
    key_fields = (("squeeze", "mid"), ("kernel", "kernel"), ("act", "act"))

    def check(self, spec: BlockSpec) -> None:
        if spec.mid < 1:
            raise SpaceError("fire: set mid (the squeeze width), e.g. 16")
        if spec.cout % 2:
            raise SpaceError(f"fire: cout ({spec.cout}) must be even (two equal expand branches)")
        if spec.stride != 1:
            raise SpaceError("fire: stride must be 1 (SqueezeNet downsamples with max pooling)")

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return h, w

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        e = spec.cout // 2
        return (
            conv_macs(spec.cin, spec.mid, 1, h, w)
            + conv_macs(spec.mid, e, 1, h, w)
            + conv_macs(spec.mid, e, spec.kernel, h, w)
        )

    def params(self, spec: BlockSpec) -> int:
        e = spec.cout // 2
        return (
            conv_params(spec.cin, spec.mid, 1)
            + conv_params(spec.mid, e, 1)
            + conv_params(spec.mid, e, spec.kernel)
        )

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.mobile import FireBlock

        return FireBlock(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [(BlockSpec("fire", 32, 64, kernel=3, mid=8), (32, 9, 9))]
