"""MobileNetV1 (Howard et al., 2017: 3x3 conv then 13 depthwise separable layers, ReLU, the last one at
stride 1 — the paper's table says s2 for it, a known typo: the map is already 7x7), MobileNetV2 (Sandler et
al., 2018) and MobileNetV3 Large/Small (Howard et al., 2019), as torchvision
builds them: channels ``make_divisible(c * width, 8)``; MobileNetV2's last channel is
``make_divisible(1280 * max(1, width), 8)`` unless ``last_channel`` overrides it (MCUNet's MobileNetV2-0.35
at 144 uses 448); MobileNetV3 scales every width, its SE squeezes to ``make_divisible(mid / 4, 8)`` with a
hard-sigmoid gate (mbconv variant ``"v3"``)."""

from __future__ import annotations

from nasprof.space.blocks.base import BlockSpec, make_divisible
from nasprof.space.network import Network
from nasprof.space.presets._registry import register_preset
from nasprof.space.presets._util import classifier, mbconv

# (channels, stride) of the depthwise separable layers — Table 1 of the MobileNetV1 paper.
V1_SETTINGS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


@register_preset("mobilenet_v1")
def mobilenet_v1(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    cin = make_divisible(32 * width, 8)
    stem = BlockSpec("conv", 3, cin, kernel=3, stride=2, act="relu")
    blocks = []
    for c, s in V1_SETTINGS:
        cout = make_divisible(c * width, 8)
        blocks.append(BlockSpec("dwsep", cin, cout, kernel=3, stride=s, act="relu"))
        cin = cout
    head = (classifier(cin, num_classes),)
    return Network(f"mobilenet_v1_{width:g}", resolution, (stem,), tuple(blocks), head)


# (expand t, channels c, repeats n, stride s) — Table 2 of the MobileNetV2 paper.
V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


@register_preset("mobilenet_v2")
def mobilenet_v2(
    width: float = 1.0, resolution: int = 224, last_channel: int | None = None, num_classes: int = 1000
) -> Network:
    cin = make_divisible(32 * width, 8)
    stem = BlockSpec("conv", 3, cin, kernel=3, stride=2, act="relu6")
    blocks = []
    for t, c, n, s in V2_SETTINGS:
        cout = make_divisible(c * width, 8)
        for i in range(n):
            blocks.append(mbconv(cin, cout, 3, s if i == 0 else 1, expand=t))
            cin = cout
    # `is None`, not `or`: --last-channel 0 must be refused by BlockSpec, not mean the default.
    last = make_divisible(1280 * max(1.0, width), 8) if last_channel is None else last_channel
    head = (BlockSpec("conv", cin, last, kernel=1, act="relu6"), classifier(last, num_classes))
    return Network(f"mobilenet_v2_{width:g}", resolution, (stem,), tuple(blocks), head)


# (kernel, expanded, out, se, activation, stride) — torchvision's _mobilenet_v3_conf.
V3_LARGE = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2),
    (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1),
    (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2),
    (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
)
V3_SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1),
    (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1),
    (5, 144, 48, True, "hswish", 1),
    (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1),
    (5, 576, 96, True, "hswish", 1),
)


def _mobilenet_v3(
    name: str, settings: tuple, last_channel: int, width: float, resolution: int, num_classes: int
) -> Network:
    def ch(c: int) -> int:
        return make_divisible(c * width, 8)

    cin = ch(16)
    stem = BlockSpec("conv", 3, cin, kernel=3, stride=2, act="hswish")
    blocks = []
    for k, exp, out, se, act, s in settings:
        cout = ch(out)
        blocks.append(mbconv(cin, cout, k, s, mid=ch(exp), se=0.25 if se else 0.0, act=act, variant="v3"))
        cin = cout
    last_conv = 6 * cin
    head = (
        BlockSpec("conv", cin, last_conv, kernel=1, act="hswish"),
        classifier(last_conv, num_classes, mid=ch(last_channel), act="hswish"),
    )
    return Network(f"{name}_{width:g}", resolution, (stem,), tuple(blocks), head)


@register_preset("mobilenet_v3_large")
def mobilenet_v3_large(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    return _mobilenet_v3("mobilenet_v3_large", V3_LARGE, 1280, width, resolution, num_classes)


@register_preset("mobilenet_v3_small")
def mobilenet_v3_small(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
    return _mobilenet_v3("mobilenet_v3_small", V3_SMALL, 1024, width, resolution, num_classes)
