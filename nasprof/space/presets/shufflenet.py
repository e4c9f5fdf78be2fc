"""ShuffleNet v2 (Ma et al., 2018) as torchvision builds it: stem 3x3 conv 24 + max pool, stages of 4, 8, 4
units (116, 232, 464 channels at 1.0x), a 1x1 conv to 1024, pool, classifier. The paper's 0.5x, 1.5x and
2.0x use its Table 5's widths; any other ``width`` scales the 1.0x widths to an even number.

ShuffleNet v1 (Zhang et al., 2018), 1x, groups = 3 by default (stage widths 240, 480, 960; repeats
4, 8, 4). The first unit's first 1x1 conv is dense (variant ``"dense_in"``): the paper does not group it
because it sees only the stem's 24 channels. ``width`` scales the stage widths, rounded to a multiple of
``4 * groups`` so every group conv divides evenly."""

from __future__ import annotations

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockSpec, make_divisible
from nasprof.space.network import Network
from nasprof.space.presets._registry import register_preset
from nasprof.space.presets._util import classifier

#: Stage-2 width per group count (Table 1 of the paper); stages 3 and 4 double it.
STAGE_WIDTH = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
REPEATS = (4, 8, 4)
#: ShuffleNet v2's stage widths and last conv per published multiplier (Table 5 of the paper).
V2_WIDTHS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}


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


@register_preset("shufflenet_v2")
def shufflenet_v2(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    cin = 24
    stem = (
        BlockSpec("conv", 3, cin, kernel=3, stride=2, act="relu"),
        BlockSpec("maxpool", cin, cin, kernel=3, stride=2),
    )
    scaled = tuple(max(2, 2 * round(c * width / 2)) for c in (116, 232, 464))
    *widths, last = V2_WIDTHS.get(width) or (*scaled, 1024)
    blocks = []
    for cout, n in zip(widths, REPEATS, strict=True):
        for i in range(n):
            blocks.append(BlockSpec("shuffle_v2", cin, cout, kernel=3, stride=2 if i == 0 else 1))
            cin = cout
    head = (BlockSpec("conv", cin, last, kernel=1, act="relu"), classifier(last, num_classes))
    return Network(f"shufflenet_v2_{width:g}", resolution, stem, tuple(blocks), head)
