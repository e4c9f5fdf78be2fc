"""Random networks from the whole block zoo: stages of MBConv, depthwise-separable, ResNet, ResNeXt,
ShuffleNet, Fire, RepVGG and plain conv blocks behind a random stem.

They are no search space anyone searches; they exist to calibrate predictors on *varied* networks. A
kernel predictor calibrated only on samples of the ``mnasnet`` and ``mobilenetv2`` spaces learns what
mobile networks do to isolated kernels (1x1 convs ~1.15x slower in-network, few layout reorders) and
carries it onto ResNets, ShuffleNets and SqueezeNets, where it does not hold. Every zoo network is a valid
``Network`` (shapes chain, each block passes its family's checks) and exports like a preset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockSpec, make_divisible
from nasprof.space.network import Network

__all__ = ["ZOO_FAMILIES", "sample_zoo_network", "sample_zoo"]

#: Block families a zoo stage may use.
ZOO_FAMILIES = (
    "mbconv",
    "dwsep",
    "resnet_basic",
    "resnet_bottleneck",
    "resnext",
    "shuffle",
    "fire",
    "repvgg",
    "conv",
)
_RESOLUTIONS = (160, 192, 224)
_STAGES = 4
#: A family's draw can break its own divisibility rules (ShuffleNet groups, say); draw again this often.
_ATTEMPTS = 50

Stage = Callable[[np.random.Generator, int, int, int, int], list[BlockSpec]]


T = TypeVar("T")


def _pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    return options[int(rng.integers(len(options)))]


def _mbconv(rng: np.random.Generator, cin: int, cout: int, n: int, stride: int) -> list[BlockSpec]:
    kernel, expand = int(_pick(rng, (3, 5, 7))), float(_pick(rng, (3.0, 4.0, 6.0)))
    se, act = float(_pick(rng, (0.0, 0.25))), str(_pick(rng, ("relu", "relu6", "hswish", "swish")))
    out = []
    for i in range(n):
        s, c = (stride, cin) if i == 0 else (1, cout)
        skip = "id" if s == 1 and c == cout else "none"
        out.append(BlockSpec("mbconv", c, cout, kernel=kernel, stride=s, expand=expand, se=se, act=act,
                             skip=skip))
    return out


def _dwsep(rng: np.random.Generator, cin: int, cout: int, n: int, stride: int) -> list[BlockSpec]:
    kernel, act = int(_pick(rng, (3, 5))), str(_pick(rng, ("relu", "relu6")))
    out = []
    for i in range(n):
        s, c = (stride, cin) if i == 0 else (1, cout)
        skip = "id" if s == 1 and c == cout else "none"
        out.append(BlockSpec("dwsep", c, cout, kernel=kernel, stride=s, act=act, skip=skip))
    return out


def _resnet(op: str, expansion: int, groups: int) -> Stage:
    def stage(rng: np.random.Generator, cin: int, cout: int, n: int, stride: int) -> list[BlockSpec]:
        cout = make_divisible(cout, 8 * expansion)
        planes = cout // expansion
        mid = 0
        if op == "resnet_bottleneck":
            mid = planes
        elif op == "resnext":
            mid = make_divisible(planes * 2, 8 * groups)
        out = []
        for i in range(n):
            s, c = (stride, cin) if i == 0 else (1, cout)
            skip = "id" if s == 1 and c == cout else "proj"
            out.append(BlockSpec(op, c, cout, kernel=3, stride=s, skip=skip, mid=mid, groups=groups))
        return out

    return stage


def _shuffle(rng: np.random.Generator, cin: int, cout: int, n: int, stride: int) -> list[BlockSpec]:
    groups = int(_pick(rng, (2, 3, 4, 8)))
    cout = max(make_divisible(cout, 4 * groups), cin + 4 * groups)
    first = BlockSpec("shuffle", cin, cout, kernel=3, stride=2, groups=groups,
                      variant="dense_in" if cin % groups else "")
    return [first] + [BlockSpec("shuffle", cout, cout, kernel=3, stride=1, groups=groups)] * (n - 1)


def _fire(rng: np.random.Generator, cin: int, cout: int, n: int, stride: int) -> list[BlockSpec]:
    cout = make_divisible(cout, 16)
    out: list[BlockSpec] = []
    if stride == 2:  # fire modules never stride: SqueezeNet downsamples with a max pool
        out.append(BlockSpec("maxpool", cin, cin, kernel=3, stride=2, variant=str(_pick(rng, ("", "ceil")))))
    for i in range(n):
        c = cin if i == 0 else cout
        out.append(BlockSpec("fire", c, cout, kernel=3, mid=make_divisible(cout / 8, 8), act="relu"))
    return out


def _repvgg(rng: np.random.Generator, cin: int, cout: int, n: int, stride: int) -> list[BlockSpec]:
    return [BlockSpec("repvgg", cin if i == 0 else cout, cout, kernel=3, stride=stride if i == 0 else 1)
            for i in range(n)]


def _conv(rng: np.random.Generator, cin: int, cout: int, n: int, stride: int) -> list[BlockSpec]:
    kernel = int(_pick(rng, (1, 3)))
    return [BlockSpec("conv", cin if i == 0 else cout, cout, kernel=3 if i == 0 else kernel,
                      stride=stride if i == 0 else 1, act="relu") for i in range(n)]


_STAGE_BUILDERS: dict[str, Stage] = {
    "mbconv": _mbconv,
    "dwsep": _dwsep,
    "resnet_basic": _resnet("resnet_basic", 1, 1),
    "resnet_bottleneck": _resnet("resnet_bottleneck", 4, 1),
    "resnext": _resnet("resnext", 4, 8),
    "shuffle": _shuffle,
    "fire": _fire,
    "repvgg": _repvgg,
    "conv": _conv,
}


def _draw(rng: np.random.Generator, resolution: int, index: int) -> Network:
    c = make_divisible(float(rng.uniform(16, 64)), 8)
    stem: list[BlockSpec] = [BlockSpec("conv", 3, c, kernel=int(_pick(rng, (3, 3, 5, 7))), stride=2,
                                       act=str(_pick(rng, ("relu", "relu6", "hswish"))))]
    pooled = bool(rng.random() < 0.5)
    if pooled:
        stem.append(BlockSpec("maxpool", c, c, kernel=3, stride=2))
    blocks: list[BlockSpec] = []
    width = float(c) * float(rng.uniform(1.0, 2.0))
    for stage in range(_STAGES):
        family = str(_pick(rng, ZOO_FAMILIES))
        stride = 1 if stage == 0 and pooled else 2
        n = int(rng.integers(1, 4))
        blocks += _STAGE_BUILDERS[family](rng, c, make_divisible(width, 8), n, stride)
        c = blocks[-1].cout
        width *= float(rng.uniform(1.5, 2.5))
    head: list[BlockSpec] = []
    if rng.random() < 0.5:
        last = make_divisible(c * float(rng.uniform(1.5, 4.0)), 8)
        head.append(BlockSpec("conv", c, last, kernel=1, act="relu"))
        c = last
    head.append(BlockSpec("head", c, 1000, act="none"))
    return Network(f"zoo{index}_{resolution}", resolution, tuple(stem), tuple(blocks), tuple(head),
                   info={"zoo": str(index)})


def sample_zoo_network(rng: np.random.Generator, resolution: int | None = None, index: int = 0) -> Network:
    """One random zoo network (``resolution`` drawn from 160/192/224 when None)."""
    res = int(_pick(rng, _RESOLUTIONS)) if resolution is None else resolution
    last: SpaceError | None = None
    for _ in range(_ATTEMPTS):
        try:
            return _draw(rng, res, index)
        except SpaceError as exc:  # a family's divisibility rule: draw that network again
            last = exc
    raise SpaceError(f"could not draw a valid zoo network in {_ATTEMPTS} attempts: {last}")


def sample_zoo(n: int, seed: int = 0) -> list[Network]:
    """``n`` zoo networks, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [sample_zoo_network(rng, index=i) for i in range(n)]
