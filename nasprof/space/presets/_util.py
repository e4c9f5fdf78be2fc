"""Helpers shared by the presets."""

from __future__ import annotations

from nasprof.space.blocks.base import BlockSpec


def residual_skip(cin: int, cout: int, stride: int) -> str:
    """Identity where shapes match, as MobileNetV2/V3, MnasNet and EfficientNet do."""
    return "id" if stride == 1 and cin == cout else "none"


def mbconv(
    cin: int,
    cout: int,
    kernel: int,
    stride: int,
    *,
    expand: float = 1.0,
    mid: int = 0,
    se: float = 0.0,
    act: str = "relu6",
    variant: str = "",
) -> BlockSpec:
    return BlockSpec(
        "mbconv",
        cin,
        cout,
        kernel=kernel,
        stride=stride,
        expand=float(expand),
        mid=mid,
        se=se,
        act=act,
        skip=residual_skip(cin, cout, stride),
        variant=variant,
    )


def classifier(cin: int, num_classes: int, mid: int = 0, act: str = "none") -> BlockSpec:
    return BlockSpec("head", cin, num_classes, mid=mid, act=act)
