"""Kernel features: the numbers a per-kernel-type regressor sees.

The same feature vector serves every kernel type (unused fields are 0), so one file format and one
evaluator fit all. MACs, params and bytes are derived from shapes, never measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from nasprof.predictors.kernel.kernels import Kernel
from nasprof.predictors.kernel.split import ACT_CODES, AVGPOOL_CEIL_PAD

__all__ = [
    "FEATURES",
    "FLOAT_BYTES",
    "coverage_key",
    "channel_align",
    "per_group",
    "multiplicity",
    "kernel_features",
    "kernel_macs",
    "kernel_bytes",
    "weight_bytes",
    "feature_matrix",
]

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
    "cin_align",
    "cout_align",
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
    AVGPOOL_CEIL_PAD: 19,
    "BatchNormalization": 20,
    "Resize": 21,
    "GlobalMaxPool": 22,
}

#: Bytes per tensor element and per weight: exported networks are float32.
FLOAT_BYTES = 4
#: Cap of the channel-alignment features. onnxruntime's x86 NCHWc layout (blocks of 8 channels with AVX2,
#: 16 with AVX-512) is used only for channel counts divisible by the block; a pool that misses it runs in
#: plain NCHW at 3-4x the time per byte (measured: 104 channels 0.065 ms on 1.6 MB, 96 channels 0.064 ms on
#: 5.7 MB). The largest power of two dividing the count lets a tree split on "divisible by the block"
#: without knowing the block size of the device.
_MAX_ALIGN = 64


def channel_align(c: int) -> int:
    """The largest power of two (at most 64) that divides ``c`` (``c`` >= 1)."""
    c = max(int(c), 1)
    return min(c & -c, _MAX_ALIGN)


def _hw(shape: Sequence[int]) -> tuple[int, int, int]:
    """(C, H, W) of a CHW / C / anything shape: vectors count as C×1×1."""
    n = len(shape)  # called several times per kernel on every prediction: no generic tuple conversion
    if n >= 3:
        return int(shape[0]), int(shape[-2]), int(shape[-1])
    if n == 2:
        return int(shape[0]) * int(shape[1]), 1, 1
    if n == 1:
        return int(shape[0]), 1, 1
    return 1, 1, 1


def coverage_key(k: Kernel) -> str:
    """The variant a regressor must have seen samples of to predict ``k``: the activation of an ``act``,
    the op of an ``eltwise``/``memory``/``pool``/``gap`` kernel; "" for the rest (their features say
    enough)."""
    if k.type == "act":
        return k.act
    if k.type in ("eltwise", "memory", "pool", "gap"):
        return _SAME_COST.get(k.variant, k.variant)
    return ""


#: Variants that compute the same thing with the same memory traffic as a sampled one: a spatial
#: ReduceMean is a global average pool (torch's ``x.mean((2, 3))`` head), Sub and Div stream like Add and Mul.
_SAME_COST = {"ReduceMean": "GlobalAveragePool", "Sub": "Add", "Div": "Mul"}


def kernel_macs(k: Kernel) -> int:
    cin, h, w = _hw(k.in_shape)
    cout, oh, ow = _hw(k.out_shape)
    if k.type in ("conv", "dwconv"):
        return oh * ow * cout * (cin // max(k.groups, 1)) * k.kernel * k.kernel
    if k.type == "fc":
        return cin * h * w * cout * oh * ow
    if k.type == "pool":
        return oh * ow * cout * k.kernel * k.kernel
    if k.type == "lrn":  # a window of ``kernel`` channels per element
        return cin * h * w * max(k.kernel, 1)
    return max(cin * h * w, cout * oh * ow)


def weight_bytes(k: Kernel) -> int:
    """Bytes of the weights ``k`` reads (its ``params``, float32)."""
    return k.params * FLOAT_BYTES


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
    return elems * FLOAT_BYTES


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
        # Per group for a grouped conv (feature_matrix passes one group): it runs NCHWc only when each
        # group's channels fill whole blocks (measured: 240->960 in 3 groups does, 120->480 does not).
        channel_align(cin),
        channel_align(cout),
    ]


def per_group(k: Kernel) -> tuple[Kernel, int]:
    """A grouped (not depthwise) conv as one of its ``g`` groups, and ``g``; any other kernel and 1.

    onnxruntime runs the groups one after another, so ``g`` times one group's time is a good base (measured:
    0.64-0.96 of it for ShuffleNet's 3-group convs), and one group is an ordinary conv that the many
    ungrouped samples already cover. Fitted on whole grouped convs instead, the regressor predicted
    ShuffleNet's 1.5-2.4x too slow."""
    if k.type != "conv" or k.groups <= 1:
        return k, 1
    g = k.groups
    cin, h, w = _hw(k.in_shape)
    cout, oh, ow = _hw(k.out_shape)
    one = dataclasses.replace(
        k, in_shape=(cin // g, h, w), out_shape=(cout // g, oh, ow), params=k.params // g, groups=1
    )
    return one, g


def multiplicity(kernels: Sequence[Kernel]) -> np.ndarray:
    """How many times the row of ``feature_matrix`` runs (the group count of a grouped conv, else 1)."""
    return np.array([per_group(k)[1] for k in kernels], dtype=np.float64)


def feature_matrix(kernels: Sequence[Kernel]) -> np.ndarray:
    """One row per kernel: the features of one group (see ``per_group``) with the real group count."""
    rows = []
    for k in kernels:
        one, g = per_group(k)
        row = kernel_features(one)
        row[FEATURES.index("groups")] = k.groups
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(kernels), len(FEATURES))
