"""``Network``: a concrete stack of blocks at one resolution (what presets and architectures turn into).

The built torch model has three ``ModuleList``s, ``stem``, ``blocks`` and ``head``, iterated in ``forward``,
so the exported ONNX node names carry the layer's scope: ``/stem.0/conv/Conv``, ``/blocks.3/dw/conv/Conv``,
``/head.0/fc/Gemm``. ``Network.scopes()`` gives that scope for each entry of ``layers()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockSpec
from nasprof.space.layer import Layer, shared_layer

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Network", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
PARTS = ("stem", "blocks", "head")


@dataclass(frozen=True)
class Network:
    """A named stack ``stem + blocks + head`` fed a ``(in_channels, resolution, resolution)`` image, or a
    ``(in_channels, resolution, image_width)`` one when ``image_width`` is set (0: square)."""

    name: str
    resolution: int
    stem: tuple[BlockSpec, ...]
    blocks: tuple[BlockSpec, ...]
    head: tuple[BlockSpec, ...]
    in_channels: int = 3
    width: float = 1.0
    #: Free-form provenance (preset options, the arch string) carried into exported metadata.
    info: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: Input width when it differs from the height (``resolution``); 0 means a square input.
    image_width: int = 0

    def __post_init__(self) -> None:
        for part in PARTS:
            object.__setattr__(self, part, tuple(getattr(self, part)))
        if not isinstance(self.resolution, int) or self.resolution < 1:
            raise SpaceError(f"resolution must be a positive integer, got {self.resolution!r}")
        if not isinstance(self.image_width, int) or self.image_width < 0:
            raise SpaceError(f"image_width must be a positive integer (0: square), got {self.image_width!r}")
        self.layers()  # validates that shapes chain (raises SpaceError with the offending layer)

    def specs(self) -> list[BlockSpec]:
        return [*self.stem, *self.blocks, *self.head]

    def scopes(self) -> list[str]:
        """ONNX name scope of each layer, aligned with ``layers()``: ``stem.0``, ``blocks.3``, ``head.1``."""
        return [f"{part}.{i}" for part in PARTS for i in range(len(getattr(self, part)))]

    def layers(self) -> list[Layer]:
        return list(self._layers)

    @cached_property
    def _layers(self) -> tuple[Layer, ...]:
        shape = self.input_shape[1:]
        out: list[Layer] = []
        for scope, spec in zip(self.scopes(), self.specs(), strict=True):
            try:
                layer = shared_layer(spec, shape)
            except SpaceError as exc:
                raise SpaceError(f"{self.name} layer {scope}: {exc}") from None
            out.append(layer)
            shape = layer.output_shape
        return tuple(out)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_channels, self.resolution, self.image_width or self.resolution)

    @property
    def output_shape(self) -> tuple[int, ...]:
        c, h, w = self._layers[-1].output_shape
        # A classifier head flattens; a pool-only or headless net keeps NCHW.
        if self.head and self.head[-1].op == "head":
            return (1, c)
        return (1, c, h, w)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self._layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self._layers)

    def network(self) -> Network:
        """Itself (so ``Arch`` and ``Network`` can be passed interchangeably to ``export_arch``)."""
        return self

    def build(self, seed: int = 0) -> torch.nn.Module:
        """The torch model in training form (BN not folded), with deterministic random weights."""
        from nasprof.space.nn.common import build_network

        return build_network(self, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "resolution": self.resolution,
            "in_channels": self.in_channels,
            "width": self.width,
            **({"image_width": self.image_width} if self.image_width else {}),
            **{part: [s.to_dict() for s in getattr(self, part)] for part in PARTS},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Network:
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise SpaceError(f"network schema_version {doc.get('schema_version')!r} is not {SCHEMA_VERSION}")

        def specs(part: str) -> tuple[BlockSpec, ...]:
            return tuple(BlockSpec.from_dict(s) for s in doc.get(part, ()))

        try:
            return cls(
                name=str(doc["name"]),
                resolution=int(doc["resolution"]),
                stem=specs("stem"),
                blocks=specs("blocks"),
                head=specs("head"),
                in_channels=int(doc.get("in_channels", 3)),
                width=float(doc.get("width", 1.0)),
                image_width=int(doc.get("image_width", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SpaceError):
                raise
            raise SpaceError(f"malformed network JSON: {exc}") from None
