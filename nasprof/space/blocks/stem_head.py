"""Network ends: ``maxpool`` (the ResNet/ShuffleNet/SqueezeNet stem pool) and ``head`` (global pool + linear).

Stems themselves are ``conv`` blocks. A head is ProxylessNAS's "Logits" layer: global average pool, an
optional hidden linear (``mid`` > 0, MobileNetV3's 1280-wide layer) with ``act``, then the classifier
``cin|mid -> cout``. Variant ``"pool"`` is the pool alone (SqueezeNet classifies with a 1x1 conv first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockFamily, BlockSpec, ceil_div, conv_out, register_block

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_block("maxpool")
class MaxPool(BlockFamily):
    """Max pool. Variant ``""``: padding ``kernel // 2``; ``"ceil"``: no padding, ceil mode (SqueezeNet's)."""

    key_fields = (("kernel", "kernel"), ("stride", "stride"))
    variants = ("", "ceil")

    def check(self, spec: BlockSpec) -> None:
        if spec.cin != spec.cout:
            raise SpaceError(
                f"maxpool keeps the channel count: cin ({spec.cin}) must equal cout ({spec.cout})"
            )

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        if spec.variant == "ceil":
            return ceil_div(h - spec.kernel, spec.stride) + 1, ceil_div(w - spec.kernel, spec.stride) + 1
        return conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        return 0

    def params(self, spec: BlockSpec) -> int:
        return 0

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.common import MaxPool

        return MaxPool(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("maxpool", 8, 8, kernel=3, stride=2), (8, 9, 9)),
            (BlockSpec("maxpool", 8, 8, kernel=3, stride=2, variant="ceil"), (8, 10, 10)),
        ]


@register_block("head")
class Head(BlockFamily):
    key_fields = (("mid", "mid"), ("act", "act"))
    variants = ("", "pool")

    def check(self, spec: BlockSpec) -> None:
        if spec.variant == "pool" and (spec.cout != spec.cin or spec.mid):
            raise SpaceError(
                "head variant 'pool' is a global pool only: cout must equal cin and mid must be 0"
            )

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return 1, 1

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        if spec.variant == "pool":
            return 0
        if spec.mid:
            return spec.cin * spec.mid + spec.mid * spec.cout
        return spec.cin * spec.cout

    def params(self, spec: BlockSpec) -> int:
        if spec.variant == "pool":
            return 0
        if spec.mid:
            return (spec.cin + 1) * spec.mid + (spec.mid + 1) * spec.cout
        return (spec.cin + 1) * spec.cout

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.common import Head

        return Head(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("head", 16, 10, act="none"), (16, 4, 4)),
            (BlockSpec("head", 16, 10, mid=32, act="hswish"), (16, 4, 4)),
            (BlockSpec("head", 16, 16, act="none", variant="pool"), (16, 4, 4)),
        ]
