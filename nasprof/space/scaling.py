"""EfficientNet's compound scaling of a network: depth, width and resolution multipliers.

Width and resolution are what every preset and architecture already take (channels rounded to multiples of
8 as EfficientNet's ``round_filters`` does). Depth is applied here to any ``Network``, as EfficientNet's
``round_repeats`` does to its stages: a stage (a block that changes the shape, then the blocks that keep it)
of ``n`` blocks gets ``ceil(d · n)``. Extra blocks repeat the stage's last block; a one-block stage repeats
its block made shape-preserving (input = output channels, stride 1, identity skip where it had a skip).
Stages follow from the shapes, so two published stages of equal width and stride 1 count as one.
"""

from __future__ import annotations

import math

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockSpec
from nasprof.space.network import Network

__all__ = ["scale_depth", "stages", "round_repeats"]


def round_repeats(n: int, depth: float) -> int:
    """EfficientNet's ``round_repeats``: ``ceil(depth · n)``."""
    return int(math.ceil(depth * n))


def stages(blocks: tuple[BlockSpec, ...]) -> list[list[BlockSpec]]:
    """``blocks`` cut into stages: a new stage starts at each block that changes channels or stride."""
    out: list[list[BlockSpec]] = []
    for b in blocks:
        if not out or b.stride != 1 or b.cin != b.cout:
            out.append([b])
        else:
            out[-1].append(b)
    return out


def _repeat(block: BlockSpec) -> BlockSpec:
    if block.stride == 1 and block.cin == block.cout:
        return block
    skip = "id" if block.skip != "none" or block.op == "mbconv" else block.skip
    return block.replace(cin=block.cout, stride=1, skip=skip)


def scale_depth(net: Network, depth: float) -> Network:
    """``net`` with every stage's block count multiplied by ``depth`` (rounded up; ``depth`` >= 1 adds
    blocks, < 1 removes trailing ones, never a stage's first)."""
    if not isinstance(depth, (int, float)) or not math.isfinite(depth) or not 0.1 <= depth <= 10.0:
        raise SpaceError(f"depth multiplier must be in [0.1, 10], got {depth!r}")
    if depth == 1.0:
        return net
    blocks: list[BlockSpec] = []
    for stage in stages(net.blocks):
        n = max(1, round_repeats(len(stage), depth))
        if n <= len(stage):
            blocks += stage[:n]
        else:
            blocks += stage + [_repeat(stage[-1])] * (n - len(stage))
    info = {**dict(net.info), "depth": f"{depth:g}"}
    return Network(f"{net.name}_d{depth:g}", net.resolution, net.stem, tuple(blocks), net.head,
                   net.in_channels, net.width, info)
