"""Which decisions each layer of a space depends on: the structure that keeps expected costs exact.

An architecture's cost is a sum over its layers, and each layer's table key depends on a *few* decisions
only. A *slot* is one layer position (a stem layer, layer ``j`` of block ``i``, a head layer) with the
decisions its presence and key depend on:

* mnasnet, layer 0 of block i: the block's op, kernel, SE, skip and filters, and block i-1's filters
  (they fix its input channels, and with them whether the identity skip applies); layer j >= 1: the
  block's op, kernel, SE, skip and filters, and its layer count when some count leaves layer j out;
  head: block 6's filters.
* mobilenetv2, layer j of stage i: that layer's kernel and expand ratio, and the stage's depth when some
  depth leaves layer j out; stem and head are fixed.

Under independent decisions the expected cost of a slot is Σ over the joint of its decisions of
Π P(decision) · cost(layer there), with cost 0 where the layer is absent: ProxylessNAS's
P(depth > j) · E[cost of layer j] falls out of that, and so does the coupling between blocks (the
previous block's filters is just one more decision of the slot). Enumerating the joint is cheap (at most
4·2·2·3·3·3 = 432 values per mnasnet slot) and exact, with no assumption beyond independence.

The layers come from the space's own ``stem_layers`` / ``block_layers`` / ``head_layers``, so every key is
the one ``LutPredictor.predict`` sums. What the adapters assume about a space (which decisions a layer
does *not* depend on) is checked while the table is built: a space changed under them raises
``SpaceError`` instead of giving a wrong expectation.

Pure Python and numpy (no torch): the torch module turns the table into tensors.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasprof.errors import SpaceError
from nasprof.space import Layer, Mbv2Stage, MnasBlock, Space

__all__ = ["SlotTable", "slot_table", "STRUCTURES"]

#: (stem|bN|head, decision names, the layer at one joint value of those decisions, or None if absent)
_Slot = tuple[str, tuple[str, ...], Callable[..., "Layer | None"]]
Shape = tuple[int, int, int]


@dataclass(frozen=True)
class SlotTable:
    """Every (slot, joint value of its decisions) where a layer is present, as rows.

    ``index[r, k]`` is ``d * max_choices + c`` for the k-th decision ``d`` of row r taking its choice
    ``c`` (a flat position in the padded ``(decisions, max_choices)`` probability matrix); unused columns
    hold ``pad`` (= decisions · max_choices), a slot the caller fills with probability 1. A row's
    probability is the product over its columns; its layer is ``layers[r]``.
    """

    names: tuple[str, ...]
    choices: tuple[tuple[Any, ...], ...]
    index: np.ndarray
    layers: tuple[Layer, ...]
    segments: tuple[str, ...]

    @property
    def max_choices(self) -> int:
        return max(len(c) for c in self.choices)

    @property
    def pad(self) -> int:
        return len(self.names) * self.max_choices


def _constant(layer: Layer) -> Callable[[], Layer]:
    return lambda: layer


def _single(values: set[Any], what: str) -> Any:
    """The one value of ``values``; ``SpaceError`` when the space no longer has the structure assumed."""
    if len(values) != 1:
        raise SpaceError(
            f"the space's structure changed: {what} takes {len(values)} values ({sorted(values)[:3]}...); "
            "update nasprof/search/differentiable/_slots.py to the space's new decisions"
        )
    return next(iter(values))


def _pick(layers: dict[Any, tuple[Layer, ...]], j: int, value: Any) -> Layer:
    return layers[value][j]


def _mnasnet_first(full: dict[tuple[Any, ...], tuple[Layer, ...]], fixed_input: Any, *v: Any) -> Layer:
    """Layer 0 at (op, kernel, se, skip, filters[, previous block's filters])."""
    return full[(*v[:5], v[5] if len(v) > 5 else fixed_input)][0]


def _mnasnet_later(
    full: dict[tuple[Any, ...], tuple[Layer, ...]], any_input: Any, j: int, *v: Any
) -> Layer | None:
    """Layer j >= 1 at (op, kernel, se, skip, filters[, layers]): absent when the block has <= j layers."""
    if len(v) > 5 and v[5] <= j:
        return None
    return full[(*v[:5], any_input)][j]


def _mnasnet_slots(space: Space, resolution: int, width: float) -> list[_Slot]:
    from nasprof.space.spaces.mnasnet import FACTORS

    choices = dict(space.decisions())
    slots: list[_Slot] = [("stem", (), _constant(layer)) for layer in space.stem_layers(resolution, width)]
    stem_out = space.stem_layers(resolution, width)[-1].output_shape
    # Input shape of the current block by the value of the decision fixing it (None: fixed).
    inputs: dict[Any, Shape] = {None: stem_out}
    prev: str | None = None
    for i in range(space.num_blocks):
        c = {f: choices[f"b{i}.{f}"] for f in FACTORS}
        deepest = max(c["layers"])
        # Every layer of the deepest block, for every choice of the factors a layer depends on and every
        # input shape; shallower blocks are prefixes of these (checked below on one shape).
        full: dict[tuple[Any, ...], tuple[Layer, ...]] = {}
        for op, k, se, skip, f in itertools.product(c["op"], c["kernel"], c["se"], c["skip"], c["filters"]):
            for pf, shape in inputs.items():
                block = MnasBlock(op, k, se, skip, f, deepest)
                full[op, k, se, skip, f, pf] = space.block_layers(i, block, shape, width)
        some = next(iter(full))
        op, k, se, skip, f, pf = some
        for depth in c["layers"]:
            short = space.block_layers(i, MnasBlock(op, k, se, skip, f, depth), inputs[pf], width)
            if short != full[some][:depth]:
                raise SpaceError("the space's structure changed: a shallower mnasnet block is no longer a "
                                 "prefix of a deeper one; update nasprof/search/differentiable/_slots.py")
        for j in range(1, deepest):  # layers after the first see the block's own width only
            for key in {x[:5] for x in full}:
                _single({full[(*key, pf)][j].key for pf in inputs}, f"mnasnet block {i} layer {j}")
        # The next block's input shape depends on this block's filters only.
        outputs = {f: _single({ls[-1].output_shape for x, ls in full.items() if x[4] == f},
                              f"mnasnet block {i}'s output shape at filters {f}") for f in c["filters"]}
        own = tuple(f"b{i}.{f}" for f in FACTORS[:5])
        any_input = next(iter(inputs))  # a key of `full`; layers after the first do not depend on it
        slots.append((f"b{i}", own + ((prev,) if prev is not None else ()),
                      functools.partial(_mnasnet_first, full, any_input)))
        for j in range(1, deepest):
            optional = min(c["layers"]) <= j
            slots.append((f"b{i}", own + ((f"b{i}.layers",) if optional else ()),
                          functools.partial(_mnasnet_later, full, any_input, j)))
        inputs, prev = outputs, f"b{i}.filters"
    heads = {f: space.head_layers(shape, width) for f, shape in inputs.items()}
    n_head = _single({len(h) for h in heads.values()}, "the number of mnasnet head layers")
    for j in range(n_head):
        slots.append(("head", (str(prev),), functools.partial(_pick, heads, j)))
    return slots


def _mbv2_layer(table: dict[tuple[Any, Any], Layer], j: int, k: Any, e: Any, *depth: Any) -> Layer | None:
    """Layer j of a stage at (kernel, expand[, depth]): absent when the stage has <= j layers."""
    return None if depth and depth[0] <= j else table[k, e]


def _mobilenetv2_slots(space: Space, resolution: int, width: float) -> list[_Slot]:
    choices = dict(space.decisions())
    stem = space.stem_layers(resolution, width)
    slots: list[_Slot] = [("stem", (), _constant(layer)) for layer in stem]
    shape = stem[-1].output_shape
    for i in range(space.num_blocks):
        depths = choices[f"s{i}.depth"]
        deepest = max(depths)
        kernels, expands = choices[f"s{i}.l0.kernel"], choices[f"s{i}.l0.expand"]
        pairs = list(itertools.product(kernels, expands))
        # Layer j at (k, e) with every other layer set to each filler pair: its key must not depend on
        # the fillers (a layer sees the stage's width and stride only), nor the stage's output on anything.
        at: list[dict[tuple[Any, Any], Layer]] = [{} for _ in range(deepest)]
        out_shapes: set[Shape] = set()
        for j, pair, filler in itertools.product(range(deepest), pairs, pairs):
            layers = tuple(pair if p == j else filler for p in range(deepest))
            built = space.block_layers(i, Mbv2Stage(layers), shape, width)
            for depth in depths:
                short = space.block_layers(i, Mbv2Stage(layers[:depth]), shape, width)
                out_shapes.add(short[-1].output_shape)
            seen = at[j].setdefault(pair, built[j])
            if seen.key != built[j].key:
                raise SpaceError(f"the space's structure changed: mobilenetv2 stage {i} layer {j} depends on "
                                 "other layers' choices; update nasprof/search/differentiable/_slots.py")
        for j in range(deepest):
            optional = min(depths) <= j
            names = (f"s{i}.l{j}.kernel", f"s{i}.l{j}.expand") + ((f"s{i}.depth",) if optional else ())
            slots.append((f"s{i}", names, functools.partial(_mbv2_layer, at[j], j)))
        shape = _single(out_shapes, f"mobilenetv2 stage {i}'s output shape")
    slots += [("head", (), _constant(layer)) for layer in space.head_layers(shape, width)]
    return slots


#: Space name -> its slots. A space without an entry has no differentiable expected cost.
STRUCTURES: dict[str, Callable[[Space, int, float], list[_Slot]]] = {
    "mnasnet": _mnasnet_slots,
    "mobilenetv2": _mobilenetv2_slots,
}


@functools.lru_cache(maxsize=16)
def slot_table(space: Space, resolution: int, width: float) -> SlotTable:
    """The rows of ``space`` at ``resolution`` and ``width`` (cached: the spaces are singletons)."""
    build = STRUCTURES.get(space.name)
    if build is None:
        raise SpaceError(
            f"space {space.name!r} has no differentiable structure; known: {', '.join(sorted(STRUCTURES))} "
            "(add its slots to nasprof/search/differentiable/_slots.py)"
        )
    decisions = space.decisions()
    names = tuple(name for name, _ in decisions)
    choices = tuple(tuple(values) for _, values in decisions)
    position = {name: d for d, name in enumerate(names)}
    width_ = max(len(c) for c in choices)
    slots = build(space, resolution, width)
    unknown = sorted({n for _, ns, _ in slots for n in ns} - set(names))
    if unknown:
        raise SpaceError(f"space {space.name!r} has no decision {unknown[0]!r} any more; "
                         "update nasprof/search/differentiable/_slots.py")
    depth = max(len(ns) for _, ns, _ in slots)
    pad = len(names) * width_
    rows: list[list[int]] = []
    layers: list[Layer] = []
    segments: list[str] = []
    for segment, slot_names, layer_of in slots:
        ds = [position[n] for n in slot_names]
        for combo in itertools.product(*(range(len(choices[d])) for d in ds)):
            layer = layer_of(*(choices[d][c] for d, c in zip(ds, combo, strict=True)))
            if layer is None:
                continue  # absent at this joint value (a shallower block): contributes nothing
            rows.append([d * width_ + c for d, c in zip(ds, combo, strict=True)] + [pad] * (depth - len(ds)))
            layers.append(layer)
            segments.append(segment)
    index = np.array(rows, dtype=np.int64).reshape(len(rows), depth)
    index.setflags(write=False)
    return SlotTable(names, choices, index, tuple(layers), tuple(segments))
