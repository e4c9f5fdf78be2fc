"""The latency/accuracy Pareto front: lowest latency, highest accuracy, computed in O(n log n)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nasprof.errors import InputError

__all__ = ["pareto_front"]


def pareto_front(
    latency_ms: ArrayLike, accuracy: ArrayLike, feasible: ArrayLike | None = None
) -> NDArray[np.intp]:
    """Indices of the non-dominated points, ordered by increasing latency.

    A point is on the front when no other point is at least as fast *and* at least as accurate while being
    strictly better in one of the two. Of several identical points only the first (lowest index) is kept, so
    an architecture evaluated twice appears once. Points where ``feasible`` is False are ignored.
    """
    lat = np.asarray(latency_ms, dtype=np.float64)
    acc = np.asarray(accuracy, dtype=np.float64)
    if lat.ndim != 1 or lat.shape != acc.shape:
        raise InputError(
            f"latency and accuracy must be 1-D arrays of one length, got {lat.shape} and {acc.shape}"
        )
    idx = np.arange(lat.size)
    if feasible is not None:
        mask = np.asarray(feasible, dtype=bool)
        if mask.shape != lat.shape:
            raise InputError(f"feasible mask has shape {mask.shape}, expected {lat.shape}")
        idx = idx[mask]
    if idx.size == 0:
        return idx
    # Sort by latency ascending, then accuracy descending, then index (np.lexsort: last key is primary).
    order = idx[np.lexsort((idx, -acc[idx], lat[idx]))]
    acc_sorted = acc[order]
    # After the sort, a point is dominated exactly when some earlier point is at least as accurate:
    # earlier points are at least as fast. So keep the points that beat the running maximum strictly.
    best_before = np.maximum.accumulate(np.concatenate(([-np.inf], acc_sorted[:-1])))
    return order[acc_sorted > best_before]
