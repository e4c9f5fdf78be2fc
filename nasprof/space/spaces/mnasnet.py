"""MnasNet's factorized hierarchical search space (Tan et al., CVPR 2019, arXiv 1807.11626, Section 4.1).

The network is a fixed stem (3x3 conv, 32, stride 2), seven searchable blocks on MnasNet-A1's skeleton
(base widths 16, 24, 40, 80, 112, 160, 320; strides 1, 2, 2, 2, 1, 2, 1; base depths 1, 2, 3, 4, 2, 3, 1)
and a fixed head (1x1 conv to 1280, global pool, 1000-way linear). Each block chooses independently:

  ConvOp   conv | dwsep | mb3 | mb6        (regular conv, depthwise separable, MBConv expand 3 / 6)
  kernel   3 | 5
  SE ratio 0 | 0.25
  SkipOp   none | id | pool
  filters  0.75 | 1.0 | 1.25 x the base width (rounded to a multiple of 8, as MnasNet's round_filters)
  layers   base - 1 | base | base + 1 (at least 1)

and all layers of a block share those choices (the factorisation). The first layer of a block carries the
stride and the width change; SkipOp ``id`` gives the identity residual to the layers whose shapes match
(the first layer of a block then has none); ``pool`` additionally gives the first layer an avg-pool + 1x1
projection shortcut. Activations are ReLU, SE squeezes to ``int(cin * 0.25)`` (the TF MnasNet rule).
"""

from __future__ import annotations

import itertools
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

__all__ = ["MnasBlock", "MnasNetSpace"]

#: (base width, stride of the first layer, base depth) — MnasNet-A1's skeleton.
SKELETON: tuple[tuple[int, int, int], ...] = (
    (16, 1, 1),
    (24, 2, 2),
    (40, 2, 3),
    (80, 2, 4),
    (112, 1, 2),
    (160, 2, 3),
    (320, 1, 1),
)
OPS = ("conv", "dwsep", "mb3", "mb6")
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIPS = ("none", "id", "pool")
FILTERS = (0.75, 1.0, 1.25)
STEM_WIDTH, HEAD_WIDTH, NUM_CLASSES = 32, 1280, 1000
FACTORS = ("op", "kernel", "se", "skip", "filters", "layers")


def depth_choices(base: int) -> tuple[int, ...]:
    return tuple(d for d in (base - 1, base, base + 1) if d >= 1)


@dataclass(frozen=True)
class MnasBlock:
    """The choices of one block; every layer of the block shares them."""

    op: str
    kernel: int
    se: float
    skip: str
    filters: float
    layers: int


@lru_cache(maxsize=1 << 14)
def _layer_spec(op: str, kernel: int, se: float, skip: str, cin: int, cout: int, stride: int) -> BlockSpec:
    """One layer of a block. Keyed by the choices a layer depends on (not ``filters`` or ``layers``), so
    blocks that differ only in those share spec instances, and so cached layers."""
    same = stride == 1 and cin == cout
    if skip == "none":
        layer_skip = "none"
    elif same:
        layer_skip = "id"
    else:
        layer_skip = "pool" if skip == "pool" else "none"
    common = dict(kernel=kernel, stride=stride, se=se, act="relu", skip=layer_skip)
    if op in ("mb3", "mb6"):
        return BlockSpec("mbconv", cin, cout, expand=float(op[2]), **common)  # type: ignore[arg-type]
    return BlockSpec(op, cin, cout, **common)  # type: ignore[arg-type]


class MnasNetSpace(Space):
    name = "mnasnet"
    description = "MnasNet factorized hierarchical space: 7 blocks x (op, kernel, SE, skip, filters, layers)"

    def __init__(self) -> None:
        self._choices: list[dict[str, tuple[Any, ...]]] = [
            {
                "op": OPS,
                "kernel": KERNELS,
                "se": SE_RATIOS,
                "skip": SKIPS,
                "filters": FILTERS,
                "layers": depth_choices(d),
            }
            for _, _, d in SKELETON
        ]
        # Choice counts per (block, factor): sampling draws every index of an architecture in one call.
        self._counts = np.array([[len(c[f]) for f in FACTORS] for c in self._choices])
        self._index = [
            {name: {v: j for j, v in enumerate(c[name])} for name in FACTORS} for c in self._choices
        ]
        # Sampled blocks are interned by their choice indices read as one mixed-radix number: architectures
        # then share block instances, which the layer caches (keyed by block) compare by identity.
        radix = np.ones_like(self._counts)
        radix[:, :-1] = np.cumprod(self._counts[:, :0:-1], axis=1)[:, ::-1]
        self._radix = radix
        self._interned: list[dict[int, MnasBlock]] = [{} for _ in SKELETON]
        self._canonical: dict[MnasBlock, MnasBlock] = {}  # mutation's children join the same instances

    @property
    def num_blocks(self) -> int:
        return len(SKELETON)

    def choices(self) -> list[dict[str, list[Any]]]:
        out = []
        for (base, stride, depth), c in zip(SKELETON, self._choices, strict=True):
            out.append(
                {
                    "base_width": [base],
                    "stride": [stride],
                    "base_layers": [depth],
                    **{k: list(v) for k, v in c.items()},
                }
            )
        return out

    def size(self) -> int:
        return int(np.prod([int(np.prod(row)) for row in self._counts], dtype=object))

    def width_of(self, index: int, filters: float, width: float = 1.0) -> int:
        return make_divisible(SKELETON[index][0] * filters * width, 8)

    # -- sampling and variation ---------------------------------------------------------------------------
    def _block(self, index: int, idx: np.ndarray) -> MnasBlock:
        c = self._choices[index]
        return MnasBlock(*(c[f][int(j)] for f, j in zip(FACTORS, idx, strict=True)))

    def sample_blocks(self, rng: np.random.Generator) -> tuple[MnasBlock, ...]:
        idx = (rng.random(self._counts.shape) * self._counts).astype(np.int64)
        codes = (idx * self._radix).sum(axis=1).tolist()
        out = []
        for i, (code, table) in enumerate(zip(codes, self._interned, strict=True)):
            block = table.get(code)
            if block is None:
                block = self._block(i, idx[i])
                block = table[code] = self._canonical.setdefault(block, block)
            out.append(block)
        return tuple(out)

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        rng = as_rng(rng)
        i = int(rng.integers(self.num_blocks))
        factor = FACTORS[int(rng.integers(len(FACTORS)))]
        allowed = self._choices[i][factor]
        block = arch.blocks[i]
        current = getattr(block, factor)
        others = [v for v in allowed if v != current]
        child = replace(block, **{factor: others[int(rng.integers(len(others)))]})
        blocks = list(arch.blocks)
        # Valid by construction, so the table stays bounded by the space's distinct blocks.
        blocks[i] = self._canonical.setdefault(child, child)
        return Arch(self.name, arch.resolution, arch.width, tuple(blocks))

    def decisions(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [(f"b{i}.{f}", tuple(c[f])) for i, c in enumerate(self._choices) for f in FACTORS]

    def build(
        self, ask: Callable[[str, tuple[Any, ...]], Any], resolution: int | None = None, width: float = 1.0
    ) -> Arch:
        res = self.checked_resolution(resolution, width)
        blocks = []
        for i, c in enumerate(self._choices):
            block = MnasBlock(*(ask(f"b{i}.{f}", tuple(c[f])) for f in FACTORS))
            self.validate_block(i, block)
            blocks.append(self._canonical.setdefault(block, block))
        return Arch(self.name, res, width, tuple(blocks))

    def _replay(self, arch: Arch) -> dict[str, Any]:
        return {f"b{i}.{f}": getattr(b, f) for i, b in enumerate(arch.blocks) for f in FACTORS}

    def encode(self, arch: Arch) -> np.ndarray:
        self.validate(arch)
        return np.array(
            [self._index[i][f][getattr(b, f)] for i, b in enumerate(arch.blocks) for f in FACTORS],
            dtype=np.int64,
        )

    def validate_block(self, index: int, block: Any) -> None:
        if not isinstance(block, MnasBlock):
            raise SpaceError(f"mnasnet block {index} must be a MnasBlock, got {type(block).__name__}")
        c = self._choices[index]
        for f in FACTORS:
            value = getattr(block, f)
            if value not in c[f]:
                allowed = ", ".join(str(v) for v in c[f])
                raise SpaceError(
                    f"mnasnet block {index}: {f} {value!r} is outside the space; allowed: {allowed}"
                )

    # -- from choices to layers ---------------------------------------------------------------------------
    @staticmethod
    def _layer_spec(block: MnasBlock, cin: int, cout: int, stride: int) -> BlockSpec:
        return _layer_spec(block.op, block.kernel, block.se, block.skip, cin, cout, stride)

    @lru_cache(maxsize=1 << 14)  # noqa: B019 - the space is a long-lived singleton; blocks repeat a lot
    def _block_specs(self, index: int, block: MnasBlock, cin: int, width: float) -> tuple[BlockSpec, ...]:
        cout = self.width_of(index, block.filters, width)
        stride = SKELETON[index][1]
        return tuple(
            self._layer_spec(block, cin if j == 0 else cout, cout, stride if j == 0 else 1)
            for j in range(block.layers)
        )

    def _stem(self, width: float) -> BlockSpec:
        return BlockSpec("conv", 3, make_divisible(STEM_WIDTH * width, 8), kernel=3, stride=2, act="relu")

    def _head(self, cin: int, width: float) -> tuple[BlockSpec, BlockSpec]:
        head_width = make_divisible(HEAD_WIDTH * max(1.0, width), 8)
        return (
            BlockSpec("conv", cin, head_width, kernel=1, act="relu"),
            BlockSpec("head", head_width, NUM_CLASSES, act="none"),
        )

    @lru_cache(maxsize=256)  # noqa: B019 - the space is a long-lived singleton
    def stem_layers(self, resolution: int, width: float) -> tuple[Layer, ...]:
        return chain_layers((self._stem(width),), (3, resolution, resolution))

    @lru_cache(maxsize=1 << 16)  # noqa: B019 - ~10^4 distinct (block, input) pairs per resolution and width
    def block_layers(
        self, index: int, block: MnasBlock, input_shape: tuple[int, int, int], width: float
    ) -> tuple[Layer, ...]:
        return chain_layers(self._block_specs(index, block, input_shape[0], width), input_shape)

    @lru_cache(maxsize=1024)  # noqa: B019
    def head_layers(self, input_shape: tuple[int, int, int], width: float) -> tuple[Layer, ...]:
        return chain_layers(self._head(input_shape[0], width), input_shape)

    def network(self, arch: Arch) -> Network:
        stem = self._stem(arch.width)
        cin, specs = stem.cout, list[BlockSpec]()
        for i, block in enumerate(arch.blocks):
            layer_specs = self._block_specs(i, block, cin, arch.width)
            specs.extend(layer_specs)
            cin = layer_specs[-1].cout
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
        stem = self._stem(width)
        hw = conv_out(res, 3, 2)
        layers = [Layer(stem, (3, res, res))]
        in_widths = {stem.cout}
        for i, c in enumerate(self._choices):
            stride = SKELETON[i][1]
            out_hw = conv_out(hw, max(KERNELS), stride)  # "same" padding: kernel size does not change it
            out_widths = sorted({self.width_of(i, f, width) for f in FILTERS})
            for op, k, se, skip, f in itertools.product(OPS, KERNELS, SE_RATIOS, SKIPS, FILTERS):
                block = MnasBlock(op, k, se, skip, f, max(c["layers"]))
                cout = self.width_of(i, f, width)
                for cin in sorted(in_widths):
                    layers.append(Layer(self._layer_spec(block, cin, cout, stride), (cin, hw, hw)))
                if block.layers > 1:
                    layers.append(Layer(self._layer_spec(block, cout, cout, 1), (cout, out_hw, out_hw)))
            in_widths, hw = set(out_widths), out_hw
        for cin in sorted(in_widths):
            conv, head = self._head(cin, width)
            layers += [Layer(conv, (cin, hw, hw)), Layer(head, (conv.cout, hw, hw))]
        return dedupe_layers(layers)

    # -- text and JSON forms ------------------------------------------------------------------------------
    @lru_cache(maxsize=1 << 13)  # noqa: B019 - every candidate of a search is written as a string
    def format_block(self, block: MnasBlock) -> str:
        return f"{block.op}_k{block.kernel}_se{block.se:g}_{block.skip}_f{block.filters!r}_l{block.layers}"

    @lru_cache(maxsize=1 << 13)  # noqa: B019 - predicting from strings parses the same tokens again and again
    def parse_block(self, token: str, index: int) -> MnasBlock:
        parts = token.strip().split("_")
        grammar = "OP_kK_seR_SKIP_fF_lN, e.g. mb6_k5_se0.25_id_f1.0_l3"
        if len(parts) != 6 or not (
            parts[1][:1] == "k" and parts[2][:2] == "se" and parts[4][:1] == "f" and parts[5][:1] == "l"
        ):
            raise SpaceError(f"malformed mnasnet block {index} {token!r}: expected {grammar}")
        try:
            block = MnasBlock(
                parts[0],
                int(parts[1][1:]),
                float(parts[2][2:]),
                parts[3],
                float(parts[4][1:]),
                int(parts[5][1:]),
            )
        except ValueError:
            raise SpaceError(f"malformed mnasnet block {index} {token!r}: expected {grammar}") from None
        if index < self.num_blocks:
            self.validate_block(index, block)
            block = self._canonical.setdefault(block, block)
        return block

    def block_to_dict(self, block: MnasBlock) -> dict[str, Any]:
        return asdict(block)

    def block_from_dict(self, doc: Mapping[str, Any], index: int) -> MnasBlock:
        if not isinstance(doc, Mapping) or set(doc) != set(FACTORS):
            raise SpaceError(
                f"mnasnet block {index} must be an object with exactly {', '.join(FACTORS)}; got {doc!r}"
            )
        try:
            return MnasBlock(
                str(doc["op"]),
                int(doc["kernel"]),
                float(doc["se"]),
                str(doc["skip"]),
                float(doc["filters"]),
                int(doc["layers"]),
            )
        except (TypeError, ValueError):
            raise SpaceError(f"mnasnet block {index}: malformed values {dict(doc)!r}") from None
