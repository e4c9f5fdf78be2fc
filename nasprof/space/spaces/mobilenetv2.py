"""A small ProxylessNAS-like space on the MobileNetV2 backbone, for quick runs.

Fixed stem (3x3 conv, 32, stride 2, ReLU6), fixed first block (MBConv e1 k3, 16), six searchable stages
(widths 24, 32, 64, 96, 160, 320; strides 2, 2, 2, 1, 2, 1), fixed head (1x1 conv to 1280, pool, linear).
Each stage chooses its depth ({2, 3, 4}; the 320 stage has 1 layer) and every layer its own kernel
{3, 5, 7} and expand ratio {3, 6}. Identity residuals wherever shapes match, as in MobileNetV2.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from nasprof.errors import SpaceError
from nasprof.space.arch import Arch
from nasprof.space.blocks.base import BlockSpec, conv_out, make_divisible
from nasprof.space.layer import Layer
from nasprof.space.network import Network
from nasprof.space.spaces.base import Space, as_rng, chain_layers, dedupe_layers

__all__ = ["Mbv2Stage", "MobileNetV2Space"]

#: (width, stride of the first layer, allowed depths)
STAGES: tuple[tuple[int, int, tuple[int, ...]], ...] = (
    (24, 2, (2, 3, 4)),
    (32, 2, (2, 3, 4)),
    (64, 2, (2, 3, 4)),
    (96, 1, (2, 3, 4)),
    (160, 2, (2, 3, 4)),
    (320, 1, (1,)),
)
KERNELS = (3, 5, 7)
EXPANDS = (3, 6)
LAYER_CHOICES = tuple((k, e) for k in KERNELS for e in EXPANDS)
_LAYER_RE = re.compile(r"^k(\d+)e(\d+)$")


@dataclass(frozen=True)
class Mbv2Stage:
    """The active layers of one stage, as ``(kernel, expand)`` pairs; the depth is ``len(layers)``."""

    layers: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        # Tuples all the way down, so a stage built from lists is hashable like a parsed one (the layer
        # caches are keyed by stage); something that is not pairs at all is left for validation to name.
        with contextlib.suppress(TypeError):
            object.__setattr__(self, "layers", tuple(tuple(layer) for layer in self.layers))

    @property
    def depth(self) -> int:
        return len(self.layers)


class MobileNetV2Space(Space):
    name = "mobilenetv2"
    description = (
        "ProxylessNAS-like MobileNetV2 space: per-layer kernel {3,5,7} x expand {3,6}, depth per stage"
    )

    def __init__(self) -> None:
        # Sampled and mutated stages are interned by their layers (at most 6 + 6^2 + 6^3 + 6^4 of them):
        # architectures then share stage instances, which the layer caches compare by identity.
        self._stages: dict[tuple[tuple[int, int], ...], Mbv2Stage] = {}

    def _stage(self, layers: tuple[tuple[int, int], ...]) -> Mbv2Stage:
        stage = self._stages.get(layers)
        if stage is None:
            stage = self._stages[layers] = Mbv2Stage(layers)
        return stage

    @property
    def num_blocks(self) -> int:
        return len(STAGES)

    def choices(self) -> list[dict[str, list[Any]]]:
        return [
            {"width": [w], "stride": [s], "depth": list(d), "kernel": list(KERNELS), "expand": list(EXPANDS)}
            for w, s, d in STAGES
        ]

    def size(self) -> int:
        n = len(LAYER_CHOICES)
        total = 1
        for _, _, depths in STAGES:
            total *= sum(n**d for d in depths)
        return total

    def sample_blocks(self, rng: np.random.Generator) -> tuple[Mbv2Stage, ...]:
        out = []
        for _, _, depths in STAGES:
            depth = depths[int(rng.integers(len(depths)))]
            picks = rng.integers(len(LAYER_CHOICES), size=depth).tolist()
            out.append(self._stage(tuple(map(LAYER_CHOICES.__getitem__, picks))))
        return tuple(out)

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        """Change one stage's depth (drop the last layer / append a random one), or one layer's kernel or
        expand ratio."""
        rng = as_rng(rng)
        i = int(rng.integers(self.num_blocks))
        layers = list(arch.blocks[i].layers)
        depths = STAGES[i][2]
        kind = int(rng.integers(3)) if len(depths) > 1 else 1 + int(rng.integers(2))
        if kind == 0:
            other = [d for d in depths if d != len(layers)]
            depth = other[int(rng.integers(len(other)))]
            while len(layers) < depth:
                layers.append(LAYER_CHOICES[int(rng.integers(len(LAYER_CHOICES)))])
            layers = layers[:depth]
        else:
            j = int(rng.integers(len(layers)))
            k, e = layers[j]
            if kind == 1:
                k = [v for v in KERNELS if v != k][int(rng.integers(len(KERNELS) - 1))]
            else:
                e = [v for v in EXPANDS if v != e][int(rng.integers(len(EXPANDS) - 1))]
            layers[j] = (k, e)
        blocks = list(arch.blocks)
        blocks[i] = self._stage(tuple(layers))
        return Arch(self.name, arch.resolution, arch.width, tuple(blocks))

    def decisions(self) -> list[tuple[str, tuple[Any, ...]]]:
        out: list[tuple[str, tuple[Any, ...]]] = []
        for i, (_, _, depths) in enumerate(STAGES):
            out.append((f"s{i}.depth", depths))
            for j in range(max(depths)):
                out += [(f"s{i}.l{j}.kernel", KERNELS), (f"s{i}.l{j}.expand", EXPANDS)]
        return out

    def build(
        self, ask: Callable[[str, tuple[Any, ...]], Any], resolution: int | None = None, width: float = 1.0
    ) -> Arch:
        res = self.checked_resolution(resolution, width)
        stages = []
        for i, (_, _, depths) in enumerate(STAGES):
            depth = ask(f"s{i}.depth", depths)
            # Layers past the chosen depth do not exist: their decisions are not asked.
            layers = tuple(
                (ask(f"s{i}.l{j}.kernel", KERNELS), ask(f"s{i}.l{j}.expand", EXPANDS)) for j in range(depth)
            )
            stage = Mbv2Stage(layers)
            self.validate_block(i, stage)
            stages.append(self._stage(stage.layers))
        return Arch(self.name, res, width, tuple(stages))

    def _replay(self, arch: Arch) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, stage in enumerate(arch.blocks):
            out[f"s{i}.depth"] = stage.depth
            for j, (k, e) in enumerate(stage.layers):
                out[f"s{i}.l{j}.kernel"], out[f"s{i}.l{j}.expand"] = k, e
        return out

    def encode(self, arch: Arch) -> np.ndarray:
        """Per stage and layer slot (max depth 4): 0 = absent, else 1 + index into (kernel, expand) pairs."""
        self.validate(arch)
        out = []
        for (_, _, depths), stage in zip(STAGES, arch.blocks, strict=True):
            codes = [1 + LAYER_CHOICES.index(layer) for layer in stage.layers]
            out += codes + [0] * (max(depths) - len(codes))
        return np.array(out, dtype=np.int64)

    def validate_block(self, index: int, block: Any) -> None:
        if not isinstance(block, Mbv2Stage):
            raise SpaceError(f"mobilenetv2 stage {index} must be a Mbv2Stage, got {type(block).__name__}")
        depths = STAGES[index][2]
        if block.depth not in depths:
            raise SpaceError(
                f"mobilenetv2 stage {index}: depth {block.depth} is outside the space; allowed: "
                f"{', '.join(map(str, depths))}"
            )
        for k, e in block.layers:
            if k not in KERNELS or e not in EXPANDS:
                raise SpaceError(
                    f"mobilenetv2 stage {index}: layer k{k}e{e} is outside the space; kernel in "
                    f"{', '.join(map(str, KERNELS))}, expand in {', '.join(map(str, EXPANDS))}"
                )

    # -- from choices to layers ---------------------------------------------------------------------------
    @staticmethod
    def _fixed(width: float) -> tuple[BlockSpec, BlockSpec]:
        stem = BlockSpec("conv", 3, make_divisible(32 * width, 8), kernel=3, stride=2, act="relu6")
        first = BlockSpec("mbconv", stem.cout, make_divisible(16 * width, 8), kernel=3, act="relu6")
        return stem, first

    @staticmethod
    def _head(cin: int, width: float) -> tuple[BlockSpec, BlockSpec]:
        last = make_divisible(1280 * max(1.0, width), 8)
        return (
            BlockSpec("conv", cin, last, kernel=1, act="relu6"),
            BlockSpec("head", last, 1000, act="none"),
        )

    @staticmethod
    @lru_cache(maxsize=4096)  # one instance per distinct layer: the layer caches then compare by identity
    def _spec(cin: int, cout: int, stride: int, kernel: int, expand: int) -> BlockSpec:
        skip = "id" if stride == 1 and cin == cout else "none"
        return BlockSpec(
            "mbconv", cin, cout, kernel=kernel, stride=stride, expand=float(expand), act="relu6", skip=skip
        )

    @lru_cache(maxsize=256)  # noqa: B019 - the space is a long-lived singleton
    def stem_layers(self, resolution: int, width: float) -> tuple[Layer, ...]:
        """The stem and the fixed first block (``stem.0`` and ``blocks.0`` of the network)."""
        return chain_layers(self._fixed(width), (3, resolution, resolution))

    @lru_cache(maxsize=1 << 16)  # noqa: B019 - stages repeat a lot in a search
    def block_layers(
        self, index: int, block: Mbv2Stage, input_shape: tuple[int, int, int], width: float
    ) -> tuple[Layer, ...]:
        w, s, _ = STAGES[index]
        cin, cout = input_shape[0], make_divisible(w * width, 8)
        specs = []
        for j, (k, e) in enumerate(block.layers):
            specs.append(self._spec(cin, cout, s if j == 0 else 1, k, e))
            cin = cout
        return chain_layers(specs, input_shape)

    @lru_cache(maxsize=1024)  # noqa: B019
    def head_layers(self, input_shape: tuple[int, int, int], width: float) -> tuple[Layer, ...]:
        return chain_layers(self._head(input_shape[0], width), input_shape)

    def network(self, arch: Arch) -> Network:
        stem, first = self._fixed(arch.width)
        cin, specs = first.cout, [first]
        for (w, s, _), stage in zip(STAGES, arch.blocks, strict=True):
            cout = make_divisible(w * arch.width, 8)
            for j, (k, e) in enumerate(stage.layers):
                specs.append(self._spec(cin, cout, s if j == 0 else 1, k, e))
                cin = cout
        return Network(
            name=self.name,
            resolution=arch.resolution,
            stem=(stem,),
            blocks=tuple(specs),
            head=self._head(cin, arch.width),
            width=arch.width,
            info={"arch": arch.to_string()},
        )

    def distinct_layers(self, resolution: int | None = None, width: float = 1.0) -> list[Layer]:
        res = self.checked_resolution(resolution, width)
        stem, first = self._fixed(width)
        hw = conv_out(res, 3, 2)
        layers = [Layer(stem, (3, res, res)), Layer(first, (stem.cout, hw, hw))]
        cin = first.cout
        for w, s, depths in STAGES:
            cout = make_divisible(w * width, 8)
            out_hw = conv_out(hw, 3, s)
            for k, e in LAYER_CHOICES:
                layers.append(Layer(self._spec(cin, cout, s, k, e), (cin, hw, hw)))
                if max(depths) > 1:
                    layers.append(Layer(self._spec(cout, cout, 1, k, e), (cout, out_hw, out_hw)))
            cin, hw = cout, out_hw
        conv, head = self._head(cin, width)
        layers += [Layer(conv, (cin, hw, hw)), Layer(head, (conv.cout, hw, hw))]
        return dedupe_layers(layers)

    # -- text and JSON forms ------------------------------------------------------------------------------
    @lru_cache(maxsize=1 << 14)  # noqa: B019 - every candidate of a search is written as a string
    def format_block(self, block: Mbv2Stage) -> str:
        return "_".join(f"k{k}e{e}" for k, e in block.layers)

    @lru_cache(maxsize=1 << 14)  # noqa: B019 - predicting from strings parses the same tokens again and again
    def parse_block(self, token: str, index: int) -> Mbv2Stage:
        layers = []
        for part in token.strip().split("_"):
            m = _LAYER_RE.match(part)
            if not m:
                raise SpaceError(
                    f"malformed mobilenetv2 stage {index} {token!r}: expected layers like "
                    "k3e6_k5e3 (kernel, expand ratio)"
                )
            layers.append((int(m.group(1)), int(m.group(2))))
        stage = Mbv2Stage(tuple(layers))
        if index < self.num_blocks:
            self.validate_block(index, stage)
            stage = self._stage(stage.layers)
        return stage

    def block_to_dict(self, block: Mbv2Stage) -> dict[str, Any]:
        return {"layers": [{"kernel": k, "expand": e} for k, e in block.layers]}

    def block_from_dict(self, doc: Mapping[str, Any], index: int) -> Mbv2Stage:
        try:
            return Mbv2Stage(tuple((int(x["kernel"]), int(x["expand"])) for x in doc["layers"]))
        except (TypeError, KeyError, ValueError):
            raise SpaceError(
                f"mobilenetv2 stage {index} must look like "
                '{"layers": [{"kernel": 3, "expand": 6}, ...]}; got ' + repr(doc)
            ) from None
