"""RepVGG-A0 (Ding et al., 2021): width multipliers a = 0.75, b = 2.5, depths 1 (stem), 2, 4, 14, 1,
stage widths min(64, 64a), 64a, 128a, 256a, 512b = 48, 48, 96, 192, 1280. Counted and exported in the
deployed (re-parameterised) form; ``width`` scales a and b together."""

from __future__ import annotations

from nasprof.space.blocks.base import BlockSpec
from nasprof.space.network import Network
from nasprof.space.presets._registry import register_preset
from nasprof.space.presets._util import classifier

DEPTHS = (2, 4, 14, 1)


@register_preset("repvgg_a0")
def repvgg_a0(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    a, b = 0.75 * width, 2.5 * width
    widths = (int(64 * a), int(128 * a), int(256 * a), int(512 * b))
    cin = min(64, int(64 * a))
    stem = (BlockSpec("repvgg", 3, cin, kernel=3, stride=2),)
    blocks = []
    for n, cout in zip(DEPTHS, widths, strict=True):
        for i in range(n):
            blocks.append(BlockSpec("repvgg", cin, cout, kernel=3, stride=2 if i == 0 else 1))
            cin = cout
    return Network(f"repvgg_a0_{width:g}", resolution, stem, tuple(blocks), (classifier(cin, num_classes),))
