"""ResNet-18 and ResNet-50 (He et al., 2016) as torchvision builds them (v1.5: stride on the 3x3), and the
ResNet-50 variants ResNeXt-50 32x4d (Xie et al., 2017: the 3x3 is a 32-group conv, twice as wide) and
SE-ResNet-50 (Hu et al., 2018: squeeze-excite on each unit's output, reduction 16). ``width`` scales the
stage widths (64, 128, 256, 512), rounded to a multiple of 8 (of the groups for ResNeXt's grouped width).

All are v1.5 (stride on the 3x3), so ResNet-50 has 4.1 G MACs (torchvision) and SE-ResNet-50 4.1 G (timm's
``seresnet50``); the papers' 3.86 G and 3.87 G are the original v1 with the stride on the first 1x1.
"""

from __future__ import annotations

from nasprof.space.blocks.base import BlockSpec, make_divisible
from nasprof.space.network import Network
from nasprof.space.presets._registry import register_preset
from nasprof.space.presets._util import classifier

STEM_POOL = BlockSpec("maxpool", 64, 64, kernel=3, stride=2)


def _resnet(
    name: str,
    op: str,
    depths: tuple[int, ...],
    expansion: int,
    width: float,
    resolution: int,
    num_classes: int,
    groups: int = 1,
    se: float = 0.0,
) -> Network:
    cin = make_divisible(64 * width, 8)
    stem = (BlockSpec("conv", 3, cin, kernel=7, stride=2, act="relu"), STEM_POOL.replace(cin=cin, cout=cin))
    blocks = []
    for stage, n in enumerate(depths):
        planes = make_divisible(64 * 2**stage * width, 8)
        cout = planes * expansion
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            skip = "id" if stride == 1 and cin == cout else "proj"
            mid = planes if op == "resnet_bottleneck" else 0
            if op == "resnext":  # width per group 4 at the first stage (64 * 2 = 128 = 32 x 4)
                mid = make_divisible(2 * 64 * 2**stage * width, groups)
            blocks.append(
                BlockSpec(op, cin, cout, kernel=3, stride=stride, skip=skip, mid=mid, groups=groups, se=se,
                          variant="se_out" if se else "")
            )
            cin = cout
    return Network(f"{name}_{width:g}", resolution, stem, tuple(blocks), (classifier(cin, num_classes),))


@register_preset("resnet18")
def resnet18(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    return _resnet("resnet18", "resnet_basic", (2, 2, 2, 2), 1, width, resolution, num_classes)


@register_preset("resnet50")
def resnet50(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    return _resnet("resnet50", "resnet_bottleneck", (3, 4, 6, 3), 4, width, resolution, num_classes)


@register_preset("resnext50_32x4d")
def resnext50_32x4d(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    return _resnet("resnext50_32x4d", "resnext", (3, 4, 6, 3), 4, width, resolution, num_classes, groups=32)


@register_preset("se_resnet50")
def se_resnet50(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    return _resnet("se_resnet50", "resnet_bottleneck", (3, 4, 6, 3), 4, width, resolution, num_classes,
                   se=1 / 16)
