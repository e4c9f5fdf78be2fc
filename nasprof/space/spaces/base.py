"""The ``Space`` contract: choices, counting, sampling, mutation, crossover, validation, table enumeration.

Everything here is pure Python + numpy (no torch): search calls ``sample``/``mutate``/``crossover`` 10^4-10^5
times. Randomness comes from a ``numpy.random.Generator`` (an int seed is accepted and turned into one).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nasprof.errors import SpaceError
from nasprof.space.arch import Arch
from nasprof.space.blocks.base import BlockSpec
from nasprof.space.layer import Layer, shared_layer
from nasprof.space.network import Network

if TYPE_CHECKING:
    from nasprof.space.genotype import ChainLayout, Genotypes

__all__ = ["Space", "as_rng", "chain_layers", "dedupe_layers"]

#: Bound of the per-space cache of blocks known to be valid (a few thousand distinct blocks per space).
_VALID_CACHE = 1 << 16


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is not None and (not isinstance(rng, (int, np.integer)) or rng < 0):
        # numpy would raise a bare ValueError deep in SeedSequence; say which value is wrong instead.
        raise SpaceError(f"seed must be a non-negative integer, got {rng!r}")
    return np.random.default_rng(rng)


def chain_layers(specs: Iterable[BlockSpec], input_shape: tuple[int, int, int]) -> tuple[Layer, ...]:
    """``specs`` applied one after another to ``input_shape``, as shared ``Layer`` instances."""
    out = []
    shape = input_shape
    for spec in specs:
        layer = shared_layer(spec, shape)
        out.append(layer)
        shape = layer.output_shape
    return tuple(out)


def dedupe_layers(layers: Iterable[Layer]) -> list[Layer]:
    """First layer per key, in order (the table builder measures each key once)."""
    seen: dict[str, Layer] = {}
    for layer in layers:
        seen.setdefault(layer.key, layer)
    return list(seen.values())


class Space(abc.ABC):
    """A search space. Subclasses define the per-block choice record and how choices become layers."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_resolution: ClassVar[int] = 224

    @property
    @abc.abstractmethod
    def num_blocks(self) -> int:
        """Number of searchable blocks (tokens in the compact string)."""

    @abc.abstractmethod
    def choices(self) -> list[dict[str, list[Any]]]:
        """Per block, each factor's allowed values (for ``space show`` and error messages)."""

    @abc.abstractmethod
    def size(self) -> int:
        """Number of distinct architectures (exact integer)."""

    @abc.abstractmethod
    def sample_blocks(self, rng: np.random.Generator) -> tuple[Any, ...]:
        """One uniformly random choice record per block."""

    @abc.abstractmethod
    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        """A copy of ``arch`` with one factor of one block changed to a different allowed value."""

    @abc.abstractmethod
    def validate_block(self, index: int, block: Any) -> None:
        """Raise ``SpaceError`` naming the allowed values if ``block`` is outside the space."""

    @abc.abstractmethod
    def network(self, arch: Arch) -> Network:
        """The concrete network (stem + layers + head) for ``arch``."""

    # -- the fast path: layers block by block --------------------------------------------------------------
    # The layers of block i depend only on (i, the block's choices, the shape entering it, width), and a
    # search meets the same blocks over and over: implementations cache these three (the same instances
    # come back), so an architecture's layers cost one cache hit per block instead of building a Network.
    # ``arch_layers`` chains them; it must equal ``network(arch).layers()`` (tests check it on samples).
    @abc.abstractmethod
    def stem_layers(self, resolution: int, width: float) -> tuple[Layer, ...]:
        """The fixed layers before block 0 for a ``resolution`` x ``resolution`` image (at least one)."""

    @abc.abstractmethod
    def block_layers(
        self, index: int, block: Any, input_shape: tuple[int, int, int], width: float
    ) -> tuple[Layer, ...]:
        """The layers of searchable block ``index`` with choices ``block`` fed ``input_shape`` (C, H, W)."""

    @abc.abstractmethod
    def head_layers(self, input_shape: tuple[int, int, int], width: float) -> tuple[Layer, ...]:
        """The fixed layers after the last block, fed ``input_shape`` (C, H, W)."""

    def arch_layers(self, arch: Arch) -> tuple[Layer, ...]:
        """Every layer of ``arch`` (stem and head included), equal to ``network(arch).layers()``."""
        layers = list(self.stem_layers(arch.resolution, arch.width))
        shape = layers[-1].output_shape
        for i, block in enumerate(arch.blocks):
            part = self.block_layers(i, block, shape, arch.width)
            if part:
                layers += part
                shape = part[-1].output_shape
        layers += self.head_layers(shape, arch.width)
        return tuple(layers)

    @abc.abstractmethod
    def distinct_layers(self, resolution: int | None = None, width: float = 1.0) -> list[Layer]:
        """Every distinct layer (by table key) that any architecture of the space contains."""

    @abc.abstractmethod
    def encode(self, arch: Arch) -> np.ndarray:
        """Fixed-length integer vector of choice indices (for vectorised predictors)."""

    @abc.abstractmethod
    def format_block(self, block: Any) -> str: ...

    @abc.abstractmethod
    def parse_block(self, token: str, index: int) -> Any: ...

    @abc.abstractmethod
    def block_to_dict(self, block: Any) -> dict[str, Any]: ...

    @abc.abstractmethod
    def block_from_dict(self, doc: Mapping[str, Any], index: int) -> Any: ...

    # -- named decisions (Optuna trials, controllers, genotype vectors) -------------------------------------
    # A search driver that proposes one value per named decision (an Optuna trial, an RL controller's
    # tokens) needs the space as a list of categorical choices with an exact inverse. ``build`` asks for the
    # decisions in order through a callback, so a decision that exists only for some earlier answers (a
    # layer of a stage deeper than the chosen depth) is never asked: define-by-run, as Optuna expects.
    def decisions(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Every decision's name and allowed values, in the order ``build`` asks them."""
        raise SpaceError(f"space {self.name!r} does not name its decisions")

    def build(
        self,
        ask: Callable[[str, tuple[Any, ...]], Any],
        resolution: int | None = None,
        width: float = 1.0,
    ) -> Arch:
        """The architecture whose decisions ``ask(name, allowed values)`` answers (asked in order, only
        those that exist given the earlier answers)."""
        raise SpaceError(f"space {self.name!r} does not name its decisions")

    def params(self, arch: Arch) -> dict[str, Any]:
        """The decisions ``arch`` makes, by name: ``from_params(params(arch))`` is ``arch``."""
        self.validate(arch)
        answers: dict[str, Any] = {}
        replay = self._replay(arch)

        def ask(name: str, values: tuple[Any, ...]) -> Any:
            answers[name] = replay[name]
            return answers[name]

        self.build(ask, arch.resolution, arch.width)
        return answers

    def _replay(self, arch: Arch) -> Mapping[str, Any]:
        """Every decision's value in ``arch`` (inactive ones may be absent)."""
        raise SpaceError(f"space {self.name!r} does not name its decisions")

    def from_params(
        self, params: Mapping[str, Any], resolution: int | None = None, width: float = 1.0
    ) -> Arch:
        """The architecture of named decisions (``params``); names of decisions that the other answers make
        inactive are ignored, unknown names and values outside a decision's choices are refused."""
        known = {name for name, _ in self.decisions()}
        unknown = sorted(set(params) - known)
        if unknown:
            raise SpaceError(
                f"{self.name} has no decision named {unknown[0]!r}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                + f"; its decisions look like {', '.join(sorted(known)[:3])}, ..."
            )

        def ask(name: str, values: tuple[Any, ...]) -> Any:
            if name not in params:
                raise SpaceError(f"{self.name} parameters lack the decision {name!r}")
            v = params[name]
            if v not in values or isinstance(v, bool):
                raise SpaceError(
                    f"{self.name} decision {name!r} is {v!r}; allowed: {', '.join(map(str, values))}"
                )
            return values[values.index(v)]  # the space's own value (6, not 6.0)

        return self.build(ask, resolution, width)

    # -- integer genotypes (nasprof.space.genotype) --------------------------------------------------------
    def genotypes(self) -> Genotypes:
        """The space's integer-genotype view (sampling, mutation, decode) — built once per space."""
        gt = self.__dict__.get("_genotypes")
        if gt is None:
            from nasprof.space.genotype import Genotypes

            gt = self.__dict__["_genotypes"] = Genotypes(self)
        return gt

    def chain_layout(self, resolution: int | None = None, width: float = 1.0) -> ChainLayout:
        """Every block's layers per (entering shape, code) at one resolution and width — built once each."""
        res = self.checked_resolution(resolution, width)
        layouts: dict[tuple[int, float], ChainLayout] = self.__dict__.setdefault("_layouts", {})
        layout = layouts.get((res, float(width)))
        if layout is None:
            from nasprof.space.genotype import ChainLayout

            layout = layouts[(res, float(width))] = ChainLayout(self.genotypes(), res, width)
        return layout

    # -- shared behaviour ---------------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        seed: int | np.random.Generator | None = None,
        resolution: int | None = None,
        width: float = 1.0,
    ) -> list[Arch]:
        """``n`` architectures drawn uniformly per factor; the same seed gives the same list."""
        if n < 0:
            raise SpaceError(f"cannot sample {n} architectures; use n >= 0")
        rng = as_rng(seed)
        res = self.checked_resolution(resolution, width)
        return [Arch(self.name, res, width, self.sample_blocks(rng)) for _ in range(n)]

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        """Uniform crossover per block: each block of the child comes whole from ``a`` or ``b``."""
        if a.space != self.name or b.space != self.name:
            raise SpaceError(f"crossover needs two {self.name} architectures, got {a.space} and {b.space}")
        pick = as_rng(rng).random(self.num_blocks) < 0.5
        blocks = tuple(x if p else y for p, x, y in zip(pick, a.blocks, b.blocks, strict=True))
        return Arch(self.name, a.resolution, a.width, blocks)

    def validate(self, arch: Arch) -> None:
        if arch.space != self.name:
            raise SpaceError(f"architecture is from space {arch.space!r}, not {self.name!r}")
        if len(arch.blocks) != self.num_blocks:
            raise SpaceError(
                f"{self.name} architectures have {self.num_blocks} blocks, got {len(arch.blocks)}"
            )
        self.checked_resolution(arch.resolution, arch.width)
        # Every mutation and crossover builds (and so validates) a new Arch whose blocks are mostly old
        # ones: remember the (index, block) pairs that passed, a set lookup instead of a check per factor.
        known: set[tuple[int, Any]] = self.__dict__.setdefault("_valid_blocks", set())
        for i, block in enumerate(arch.blocks):
            try:
                seen = (i, block) in known
            except TypeError:  # unhashable, so not a block record of ours: validate_block says why
                seen = False
            if not seen:
                self.validate_block(i, block)
                if len(known) < _VALID_CACHE:
                    known.add((i, block))

    def checked_resolution(self, resolution: int | None, width: float) -> int:
        """``resolution`` (the space's default when None) after checking it and ``width`` are in range.

        ``None`` and only ``None`` means the default: 0 is an error, not a request for the default.
        """
        res = self.default_resolution if resolution is None else resolution
        if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or not 32 <= res <= 1024:
            raise SpaceError(f"resolution must be an integer in [32, 1024], got {res!r}")
        try:
            ok = 0.1 <= float(width) <= 4.0  # False for NaN too
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise SpaceError(f"width multiplier must be in [0.1, 4.0], got {width!r}")
        return int(res)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "blocks": self.num_blocks,
            "size": self.size(),
            "default_resolution": self.default_resolution,
            "choices": self.choices(),
        }
