"""RegNetX and RegNetY (Radosavovic et al., "Designing Network Design Spaces", CVPR 2020), as in pycls.

A RegNet is an AnyNet (stem, four stages of residual bottleneck blocks with group convolution, head) whose
per-stage widths and depths come from six numbers: depth d, initial width w0, slope wa, multiplier wm, group
width g and bottleneck ratio b. Block j gets the continuous width u_j = w0 + wa·j, quantised to
w_j = w0·wm^round(log(u_j/w0)/log(wm)) rounded to a multiple of 8; runs of equal widths are the stages.
Widths are then made compatible with the group width (a bottleneck width that is a multiple of g, or g shrunk
to the width). Stem: 3x3 conv, 32, stride 2; each stage starts with stride 2; RegNetY adds squeeze-excite
after the 3x3 (squeezing to a quarter of the block's input width). ``width`` scales the stage widths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockSpec, make_divisible
from nasprof.space.network import Network
from nasprof.space.presets._registry import register_preset
from nasprof.space.presets._util import classifier

__all__ = ["RegNetParams", "regnet_stages", "regnet_network"]


@dataclass(frozen=True)
class RegNetParams:
    """RegNet parameters: depth, w0, wa, wm, group width, bottleneck ratio, SE ratio (0 = RegNetX)."""

    depth: int
    w0: int
    wa: float
    wm: float
    group_width: int
    bottleneck: float = 1.0
    se: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.depth, int) and 1 <= self.depth <= 200):
            raise SpaceError(f"RegNet depth must be an integer in [1, 200], got {self.depth!r}")
        if not (self.w0 > 0 and self.w0 % 8 == 0):
            raise SpaceError(f"RegNet w0 must be a positive multiple of 8, got {self.w0!r}")
        if not (self.wa > 0 and math.isfinite(self.wa)):
            raise SpaceError(f"RegNet wa (width slope) must be > 0, got {self.wa!r}")
        if not (self.wm > 1 and math.isfinite(self.wm)):
            raise SpaceError(f"RegNet wm (width multiplier) must be > 1, got {self.wm!r}")
        if not (isinstance(self.group_width, int) and self.group_width >= 1):
            raise SpaceError(f"RegNet group width must be a positive integer, got {self.group_width!r}")
        if not 0 < self.bottleneck <= 4:
            raise SpaceError(f"RegNet bottleneck ratio must be in (0, 4], got {self.bottleneck!r}")
        if not 0 <= self.se < 1:
            raise SpaceError(f"RegNet SE ratio must be in [0, 1), got {self.se!r}")


def regnet_stages(p: RegNetParams, width: float = 1.0) -> list[tuple[int, int, int]]:
    """Per stage (width, depth, group width) after quantisation and group compatibility."""
    ks = [round(math.log((p.w0 + p.wa * j) / p.w0) / math.log(p.wm)) for j in range(p.depth)]
    widths = [int(round(p.w0 * p.wm**k / 8) * 8) for k in ks]
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, d in stages:
        w = make_divisible(w * width, 8) if width != 1.0 else w
        w_b = int(round(w * p.bottleneck))
        g = min(p.group_width, w_b)
        w_b = max(g, int(round(w_b / g) * g))  # bottleneck width a multiple of the group width
        w = int(round(w_b / p.bottleneck))
        if w < 1 or d < 1:
            raise SpaceError(f"RegNet parameters {p} quantise to an empty stage; raise w0 or wa")
        out.append((w, d, g))
    return out


def regnet_network(
    name: str, p: RegNetParams, width: float = 1.0, resolution: int = 224, num_classes: int = 1000
) -> Network:
    stem_w = 32
    stem = BlockSpec("conv", 3, stem_w, kernel=3, stride=2, act="relu")
    cin, blocks = stem_w, []
    for w, d, g in regnet_stages(p, width):
        mid = int(round(w * p.bottleneck))
        for i in range(d):
            stride = 2 if i == 0 else 1
            skip = "id" if stride == 1 and cin == w else "proj"
            blocks.append(
                BlockSpec("resnet_bottleneck", cin, w, kernel=3, stride=stride, skip=skip, mid=mid,
                          groups=mid // g, se=p.se)
            )
            cin = w
    return Network(f"{name}_{width:g}", resolution, (stem,), tuple(blocks), (classifier(cin, num_classes),))


#: pycls's model zoo configurations (configs/dds_baselines/regnet{x,y}/*.yaml).
PARAMS = {
    "regnetx_200mf": RegNetParams(13, 24, 36.44, 2.49, 8),
    "regnetx_400mf": RegNetParams(22, 24, 24.48, 2.54, 16),
    "regnety_400mf": RegNetParams(16, 48, 27.89, 2.09, 8, se=0.25),
    "regnety_600mf": RegNetParams(15, 48, 32.54, 2.32, 16, se=0.25),
}


def _register(name: str) -> None:
    @register_preset(name)
    def preset(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Network:
        return regnet_network(name, PARAMS[name], width, resolution, num_classes)


for _name in PARAMS:
    _register(_name)
