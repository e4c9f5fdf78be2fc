"""Integer genotypes: a batch of architectures as a numpy array, searched and priced without ``Arch`` objects.

A search that proposes 10^6 candidates a second cannot build an ``Arch`` (and its layers) per candidate. Here
an architecture is one row of an ``(n, blocks)`` int32 array: per block, the index of its choice among the
block's combinations (its decisions' choice indices read as one mixed-radix number, the first decision most
significant). Sampling every decision uniformly is then sampling every code uniformly — one uniform draw
per code — and mutation and crossover are a few array operations.

``Genotypes`` (sampling, mutation, crossover, decode, encode) needs nothing from a space but its named
decisions (``Space.decisions``/``Space.build``), grouped into blocks by the name's prefix (``b3.kernel`` ->
block 3). One assumption: whether a decision of a block exists (a layer deeper than the stage's depth) depends
only on that block's own decisions.

``ChainLayout`` prices a batch. The layers of block *i* depend only on its choice and the shape entering it
(``Space.block_layers``), and the shape leaving it is one of a handful. So for every block, every shape that
can enter it (its *context*) and every code, the layout knows the block's layers and the context it passes
on; walking a batch through the chain is one gather per block. ``ChainLayout.table(fn, ...)`` turns any
per-layer quantity (latency of a table entry, MACs, parameters) into per-(context, code) sums, and
``ChainTable.__call__(codes)`` adds them up over a batch: exact (the same layers as ``arch.layers()``, summed
in float64), and the same for every space whose blocks chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from nasprof.errors import SpaceError

if TYPE_CHECKING:
    from nasprof.space.arch import Arch
    from nasprof.space.layer import Layer
    from nasprof.space.spaces.base import Space

__all__ = ["Genotypes", "ChainLayout", "ChainTable"]

#: Largest number of combinations one block may have (int32 codes, tables of this many entries per context).
MAX_BLOCK_CODES = 1 << 20

Codes = NDArray[np.int32]


class Genotypes:
    """The integer-genotype view of one space: uniform sampling, mutation, crossover, decode and encode."""

    def __init__(self, space: Space) -> None:
        self.space = space
        decisions = space.decisions()
        groups: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
        for name, values in decisions:
            groups.setdefault(name.split(".", 1)[0], []).append((name, tuple(values)))
        if len(groups) != space.num_blocks:
            raise SpaceError(
                f"space {space.name!r} names decisions of {len(groups)} blocks but has {space.num_blocks}; "
                "its decision names must start with the block ('b3.kernel')"
            )
        self.groups: tuple[tuple[tuple[str, tuple[Any, ...]], ...], ...] = tuple(
            tuple(g) for g in groups.values()
        )
        self.num_blocks = len(self.groups)
        self.max_digits = max(len(g) for g in self.groups)
        # counts[g, d] choices of decision d of block g (1 for padding); radix[g, d] its place value.
        self.counts = np.ones((self.num_blocks, self.max_digits), dtype=np.int64)
        for g, group in enumerate(self.groups):
            self.counts[g, : len(group)] = [len(values) for _, values in group]
        self.radix = np.ones_like(self.counts)
        self.radix[:, :-1] = np.cumprod(self.counts[:, :0:-1], axis=1)[:, ::-1]
        self.sizes = self.counts.prod(axis=1)
        self._sizes_f = self.sizes.astype(np.float64)
        if int(self.sizes.max()) > MAX_BLOCK_CODES:
            raise SpaceError(
                f"space {space.name!r} has a block of {float(self.sizes.max()):.3g} combinations; integer "
                f"genotypes hold at most {MAX_BLOCK_CODES} per block, so what samples them (space quality, "
                "space edf) does not cover this space (searches run on architecture objects instead)"
            )

    # -- codes <-> decisions -----------------------------------------------------------------------------
    def digits(self, codes: Codes) -> NDArray[np.int64]:
        """``(n, blocks, max_digits)`` choice indices (padding digits are 0)."""
        c = self.check(codes)
        return (c[:, :, None].astype(np.int64) // self.radix[None]) % self.counts[None]

    def _answers(self, row: Sequence[int]) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for g, (group, code) in enumerate(zip(self.groups, row, strict=True)):
            for d, (name, values) in enumerate(group):
                answers[name] = values[(int(code) // int(self.radix[g, d])) % len(values)]
        return answers

    def decode(self, codes: Codes, resolution: int | None = None, width: float = 1.0) -> list[Arch]:
        """The architectures of ``codes`` (builds ``Arch`` objects: for what is shown or exported)."""
        from nasprof.space.arch import Arch

        c = self.check(codes)
        res = self.space.checked_resolution(resolution, width)
        records, name = self.records, self.space.name
        return [
            Arch(name, res, width, tuple(r[code] for r, code in zip(records, row, strict=True)))
            for row in c.tolist()
        ]

    def encode(self, archs: Sequence[Arch]) -> Codes:
        """Codes of ``archs``; decisions an architecture does not make (inactive ones) read as index 0."""
        out = np.zeros((len(archs), self.num_blocks), dtype=np.int32)
        for i, arch in enumerate(archs):
            params = self.space.params(arch)
            for g, group in enumerate(self.groups):
                code = 0
                for d, (name, values) in enumerate(group):
                    if name in params:
                        code += values.index(params[name]) * int(self.radix[g, d])
                out[i, g] = code
        return out

    def check(self, codes: Any) -> Codes:
        """``codes`` as an ``(n, blocks)`` int32 array, or ``SpaceError`` saying what is wrong with it."""
        arr = np.asarray(codes)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != self.num_blocks or arr.dtype.kind not in "iu":
            raise SpaceError(
                f"{self.space.name} genotypes are an integer array of shape (n, {self.num_blocks}); got "
                f"{arr.dtype} of shape {arr.shape}"
            )
        if arr.size and (arr.min() < 0 or (arr >= self.sizes[None, :]).any()):
            g = int(np.nonzero((arr < 0) | (arr >= self.sizes[None, :]))[1][0])
            raise SpaceError(
                f"{self.space.name} genotype code of block {g} must lie in 0..{int(self.sizes[g]) - 1}"
            )
        return arr.astype(np.int32, copy=False)

    # -- variation ---------------------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> Codes:
        """``n`` codes, every decision uniform and independent (as ``Space.sample`` draws them).

        One double per code, row by row: the stream does not depend on how a run is cut into batches, so a
        search asking 256 at a time and one asking 65,536 at a time propose the same candidates.
        """
        u = rng.random((n, self.num_blocks))
        u *= self._sizes_f
        return u.astype(np.int32)

    def crossover(self, a: Codes, b: Codes, rng: np.random.Generator) -> Codes:
        """Uniform crossover per block: each block of each child comes whole from ``a`` or ``b``."""
        return np.where(rng.random(a.shape) < 0.5, a, b).astype(np.int32, copy=False)

    def mutate(self, codes: Codes, rng: np.random.Generator) -> Codes:
        """Each row with one existing decision of one block changed to a different allowed value.

        The block is uniform among blocks that have a decision to change, the decision uniform among the
        block's decisions that exist (a layer past a stage's depth is not mutated: that would change nothing).
        """
        self._ensure_scan()
        n = codes.shape[0]
        block = self._mutable[rng.integers(self._mutable.size, size=n)]
        rows = np.arange(n)
        code = codes[rows, block].astype(np.int64)
        active = self._active[block, code]
        keys = np.where(active, rng.random((n, self.max_digits)), -1.0)
        digit = np.argmax(keys, axis=1)
        radix, count = self.radix[block, digit], self.counts[block, digit]
        old = (code // radix) % count
        new = (old + 1 + (rng.random(n) * (count - 1)).astype(np.int64)) % count
        out = codes.copy()
        out[rows, block] = code + (new - old) * radix
        return out

    def _scan(self) -> tuple[list[list[Any]], NDArray[np.bool_]]:
        """One ``build`` per code c, with every block at code c at once (clipped to its own size): each
        block's record per code (so decoding is a lookup), and which decisions exist per block and code,
        ``(blocks, max code, max_digits)``. Decisions with one value never count (they cannot change)."""
        where = {name: (g, d) for g, group in enumerate(self.groups) for d, (name, _) in enumerate(group)}
        asked: set[str] = set()
        answers: dict[str, Any] = {}

        def record(name: str, values: tuple[Any, ...]) -> Any:
            asked.add(name)
            return answers[name]

        top = int(self.sizes.max())
        records: list[list[Any]] = [[] for _ in self.groups]
        active = np.zeros((self.num_blocks, top, self.max_digits), dtype=bool)
        for c in range(top):
            asked.clear()
            answers = self._answers([c % int(s) for s in self.sizes])
            arch = self.space.build(record)
            for g in range(self.num_blocks):
                if c < self.sizes[g]:
                    records[g].append(arch.blocks[g])
            for name in asked:
                g, d = where[name]
                if c < self.sizes[g]:
                    active[g, c, d] = True
        active &= (self.counts > 1)[:, None, :]
        return records, active

    @property
    def records(self) -> list[list[Any]]:
        """Per block, its choice record (``MnasBlock``, ``Mbv2Stage``) at each code."""
        self._ensure_scan()
        return self._records

    def _ensure_scan(self) -> None:
        if "_records" not in self.__dict__:
            self._records, self._active = self._scan()
            self._mutable = np.nonzero(self._active.any(axis=(1, 2)))[0]
            if not self._mutable.size:
                raise SpaceError(f"space {self.space.name!r} has no decision with two or more values")


@dataclass(frozen=True)
class ChainTable:
    """Per-(context, code) sums of per-layer quantities over a ``ChainLayout``; ``table(codes)`` is
    ``(quantities, n)``: one row per quantity, one column per genotype.

    ``constant`` is added once per architecture (the stem, plus what the caller passed as ``constant``). An
    entry is NaN where a quantity was NaN for one of its layers (a latency table without that key).
    """

    layout: ChainLayout
    blocks: tuple[NDArray[np.float64], ...]  # per block: (quantities, contexts * codes)
    head: NDArray[np.float64]  # (quantities, final contexts)
    constant: NDArray[np.float64]  # (quantities,)

    @property
    def complete(self) -> bool:
        """False when some (context, code) entry is NaN (a layer the quantity has no value for)."""
        return not any(np.isnan(b).any() for b in (*self.blocks, self.head))

    def __call__(self, codes: Codes) -> NDArray[np.float64]:
        idx, last = self.layout.walk(codes)
        q = self.constant.size
        out = np.empty((q, last.size), dtype=np.float64)
        for k in range(q):
            row = out[k]
            row.fill(self.constant[k])
            for b, i in zip(self.blocks, idx, strict=True):
                row += b[k].take(i)
            row += self.head[k].take(last)
        return out


class ChainLayout:
    """Every block's layers for every (entering shape, code), and the shape each passes on (module doc)."""

    def __init__(self, genotypes: Genotypes, resolution: int | None = None, width: float = 1.0) -> None:
        space = genotypes.space
        self.genotypes = genotypes
        self.resolution = space.checked_resolution(resolution, width)
        self.width = float(width)
        gt = genotypes
        records = gt.records
        self.stem: tuple[Layer, ...] = space.stem_layers(self.resolution, width)
        shapes = [self.stem[-1].output_shape]
        self.entries: list[list[tuple[Layer, ...]]] = []  # per block: layers of (context * codes + code)
        self.next_context: list[NDArray[np.int32]] = []
        for g, blocks in enumerate(records):
            out_shapes: dict[tuple[int, int, int], int] = {}
            layers_of: list[tuple[Layer, ...]] = []
            nxt: list[int] = []
            for shape in shapes:
                for block in blocks:
                    layers = space.block_layers(g, block, shape, width)
                    out = layers[-1].output_shape if layers else shape
                    layers_of.append(layers)
                    nxt.append(out_shapes.setdefault(out, len(out_shapes)))
            self.entries.append(layers_of)
            self.next_context.append(np.array(nxt, dtype=np.int32))
            shapes = list(out_shapes)
        self.head_entries = [space.head_layers(shape, width) for shape in shapes]
        self.contexts = tuple(len(e) // int(s) for e, s in zip(self.entries, gt.sizes, strict=True))

    def walk(self, codes: Codes) -> tuple[list[NDArray[np.int32]], NDArray[np.int32]]:
        """Per block, each row's entry index; and each row's context after the last block."""
        c = self.genotypes.check(codes)
        sizes = self.genotypes.sizes.tolist()
        idx: list[NDArray[np.int32]] = []
        ctx: NDArray[np.int32] | None = None  # block 0 has one entering shape
        for g, size in enumerate(sizes):
            col = c[:, g]
            if ctx is None:
                i = col
            else:  # in place: entry = context * codes + code
                i = ctx
                i *= size
                i += col
            idx.append(i)
            ctx = self.next_context[g].take(i)
        assert ctx is not None
        return idx, ctx

    def table(self, *quantities: Callable[[Layer], float], constant: Sequence[float] = ()) -> ChainTable:
        """A ``ChainTable`` of per-layer ``quantities`` (each called once per distinct layer)."""
        q = len(quantities)
        if not q:
            raise SpaceError("a chain table needs at least one per-layer quantity")
        values: dict[Layer, NDArray[np.float64]] = {}

        def value(layer: Layer) -> NDArray[np.float64]:
            v = values.get(layer)
            if v is None:
                v = values[layer] = np.array([float(f(layer)) for f in quantities], dtype=np.float64)
            return v

        def sums(entries: Sequence[tuple[Layer, ...]]) -> NDArray[np.float64]:
            out = np.zeros((len(entries), q), dtype=np.float64)
            for e, layers in enumerate(entries):
                for layer in layers:
                    out[e] += value(layer)
            return out

        const = np.zeros(q) if not constant else np.asarray(constant, dtype=np.float64).reshape(q)
        const = const + sums([self.stem])[0]
        blocks = tuple(np.ascontiguousarray(sums(e).T) for e in self.entries)
        return ChainTable(self, blocks, np.ascontiguousarray(sums(self.head_entries).T), const)

    def macs(self, codes: Codes) -> NDArray[np.int64]:
        """Total MACs of each row (stem and head included), as ``arch.macs``."""
        table = self.__dict__.get("_macs")
        if table is None:
            table = self.__dict__["_macs"] = self.table(lambda layer: layer.macs)
        return table(codes)[0].astype(np.int64)

    @property
    def size(self) -> int:
        """Number of (context, code) entries over all blocks."""
        return sum(len(e) for e in self.entries) + len(self.head_entries)

    def __repr__(self) -> str:
        return (
            f"ChainLayout({self.genotypes.space.name}, resolution={self.resolution}, width={self.width:g}, "
            f"contexts={self.contexts}, entries={self.size})"
        )

