"""``Arch``: one candidate of a search space, as the space's choices (not as a file).

Compact one-line grammar (``Arch.to_string`` / ``Arch.from_string``)::

    ARCH   := SPACE ":" RESOLUTION ":" WIDTH ( "|" BLOCK )+
    BLOCK  := a space-specific token, fields joined by "_"
    mnasnet      BLOCK := OP "_k" KERNEL "_se" RATIO "_" SKIP "_f" FILTERS "_l" LAYERS
                          e.g. mnasnet:224:1.0|mb6_k5_se0.25_id_f1.0_l3|...   (7 blocks)
                          OP in conv, dwsep, mb3, mb6; SKIP in none, id, pool
    mobilenetv2  BLOCK := LAYER ( "_" LAYER )*   with LAYER := "k" KERNEL "e" EXPAND
                          e.g. mobilenetv2:224:1.0|k3e6_k5e3|...               (6 stages)

    nb201        the standard NAS-Bench-201 cell string, verbatim (no header): options travel beside it
                          e.g. |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|...

JSON (``to_json``/``from_json``): ``{"schema_version": 1, "space", "resolution", "width", "blocks": [...]}``,
plus ``"options": {...}`` for a space that has options (nb201); files without it read as no options.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from nasprof.errors import SpaceError
from nasprof.space.layer import Layer
from nasprof.space.network import Network
from nasprof.space.registry import get_space

__all__ = ["Arch", "ARCH_SCHEMA_VERSION"]

ARCH_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Arch:
    """``blocks`` holds the space's per-block choice records (e.g. ``MnasBlock``); validated on creation.

    ``options`` are a space's network options as sorted ``(name, value)`` pairs (nb201: ``C``, ``N``,
    ``input`` as (C, H, W), ``outputs``); empty for spaces without options. A space that has options
    normalises them on creation (every option present, ``resolution`` = the input height).
    """

    space: str
    resolution: int
    width: float
    blocks: tuple[Any, ...]
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        space = self.space_obj
        normalize = getattr(space, "normalize_options", None)
        if normalize is not None:
            options = normalize(self.options, self.resolution)
            object.__setattr__(self, "options", options)
            object.__setattr__(self, "resolution", dict(options).get("input", (0, self.resolution))[1])
        elif self.options:
            raise SpaceError(
                f"space {self.space!r} takes no options (got {', '.join(k for k, _ in self.options)}); "
                "--input, --outputs, --cell-channels and --cells-per-stage are nb201's"
            )
        space.validate(self)

    def option(self, name: str, default: Any = None) -> Any:
        """The value of option ``name`` (``default`` when the space has no such option)."""
        for key, value in self.options:
            if key == name:
                return value
        return default

    @cached_property
    def space_obj(self) -> Any:
        """The ``Space`` this architecture belongs to (looked up once)."""
        return get_space(self.space)

    @cached_property
    def _network(self) -> Network:
        return self.space_obj.network(self)

    def network(self) -> Network:
        """The concrete ``Network`` (stem + layers + head) this architecture describes."""
        return self._network

    @cached_property
    def _layers(self) -> tuple[Layer, ...]:
        # Block by block from the space's caches (see ``Space.arch_layers``), not through a Network: a
        # search asks for the layers of 10^4-10^5 new architectures a second, built from a few thousand
        # distinct blocks. Equal to ``network().layers()``, which the tests check on samples.
        try:
            return self.space_obj.arch_layers(self)
        except SpaceError:
            # Only the network path knows the ONNX scope of the offending layer; let it say which.
            return tuple(self._network.layers())

    def layers(self) -> list[Layer]:
        """Every layer (stem and head included), in order: the rows of a lookup table it is summed over."""
        return list(self._layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self._layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self._layers)

    # -- text forms ---------------------------------------------------------------------------------------
    @cached_property
    def _string(self) -> str:
        space = self.space_obj
        custom = getattr(space, "arch_string", None)
        if custom is not None:
            return str(custom(self))
        head = f"{self.space}:{self.resolution}:{float(self.width)!r}"
        return "|".join([head, *(space.format_block(b) for b in self.blocks)])

    def to_string(self) -> str:
        return self._string  # computed once: a search writes, caches and compares by it

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str) -> Arch:
        if isinstance(text, str) and text.strip().startswith("|") and "~" in text:
            return get_space("nb201").from_cell_string(text)  # type: ignore[attr-defined, no-any-return]
        if not isinstance(text, str) or "|" not in text:
            raise SpaceError(
                f"malformed architecture string {text!r}: expected SPACE:RESOLUTION:WIDTH|BLOCK|..., "
                "e.g. mnasnet:224:1.0|mb6_k5_se0.25_id_f1.0_l3|..."
            )
        head, *tokens = text.strip().split("|")
        parts = head.split(":")
        if len(parts) != 3:
            raise SpaceError(f"malformed architecture header {head!r}: expected SPACE:RESOLUTION:WIDTH")
        space = get_space(parts[0])
        try:
            resolution, width = int(parts[1]), float(parts[2])
        except ValueError:
            raise SpaceError(
                f"malformed architecture header {head!r}: resolution must be an integer and "
                "width a number, e.g. mnasnet:224:1.0"
            ) from None
        blocks = tuple(space.parse_block(tok, i) for i, tok in enumerate(tokens))
        return cls(space.name, resolution, width, blocks)

    def to_dict(self) -> dict[str, Any]:
        space = self.space_obj
        return {
            "schema_version": ARCH_SCHEMA_VERSION,
            "space": self.space,
            "resolution": self.resolution,
            "width": self.width,
            "blocks": [space.block_to_dict(b) for b in self.blocks],
            **({"options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options}}
               if self.options else {}),
            "string": self.to_string(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Arch:
        if not isinstance(doc, Mapping):
            raise SpaceError(f"architecture JSON must be an object, got {type(doc).__name__}")
        if doc.get("schema_version") != ARCH_SCHEMA_VERSION:
            raise SpaceError(
                f"architecture schema_version {doc.get('schema_version')!r} is not "
                f"{ARCH_SCHEMA_VERSION}; re-create it with `nasprof space sample --json`"
            )
        missing = [k for k in ("space", "resolution", "width", "blocks") if k not in doc]
        if missing:
            raise SpaceError(f"architecture JSON lacks {', '.join(missing)}")
        space = get_space(str(doc["space"]))
        blocks = doc["blocks"]
        if not isinstance(blocks, list):
            raise SpaceError("architecture JSON: 'blocks' must be a list")
        try:
            resolution, width = int(doc["resolution"]), float(doc["width"])
        except (TypeError, ValueError):
            raise SpaceError("architecture JSON: resolution must be an integer and width a number") from None
        options = doc.get("options", {})
        if not isinstance(options, Mapping):
            raise SpaceError("architecture JSON: 'options' must be an object of option names to values")
        pairs = tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
        return cls(
            space.name,
            resolution,
            width,
            tuple(space.block_from_dict(b, i) for i, b in enumerate(blocks)),
            pairs,
        )

    @classmethod
    def from_json(cls, source: str | Path | Mapping[str, Any]) -> Arch:
        """From a JSON text, a path to a JSON file, or an already parsed mapping."""
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        text = str(source)
        if isinstance(source, Path) or not text.lstrip().startswith("{"):
            path = Path(text)
            if not path.is_file():
                raise SpaceError(f"architecture file {path} does not exist")
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SpaceError(f"cannot read architecture file {path}: {exc}") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpaceError(f"malformed architecture JSON: {exc.msg} at line {exc.lineno}") from None
        return cls.from_dict(doc)
