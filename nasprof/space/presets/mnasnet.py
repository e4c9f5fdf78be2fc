"""MnasNet-A1 (Tan et al., 2019) as the TF reference defines it (``mnasnet_models.py``, blocks_args
``r1_k3_s11_e1_i32_o16_noskip`` ... ``r1_k3_s11_e6_i160_o320``): ReLU, SE squeezing to
``int(block input * 0.25)``, head 1x1 conv to 1280."""

from __future__ import annotations

from nasprof.space.blocks.base import BlockSpec, make_divisible
from nasprof.space.network import Network
from nasprof.space.presets._registry import register_preset
from nasprof.space.presets._util import classifier, mbconv

# (repeats, kernel, stride, expand, out, se ratio, skip allowed)
A1_BLOCKS = (
    (1, 3, 1, 1, 16, 0.0, False),
    (2, 3, 2, 6, 24, 0.0, True),
    (3, 5, 2, 3, 40, 0.25, True),
    (4, 3, 2, 6, 80, 0.0, True),
    (2, 3, 1, 6, 112, 0.25, True),
    (3, 5, 2, 6, 160, 0.25, True),
    (1, 3, 1, 6, 320, 0.0, True),
)


@register_preset("mnasnet_a1")
def mnasnet_a1(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    cin = make_divisible(32 * width, 8)
    stem = BlockSpec("conv", 3, cin, kernel=3, stride=2, act="relu")
    blocks = []
    for n, k, s, e, out, se, skip in A1_BLOCKS:
        cout = make_divisible(out * width, 8)
        for i in range(n):
            spec = mbconv(cin, cout, k, s if i == 0 else 1, expand=e, se=se, act="relu")
            blocks.append(spec if skip else spec.replace(skip="none"))
            cin = cout
    last = make_divisible(1280 * max(1.0, width), 8)
    head = (BlockSpec("conv", cin, last, kernel=1, act="relu"), classifier(last, num_classes))
    return Network(f"mnasnet_a1_{width:g}", resolution, (stem,), tuple(blocks), head)
