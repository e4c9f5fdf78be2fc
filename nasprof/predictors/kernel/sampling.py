"""Training data for the kernel predictor: sample kernel configurations (``kernel_model`` builds each as a
one-kernel ONNX model, ``measure`` times them on the device).

Configurations are drawn from a prior shaped like mobile CNNs (feature maps 7–224, channels in multiples of
8 up to ~1,300, 1×1 convs most common, SE-style 1×1 convs on 1×1 maps). Adaptive sampling follows
nn-Meter: around a configuration the current regressor gets wrong by more than 10% (judged on out-of-bag
predictions, so no extra measurements are spent on validation), new configurations re-sample its channel
counts in [0.4·C, 1.2·C].

A one-kernel model's latency includes the fixed cost of a ``session.run`` call (measured once on a
near-empty model, subtracted, and added back once per predicted network) and, on x86 at level ``all``, the
NCHWc layout reorders onnxruntime wraps around a lone conv. A profiled pass finds those reorders; their
share of the pass (net of the profiler's own cost per node) is taken off the kernel's time and becomes
training data for a ``reorder`` kernel type, which the predictor adds only where a real network needs one
(around an SE ``Mul``, before ``Gemm``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from nasprof.predictors.kernel.kernels import Kernel
from nasprof.predictors.kernel.split import AVGPOOL_CEIL_PAD

__all__ = ["sample_kernels", "resample_around", "BUDGET_SHARES"]

#: Share of the initial budget per kernel type (rough share of these kernels' time in mobile CNNs).
BUDGET_SHARES: dict[str, float] = {
    "conv": 0.36,
    "dwconv": 0.24,
    "eltwise": 0.08,
    "act": 0.05,
    "gap": 0.05,
    "fc": 0.06,
    # Pools vary in layout, kernel, Max/Average and 8-1024 channels: with 4% (18 samples) their
    # out-of-bag error was 31-56%.
    "pool": 0.08,
    "concat": 0.04,
    "memory": 0.04,
    # AlexNet's and GoogLeNet's local response normalisation: rare, but 30x an activation per element.
    "lrn": 0.01,
}
_SIZES = (7, 14, 28, 56, 112, 224)
#: Keep single measurements short on slow hosts: skip configurations above this many MACs (VGG's largest
#: 3x3 convs at 224 px are 1.85 G; a 2 G-MAC kernel takes about 40 ms here).
_MAX_MACS = 2_000_000_000

Progress = Callable[[int, int, str], None]


def _aligned_channels(rng: np.random.Generator, lo: int = 8, hi: int = 1280, block: int = 16) -> int:
    """A channel count, log-uniform in [lo, hi], a multiple of 8, and half the time of the device's NCHWc
    ``block`` when that is larger (with blocks of 16: a multiple of 16 three times in four).

    Why the block so often: in the 58 networks of the presets and calibration sets, 65% of the (ungrouped)
    conv time is in convs whose input and output widths are both multiples of 16, the NCHWc block on
    AVX-512. Rounded to 8 alone, 15% of one fit's conv samples (83 of 538) were such convs, and the regressor
    predicted them 7.2% slow (median out-of-bag; the others: 3% fast to 4% slow). Drawn this way, 31% (167
    of 546, adaptive round included) and 3.8%. With blocks of 8 (AVX2) or no blocked layout every width
    already fills the alignment that matters, and the draw is the plain multiple of 8."""
    c = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    step = block if block > 8 and rng.random() < 0.5 else 8
    return max(8, int(round(c / step)) * step)


def _group_width(rng: np.random.Generator, lo: int = 4, hi: int = 320) -> int:
    """Channels per group of a grouped conv: log-uniform in [lo, hi], a multiple of 4, as in ShuffleNet
    (20-320) and ResNeXt (4-32 per group at 32 groups; the zoo's 8 groups, 8-128).

    Why: drawn as total widths rounded to the group count, 94 of one fit's 107 grouped samples had a shape
    no network has (2 output channels per group, 122 per group, 8 -> 284, a 1×1 map), whose time runs
    0.13-4.4x g × one group, and the regressor put ShuffleNet's 3-group convs at 1.06x their time alone;
    drawn per group, 1.01x."""
    return _round4(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def _round4(c: float) -> int:
    return 4 * max(1, int(round(c / 4)))


def _size(rng: np.random.Generator) -> int:
    return int(rng.choice(_SIZES)) if rng.random() < 0.8 else int(rng.integers(4, 225))


def _out_hw(h: int, k: int, s: int) -> int:
    return (h + 2 * (k // 2) - k) // s + 1


def _unaligned(c: int, rng: np.random.Generator) -> int:
    """``c``, or about one time in six ``c`` + 2, 4 or 6. Widths that are not a multiple of 4 (a zoo
    ShuffleNet unit's 42 or 46 channels) run depthwise convs and convs reading them in plain NCHW (see
    ``kernels._blocked_kernel``), at other costs than blocked kernels; widths that are a multiple of 4 but
    not of 8 (ShuffleNet's 60) stay blocked. Sampled with only the first kind, the forest split the
    alignment feature between 2 and 8 and put ShuffleNet's 60-channel depthwise convs with the plain ones
    (predicted 6x their time)."""
    return c + int(rng.choice([2, 4, 6])) if rng.random() < 0.16 else c


def _sample_one(kind: str, rng: np.random.Generator, block: int) -> Kernel:
    h = _size(rng)

    def _channels(rng: np.random.Generator, lo: int = 8, hi: int = 1280) -> int:
        return _aligned_channels(rng, lo, hi, block)

    if kind == "conv" and rng.random() < CLASSIC_SHARE:
        return _classic_conv(rng, _channels)
    if kind == "conv":
        u = rng.random()
        stem = u >= 0.90
        if u < 0.12:  # squeeze-excite convs: 1×1 on a 1×1 map
            h, k, s = 1, 1, 1
        elif stem:
            # Stems (3 input channels): one per network but often its largest conv; ResNet and SqueezeNet use
            # 7×7. With 5% of the conv budget and no 7×7 they came out 1.3-1.8x their in-network time.
            h = int(rng.choice([224, 224, 192, 160, 128, 32]))
            k, s = int(rng.choice([3, 3, 5, 7])), int(rng.choice([2, 2, 1]))
        else:
            k = int(rng.choice([1, 1, 1, 3, 3, 5]))
            s = int(rng.choice([1, 1, 2]))
        cin = 3 if stem else _channels(rng)
        cout = _channels(rng, 8, 128) if stem else _channels(rng)
        # Grouped (not depthwise) convs, as in ShuffleNet/ResNeXt (never on a 1×1 map).
        g = int(rng.choice([2, 3, 4, 8])) if cin > 3 and h > 1 and rng.random() < 0.15 else 1
        if g > 1:  # output 1/4 to 4x the input per group: ShuffleNet's squeeze and expand, ResNeXt's 1x
            wide = _group_width(rng)
            cin, cout = g * wide, g * _round4(wide * float(rng.choice([0.25, 0.5, 1.0, 1.0, 2.0, 4.0])))
        if g == 1 and cin >= 16:
            cin = _unaligned(cin, rng)
        act = str(rng.choice(["", "Relu", "Clip", "HardSwish", "Sigmoid"]))
        fused = act in ("", "Relu") and s == 1 and rng.random() < 0.3
        o = _out_hw(h, k, s)
        return Kernel(
            "conv",
            "k",
            ("k",),
            (cin, h, h),
            (cout, o, o),
            kernel=k,
            stride=s,
            groups=g,
            act=act,
            fused_add=fused,
            params=cout * (cin // g) * k * k + cout,
        )
    if kind == "dwconv":
        c = _unaligned(_channels(rng, 8, 1600), rng)
        # 1x1: a standalone BatchNormalization run as a blocked depthwise conv (``KernelRules.bn_as_conv``).
        k, s = int(rng.choice([1, 3, 3, 3, 5, 5, 7, 7])), int(rng.choice([1, 1, 2]))
        act = str(rng.choice(["", "Relu", "Clip", "HardSwish"]))
        o = _out_hw(h, k, s)
        return Kernel(
            "dwconv",
            "k",
            ("k",),
            (c, h, h),
            (c, o, o),
            kernel=k,
            stride=s,
            groups=c,
            act=act,
            params=c * k * k + c,
        )
    if kind == "fc":
        cin, cout = _channels(rng, 64, 2048), int(rng.choice([10, 100, 1000, _channels(rng, 64, 1280)]))
        if rng.random() < 0.2:  # AlexNet/VGG classifiers: a flattened 6x6 or 7x7 map into 4096 units
            cin, cout = 8 * int(np.exp(rng.uniform(np.log(128), np.log(3200)))), int(rng.choice([1000, 4096]))
        return Kernel(
            "fc", "k", ("k",), (cin,), (cout,), act=str(rng.choice(["", "Relu"])), params=cin * cout + cout
        )
    if kind == "gap":
        c = _channels(rng, 16, 1600)
        op = "GlobalMaxPool" if rng.random() < 0.2 else "GlobalAveragePool"
        return Kernel("gap", "k", ("k",), (c, h, h), (c, 1, 1), variant=op)
    if kind == "pool":
        # Up to 1024 channels: pools follow wide layers too (SqueezeNet pools 512 channels, VGG 512); with a
        # cap of 256 those were extrapolated, at 2-5x their time.
        c, k = _channels(rng, 8, 1024), int(rng.choice([2, 3]))
        u = rng.random()
        if u < 0.12:
            # PyTorch's AvgPool2d(k, ceil_mode=True) (count_include_pad defaults on): no padding, rounding
            # up, and no NCHWc kernel (see AVGPOOL_CEIL_PAD), so it needs samples of its own.
            o = -(-(h - k) // 2) + 1 if h >= k else 1
            v = AVGPOOL_CEIL_PAD
            return Kernel("pool", "k", ("k",), (c, h, h), (c, o, o), kernel=k, stride=2, variant=v)
        o = _out_hw(h, k, 2)
        op = "AveragePool" if u < 0.36 else "MaxPool"
        return Kernel("pool", "k", ("k",), (c, h, h), (c, o, o), kernel=k, stride=2, variant=op)
    if kind == "eltwise":
        c = _channels(rng, 8, 1280)
        u = rng.random()
        # A standalone BatchNormalization (DenseNet's pre-activation, a BN after a pool or concat): a
        # per-channel scale and shift, like a broadcast Mul and Add in one kernel.
        op, bcast = ("Mul", True) if u < 0.35 else ("BatchNormalization", True) if u < 0.5 else ("Add", False)
        return Kernel("eltwise", "k", ("k",), (c, h, h), (c, h, h), variant=op, broadcast=bcast)
    if kind == "act":
        c = _channels(rng, 8, 1280)
        act = str(rng.choice(["Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "QuickGelu", "QuickGelu",
                              "Softmax"]))
        if act == "Softmax":  # over a classifier's outputs
            n = int(rng.choice([10, 100, 1000, 1000, _channels(rng, 8, 4096)]))
            return Kernel("act", "k", ("k",), (n,), (n,), act=act)
        return Kernel("act", "k", ("k",), (c, h, h), (c, h, h), act=act)
    if kind == "lrn":
        c, h = _channels(rng, 16, 512), int(rng.choice([7, 14, 28, 56, 56, 112]))
        return Kernel("lrn", "k", ("k",), (c, h, h), (c, h, h), kernel=5)
    if kind == "concat":
        c1, c2 = _channels(rng, 8, 512), _channels(rng, 8, 512)
        return Kernel("concat", "k", ("k",), (c1, h, h), (c1 + c2, h, h), variant=str(c1))
    if kind == "memory":
        op = str(rng.choice(["Transpose", "Transpose", "Split", "Slice", "Pad", "Resize"]))
        g = int(rng.choice([2, 3, 4])) if op == "Transpose" else 1
        c = max(g, _channels(rng, 16, 1024) // (2 * g) * 2 * g)  # even per group, so halves exist
        if op == "Pad":  # one pixel around (an explicit Pad before a conv or pool)
            return Kernel("memory", "k", ("k",), (c, h, h), (c, h + 2, h + 2), variant=op)
        if op == "Resize":  # nearest-neighbour 2x upsampling
            h = min(h, 112)
            return Kernel("memory", "k", ("k",), (c, h, h), (c, 2 * h, 2 * h), variant=op)
        out = (c, h, h) if op == "Transpose" else (c // 2, h, h)
        return Kernel("memory", "k", ("k",), (c, h, h), out, groups=g, variant=op)
    raise ValueError(f"no sampler for kernel type {kind!r}")


#: Share of conv samples drawn from classic CNNs' shapes (VGG, ResNet, Inception, DenseNet): widths to 2,048,
#: kernels to 11x11, large maps. Without them a predictor fitted on the mobile prior over-predicted such
#: networks by 35-48% (its forests cannot extrapolate to convs 10x larger than any sample); mobile shapes
#: keep the other 85%.
CLASSIC_SHARE = 0.15


def _classic_conv(rng: np.random.Generator, channels: Callable[..., int]) -> Kernel:
    k = int(rng.choice([1, 1, 3, 3, 3, 5, 7, 11]))
    s = 4 if k == 11 else int(rng.choice([1, 1, 1, 2]))
    h = int(rng.choice([7, 14, 14, 28, 28, 56, 56, 112, 224] if k < 11 else [224, 227]))
    cin = 3 if k >= 7 and rng.random() < 0.5 else channels(rng, 32, 2048)
    cout = channels(rng, 32, 2048)
    o = _out_hw(h, k, s)
    act = str(rng.choice(["", "Relu", "Relu"]))
    fused = act in ("", "Relu") and s == 1 and cin > 3 and rng.random() < 0.3
    return Kernel("conv", "k", ("k",), (cin, h, h), (cout, o, o), kernel=k, stride=s, act=act,
                  fused_add=fused, params=cout * cin * k * k + cout)


def _macs_ok(k: Kernel) -> bool:
    from nasprof.predictors.kernel.features import kernel_macs

    return kernel_macs(k) <= _MAX_MACS


#: The variants every fit samples first, whatever its budget: a small fit must still cover what nearly
#: every network has (a regressor refuses variants it never saw, ``KernelPredictor.covers``).
_FIRST_VARIANTS: dict[str, tuple[str, ...]] = {
    "gap": ("GlobalAveragePool",),
    "pool": ("MaxPool", "AveragePool"),
    "eltwise": ("Add", "Mul"),
    "act": ("Relu", "Clip", "Sigmoid", "HardSwish"),
    "memory": ("Transpose",),
}


def sample_kernels(kind: str, n: int, rng: np.random.Generator, block: int = 16) -> list[Kernel]:
    """``n`` configurations of kernel type ``kind``; ``block`` is the device's NCHWc block (0: none), which
    sets how often channel counts fill it. The first ones cover ``_FIRST_VARIANTS`` of the kind."""
    from nasprof.predictors.kernel.features import coverage_key

    out: list[Kernel] = []
    for want in _FIRST_VARIANTS.get(kind, ())[:n]:
        for _ in range(1000):  # the common variants are a good share of draws: found in a few
            k = _sample_one(kind, rng, block)
            if coverage_key(k) == want and _macs_ok(k):
                out.append(k)
                break
    while len(out) < n:
        k = _sample_one(kind, rng, block)
        if _macs_ok(k):
            out.append(k)
    return out


def resample_around(k: Kernel, rng: np.random.Generator) -> Kernel:
    """A neighbour of ``k``: channel counts re-drawn in [0.4·C, 1.2·C] (nn-Meter's adaptive sampling)."""

    def near(c: int) -> int:
        if c <= 3:
            return c
        # An unaligned width (see ``_unaligned``) keeps its offset: its neighbours run the same layout.
        return max(8, int(round(c * rng.uniform(0.4, 1.2) / 8)) * 8) + (c % 8 if c % 4 else 0)

    for _ in range(20):
        cin = near(k.in_shape[0])
        if k.type == "memory":  # keep the channel count divisible into groups and halves
            cin = max(2 * k.groups, cin // (2 * k.groups) * 2 * k.groups)
            cout = cin if k.variant in ("Transpose", "Pad", "Resize") else cin // 2
        elif k.type in ("dwconv", "gap", "pool", "eltwise", "act", "lrn"):
            cout = cin
        elif k.type == "concat":
            cout = cin + near(k.out_shape[0] - k.in_shape[0])
        elif k.type == "fc" and k.out_shape[0] in (10, 100, 1000):
            cout = k.out_shape[0]
        else:
            cout = near(k.out_shape[0])
        params = k.params
        if k.type == "conv":
            g = k.groups
            if g > 1:  # re-drawn per group, keeping a multiple of 4 (see ``_group_width``)
                widths = (k.in_shape[0] // g, k.out_shape[0] // g)
                cin, cout = (g * _round4(c * rng.uniform(0.4, 1.2)) for c in widths)
            params = cout * (cin // g) * k.kernel * k.kernel + cout
        elif k.type == "dwconv":
            params = cin * k.kernel * k.kernel + cin
        elif k.type == "fc":
            params = cin * cout + cout
        cand = dataclasses.replace(
            k,
            in_shape=(cin, *k.in_shape[1:]),
            out_shape=(cout, *k.out_shape[1:]),
            params=params,
            groups=cin if k.type == "dwconv" else k.groups,
            variant=str(cin) if k.type == "concat" else k.variant,
        )
        if _macs_ok(cand):
            return cand
    return k






