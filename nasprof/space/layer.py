"""``Layer``: a block at a concrete input shape, i.e. one row of a latency lookup table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockSpec

__all__ = ["Layer", "priced_layers", "shared_layer"]


@dataclass(frozen=True)
class Layer:
    """``spec`` applied to an input of shape ``input_shape`` = (C, H, W) (batch 1 implied).

    Derived values (``key``, ``output_shape``, ``macs``, ``params``) are computed once per instance: search
    and table code asks for them many times per architecture.
    """

    spec: BlockSpec
    input_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        shape = tuple(self.input_shape)
        if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise SpaceError(
                f"input shape must be three positive integers (C, H, W), got {self.input_shape!r}"
            )
        object.__setattr__(self, "input_shape", shape)
        if shape[0] != self.spec.cin:
            raise SpaceError(
                f"inconsistent shapes: {self.spec.op} expects {self.spec.cin} input channels, gets {shape[0]}"
            )
        ho, wo = self.spec.output_hw(shape[1], shape[2])
        if ho < 1 or wo < 1:
            raise SpaceError(
                f"inconsistent shapes: {self.spec.op} (kernel {self.spec.kernel}, stride {self.spec.stride}) "
                f"leaves no output for a {shape[1]}x{shape[2]} input; use a larger resolution"
            )

    @cached_property
    def output_shape(self) -> tuple[int, int, int]:
        ho, wo = self.spec.output_hw(self.input_shape[1], self.input_shape[2])
        return self.spec.family.output_channels(self.spec), ho, wo

    @cached_property
    def key(self) -> str:
        return self.spec.key(self.input_shape)

    @cached_property
    def parts(self) -> tuple[Layer, ...]:
        """The layers a latency table prices this one by: itself, or a multi-branch cell's operations at
        their shapes (``BlockFamily.parts``)."""
        parts = self.spec.family.parts(self.spec, self.input_shape)
        return (self,) if parts is None else tuple(parts)

    @cached_property
    def macs(self) -> int:
        return self.spec.macs(self.input_shape[1], self.input_shape[2])

    @cached_property
    def params(self) -> int:
        return self.spec.params()

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "input_shape": list(self.input_shape)}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Layer:
        if not isinstance(doc, Mapping) or "spec" not in doc or "input_shape" not in doc:
            raise SpaceError(f"a layer must be a JSON object with 'spec' and 'input_shape'; got {doc!r}")
        shape = doc["input_shape"]
        if not isinstance(shape, (list, tuple)):
            raise SpaceError(f"input_shape must be a list [C, H, W], got {shape!r}")
        return cls(BlockSpec.from_dict(doc["spec"]), tuple(shape))  # type: ignore[arg-type]


@lru_cache(maxsize=1 << 16)
def shared_layer(spec: BlockSpec, input_shape: tuple[int, int, int]) -> Layer:
    """``Layer(spec, input_shape)``, one instance per distinct pair.

    Layers are immutable, so architectures that share a layer share one instance (and its cached key and
    MACs): a search over 10^5 architectures then builds each distinct layer once.
    """
    return Layer(spec, input_shape)


def priced_layers(layers: Iterable[Layer]) -> list[Layer]:
    """``layers`` with every multi-branch cell replaced by its operations: the rows a latency table holds."""
    out: list[Layer] = []
    for layer in layers:
        out.extend(layer.parts)
    return out
