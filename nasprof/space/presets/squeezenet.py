"""SqueezeNet 1.0 (Iandola et al., 2016) as torchvision builds it: unpadded 7x7/2 stem conv to 96, ceil-mode
3x3/2 max pools, fire modules, a 1x1 conv classifier with ReLU, then global average pooling. ``width``
scales every fire module (squeeze and expand widths, rounded to a multiple of 8)."""

from __future__ import annotations

from nasprof.space.blocks.base import BlockSpec, make_divisible
from nasprof.space.network import Network
from nasprof.space.presets._registry import register_preset

# (squeeze, expand per branch) for fire2..fire9; "M" = max pool.
FIRES: tuple[tuple[int, int] | str, ...] = (
    (16, 64),
    (16, 64),
    (32, 128),
    "M",
    (32, 128),
    (48, 192),
    (48, 192),
    (64, 256),
    "M",
    (64, 256),
)


@register_preset("squeezenet1_0")
def squeezenet1_0(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    cin = make_divisible(96 * width, 8)
    stem = (
        BlockSpec("conv", 3, cin, kernel=7, stride=2, act="relu", variant="valid"),
        BlockSpec("maxpool", cin, cin, kernel=3, stride=2, variant="ceil"),
    )
    blocks = []
    for item in FIRES:
        if isinstance(item, str):  # "M"
            blocks.append(BlockSpec("maxpool", cin, cin, kernel=3, stride=2, variant="ceil"))
            continue
        squeeze, expand = item
        cout = 2 * make_divisible(expand * width, 8)
        blocks.append(
            BlockSpec("fire", cin, cout, kernel=3, mid=make_divisible(squeeze * width, 8), act="relu")
        )
        cin = cout
    head = (
        BlockSpec("conv", cin, num_classes, kernel=1, act="relu"),
        BlockSpec("head", num_classes, num_classes, act="none", variant="pool"),
    )
    return Network(f"squeezenet1_0_{width:g}", resolution, stem, tuple(blocks), head)
