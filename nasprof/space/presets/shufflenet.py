"""ShuffleNet v1 (Zhang et al., 2018), 1x, groups = 3 by default (stage widths 240, 480, 960; repeats
4, 8, 4). The first unit's first 1x1 conv is dense (variant ``"dense_in"``): the paper does not group it
because it sees only the stem's 24 channels. ``width`` scales the stage widths, rounded to a multiple of
``4 * groups`` so every group conv divides evenly."""

from __future__ import annotations

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockSpec, make_divisible
from nasprof.space.network import Network
from nasprof.space.presets import register_preset
from nasprof.space.presets._util import classifier

#: Stage-2 width per group count (Table 1 of the paper); stages 3 and 4 double it.
STAGE_WIDTH = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
REPEATS = (4, 8, 4)


@register_preset("shufflenet_v1")
def shufflenet_v1(
    width: float = 1.0, resolution: int = 224, groups: int = 3, num_classes: int = 1000
) -> Network:
    if groups not in STAGE_WIDTH:
        raise SpaceError(
            f"shufflenet_v1: groups must be one of {', '.join(map(str, STAGE_WIDTH))}, got {groups}"
        )
    cin = 24
    stem = (
        BlockSpec("conv", 3, cin, kernel=3, stride=2, act="relu"),
        BlockSpec("maxpool", cin, cin, kernel=3, stride=2),
    )
    blocks = []
    for stage, n in enumerate(REPEATS):
        cout = make_divisible(STAGE_WIDTH[groups] * 2**stage * width, 4 * groups)
        for i in range(n):
            variant = "dense_in" if stage == 0 and i == 0 else ""
            stride = 2 if i == 0 else 1
            blocks.append(
                BlockSpec("shuffle", cin, cout, kernel=3, stride=stride, groups=groups, variant=variant)
            )
            cin = cout
    return Network(
        f"shufflenet_v1_g{groups}_{width:g}", resolution, stem, tuple(blocks), (classifier(cin, num_classes),)
    )
