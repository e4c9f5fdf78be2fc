"""Architectures as rows of layer-key ids of one lookup table: the vectorised path of ``LutPredictor``.

An architecture becomes the ids of its layers' keys in the table (``encode``); a batch becomes an
``(n, max_layers)`` id matrix padded with ``pad_id`` (``encode_many``), which the predictor turns into
latencies with one gather and one row sum. Encoding is incremental: the layers of a block depend only on
(block index, the block's choices, the shape entering it, width), so the key ids of each such *segment*
(stem, block, head) are cached with the shape leaving it, and a never-seen ``Arch`` costs one dictionary hit
per block instead of building its network. Architecture strings are cached whole (parsing is the expensive
part). Whatever the path, the ids are the same as ``[key of each layer]``.

Apart from ``predictor`` because it knows nothing of latencies: only the table's keys, its space and
resolution, and the caches that make encoding cheap.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import PredictorError
from nasprof.space.arch import Arch
from nasprof.space.layer import priced_layers

__all__ = ["KeyIds"]

#: Architecture strings remembered with their key ids (a search revisits architectures).
_CACHE_SIZE = 1 << 17
#: Segments (stem / block / head at an input shape) remembered per space: ~10^4 per resolution and width.
_SEGMENT_CACHE_SIZE = 1 << 18
#: Segment cache key of the stem and head (block keys start with a block index >= 0).
_STEM, _HEAD = -1, -2


class KeyIds:
    """Key ids of the architectures of ``space`` at ``resolution`` in a table of ``keys`` (id = position);
    ``pad_id`` (one past the last key) pads short rows."""

    def __init__(self, keys: Sequence[str], space: str | None, resolution: int | None) -> None:
        self.index = {k: i for i, k in enumerate(keys)}
        self.pad_id = len(keys)
        self.space = space
        self.resolution = resolution
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        # space name -> segment key -> (key ids of the segment's layers, shape leaving it)
        self._segments: dict[str, dict[Hashable, tuple[tuple[int, ...], tuple[int, int, int]]]] = {}

    def arch(self, target: Any) -> Any:
        if isinstance(target, (str, Path)):
            s = str(target)
            if s.endswith(".onnx"):
                raise PredictorError(
                    "a lookup-table predictor predicts architectures of its space, not ONNX files; "
                    "use a kernel predictor (`nasprof predictor fit --kernels`) for arbitrary graphs"
                )
            from nasprof.space import Arch

            try:
                return Arch.from_string(s)
            except Exception as exc:  # the space raises SpaceError; anything else is a malformed string
                raise PredictorError(f"cannot parse architecture {s[:80]!r}: {exc}") from None
        return target

    def check(self, arch: Any) -> None:
        if self.space and getattr(arch, "space", self.space) != self.space:
            raise PredictorError(
                f"architecture is from space {arch.space!r}; this table is for {self.space!r}"
            )
        if self.resolution and getattr(arch, "resolution", self.resolution) != self.resolution:
            raise PredictorError(
                f"architecture has resolution {arch.resolution}; this table is for {self.resolution}"
            )

    def layer_keys(self, target: Any) -> list[str]:
        arch = self.arch(target)
        self.check(arch)
        return [layer.key for layer in priced_layers(arch.layers())]

    def ids_of_keys(self, keys: Sequence[str]) -> tuple[int, ...]:
        """Key ids of ``keys``; ``PredictorError`` names the first key the table lacks."""
        missing = [k for k in keys if k not in self.index]
        if missing:
            raise PredictorError(
                f"the table has no entry for {missing[0]}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + "; extend it with `nasprof table build` or fit with a fallback predictor"
            )
        return tuple(self.index[k] for k in keys)

    def _segment(
        self, layers: Sequence[Any], shape: tuple[int, int, int]
    ) -> tuple[tuple[int, ...], tuple[int, int, int]] | None:
        """(key ids, shape leaving) of one segment's layers; None if the table lacks one of their keys."""
        index = self.index
        ids = tuple(index.get(layer.key, -1) for layer in priced_layers(layers))
        if -1 in ids:
            return None  # not cached: the caller's slow path names the missing key(s)
        return ids, (layers[-1].output_shape if layers else shape)

    def arch_ids(self, arch: Arch) -> tuple[int, ...]:
        """Key ids of an ``Arch``, segment by segment from the cache (see the module docstring)."""
        self.check(arch)
        space, width = arch.space_obj, arch.width
        cache = self._segments.get(arch.space)
        if cache is None or len(cache) > _SEGMENT_CACHE_SIZE:
            cache = self._segments[arch.space] = {}
        key: Hashable = (_STEM, arch.resolution, width)
        hit = cache.get(key)
        if hit is None:
            hit = self._segment(
                space.stem_layers(arch.resolution, width), (3, arch.resolution, arch.resolution)
            )
            if hit is None:
                return self.ids_of_keys(self.layer_keys(arch))
            cache[key] = hit
        ids, shape = hit
        for i, block in enumerate(arch.blocks):
            key = (i, block, shape, width)
            hit = cache.get(key)
            if hit is None:
                hit = self._segment(space.block_layers(i, block, shape, width), shape)
                if hit is None:
                    return self.ids_of_keys(self.layer_keys(arch))
                cache[key] = hit
            ids += hit[0]
            shape = hit[1]
        key = (_HEAD, shape, width)
        hit = cache.get(key)
        if hit is None:
            hit = self._segment(space.head_layers(shape, width), shape)
            if hit is None:
                return self.ids_of_keys(self.layer_keys(arch))
            cache[key] = hit
        return ids + hit[0]

    def ids(self, target: Any) -> tuple[int, ...] | np.ndarray:
        """Key ids of one target's layers, in layer order: a tuple for an ``Arch`` (built from cached
        segments), a read-only array for a string (cached whole)."""
        if type(target) is Arch:
            return self.arch_ids(target)
        if isinstance(target, str):
            cache_key = target
        elif hasattr(target, "to_string"):
            cache_key = target.to_string()
        else:
            self.arch(target)  # explains what went wrong for an ONNX path
            raise PredictorError(f"cannot predict a {type(target).__name__}; pass an Arch or its string")
        ids = self._cache.get(cache_key)
        if ids is not None:
            return ids
        arch = self.arch(target)
        keys = self.arch_ids(arch) if type(arch) is Arch else self.ids_of_keys(self.layer_keys(arch))
        ids = np.fromiter(keys, dtype=np.int64, count=len(keys))
        ids.setflags(write=False)
        self._cache[cache_key] = ids
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return ids

    def encode(self, target: Any) -> np.ndarray:
        """Key ids of the architecture's layers. ``PredictorError`` names a key the table lacks."""
        ids = self.ids(target)
        if type(ids) is tuple:
            return np.fromiter(ids, dtype=np.int64, count=len(ids))
        return ids  # type: ignore[return-value]

    def encode_many(self, targets: Iterable[Any]) -> np.ndarray:
        """An ``(n, max_layers)`` id matrix padded with ``pad_id`` (0 ms): the input of ``predict_many``."""
        rows = [self.ids(t) for t in targets]
        n, width = len(rows), max(map(len, rows), default=0)
        if all(type(r) is tuple for r in rows):
            # Fresh tuples (Arch objects): one pass over the padded rows beats a numpy copy per row.
            pad = (self.pad_id,)
            flat = chain.from_iterable(r + pad * (width - len(r)) for r in rows)  # type: ignore[operator]
            return np.fromiter(flat, dtype=np.int64, count=n * width).reshape(n, width)
        out = np.full((n, width), self.pad_id, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out
