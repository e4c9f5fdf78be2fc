"""NASNet cells (Zoph et al., CVPR 2018), in the compute graph DARTS made standard.

``nasnet_op`` is one operation of a cell on one input, mapping ``cin`` to ``cout`` channels (``variant``):

  pre        ReLU, 1x1 conv + BN (the cell's input preprocessing)
  sep3/sep5  ReLU, depthwise k x k (stride), pointwise + BN, ReLU, depthwise k x k, pointwise to cout + BN
  avg3/max3  3x3 pooling (stride, padding 1, average without the padding); a ReLU-1x1-BN projection after it
             when cin != cout
  id         identity (stride 1, cin == cout); a ReLU-1x1-BN projection when cin != cout; at stride 2 the
             factorized reduction (ReLU, two stride-2 1x1 convs, one on the input shifted by a pixel, concat)

``nasnet_cell`` is a whole cell: B blocks, each ``h = op1(states[in1]) COMBINE op2(states[in2])`` where
states 0 and 1 are the two previous cells' outputs (preprocessed to ``cout`` channels) and state 2+b the
output of block b; ``add`` keeps ``cout`` channels, ``concat`` gives 2 x ``cout``. The cell's output
concatenates the states no block reads (NASNet's rule). In a reduction cell (stride 2) the ops on states
0 and 1 have stride 2.

nasprof chains blocks through one tensor, so a cell that feeds the next two cells passes both on in one: it
outputs ``concat(output, carry)`` where ``carry`` is the *next* cell's preprocessing of this cell's own input
(a 1x1 to the next cell's width, or the factorized reduction after a reduction cell) — DARTS's graph with that
operation computed one cell earlier. So a cell's input is ``concat(s1, s0)`` with ``mid`` = the channels of
the already preprocessed ``s0`` (0 for the first cell, whose single input is both). ``skip`` ``id`` means the
cell carries (``expand`` = the next cell's width / this one's), ``none`` that it is the last cell.

A latency table prices a cell by its operations at shape (``parts``): the split, the adds and the concats
between them are glue no table row covers, which is exactly the cost irregular cells add on hardware.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockFamily, BlockSpec, conv_macs, conv_params, register_block

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["OPS", "COMBINES", "CellBlock", "CellGenotype", "parse_genotype", "cell_parts", "NasOp",
           "NasCell"]

#: Operations a block may apply to an input (the NASNet paper's list, cut to those mobile runtimes run well).
OPS = ("sep3", "sep5", "avg3", "max3", "id")
#: How a block combines its two operations' outputs.
COMBINES = ("add", "concat")
_OP_VARIANTS = ("pre", *OPS)


@dataclass(frozen=True)
class CellBlock:
    """One block of a cell: ``op1(states[in1]) combine op2(states[in2])``."""

    in1: int
    in2: int
    op1: str
    op2: str
    combine: str

    def to_string(self) -> str:
        return f"{self.in1}.{self.in2}.{self.op1}.{self.op2}.{self.combine}"


@dataclass(frozen=True)
class CellGenotype:
    """A cell: its blocks in order (block b may read states 0 .. b + 1)."""

    blocks: tuple[CellBlock, ...]

    def to_string(self) -> str:
        return "_".join(b.to_string() for b in self.blocks)

    def unused(self) -> tuple[int, ...]:
        """Block states (2 + b) no later block reads: the cell's output, concatenated in order."""
        read = {i for b in self.blocks for i in (b.in1, b.in2)}
        return tuple(2 + b for b in range(len(self.blocks)) if 2 + b not in read)

    def state_channels(self, c: int) -> list[int]:
        """Channels of every state: the two inputs, then each block's output."""
        return [c, c] + [c if b.combine == "add" else 2 * c for b in self.blocks]

    def output_channels(self, c: int) -> int:
        ch = self.state_channels(c)
        return sum(ch[j] for j in self.unused())


def check_block(b: int, block: CellBlock) -> None:
    """``SpaceError`` naming what is wrong with block ``b``."""
    for name in ("in1", "in2"):
        v = getattr(block, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise SpaceError(f"NASNet block {b}: {name} must be a state index >= 0, got {v!r}")
        if v > b + 1:
            raise SpaceError(
                f"NASNet block {b}: {name} = {v} points forward; block {b} may read the cell inputs (0, 1) "
                f"or earlier blocks (2 .. {b + 1})"
            )
    for name in ("op1", "op2"):
        if getattr(block, name) not in OPS:
            raise SpaceError(f"NASNet block {b}: unknown operation {getattr(block, name)!r}; use one of "
                             f"{', '.join(OPS)}")
    if block.combine not in COMBINES:
        raise SpaceError(f"NASNet block {b}: unknown combine {block.combine!r}; use add or concat")


@lru_cache(maxsize=1 << 14)
def parse_genotype(text: str) -> CellGenotype:
    """``in1.in2.op1.op2.combine`` per block, blocks joined by ``_`` (``0.1.sep3.id.add_...``)."""
    grammar = "blocks IN1.IN2.OP1.OP2.COMBINE joined by '_', e.g. 0.1.sep3.id.add_2.0.avg3.max3.concat"
    if not isinstance(text, str) or not text:
        raise SpaceError(f"malformed NASNet cell {text!r}: expected {grammar}")
    blocks = []
    for b, token in enumerate(text.split("_")):
        parts = token.split(".")
        if len(parts) != 5:
            raise SpaceError(f"malformed NASNet cell block {b} {token!r}: expected {grammar}")
        try:
            i1, i2 = int(parts[0]), int(parts[1])
        except ValueError:
            raise SpaceError(f"malformed NASNet cell block {b} {token!r}: expected {grammar}") from None
        block = CellBlock(i1, i2, parts[2], parts[3], parts[4])
        check_block(b, block)
        blocks.append(block)
    return CellGenotype(tuple(blocks))


def _fr_hw(h: int) -> int:
    return (h - 1) // 2 + 1


@register_block("nasnet_op")
class NasOp(BlockFamily):
    key_fields = (("stride", "stride"),)
    variants = _OP_VARIANTS

    def check(self, spec: BlockSpec) -> None:
        if spec.variant == "":
            raise SpaceError(f"nasnet_op: give the operation as variant, one of {', '.join(_OP_VARIANTS)}")
        if spec.stride not in (1, 2) or (spec.variant == "pre" and spec.stride != 1):
            allowed = "1" if spec.variant == "pre" else "1 or 2"
            raise SpaceError(f"nasnet_op {spec.variant}: stride must be {allowed}, got {spec.stride}")
        if spec.variant == "id" and spec.stride == 2 and spec.cout % 2:
            raise SpaceError("nasnet_op id at stride 2 (factorized reduction) needs an even cout, "
                             f"got {spec.cout}")

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        if spec.stride == 1:
            return h, w
        return _fr_hw(h), _fr_hw(w)

    def _proj(self, spec: BlockSpec) -> bool:
        """Pools and the identity project to ``cout`` with a 1x1 when the widths differ."""
        return spec.cin != spec.cout

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = self.output_hw(spec, h, w)
        v, cin, cout = spec.variant, spec.cin, spec.cout
        if v == "pre":
            return conv_macs(cin, cout, 1, h, w)
        if v.startswith("sep"):
            k = int(v[3:])
            return (conv_macs(cin, cin, k, ho, wo, cin) + conv_macs(cin, cin, 1, ho, wo)
                    + conv_macs(cin, cin, k, ho, wo, cin) + conv_macs(cin, cout, 1, ho, wo))
        if v == "id" and spec.stride == 2:  # the shifted path computes one more row and column (see nn)
            return conv_macs(cin, cout // 2, 1, ho, wo) + conv_macs(cin, cout // 2, 1, ho + 1, wo + 1)
        return conv_macs(cin, cout, 1, ho, wo) if self._proj(spec) else 0

    def params(self, spec: BlockSpec) -> int:
        v, cin, cout = spec.variant, spec.cin, spec.cout
        if v == "pre":
            return conv_params(cin, cout, 1)
        if v.startswith("sep"):
            k = int(v[3:])
            dw = conv_params(cin, cin, k, cin, bias=False)  # no BN between depthwise and pointwise
            return 2 * dw + conv_params(cin, cin, 1) + conv_params(cin, cout, 1)
        if v == "id" and spec.stride == 2:
            return 2 * conv_params(cin, cout // 2, 1)
        return conv_params(cin, cout, 1) if self._proj(spec) else 0

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.nasnet import NasOpModule

        return NasOpModule(spec)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        out = [(BlockSpec("nasnet_op", 12, 8, variant="pre"), (12, 6, 6))]
        for v in OPS:
            out.append((BlockSpec("nasnet_op", 8, 16, stride=2, variant=v), (8, 7, 7)))
            out.append((BlockSpec("nasnet_op", 16, 8, variant=v), (16, 6, 6)))
        out.append((BlockSpec("nasnet_op", 8, 8, variant="avg3"), (8, 5, 5)))
        return out


@lru_cache(maxsize=1 << 14)
def op_spec(variant: str, cin: int, cout: int, stride: int = 1) -> BlockSpec:
    """One ``nasnet_op`` spec (shared instances: cells ask for the same operations again and again)."""
    return BlockSpec("nasnet_op", cin, cout, stride=stride, variant=variant)


@lru_cache(maxsize=1 << 14)
def cell_plan(spec: BlockSpec) -> dict[str, Any]:
    """What a ``nasnet_cell`` spec computes: ``pre0`` (or None), ``pre1``, per block the two op specs (None
    for a plain identity) with the state each reads, the output states and the ``carry`` op (or None)."""
    g = parse_genotype(spec.variant)
    c, s = spec.cout, spec.stride
    s1 = spec.cin - spec.mid
    ch = g.state_channels(c)
    ops: list[tuple[tuple[int, BlockSpec | None], tuple[int, BlockSpec | None]]] = []
    for block in g.blocks:
        pair = []
        for j, name in ((block.in1, block.op1), (block.in2, block.op2)):
            stride = s if j < 2 else 1
            plain = name == "id" and stride == 1 and ch[j] == c
            pair.append((j, None if plain else op_spec(name, ch[j], c, stride)))
        ops.append((pair[0], pair[1]))
    carry = None
    if spec.skip == "id":
        nxt = round(c * spec.expand)
        carry = op_spec("id", s1, nxt, 2) if s == 2 else op_spec("pre", s1, nxt)
    return {
        "genotype": g,
        "pre0": op_spec("pre", spec.cin, c) if spec.mid == 0 else None,
        "pre1": op_spec("pre", s1, c),
        "ops": tuple(ops),
        "out": g.unused(),
        "carry": carry,
        "s1": s1,
    }


def cell_parts(spec: BlockSpec, input_shape: tuple[int, int, int]) -> tuple[Any, ...]:
    """The operations of a cell as ``Layer``s at their input shapes, in the order the cell runs them."""
    from nasprof.space.layer import shared_layer

    _, h, w = input_shape
    plan = cell_plan(spec)
    c = spec.cout
    ho, wo = (h, w) if spec.stride == 1 else (_fr_hw(h), _fr_hw(w))
    ch = plan["genotype"].state_channels(c)
    parts = []
    if plan["pre0"] is not None:
        parts.append(shared_layer(plan["pre0"], (spec.cin, h, w)))
    parts.append(shared_layer(plan["pre1"], (plan["s1"], h, w)))
    for pair in plan["ops"]:
        for j, op in pair:
            if op is not None:
                parts.append(shared_layer(op, (ch[j], h, w) if j < 2 else (ch[j], ho, wo)))
    if plan["carry"] is not None:
        parts.append(shared_layer(plan["carry"], (plan["s1"], h, w)))
    return tuple(parts)


@register_block("nasnet_cell")
class NasCell(BlockFamily):
    key_fields = (("c", "cout"), ("stride", "stride"), ("s0", "mid"), ("next", "expand"), ("carry", "skip"))

    def accepts_variant(self, variant: str) -> bool:
        return bool(variant)  # the genotype is parsed (with a message naming the problem) in check()

    def check(self, spec: BlockSpec) -> None:
        parse_genotype(spec.variant)
        if spec.stride not in (1, 2):
            raise SpaceError(f"nasnet_cell: stride must be 1 (normal) or 2 (reduction), got {spec.stride}")
        if spec.mid not in (0, spec.cout):
            raise SpaceError("nasnet_cell: mid (channels of the preprocessed second input) must be 0 or "
                             f"cout ({spec.cout}), got {spec.mid}")
        if spec.cin <= spec.mid:
            raise SpaceError(f"nasnet_cell: the input ({spec.cin} channels) must hold more than the "
                             f"{spec.mid} of the second input")
        if spec.skip not in ("id", "none"):
            raise SpaceError("nasnet_cell: skip must be id (carries to the next cell) or none, "
                             f"got {spec.skip!r}")
        if spec.cout % 2 or (spec.skip == "id" and round(spec.cout * spec.expand) % 2):
            raise SpaceError("nasnet_cell: widths must be even (the factorized reduction halves them)")

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return (h, w) if spec.stride == 1 else (_fr_hw(h), _fr_hw(w))

    def output_channels(self, spec: BlockSpec) -> int:
        g = parse_genotype(spec.variant)
        carry = round(spec.cout * spec.expand) if spec.skip == "id" else 0
        return g.output_channels(spec.cout) + carry

    def parts(self, spec: BlockSpec, input_shape: tuple[int, int, int]) -> tuple[Any, ...] | None:
        return cell_parts(spec, input_shape)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        return sum(p.macs for p in cell_parts(spec, (spec.cin, h, w)))

    def params(self, spec: BlockSpec) -> int:
        plan = cell_plan(spec)
        specs: Sequence[BlockSpec | None] = [plan["pre0"], plan["pre1"], plan["carry"],
                                             *(op for pair in plan["ops"] for _, op in pair)]
        return sum(s.params() for s in specs if s is not None)

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.nasnet import NasCellModule

        return NasCellModule(spec, cell_plan(spec))

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        g1 = "0.1.sep3.id.add_1.2.avg3.max3.concat_3.0.sep5.id.add"
        g2 = "0.0.max3.sep3.concat_1.2.id.avg3.add"
        return [
            (BlockSpec("nasnet_cell", 12, 8, skip="id", variant=g1), (12, 6, 6)),
            (BlockSpec("nasnet_cell", 24, 8, mid=8, skip="id", expand=2.0, variant=g2), (24, 6, 6)),
            (BlockSpec("nasnet_cell", 40, 16, stride=2, mid=16, skip="id", variant=g1), (40, 7, 7)),
            (BlockSpec("nasnet_cell", 40, 16, mid=16, variant=g2), (40, 5, 5)),
        ]
