"""A NASNet cell-level space (Zoph et al., CVPR 2018): an irregular, multi-branch counterpart of the chains.

The network: a stem (3x3 conv stride 2 to 32, 3x3 conv stride 2 to 48: 56 x 56 at 224 px), then three stages
of ``NORMAL_PER_STAGE`` normal cells separated by two reduction cells (stride 2, twice the width), then global
pooling and a 1000-way linear layer. Cell widths are 24, 48 and 96 (times the width multiplier).

A cell has ``BLOCKS`` blocks; block b picks two inputs among the cell's two inputs (the previous two cells'
outputs) and blocks 0 .. b-1, an operation for each (``OPS``) and a combine (add or concat); the cell outputs
the concatenation of the blocks nobody reads. The searchable records are five cells: the normal cell of each
stage and the two reduction cells. NASNet itself shares one normal and one reduction cell across the network
(give the same cell to every stage to get that, as ``nasnet_a_arch`` does); letting each stage have its own is
the superset. Per cell there are prod_b (2 + b)^2 x M^2 x N choices, the lecture's (2 x 2 x M x M x N)^B with
the real number of candidate inputs of each block.

How cells become one chain of layers, and how tables price them (by operation at shape), is in
``nasprof.space.blocks.nasnet``. The space has no integer genotypes (10^14 choices per cell is more than a
per-block table can hold): searches over it run on ``Arch`` objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from nasprof.errors import SpaceError
from nasprof.space.arch import Arch
from nasprof.space.blocks.base import BlockSpec, conv_out, make_divisible
from nasprof.space.blocks.nasnet import (
    COMBINES,
    OPS,
    CellBlock,
    CellGenotype,
    check_block,
    op_spec,
    parse_genotype,
)
from nasprof.space.layer import Layer, shared_layer
from nasprof.space.network import Network
from nasprof.space.registry import get_space
from nasprof.space.spaces.base import Space, as_rng, chain_layers, dedupe_layers

__all__ = ["NasNetSpace", "NASNET_A_NORMAL", "NASNET_A_REDUCTION", "nasnet_a_arch"]

BLOCKS = 5
NORMAL_PER_STAGE = 2
STAGE_WIDTHS = (24, 48, 96)
STEM = ((32, "relu"), (48, "none"))
NUM_CLASSES = 1000
#: Record kinds in order: normal cells of stage 0, reduction, stage 1, reduction, stage 2.
KINDS = ("normal", "reduction", "normal", "reduction", "normal")
FACTORS = ("in1", "in2", "op1", "op2", "combine")

#: NASNet-A's cells (Zoph et al., Fig. 4; the released model's hidden-state indices), with its 7x7 separable
#: convolutions as 5x5 ones. NASNet-A's normal cell also concatenates its input h_{i-1} into the output; here
#: a cell outputs only unread blocks. ``nasnet_a_arch`` puts them in every stage, as NASNet does.
NASNET_A_NORMAL = "0.1.sep5.sep3.add_1.1.sep5.sep3.add_1.0.avg3.id.add_1.1.avg3.avg3.add_0.0.sep3.id.add"
NASNET_A_REDUCTION = "0.1.sep5.sep5.add_0.1.max3.sep5.add_0.1.avg3.sep5.add_3.2.id.avg3.add_2.0.sep3.max3.add"


def nasnet_a_arch(resolution: int | None = None, width: float = 1.0) -> Arch:
    """NASNet-A's normal and reduction cells in every stage of this space's network."""
    space = NasNetSpace._instance()
    cells = {"normal": parse_genotype(NASNET_A_NORMAL), "reduction": parse_genotype(NASNET_A_REDUCTION)}
    res = space.checked_resolution(resolution, width)
    return Arch(space.name, res, width, tuple(cells[k] for k in KINDS))


def _cells(kind_index: int) -> int:
    return NORMAL_PER_STAGE if KINDS[kind_index] == "normal" else 1


def _stage(kind_index: int) -> int:
    """Width index (0, 1, 2) of record ``kind_index``: a reduction cell already has the next stage's width."""
    return (kind_index + 1) // 2


class NasNetSpace(Space):
    name = "nasnet"
    description = "NASNet cells: 3 stages of normal cells, 2 reduction cells; 5 blocks per cell"

    def __init__(self) -> None:
        self._canonical: dict[CellGenotype, CellGenotype] = {}

    @staticmethod
    def _instance() -> NasNetSpace:
        space = get_space("nasnet")
        assert isinstance(space, NasNetSpace)
        return space

    def _intern(self, g: CellGenotype) -> CellGenotype:
        return self._canonical.setdefault(g, g)

    @property
    def num_blocks(self) -> int:
        return len(KINDS)

    def _block_choices(self, b: int) -> dict[str, tuple[Any, ...]]:
        inputs = tuple(range(b + 2))
        return {"in1": inputs, "in2": inputs, "op1": OPS, "op2": OPS, "combine": COMBINES}

    def choices(self) -> list[dict[str, list[Any]]]:
        return [
            {"kind": [kind], "cells": [_cells(i)], "blocks": [BLOCKS], "ops": list(OPS),
             "combine": list(COMBINES), "inputs of block b": ["0 .. b+1"]}
            for i, kind in enumerate(KINDS)
        ]

    def cell_size(self) -> int:
        return math.prod((b + 2) ** 2 * len(OPS) ** 2 * len(COMBINES) for b in range(BLOCKS))

    def size(self) -> int:
        return self.cell_size() ** len(KINDS)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        m, n = len(OPS), len(COMBINES)
        out["formula"] = (
            f"per cell prod over blocks b=0..{BLOCKS - 1} of (2+b)^2 * M^2 * N with M={m} ops, "
            f"N={n} combines = {self.cell_size():.3e} (the lecture's (2*2*M*M*N)^B = "
            f"{(4 * m * m * n) ** BLOCKS:.3e} counts 2 inputs per block); "
            f"{len(KINDS)} cells: {self.cell_size():.3e}^{len(KINDS)}"
        )
        return out

    # -- sampling and variation ---------------------------------------------------------------------------
    def _random_cell(self, rng: np.random.Generator) -> CellGenotype:
        blocks = []
        for b in range(BLOCKS):
            c = self._block_choices(b)
            blocks.append(CellBlock(*(c[f][int(rng.integers(len(c[f])))] for f in FACTORS)))
        return self._intern(CellGenotype(tuple(blocks)))

    def sample_blocks(self, rng: np.random.Generator) -> tuple[CellGenotype, ...]:
        return tuple(self._random_cell(rng) for _ in KINDS)

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        rng = as_rng(rng)
        i, b = int(rng.integers(self.num_blocks)), int(rng.integers(BLOCKS))
        factor = FACTORS[int(rng.integers(len(FACTORS)))]
        cell = arch.blocks[i]
        old = cell.blocks[b]
        others = [v for v in self._block_choices(b)[factor] if v != getattr(old, factor)]
        values = {f: getattr(old, f) for f in FACTORS}
        values[factor] = others[int(rng.integers(len(others)))]
        new = CellBlock(**values)
        cells = list(arch.blocks)
        cells[i] = self._intern(CellGenotype(cell.blocks[:b] + (new,) + cell.blocks[b + 1 :]))
        return Arch(self.name, arch.resolution, arch.width, tuple(cells))

    def decisions(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [(f"c{i}.b{b}.{f}", self._block_choices(b)[f])
                for i in range(len(KINDS)) for b in range(BLOCKS) for f in FACTORS]

    def build(
        self, ask: Callable[[str, tuple[Any, ...]], Any], resolution: int | None = None, width: float = 1.0
    ) -> Arch:
        res = self.checked_resolution(resolution, width)
        cells = []
        for i in range(len(KINDS)):
            blocks = []
            for b in range(BLOCKS):
                c = self._block_choices(b)
                blocks.append(CellBlock(*(ask(f"c{i}.b{b}.{f}", c[f]) for f in FACTORS)))
            cells.append(self._intern(CellGenotype(tuple(blocks))))
        return Arch(self.name, res, width, tuple(cells))

    def _replay(self, arch: Arch) -> dict[str, Any]:
        return {f"c{i}.b{b}.{f}": getattr(blk, f)
                for i, cell in enumerate(arch.blocks) for b, blk in enumerate(cell.blocks) for f in FACTORS}

    def encode(self, arch: Arch) -> np.ndarray:
        self.validate(arch)
        return np.array(
            [self._block_choices(b)[f].index(getattr(blk, f))
             for cell in arch.blocks for b, blk in enumerate(cell.blocks) for f in FACTORS],
            dtype=np.int64,
        )

    def validate_block(self, index: int, block: Any) -> None:
        if not isinstance(block, CellGenotype):
            raise SpaceError(f"nasnet cell {index} must be a CellGenotype, got {type(block).__name__}")
        if len(block.blocks) != BLOCKS:
            raise SpaceError(f"nasnet cell {index} must have {BLOCKS} blocks, got {len(block.blocks)}")
        for b, blk in enumerate(block.blocks):
            if not isinstance(blk, CellBlock):
                raise SpaceError(f"nasnet cell {index} block {b} must be a CellBlock, "
                                 f"got {type(blk).__name__}")
            try:
                check_block(b, blk)
            except SpaceError as exc:
                raise SpaceError(f"nasnet cell {index}: {exc}") from None

    # -- from choices to layers ---------------------------------------------------------------------------
    @staticmethod
    def _widths(width: float) -> tuple[int, ...]:
        return tuple(make_divisible(c * width, 8) for c in STAGE_WIDTHS)

    @staticmethod
    def _stem_specs(width: float) -> tuple[BlockSpec, ...]:
        specs, cin = [], 3
        for c, act in STEM:
            cout = make_divisible(c * width, 8)
            specs.append(BlockSpec("conv", cin, cout, kernel=3, stride=2, act=act))
            cin = cout
        return tuple(specs)

    def _positions(self, width: float) -> list[tuple[int, int, int, bool, bool]]:
        """Every cell of the network: (record index, width, next cell's width, first, last)."""
        widths = self._widths(width)
        cells = [(i, widths[_stage(i)]) for i in range(len(KINDS)) for _ in range(_cells(i))]
        out = []
        for k, (i, c) in enumerate(cells):
            nxt = cells[k + 1][1] if k + 1 < len(cells) else c
            out.append((i, c, nxt, k == 0, k == len(cells) - 1))
        return out

    def _record_specs(self, index: int, cell: CellGenotype, cin: int, width: float) -> tuple[BlockSpec, ...]:
        specs = []
        for i, c, nxt, first, last in self._positions(width):
            if i != index:
                continue
            spec = _cell_spec(cell.to_string(), cin, c, nxt, KINDS[i] == "reduction", first, last)
            specs.append(spec)
            cin = spec.family.output_channels(spec)
        return tuple(specs)

    @lru_cache(maxsize=256)  # noqa: B019 - the space is a long-lived singleton
    def stem_layers(self, resolution: int, width: float) -> tuple[Layer, ...]:
        return chain_layers(self._stem_specs(width), (3, resolution, resolution))

    @lru_cache(maxsize=1 << 15)  # noqa: B019 - cells repeat a lot in a search
    def block_layers(
        self, index: int, block: CellGenotype, input_shape: tuple[int, int, int], width: float
    ) -> tuple[Layer, ...]:
        return chain_layers(self._record_specs(index, block, input_shape[0], width), input_shape)

    @lru_cache(maxsize=1024)  # noqa: B019
    def head_layers(self, input_shape: tuple[int, int, int], width: float) -> tuple[Layer, ...]:
        return chain_layers((BlockSpec("head", input_shape[0], NUM_CLASSES, act="none"),), input_shape)

    def network(self, arch: Arch) -> Network:
        stem = self._stem_specs(arch.width)
        cin, specs = stem[-1].cout, list[BlockSpec]()
        for i, cell in enumerate(arch.blocks):
            part = self._record_specs(i, cell, cin, arch.width)
            specs.extend(part)
            cin = part[-1].family.output_channels(part[-1])
        return Network(
            name=self.name,
            resolution=arch.resolution,
            stem=stem,
            blocks=tuple(specs),
            head=(BlockSpec("head", cin, NUM_CLASSES, act="none"),),
            width=arch.width,
            info={"arch": arch.to_string()},
        )

    def distinct_layers(self, resolution: int | None = None, width: float = 1.0) -> list[Layer]:
        """Every operation a cell of the space can run, at its shape (the rows of a latency table), plus the
        stem and every head; cells themselves are priced by these (``Layer.parts``)."""
        res = self.checked_resolution(resolution, width)
        layers = list(self.stem_layers(res, width))
        hw = layers[-1].output_shape[1]
        s1_options = {layers[-1].output_shape[0]}
        for i, c, nxt, first, last in self._positions(width):
            reduction = KINDS[i] == "reduction"
            out_hw = conv_out(hw, 3, 2) if reduction else hw
            for s1 in sorted(s1_options):
                cin = s1 if first else s1 + c
                if first:
                    layers.append(shared_layer(op_spec("pre", cin, c, 1), (cin, hw, hw)))
                layers.append(shared_layer(op_spec("pre", s1, c, 1), (s1, hw, hw)))
                if not last:
                    carry = op_spec("id", s1, nxt, 2) if reduction else op_spec("pre", s1, nxt, 1)
                    layers.append(shared_layer(carry, (s1, hw, hw)))
            for op in OPS:
                stride = 2 if reduction else 1
                if not (op == "id" and stride == 1):  # on a cell input
                    layers.append(shared_layer(op_spec(op, c, c, stride), (c, hw, hw)))
                # on a concat block's output
                layers.append(shared_layer(op_spec(op, 2 * c, c, 1), (2 * c, out_hw, out_hw)))
            # A cell outputs 1 to BLOCKS unread block states of c or 2c channels: any multiple of c up to 2B.
            s1_options = {m * c for m in range(1, 2 * BLOCKS + 1)}
            hw = out_hw
        for cin in sorted(s1_options):
            layers.append(shared_layer(BlockSpec("head", cin, NUM_CLASSES, act="none"), (cin, hw, hw)))
        return dedupe_layers(layers)

    # -- text and JSON forms ------------------------------------------------------------------------------
    def format_block(self, block: CellGenotype) -> str:
        return block.to_string()

    def parse_block(self, token: str, index: int) -> CellGenotype:
        g = parse_genotype(token.strip())
        if index < self.num_blocks:
            self.validate_block(index, g)
            g = self._intern(g)
        return g

    def block_to_dict(self, block: CellGenotype) -> dict[str, Any]:
        return {"blocks": [{f: getattr(b, f) for f in FACTORS} for b in block.blocks]}

    def block_from_dict(self, doc: Mapping[str, Any], index: int) -> CellGenotype:
        blocks = doc.get("blocks") if isinstance(doc, Mapping) else None
        if not isinstance(blocks, list) or not all(isinstance(b, Mapping) and set(b) == set(FACTORS)
                                                   for b in blocks):
            raise SpaceError(f"nasnet cell {index} must be an object {{\"blocks\": [...]}} whose blocks have "
                             f"exactly {', '.join(FACTORS)}; got {doc!r}")
        try:
            g = CellGenotype(tuple(CellBlock(int(b["in1"]), int(b["in2"]), str(b["op1"]), str(b["op2"]),
                                             str(b["combine"])) for b in blocks))
        except (TypeError, ValueError):
            raise SpaceError(f"nasnet cell {index}: malformed values {doc!r}") from None
        self.validate_block(index, g)
        return self._intern(g)


@lru_cache(maxsize=1 << 14)
def _cell_spec(
    genotype: str, cin: int, c: int, nxt: int, reduction: bool, first: bool, last: bool
) -> BlockSpec:
    return BlockSpec("nasnet_cell", cin, c, stride=2 if reduction else 1, mid=0 if first else c,
                     expand=nxt / c, skip="none" if last else "id", variant=genotype)
