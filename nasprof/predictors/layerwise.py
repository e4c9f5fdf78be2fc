"""Predictors that are a sum over layers, priced for a whole batch of integer genotypes at once.

A lookup-table predictor's latency is a constant plus one number per layer. ``nasprof.space.genotype``
walks a batch of genotypes through a space's ``ChainLayout``; here the per-layer numbers become a
``ChainTable`` once per (predictor, layout), after which a batch costs one gather per block: the 10^6
candidates-a-second path of ``nasprof search``. A genotype whose layers the predictor cannot price alone (a
key missing from the table) is decoded and predicted the ordinary way, so a fallback predictor still fills
it and a missing key still fails with the predictor's own message.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from nasprof.space.genotype import ChainLayout, ChainTable, Codes
    from nasprof.space.layer import Layer

__all__ = ["Layerwise", "layerwise_table", "predict_codes"]


@runtime_checkable
class Layerwise(Protocol):
    """A predictor whose latency is ``network_constant_ms`` plus a sum of ``layer_latency`` over layers."""

    @property
    def network_constant_ms(self) -> float:
        """What every network pays once (ms), whatever its layers."""
        ...

    def layer_latency(self, layer: Layer) -> float:
        """What ``layer`` adds to a network's latency (ms); NaN when the predictor cannot say alone."""
        ...

    def predict_many(self, targets: Any) -> Any: ...


#: (predictor, layout, extra quantities) -> table; weak on the predictor so a dropped one frees its tables.
_TABLES: weakref.WeakKeyDictionary[Any, dict[tuple[int, tuple[str, ...]], ChainTable]] = (
    weakref.WeakKeyDictionary()
)


def layerwise_table(
    model: Layerwise, layout: ChainLayout, extra: dict[str, Callable[[Layer], float]] | None = None
) -> ChainTable:
    """The predictor's latency (row 0) and each ``extra`` per-layer quantity (further rows, in order)
    per (context, code) of ``layout``; built once per predictor, layout and set of extra names."""
    extra = extra or {}
    key = (id(layout), tuple(extra))
    tables = _TABLES.setdefault(model, {})
    table = tables.get(key)
    if table is None or table.layout is not layout:
        table = layout.table(
            model.layer_latency, *extra.values(), constant=(model.network_constant_ms, *([0.0] * len(extra)))
        )
        tables[key] = table
    return table


def predict_codes(
    model: Layerwise, codes: Codes, layout: ChainLayout, table: ChainTable | None = None
) -> NDArray[np.float64]:
    """Latency (ms) of every genotype in ``codes``: row 0 of ``table`` (default: ``layerwise_table``)."""
    values = (table or layerwise_table(model, layout))(codes)
    return fill_unpriced(model, codes, layout, values)[0]


def fill_unpriced(
    model: Layerwise, codes: Codes, layout: ChainLayout, values: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``values`` (quantities, n) with each NaN latency (row 0) replaced by the predictor's answer for the
    decoded architecture — a fallback's estimate, or the predictor's error naming the missing key."""
    bad = np.isnan(values[0])
    if bad.any():
        rows = np.nonzero(bad)[0]
        archs = layout.genotypes.decode(codes[rows], layout.resolution, layout.width)
        values[0, rows] = np.asarray(model.predict_many(archs), dtype=np.float64)
    return values
