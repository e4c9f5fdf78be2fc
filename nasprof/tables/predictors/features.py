"""Kernel features: the numbers a per-kernel-type regressor sees.

The same feature vector serves every kernel type (unused fields are 0), so one file format and one
evaluator fit all. MACs, params and bytes are derived from shapes, never measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasprof.tables.predictors.kernels import ACT_CODES, Kernel

__all__ = ["FEATURES", "kernel_features", "kernel_macs", "kernel_bytes", "feature_matrix"]

FEATURES: tuple[str, ...] = (
    "in_h",
    "in_w",
    "cin",
    "cout",
    "out_h",
    "out_w",
    "kernel",
    "stride",
    "groups",
    "macs",
    "params",
    "bytes",
    "act",
    "fused_add",
    "variant",
    "broadcast",
)
_VARIANTS = {
    "": 0,
    "Add": 1,
    "Mul": 2,
    "Sub": 3,
    "Div": 4,
    "MaxPool": 5,
    "AveragePool": 6,
    "GlobalAveragePool": 7,
    "ReduceMean": 8,
    "ReorderInput": 9,
    "ReorderOutput": 10,
    "Transpose": 11,
    "Split": 12,
    "Slice": 13,
    "Pad": 14,
    "Expand": 15,
    "Tile": 16,
    "DepthToSpace": 17,
    "SpaceToDepth": 18,
}

_FLOAT_BYTES = 4


def _hw(shape: Sequence[int]) -> tuple[int, int, int]:
    """(C, H, W) of a CHW / C / anything shape: vectors count as C×1×1."""
    s = tuple(int(v) for v in shape)
    if len(s) >= 3:
        return s[0], s[-2], s[-1]
    if len(s) == 2:
        return s[0] * s[1], 1, 1
    if len(s) == 1:
        return s[0], 1, 1
    return 1, 1, 1


def kernel_macs(k: Kernel) -> int:
    cin, h, w = _hw(k.in_shape)
    cout, oh, ow = _hw(k.out_shape)
    if k.type in ("conv", "dwconv"):
        return oh * ow * cout * (cin // max(k.groups, 1)) * k.kernel * k.kernel
    if k.type == "fc":
        return cin * h * w * cout * oh * ow
    if k.type == "pool":
        return oh * ow * cout * k.kernel * k.kernel
    return max(cin * h * w, cout * oh * ow)


def kernel_bytes(k: Kernel) -> int:
    """Bytes read and written: input, output, weights, and the residual input of a fused add."""
    cin, h, w = _hw(k.in_shape)
    cout, oh, ow = _hw(k.out_shape)
    elems = cin * h * w + cout * oh * ow + k.params
    if k.fused_add:
        elems += cout * oh * ow
    if k.type == "eltwise" and not k.broadcast:
        elems += cin * h * w  # the second operand
    if k.type == "concat":
        elems = 2 * cout * oh * ow
    if k.type == "memory" and k.variant == "Split":
        elems = 2 * cin * h * w  # every output together is the input; out_shape is only the first part
    elif k.type == "memory" and k.variant == "Slice":
        elems = 2 * cout * oh * ow  # reads only the part it copies
    return elems * _FLOAT_BYTES


def kernel_features(k: Kernel) -> list[float]:
    cin, h, w = _hw(k.in_shape)
    cout, oh, ow = _hw(k.out_shape)
    return [
        h,
        w,
        cin,
        cout,
        oh,
        ow,
        k.kernel,
        k.stride,
        k.groups,
        kernel_macs(k),
        k.params,
        kernel_bytes(k),
        ACT_CODES.get(k.act, -1),
        int(k.fused_add),
        _VARIANTS.get(k.variant, -1),
        int(k.broadcast),
    ]


def feature_matrix(kernels: Sequence[Kernel]) -> np.ndarray:
    return np.array([kernel_features(k) for k in kernels], dtype=np.float64).reshape(
        len(kernels), len(FEATURES)
    )
