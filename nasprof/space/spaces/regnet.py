"""An AnyNetX/RegNet design space (Radosavovic et al., CVPR 2020): four stages of residual bottlenecks.

Fixed stem (3x3 conv, 32, stride 2) and head (global pool, 1000-way linear). Each of four stages chooses

  depth        from a per-stage set            (stage 0: 1-2 ... stage 3: 2-12 blocks)
  width        from a per-stage set            (multiples of 8, around RegNet-400MF/600MF)
  bottleneck b 1 | 2                           (the 3x3 runs at width / b)
  group width  8 | 16 | 32                     (groups = bottleneck width / gcd(g, bottleneck width))
  SE ratio     0 | 0.25                        (0: RegNetX's block; 0.25: RegNetY's, squeezing to input/4)

and all blocks of a stage share them (AnyNetX's per-stage degrees of freedom). The first block of a stage
has stride 2 and a projection shortcut; the others an identity shortcut. The RegNet presets
(``regnetx_400mf``, ...) are networks of this block built from pycls's linear parameterisation; this space
searches the per-stage choices directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from nasprof.errors import SpaceError
from nasprof.space.arch import Arch
from nasprof.space.blocks.base import BlockSpec, conv_out, make_divisible
from nasprof.space.layer import Layer
from nasprof.space.network import Network
from nasprof.space.spaces.base import Space, as_rng, chain_layers, dedupe_layers

__all__ = ["RegStage", "RegNetSpace"]

#: Per stage: (allowed depths, allowed widths).
STAGES: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((1, 2), (24, 32, 48, 64)),
    ((1, 2, 3), (48, 64, 96, 128)),
    ((2, 4, 7), (96, 160, 208, 256)),
    ((2, 6, 12), (256, 384, 440, 608)),
)
BOTTLENECKS = (1, 2)
GROUP_WIDTHS = (8, 16, 32)
SE_RATIOS = (0.0, 0.25)
STEM_WIDTH, NUM_CLASSES = 32, 1000
FACTORS = ("depth", "width", "bottleneck", "group", "se")


@dataclass(frozen=True)
class RegStage:
    """The choices of one stage; every block of the stage shares them."""

    depth: int
    width: int
    bottleneck: int
    group: int
    se: float


@lru_cache(maxsize=1 << 12)
def _spec(cin: int, cout: int, stride: int, bottleneck: int, group: int, se: float) -> BlockSpec:
    mid = max(1, cout // bottleneck)
    skip = "id" if stride == 1 and cin == cout else "proj"
    return BlockSpec("resnet_bottleneck", cin, cout, kernel=3, stride=stride, skip=skip, mid=mid,
                     groups=mid // math.gcd(group, mid), se=se)


class RegNetSpace(Space):
    name = "regnet"
    description = "AnyNetX/RegNet space: 4 stages x (depth, width, bottleneck, group width, SE)"

    def __init__(self) -> None:
        self._choices: list[dict[str, tuple[Any, ...]]] = [
            {"depth": depths, "width": widths, "bottleneck": BOTTLENECKS, "group": GROUP_WIDTHS,
             "se": SE_RATIOS}
            for depths, widths in STAGES
        ]
        self._canonical: dict[RegStage, RegStage] = {}

    def _intern(self, stage: RegStage) -> RegStage:
        return self._canonical.setdefault(stage, stage)

    @property
    def num_blocks(self) -> int:
        return len(STAGES)

    def choices(self) -> list[dict[str, list[Any]]]:
        return [{"stride": [2], **{k: list(v) for k, v in c.items()}} for c in self._choices]

    def size(self) -> int:
        return math.prod(math.prod(len(v) for v in c.values()) for c in self._choices)

    # -- sampling and variation ---------------------------------------------------------------------------
    def sample_blocks(self, rng: np.random.Generator) -> tuple[RegStage, ...]:
        out = []
        for c in self._choices:
            out.append(self._intern(RegStage(*(c[f][int(rng.integers(len(c[f])))] for f in FACTORS))))
        return tuple(out)

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        rng = as_rng(rng)
        i = int(rng.integers(self.num_blocks))
        factor = FACTORS[int(rng.integers(len(FACTORS)))]
        stage = arch.blocks[i]
        others = [v for v in self._choices[i][factor] if v != getattr(stage, factor)]
        blocks = list(arch.blocks)
        blocks[i] = self._intern(replace(stage, **{factor: others[int(rng.integers(len(others)))]}))
        return Arch(self.name, arch.resolution, arch.width, tuple(blocks))

    def decisions(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [(f"s{i}.{f}", tuple(c[f])) for i, c in enumerate(self._choices) for f in FACTORS]

    def build(
        self, ask: Callable[[str, tuple[Any, ...]], Any], resolution: int | None = None, width: float = 1.0
    ) -> Arch:
        res = self.checked_resolution(resolution, width)
        stages = []
        for i, c in enumerate(self._choices):
            stage = RegStage(*(ask(f"s{i}.{f}", tuple(c[f])) for f in FACTORS))
            self.validate_block(i, stage)
            stages.append(self._intern(stage))
        return Arch(self.name, res, width, tuple(stages))

    def _replay(self, arch: Arch) -> dict[str, Any]:
        return {f"s{i}.{f}": getattr(b, f) for i, b in enumerate(arch.blocks) for f in FACTORS}

    def encode(self, arch: Arch) -> np.ndarray:
        self.validate(arch)
        return np.array(
            [self._choices[i][f].index(getattr(b, f)) for i, b in enumerate(arch.blocks) for f in FACTORS],
            dtype=np.int64,
        )

    def validate_block(self, index: int, block: Any) -> None:
        if not isinstance(block, RegStage):
            raise SpaceError(f"regnet stage {index} must be a RegStage, got {type(block).__name__}")
        for f in FACTORS:
            allowed = self._choices[index][f]
            value = getattr(block, f)
            if value not in allowed or isinstance(value, bool):
                raise SpaceError(
                    f"regnet stage {index}: {f} {value!r} is outside the space; allowed: "
                    f"{', '.join(map(str, allowed))}"
                )

    # -- from choices to layers ---------------------------------------------------------------------------
    @staticmethod
    def _stem(width: float) -> BlockSpec:
        return BlockSpec("conv", 3, make_divisible(STEM_WIDTH * width, 8), kernel=3, stride=2, act="relu")

    @staticmethod
    def _stage_specs(stage: RegStage, cin: int, width: float) -> tuple[BlockSpec, ...]:
        cout = make_divisible(stage.width * width, 8)
        return tuple(
            _spec(cin if j == 0 else cout, cout, 2 if j == 0 else 1, stage.bottleneck, stage.group, stage.se)
            for j in range(stage.depth)
        )

    @lru_cache(maxsize=256)  # noqa: B019 - the space is a long-lived singleton
    def stem_layers(self, resolution: int, width: float) -> tuple[Layer, ...]:
        return chain_layers((self._stem(width),), (3, resolution, resolution))

    @lru_cache(maxsize=1 << 16)  # noqa: B019 - stages repeat a lot in a search
    def block_layers(
        self, index: int, block: RegStage, input_shape: tuple[int, int, int], width: float
    ) -> tuple[Layer, ...]:
        return chain_layers(self._stage_specs(block, input_shape[0], width), input_shape)

    @lru_cache(maxsize=1024)  # noqa: B019
    def head_layers(self, input_shape: tuple[int, int, int], width: float) -> tuple[Layer, ...]:
        return chain_layers((BlockSpec("head", input_shape[0], NUM_CLASSES, act="none"),), input_shape)

    def network(self, arch: Arch) -> Network:
        stem = self._stem(arch.width)
        cin, specs = stem.cout, list[BlockSpec]()
        for stage in arch.blocks:
            part = self._stage_specs(stage, cin, arch.width)
            specs.extend(part)
            cin = part[-1].cout
        return Network(
            name=self.name,
            resolution=arch.resolution,
            stem=(stem,),
            blocks=tuple(specs),
            head=(BlockSpec("head", cin, NUM_CLASSES, act="none"),),
            width=arch.width,
            info={"arch": arch.to_string()},
        )

    def distinct_layers(self, resolution: int | None = None, width: float = 1.0) -> list[Layer]:
        res = self.checked_resolution(resolution, width)
        stem = self._stem(width)
        layers = [Layer(stem, (3, res, res))]
        hw = conv_out(res, 3, 2)
        in_widths = {stem.cout}
        for (depths, widths), _ in zip(STAGES, self._choices, strict=True):
            out_hw = conv_out(hw, 3, 2)
            for w in widths:
                cout = make_divisible(w * width, 8)
                for b in BOTTLENECKS:
                    for g in GROUP_WIDTHS:
                        for se in SE_RATIOS:
                            for cin in sorted(in_widths):
                                layers.append(Layer(_spec(cin, cout, 2, b, g, se), (cin, hw, hw)))
                            if max(depths) > 1:
                                layers.append(Layer(_spec(cout, cout, 1, b, g, se), (cout, out_hw, out_hw)))
            in_widths = {make_divisible(w * width, 8) for w in widths}
            hw = out_hw
        for cin in sorted(in_widths):
            layers.append(Layer(BlockSpec("head", cin, NUM_CLASSES, act="none"), (cin, hw, hw)))
        return dedupe_layers(layers)

    # -- text and JSON forms ------------------------------------------------------------------------------
    @lru_cache(maxsize=1 << 13)  # noqa: B019 - every candidate of a search is written as a string
    def format_block(self, block: RegStage) -> str:
        return f"d{block.depth}_w{block.width}_b{block.bottleneck}_g{block.group}_se{block.se:g}"

    @lru_cache(maxsize=1 << 13)  # noqa: B019 - predicting from strings parses the same tokens again and again
    def parse_block(self, token: str, index: int) -> RegStage:
        parts = token.strip().split("_")
        grammar = "dD_wW_bB_gG_seR, e.g. d4_w160_b1_g16_se0.25"
        prefixes = ("d", "w", "b", "g", "se")
        if len(parts) != 5 or not all(p.startswith(x) for p, x in zip(parts, prefixes, strict=True)):
            raise SpaceError(f"malformed regnet stage {index} {token!r}: expected {grammar}")
        try:
            d, w, b, g = (int(p[1:]) for p in parts[:4])
            stage = RegStage(d, w, b, g, float(parts[4][2:]))
        except ValueError:
            raise SpaceError(f"malformed regnet stage {index} {token!r}: expected {grammar}") from None
        if index < self.num_blocks:
            self.validate_block(index, stage)
            stage = self._intern(stage)
        return stage

    def block_to_dict(self, block: RegStage) -> dict[str, Any]:
        return asdict(block)

    def block_from_dict(self, doc: Mapping[str, Any], index: int) -> RegStage:
        if not isinstance(doc, Mapping) or set(doc) != set(FACTORS):
            raise SpaceError(
                f"regnet stage {index} must be an object with exactly {', '.join(FACTORS)}; got {doc!r}"
            )
        try:
            return RegStage(int(doc["depth"]), int(doc["width"]), int(doc["bottleneck"]), int(doc["group"]),
                            float(doc["se"]))
        except (TypeError, ValueError):
            raise SpaceError(f"regnet stage {index}: malformed values {dict(doc)!r}") from None
