"""``resnext``: ResNeXt's aggregated-transform unit, i.e. a bottleneck whose 3x3 is a group conv
(cardinality = ``groups``, e.g. 32x4d: ``groups=32``, ``mid=128`` in the first stage)."""

from __future__ import annotations

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockSpec, register_block
from nasprof.space.blocks.resnet import ResNetBottleneck


@register_block("resnext")
class ResNeXt(ResNetBottleneck):
    def check(self, spec: BlockSpec) -> None:
        if spec.groups < 2:
            raise SpaceError("resnext: set groups (the cardinality, e.g. 32); groups=1 is resnet_bottleneck")
        if not spec.mid:
            raise SpaceError("resnext: set mid (the grouped width, e.g. 128 for 32x4d's first stage)")
        super().check(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("resnext", 32, 32, kernel=3, groups=4, mid=16, skip="id"), (32, 8, 8)),
            (BlockSpec("resnext", 16, 64, kernel=3, stride=2, groups=8, mid=32, skip="proj"), (16, 9, 9)),
        ]
