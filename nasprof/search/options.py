"""A space whose architectures carry network options: nb201's ``input``, ``outputs``, ``C``, ``N``.

A strategy creates architectures through the space (``sample``, ``mutate``, ``crossover``, ``build``, its
integer genotypes' ``decode``); NB201's ``build`` and ``decode`` make default-option (CIFAR, 3x32x32)
architectures. ``with_options(space, options)`` returns the space seen through those options, so every
architecture a search proposes is the network the latency predictor was built for (an adapted predictor
refuses any other).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nasprof.errors import InputError, PredictorError

if TYPE_CHECKING:
    from nasprof.space import Arch

__all__ = [
    "OptionedSpace", "with_options", "space_options", "predictor_options", "resolve_options", "class_keys",
    "has_classes",
]


def space_options(space: Any) -> bool:
    """Whether ``space`` has network options (``normalize_options``)."""
    return callable(getattr(space, "normalize_options", None))


def predictor_options(predictor: Any) -> dict[str, Any] | None:
    """The network options a latency predictor was built for (an adapted predictor's decomposition), or
    None when it records none."""
    options = getattr(getattr(predictor, "decomposition", None), "options", None)
    return dict(options) if isinstance(options, Mapping) and options else None


def _shown(options: Mapping[str, Any]) -> str:
    parts = []
    for k, v in sorted(options.items()):
        parts.append(f"{k}={'x'.join(map(str, v)) if isinstance(v, (tuple, list)) else v}")
    return ", ".join(parts)


def resolve_options(space: Any, given: Mapping[str, Any] | None, predictor: Any) -> dict[str, Any] | None:
    """The options a search of ``space`` samples with: ``given`` (absent ones from the predictor's), else
    the predictor's own, else the space's defaults. None for a space without options (giving some is then an
    error). A predictor built for other options than the ones given is refused here, before the search."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    if not space_options(space):
        if given:
            raise InputError(f"--input, --outputs, --cell-channels and --cells-per-stage apply to nb201; "
                             f"space {getattr(space, 'name', '?')!r} has no network options")
        return None
    own = predictor_options(predictor)
    merged = {**(own or {}), **given}
    options = dict(space.normalize_options(merged))
    if own is not None:
        mine = dict(space.normalize_options(own))
        if mine != options:
            raise PredictorError(
                f"the latency predictor was built for {_shown(mine)}, not {_shown(options)}; drop the "
                "network options to search its networks, or adapt a predictor for these"
            )
    return options


class OptionedSpace:
    """``space`` with every architecture it creates carrying ``options``; anything else is the space's."""

    def __init__(self, space: Any, options: Mapping[str, Any]) -> None:
        self._space = space
        self.options = dict(space.normalize_options(dict(options)))
        self._pairs = tuple(sorted(self.options.items()))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_space":  # unpickling or copying, before __init__ ran
            raise AttributeError(name)
        return getattr(self._space, name)

    @property
    def base(self) -> Any:
        """The space without options."""
        return self._space

    def attach(self, arch: Arch) -> Arch:
        """``arch`` with this space's options (the same object when it has them already)."""
        if arch.options == self._pairs:
            return arch
        from nasprof.space import Arch

        return Arch(arch.space, arch.resolution, arch.width, arch.blocks, self._pairs)

    def sample(self, n: int, seed: Any = None, resolution: int | None = None, width: float = 1.0,
               **kw: Any) -> list[Arch]:
        return list(self._space.sample(n, seed, None, width, **kw, **self.options))

    def mutate(self, arch: Arch, rng: Any = None) -> Arch:
        return self.attach(self._space.mutate(arch, rng))

    def crossover(self, a: Arch, b: Arch, rng: Any = None) -> Arch:
        return self.attach(self._space.crossover(a, b, rng))

    def build(self, ask: Callable[[str, tuple[Any, ...]], Any], resolution: int | None = None,
              width: float = 1.0) -> Arch:
        return self.attach(self._space.build(ask, None, width))

    def genotypes(self) -> Any:
        gt = self.__dict__.get("_genotypes")
        if gt is None:
            from nasprof.space.genotype import Genotypes

            class OptionedGenotypes(Genotypes):
                """Genotypes whose decoded architectures carry the space's options."""

                def decode(self, codes: Any, resolution: int | None = None, width: float = 1.0) -> list[Any]:
                    space: Any = self.space
                    return [space.attach(a) for a in super().decode(codes, None, width)]

            view: Any = self  # a Space in all but name: Genotypes reads decisions, build, num_blocks
            gt = self.__dict__["_genotypes"] = OptionedGenotypes(view)
        return gt

    def chain_layout(self, resolution: int | None = None, width: float = 1.0) -> Any:
        return self._space.chain_layout(resolution, width)


def with_options(space: Any, options: Mapping[str, Any] | None) -> Any:
    """``space`` seen through ``options`` (``space`` itself when None)."""
    if options is None:
        return space
    return OptionedSpace(space, options)


def class_keys(space: Any, archs: Sequence[Any]) -> list[str]:
    """Each architecture's isomorphism class (its ``canonical`` representative's string) where the space
    has one, else its own string."""
    canonical = getattr(getattr(space, "base", space), "canonical", None)
    if canonical is None:
        return [str(a.to_string()) for a in archs]
    return [str(canonical(a).to_string()) for a in archs]


def has_classes(space: Any) -> bool:
    """Whether ``space`` knows its isomorphism classes (``canonical``)."""
    return getattr(getattr(space, "base", space), "canonical", None) is not None
