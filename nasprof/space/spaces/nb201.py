"""NAS-Bench-201 (Dong & Yang, ICLR 2020): one cell of six edges, repeated in a fixed ResNet-like skeleton.

The network is AutoDL-Projects' ``TinyNetwork``: stem (3x3 conv + BN to ``C``), ``N`` cells at ``C``, a ResNet
basic block to ``2C`` (stride 2), ``N`` cells, a basic block to ``4C``, ``N`` cells, then BN + ReLU, global
average pooling and a linear classifier. Every cell is the same; the searchable "blocks" of the space are the
cell's six edges (``EDGES``), each one operation of ``NB201_OPS``: 5^6 = 15,625 architectures.

An architecture's text form is NB201's own string (``|nor_conv_3x3~0|+|...|``). The network options go beside
it (``Arch.options``): ``input`` (C, H, W), ``outputs``, ``C`` and ``N``; defaults are CIFAR-100's
(3x32x32, 100 outputs, C = 16, N = 5). Height and width must be multiples of 4 (the two stride-2 blocks add a
strided conv to a 2x2 pooling, which only agree on even sizes).

Isomorphism classes (``canonical``) follow NAS-Bench-201's ``to_unique_str(consider_zero=True)``: an edge is
zero if its operation is ``none`` or its source is zero, ``skip_connect`` passes its source's expression on,
other operations wrap it; a node is the sorted sum of its edges' terms, zero terms included. That rule gives
the benchmark's 6,466 classes, and the same partition as the benchmark's released ``rep_arch_idx``.

NAS-Bench-201's architecture index is the order of its released file, not a product order: ``all_archs``
enumerates in genotype order (edge (0->1) the most significant digit, ``NB201_OPS`` order).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from nasprof.errors import SpaceError
from nasprof.space.arch import Arch
from nasprof.space.blocks.base import BlockSpec, conv_out
from nasprof.space.blocks.nb201 import (
    EDGES,
    NB201_EXAMPLE,
    NB201_OPS,
    cell_variant,
    format_cell,
    op_spec,
    parse_cell,
    resblock_spec,
)
from nasprof.space.layer import Layer, shared_layer
from nasprof.space.network import Network
from nasprof.space.spaces.base import Space, as_rng, chain_layers, dedupe_layers

__all__ = ["Nb201Space", "NB201_OPS", "NB201_DEFAULTS", "unique_string", "parse_input"]

#: Default network options (CIFAR-100): the order of ``Arch.options`` is sorted by name.
NB201_DEFAULTS: dict[str, Any] = {"C": 16, "N": 5, "input": (3, 32, 32), "outputs": 100}
#: Decision names, one per edge: ``e01.op`` is the operation of edge (0 -> 1).
DECISIONS = tuple(f"e{i}{j}.op" for i, j in EDGES)


def parse_input(value: Any) -> tuple[int, int, int]:
    """``"CxHxW"`` (``1x52x16``) or a 3-sequence of positive integers, as ``(C, H, W)``."""
    hint = "give the input as CxHxW with positive integers, H and W multiples of 4, e.g. --input 1x52x16"
    parts: Any = value.lower().split("x") if isinstance(value, str) else value
    try:
        dims = tuple(int(str(p).strip()) if isinstance(p, str) else p for p in parts)
    except (TypeError, ValueError):
        raise SpaceError(f"malformed input shape {value!r}: {hint}") from None
    if len(dims) != 3 or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
        raise SpaceError(f"malformed input shape {value!r}: {hint}")
    c, h, w = (int(d) for d in dims)
    if c < 1 or h < 1 or w < 1:
        raise SpaceError(f"input shape {c}x{h}x{w} has a dimension below 1: {hint}")
    if c > MAX_INPUT_SIDE or h > MAX_INPUT_SIDE or w > MAX_INPUT_SIDE:
        raise SpaceError(f"input shape {c}x{h}x{w} is too large: each dimension must be at most "
                         f"{MAX_INPUT_SIDE} (the largest resolution of every space)")
    if h % 4 or w % 4:
        raise SpaceError(f"input shape {c}x{h}x{w}: NAS-Bench-201's two stride-2 blocks need H and W "
                         f"multiples of 4: {hint}")
    return c, h, w


#: Largest value of each option: far beyond NAS-Bench-201's (C 16, N 5, 10-120 outputs), low enough that a
#: typo (--cells-per-stage 2147483648) is refused instead of building a network that fills the memory.
MAX_OPTIONS = {"C": 1024, "N": 100, "outputs": 100_000}
#: Largest input channels, height and width (other spaces' resolutions stop at 1024 too).
MAX_INPUT_SIDE = 1024


def _positive(name: str, value: Any, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpaceError(f"nb201 option {name} must be an integer >= 1, got {value!r}; e.g. {flag}")
    if value > MAX_OPTIONS[name]:
        raise SpaceError(f"nb201 option {name} must be at most {MAX_OPTIONS[name]:,}, got {int(value):,}; "
                         f"e.g. {flag}")
    return int(value)


@lru_cache(maxsize=1 << 15)
def unique_string(ops: tuple[str, ...]) -> str:
    """NAS-Bench-201's isomorphism key of a cell (``to_unique_str(consider_zero=True)``, see the module)."""
    expr = {0: "0"}
    for j in (1, 2, 3):
        terms = []
        for k, (i, t) in enumerate(EDGES):
            if t != j:
                continue
            if ops[k] == "none" or expr[i] == "#":
                terms.append("#")
            elif ops[k] == "skip_connect":
                terms.append(expr[i])
            else:
                terms.append(f"({expr[i]})@{ops[k]}")
        expr[j] = "+".join(sorted(terms))
    return expr[3]


@lru_cache(maxsize=1)
def _classes() -> dict[str, tuple[str, ...]]:
    """Isomorphism key -> the class representative (the member first in genotype order)."""
    reps: dict[str, tuple[str, ...]] = {}
    for ops in itertools.product(NB201_OPS, repeat=len(EDGES)):
        reps.setdefault(unique_string(ops), ops)
    return reps


class Nb201Space(Space):
    name = "nb201"
    description = "NAS-Bench-201: one 4-node cell of 6 edges (5 ops each) in a fixed 3-stage network"
    default_resolution = 32

    # -- options ------------------------------------------------------------------------------------------
    def normalize_options(
        self, options: tuple[tuple[str, Any], ...] | Mapping[str, Any], resolution: int | None = None
    ) -> tuple[tuple[str, Any], ...]:
        """Every option (defaults filled in, ``input`` as a (C, H, W) tuple), sorted by name. Without an
        ``input``, a ``resolution`` gives a 3-channel square input."""
        given = dict(options.items() if isinstance(options, Mapping) else options)
        unknown = sorted(set(given) - set(NB201_DEFAULTS))
        if unknown:
            raise SpaceError(f"nb201 has no option {unknown[0]!r}; its options: {', '.join(NB201_DEFAULTS)}")
        if "input" in given:
            shape = parse_input(given["input"])
        elif resolution is not None and resolution != NB201_DEFAULTS["input"][1]:
            shape = parse_input((3, resolution, resolution))
        else:
            shape = NB201_DEFAULTS["input"]
        out = {
            "C": _positive("C", given.get("C", NB201_DEFAULTS["C"]), "--cell-channels 16"),
            "N": _positive("N", given.get("N", NB201_DEFAULTS["N"]), "--cells-per-stage 5"),
            "input": shape,
            "outputs": _positive("outputs", given.get("outputs", NB201_DEFAULTS["outputs"]), "--outputs 100"),
        }
        return tuple(sorted(out.items()))

    def checked_resolution(self, resolution: int | None, width: float) -> int:
        """The input height: a positive multiple of 4 (``None``: 32); the width multiplier must be 1 (NB201
        scales with ``C``)."""
        res = self.default_resolution if resolution is None else resolution
        if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or res < 4 or res % 4:
            raise SpaceError(f"nb201 resolution (input height) must be a multiple of 4, got {res!r}; "
                             "set the whole shape with --input CxHxW")
        if res > MAX_INPUT_SIDE:
            raise SpaceError(f"nb201 resolution (input height) must be at most {MAX_INPUT_SIDE}, got {res:,}")
        if width != 1.0:
            raise SpaceError(f"nb201 has no width multiplier (got {width!r}); set the cell channels with "
                             "--cell-channels instead")
        return int(res)

    def arch(self, ops: tuple[str, ...] | str, **options: Any) -> Arch:
        """The architecture of six operations (or an NB201 string) with network ``options``."""
        cell = parse_cell(ops) if isinstance(ops, str) else tuple(ops)
        opts = self.normalize_options(options)
        return Arch(self.name, dict(opts)["input"][1], 1.0, cell, opts)

    def from_cell_string(self, text: str, **options: Any) -> Arch:
        return self.arch(parse_cell(text.strip()), **options)

    def arch_string(self, arch: Arch) -> str:
        """``Arch.to_string``: NB201's own string (the options are not part of it)."""
        return format_cell(tuple(arch.blocks))

    # -- the space ----------------------------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        return len(EDGES)

    def choices(self) -> list[dict[str, list[Any]]]:
        return [{"edge": [f"{i}->{j}"], "op": list(NB201_OPS)} for i, j in EDGES]

    def size(self) -> int:
        return len(NB201_OPS) ** len(EDGES)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["classes"] = self.num_classes()
        out["options"] = {k: "x".join(map(str, v)) if isinstance(v, tuple) else v
                          for k, v in NB201_DEFAULTS.items()}
        out["example"] = NB201_EXAMPLE
        return out

    def sample_blocks(self, rng: np.random.Generator) -> tuple[str, ...]:
        return tuple(NB201_OPS[int(i)] for i in rng.integers(len(NB201_OPS), size=len(EDGES)))

    def sample(  # type: ignore[override]
        self,
        n: int,
        seed: int | np.random.Generator | None = None,
        resolution: int | None = None,
        width: float = 1.0,
        *,
        unique: bool = False,
        **options: Any,
    ) -> list[Arch]:
        """``n`` architectures, every edge uniform; with ``unique``, of ``n`` distinct isomorphism classes
        (their representatives, at most 6,466). ``options`` are the network options (``input``, ...)."""
        if n < 0:
            raise SpaceError(f"cannot sample {n} architectures; use n >= 0")
        rng = as_rng(seed)
        self.checked_resolution(resolution, width)
        opts = self.normalize_options(options, resolution)
        if not unique:
            return [Arch(self.name, 0, 1.0, self.sample_blocks(rng), opts) for _ in range(n)]
        if n > self.num_classes():
            raise SpaceError(f"nb201 has {self.num_classes()} isomorphism classes; not {n}")
        reps = list(_classes().values())
        picks = rng.choice(len(reps), size=n, replace=False)
        return [Arch(self.name, 0, 1.0, reps[int(i)], opts) for i in picks]

    def unique(self, n: int, seed: int | np.random.Generator | None = None, **options: Any) -> list[Arch]:
        """``n`` representatives of distinct isomorphism classes, drawn uniformly among the classes."""
        return self.sample(n, seed, unique=True, **options)

    def num_classes(self) -> int:
        """Number of isomorphism classes (6,466)."""
        return len(_classes())

    def canonical(self, arch: Arch) -> Arch:
        """The representative of ``arch``'s isomorphism class (same options)."""
        self.validate(arch)
        rep = _classes()[unique_string(tuple(arch.blocks))]
        return arch if rep == arch.blocks else Arch(self.name, arch.resolution, 1.0, rep, arch.options)

    def all_archs(self, **options: Any) -> list[Arch]:
        """The 15,625 architectures in genotype order (NAS-Bench-201's index order is its file's)."""
        opts = self.normalize_options(options)
        return [Arch(self.name, 0, 1.0, ops, opts) for ops in itertools.product(NB201_OPS, repeat=len(EDGES))]

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        rng = as_rng(rng)
        k = int(rng.integers(len(EDGES)))
        others = [op for op in NB201_OPS if op != arch.blocks[k]]
        ops = list(arch.blocks)
        ops[k] = others[int(rng.integers(len(others)))]
        return Arch(self.name, arch.resolution, 1.0, tuple(ops), arch.options)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        child = super().crossover(a, b, rng)
        return Arch(self.name, a.resolution, 1.0, child.blocks, a.options)

    def decisions(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [(name, NB201_OPS) for name in DECISIONS]

    def build(
        self, ask: Callable[[str, tuple[Any, ...]], Any], resolution: int | None = None, width: float = 1.0
    ) -> Arch:
        res = self.checked_resolution(resolution, width)
        return Arch(self.name, res, 1.0, tuple(ask(name, NB201_OPS) for name in DECISIONS))

    def _replay(self, arch: Arch) -> dict[str, Any]:
        return dict(zip(DECISIONS, arch.blocks, strict=True))

    def encode(self, arch: Arch) -> np.ndarray:
        self.validate(arch)
        return np.array([NB201_OPS.index(op) for op in arch.blocks], dtype=np.int64)

    def validate_block(self, index: int, block: Any) -> None:
        if block not in NB201_OPS:
            i, j = EDGES[index] if index < len(EDGES) else ("?", "?")
            raise SpaceError(f"nb201 edge {i}->{j}: unknown operation {block!r}; use {', '.join(NB201_OPS)}")

    # -- from choices to layers ---------------------------------------------------------------------------
    @staticmethod
    def _stem_spec(cin: int, c: int) -> BlockSpec:
        return BlockSpec("conv", cin, c, kernel=3, act="none")

    @staticmethod
    def _head_spec(cin: int, outputs: int) -> BlockSpec:
        return BlockSpec("nb201_head", cin, outputs, act="none")

    @staticmethod
    @lru_cache(maxsize=1 << 12)
    def _body_specs(ops: tuple[str, ...], c: int, n: int) -> tuple[BlockSpec, ...]:
        variant = cell_variant(ops)
        specs: list[BlockSpec] = []
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage:
                specs.append(resblock_spec(width // 2, width))
            specs += [BlockSpec("nb201_cell", width, width, act="none", variant=variant)] * n
        return tuple(specs)

    def network(self, arch: Arch) -> Network:
        o = dict(arch.options)
        (cin, h, w), c, n = o["input"], o["C"], o["N"]
        return Network(
            name=self.name,
            resolution=h,
            stem=(self._stem_spec(cin, c),),
            blocks=self._body_specs(tuple(arch.blocks), c, n),
            head=(self._head_spec(4 * c, o["outputs"]),),
            in_channels=cin,
            image_width=w,
            info={"arch": arch.to_string(), "input": f"{cin}x{h}x{w}", "outputs": str(o["outputs"]),
                  "C": str(c), "N": str(n)},
        )

    @lru_cache(maxsize=1 << 14)  # noqa: B019 - the space is a long-lived singleton
    def _layers_of(self, ops: tuple[str, ...], options: tuple[tuple[str, Any], ...]) -> tuple[Layer, ...]:
        o = dict(options)
        cin, c = o["input"][0], o["C"]
        body = self._body_specs(ops, c, o["N"])
        specs = (self._stem_spec(cin, c), *body, self._head_spec(4 * c, o["outputs"]))
        return chain_layers(specs, o["input"])

    def arch_layers(self, arch: Arch) -> tuple[Layer, ...]:
        """Stem, the 3N cells and two reduction blocks, head: equal to ``network(arch).layers()``."""
        return self._layers_of(tuple(arch.blocks), arch.options)

    def stem_layers(self, resolution: int, width: float) -> tuple[Layer, ...]:
        """The stem for a 3-channel ``resolution`` x ``resolution`` input at the default ``C``."""
        return chain_layers((self._stem_spec(3, NB201_DEFAULTS["C"]),), (3, resolution, resolution))

    def block_layers(
        self, index: int, block: Any, input_shape: tuple[int, int, int], width: float
    ) -> tuple[Layer, ...]:
        """What edge ``index`` adds to a cell fed ``input_shape``: its operation there (nothing for
        ``skip_connect``). The edges do not chain (they are branches of one cell): ``arch_layers`` is
        the network's own list, and ``chain_layout`` is refused."""
        self.validate_block(index, block)
        if block == "skip_connect":
            return ()
        return (shared_layer(op_spec(block, input_shape[0]), input_shape),)

    def head_layers(self, input_shape: tuple[int, int, int], width: float) -> tuple[Layer, ...]:
        return chain_layers((self._head_spec(input_shape[0], NB201_DEFAULTS["outputs"]),), input_shape)

    def chain_layout(self, resolution: int | None = None, width: float = 1.0) -> Any:
        raise SpaceError(
            "nb201's six edges are branches of one cell, not a chain of blocks, so integer-genotype pricing "
            "(ChainLayout) does not apply; price architectures with arch.layers() (a cell's table rows are "
            "its operations, Layer.parts)"
        )

    def distinct_layers(
        self, resolution: int | None = None, width: float = 1.0, **options: Any
    ) -> list[Layer]:
        """Every layer a latency table needs for the network ``options`` (``resolution`` = a square
        3-channel input when no ``input`` is given): the stem, every operation at each stage's shape, the two
        reduction blocks and the head."""
        self.checked_resolution(resolution, width)
        o = dict(self.normalize_options(options, resolution))
        (cin, h, w), c = o["input"], o["C"]
        layers = list(chain_layers((self._stem_spec(cin, c),), (cin, h, w)))
        for stage in range(3):
            ch = c << stage
            if stage:
                layers.append(shared_layer(resblock_spec(ch // 2, ch), (ch // 2, h, w)))
                h, w = conv_out(h, 3, 2), conv_out(w, 3, 2)
            layers += [shared_layer(op_spec(op, ch), (ch, h, w)) for op in NB201_OPS if op != "skip_connect"]
        layers.append(shared_layer(self._head_spec(4 * c, o["outputs"]), (4 * c, h, w)))
        return dedupe_layers(layers)

    # -- text and JSON forms ------------------------------------------------------------------------------
    def format_block(self, block: str) -> str:
        return block

    def parse_block(self, token: str, index: int) -> str:
        op = token.strip()
        if index < self.num_blocks:
            self.validate_block(index, op)
        return op

    def block_to_dict(self, block: str) -> dict[str, Any]:
        return {"op": block}

    def block_from_dict(self, doc: Mapping[str, Any], index: int) -> str:
        op = doc.get("op") if isinstance(doc, Mapping) else None
        if not isinstance(op, str):
            raise SpaceError(f"nb201 edge {index} must be an object {{\"op\": ...}}, got {doc!r}")
        self.validate_block(index, op)
        return op
