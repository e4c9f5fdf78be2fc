"""EfficientNet-B0 (Tan & Le, 2019) as torchvision builds it: SiLU ("swish"), SE squeezing to
``max(1, block input // 4)`` with a SiLU inside and sigmoid gate, head 1x1 conv to 1280."""

from __future__ import annotations

from nasprof.space.blocks.base import BlockSpec, make_divisible
from nasprof.space.network import Network
from nasprof.space.presets._registry import register_preset
from nasprof.space.presets._util import classifier, mbconv

# (expand, kernel, stride, out, repeats)
B0 = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


@register_preset("efficientnet_b0")
def efficientnet_b0(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    cin = make_divisible(32 * width, 8)
    stem = BlockSpec("conv", 3, cin, kernel=3, stride=2, act="swish")
    blocks = []
    for e, k, s, out, n in B0:
        cout = make_divisible(out * width, 8)
        for i in range(n):
            blocks.append(mbconv(cin, cout, k, s if i == 0 else 1, expand=e, se=0.25, act="swish"))
            cin = cout
    last = 4 * cin  # 1280 for B0
    head = (BlockSpec("conv", cin, last, kernel=1, act="swish"), classifier(last, num_classes))
    return Network(f"efficientnet_b0_{width:g}", resolution, (stem,), tuple(blocks), head)
