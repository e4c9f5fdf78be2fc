"""NAS-Bench-201 (Dong & Yang, ICLR 2020): the cell, its operations, the ResNet reduction block and the head.

The reference is AutoDL-Projects' ``TinyNetwork``/``InferCell`` (``xautodl/models/cell_infers``). A cell has
four nodes; node 0 is the cell's input and node j the sum over i < j of ``op_{i->j}(node i)``; the cell
outputs node 3. The six edges, in the order of NB201's strings, are (0->1), (0->2), (1->2), (0->3), (1->3),
(2->3) (``EDGES``). Operations (``NB201_OPS``, in genotype-code order):

  none          the reference's ``Zero``: ``x * 0`` (a Mul in the graph, kept as the reference has it)
  skip_connect  identity (no node)
  nor_conv_1x1  ReLU, 1x1 conv (no bias) + BN
  nor_conv_3x3  ReLU, 3x3 conv (no bias, padding 1) + BN
  avg_pool_3x3  3x3 average pool, stride 1, padding 1, not counting the padding

Families registered here:

  nb201_op        one operation at ``cin == cout`` channels (``variant`` = the operation): what a table
                  prices a cell by (``skip_connect`` has no node and so no row)
  nb201_cell      a whole cell (``variant`` = its six operations, short names joined by ``.``, see
                  ``cell_variant``); as in the reference, node j is Python's ``sum`` of its inputs
  nb201_resblock  the reference's ``ResNetBasicblock`` at stride 2: ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN
                  plus a shortcut: 2x2 average pooling (stride 2, no padding), 1x1 conv without bias or BN
  nb201_head      the reference's ``lastact`` (BN, ReLU), global average pooling and the classifier. Its BN
                  follows a sum, not a conv, so it stays a ``BatchNormalization`` in the graph (as in the
                  reference's export); its vectors are not weights of a Conv/Gemm, so they are not counted.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockFamily, BlockSpec, conv_macs, conv_out, conv_params, register_block

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "NB201_OPS",
    "EDGES",
    "NB201_EXAMPLE",
    "parse_cell",
    "format_cell",
    "cell_variant",
    "variant_ops",
    "Nb201Op",
    "Nb201Cell",
    "Nb201ResBlock",
    "Nb201Head",
]

#: NAS-Bench-201's operations; the index is the genotype code (0..4).
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The cell's edges (from node, to node), in the order of NB201's strings.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: A standard NB201 string (the best CIFAR architecture of the benchmark), for messages and examples.
NB201_EXAMPLE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
#: Short names used inside block variants and table keys.
SHORT = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv1", "nor_conv_3x3": "conv3",
         "avg_pool_3x3": "avg3"}
_LONG = {v: k for k, v in SHORT.items()}
NODES = 4


def _bad(text: object, what: str) -> SpaceError:
    return SpaceError(
        f"not a NAS-Bench-201 cell string {text!r}: {what}; expected 3 nodes joined by '+', node j listing "
        f"OP~i for i = 0 .. j-1 with OP one of {', '.join(NB201_OPS)}, e.g. {NB201_EXAMPLE}"
    )


@lru_cache(maxsize=1 << 15)
def parse_cell(text: str) -> tuple[str, ...]:
    """The six operations (in ``EDGES`` order) of a standard NB201 string, or ``SpaceError`` saying what is
    wrong with it."""
    if not isinstance(text, str):
        raise _bad(text, "it is not a string")
    s = text.strip()
    if not (s.startswith("|") and s.endswith("|")):
        raise _bad(text, "it must start and end with '|'")
    nodes = s.split("+")
    if len(nodes) != NODES - 1:
        raise _bad(text, f"it has {len(nodes)} node(s), a cell has {NODES - 1} (nodes 1, 2, 3)")
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise _bad(text, f"node {j} {node!r} must be enclosed in '|'")
        items = node[1:-1].split("|")
        if len(items) != j:
            raise _bad(text, f"node {j} has {len(items)} input(s), it must have {j} (nodes 0 .. {j - 1})")
        for i, item in enumerate(items):
            op, sep, src = item.partition("~")
            if not sep:
                raise _bad(text, f"node {j} input {item!r} lacks '~'")
            if op not in NB201_OPS:
                raise _bad(text, f"unknown operation {op!r} on node {j}")
            if src != str(i):
                raise _bad(text, f"node {j} input {i} reads node {src!r}, it must read node {i}")
            ops.append(op)
    # Built node by node (0->1 | 0->2, 1->2 | 0->3, 1->3, 2->3): exactly EDGES' order.
    return tuple(ops)


def format_cell(ops: tuple[str, ...]) -> str:
    """The standard NB201 string of six operations in ``EDGES`` order."""
    check_ops(ops)
    nodes = []
    for j in range(1, NODES):
        nodes.append("|" + "|".join(f"{ops[k]}~{i}" for k, (i, t) in enumerate(EDGES) if t == j) + "|")
    return "+".join(nodes)


def check_ops(ops: Any) -> None:
    if not isinstance(ops, tuple) or len(ops) != len(EDGES):
        raise SpaceError(f"a NAS-Bench-201 cell is a tuple of {len(EDGES)} operations, got {ops!r}")
    for op in ops:
        if op not in NB201_OPS:
            raise SpaceError(f"unknown NAS-Bench-201 operation {op!r}; use one of {', '.join(NB201_OPS)}")


def cell_variant(ops: tuple[str, ...]) -> str:
    """The ``nb201_cell`` variant of six operations: short names joined by ``.`` (``conv3.conv3.avg3...``)."""
    check_ops(ops)
    return ".".join(SHORT[op] for op in ops)


@lru_cache(maxsize=1 << 15)
def variant_ops(variant: str) -> tuple[str, ...]:
    parts = variant.split(".")
    if len(parts) != len(EDGES) or not all(p in _LONG for p in parts):
        raise SpaceError(
            f"nb201_cell variant {variant!r} must be {len(EDGES)} of {', '.join(_LONG)} joined by '.', "
            "e.g. conv3.conv3.avg3.skip.conv3.skip"
        )
    return tuple(_LONG[p] for p in parts)


def _check_same(spec: BlockSpec) -> None:
    if spec.cin != spec.cout or spec.stride != 1:
        raise SpaceError(f"{spec.op}: keeps its input's shape: cin ({spec.cin}) must equal cout "
                         f"({spec.cout}) "
                         f"and stride must be 1 (got {spec.stride})")


def _op_macs(op: str, c: int, h: int, w: int) -> int:
    if op == "nor_conv_1x1":
        return conv_macs(c, c, 1, h, w)
    if op == "nor_conv_3x3":
        return conv_macs(c, c, 3, h, w)
    return 0


def _op_params(op: str, c: int) -> int:
    if op == "nor_conv_1x1":
        return conv_params(c, c, 1)  # BN folded: weights plus a bias
    if op == "nor_conv_3x3":
        return conv_params(c, c, 3)
    return 0


@lru_cache(maxsize=1 << 12)
def op_spec(op: str, c: int) -> BlockSpec:
    return BlockSpec("nb201_op", c, c, act="none", variant=op)


@register_block("nb201_op")
class Nb201Op(BlockFamily):
    variants = NB201_OPS

    def check(self, spec: BlockSpec) -> None:
        _check_same(spec)

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return h, w

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        return _op_macs(spec.variant, spec.cin, h, w)

    def params(self, spec: BlockSpec) -> int:
        return _op_params(spec.variant, spec.cin)

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.nb201 import make_op

        return make_op(spec.variant, spec.cin)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        # skip_connect is the identity: a graph without nodes, nothing to export or price.
        return [(op_spec(op, 8), (8, 6, 5)) for op in NB201_OPS if op != "skip_connect"]


@register_block("nb201_cell")
class Nb201Cell(BlockFamily):
    def accepts_variant(self, variant: str) -> bool:
        return bool(variant)  # parsed, with a message naming the problem, in check()

    def check(self, spec: BlockSpec) -> None:
        variant_ops(spec.variant)
        _check_same(spec)

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return h, w

    def parts(self, spec: BlockSpec, input_shape: tuple[int, int, int]) -> tuple[Any, ...] | None:
        from nasprof.space.layer import shared_layer

        return tuple(shared_layer(op_spec(op, spec.cin), input_shape)
                     for op in variant_ops(spec.variant) if op != "skip_connect")

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        return sum(_op_macs(op, spec.cin, h, w) for op in variant_ops(spec.variant))

    def params(self, spec: BlockSpec) -> int:
        return sum(_op_params(op, spec.cin) for op in variant_ops(spec.variant))

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.nb201 import InferCell

        return InferCell(variant_ops(spec.variant), spec.cin, EDGES)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [
            (BlockSpec("nb201_cell", 8, 8, act="none", variant=cell_variant(parse_cell(NB201_EXAMPLE))),
             (8, 6, 5)),
            (BlockSpec("nb201_cell", 8, 8, act="none", variant="none.conv1.skip.avg3.none.conv3"), (8, 4, 4)),
        ]


def _half(size: int) -> int:
    return conv_out(size, 3, 2)


@register_block("nb201_resblock")
class Nb201ResBlock(BlockFamily):
    key_fields = (("stride", "stride"),)

    def check(self, spec: BlockSpec) -> None:
        if spec.stride != 2 or spec.kernel != 3:
            raise SpaceError(f"nb201_resblock: the reduction block has kernel 3 and stride 2, got kernel "
                             f"{spec.kernel} and stride {spec.stride}")

    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return _half(h), _half(w)

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        ho, wo = _half(h), _half(w)
        return (conv_macs(spec.cin, spec.cout, 3, ho, wo) + conv_macs(spec.cout, spec.cout, 3, ho, wo)
                + conv_macs(spec.cin, spec.cout, 1, h // 2, w // 2))

    def params(self, spec: BlockSpec) -> int:
        return (conv_params(spec.cin, spec.cout, 3) + conv_params(spec.cout, spec.cout, 3)
                + conv_params(spec.cin, spec.cout, 1, bias=False))

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.nb201 import ResNetBasicBlock

        return ResNetBasicBlock(spec.cin, spec.cout)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [(resblock_spec(8, 16), (8, 6, 4))]


def resblock_spec(cin: int, cout: int) -> BlockSpec:
    return BlockSpec("nb201_resblock", cin, cout, kernel=3, stride=2, act="none")


@register_block("nb201_head")
class Nb201Head(BlockFamily):
    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        return 1, 1

    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        return spec.cin * spec.cout

    def params(self, spec: BlockSpec) -> int:
        return (spec.cin + 1) * spec.cout

    def build(self, spec: BlockSpec) -> torch.nn.Module:
        from nasprof.space.nn.nb201 import Nb201HeadModule

        return Nb201HeadModule(spec.cin, spec.cout)

    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        return [(BlockSpec("nb201_head", 16, 10, act="none"), (16, 3, 2))]
