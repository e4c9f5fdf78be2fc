"""Counting, checks and channel arithmetic shared by several families (and by their torch modules, which
import it rather than the block modules): squeeze-excite, shortcuts, inner widths."""

from __future__ import annotations

from nasprof.errors import SpaceError
from nasprof.space.blocks.base import BlockSpec, conv_macs, conv_params, make_divisible


def se_channels(spec: BlockSpec, channels: int) -> int:
    """Squeeze width. Default (MnasNet/EfficientNet): ``max(1, int(cin * se))`` of the block *input*;
    variant ``"v3"`` (MobileNetV3): ``make_divisible(channels * se, 8)`` of the excited channels."""
    if spec.variant == "v3":
        return make_divisible(channels * spec.se, 8)
    return max(1, int(spec.cin * spec.se))


def se_macs(spec: BlockSpec, channels: int) -> int:
    if not spec.se:
        return 0
    sq = se_channels(spec, channels)
    return 2 * channels * sq  # two 1x1 convs on the pooled 1x1 map


def se_params(spec: BlockSpec, channels: int) -> int:
    if not spec.se:
        return 0
    sq = se_channels(spec, channels)
    return conv_params(channels, sq, 1) + conv_params(sq, channels, 1)


def check_skip(spec: BlockSpec, allowed: tuple[str, ...] = ("none", "id", "pool")) -> None:
    """Identity needs equal shapes; pool/proj only make sense when the shape changes."""
    if spec.skip not in allowed:
        raise SpaceError(f"{spec.op}: skip {spec.skip!r} is not supported; use one of {', '.join(allowed)}")
    same = spec.stride == 1 and spec.cin == spec.cout
    if spec.skip == "id" and not same:
        raise SpaceError(
            f"{spec.op}: identity skip needs stride 1 and cin == cout, got stride {spec.stride}, "
            f"{spec.cin} -> {spec.cout} channels; use skip 'none' or 'pool'"
        )
    if spec.skip in ("pool", "proj") and same:
        raise SpaceError(f"{spec.op}: skip {spec.skip!r} is for shape-changing layers; use 'id' here")


def skip_macs(spec: BlockSpec, h_out: int, w_out: int) -> int:
    """pool: avg-pool then (if widths differ) 1x1 conv at the output size; proj: strided 1x1 conv."""
    if spec.skip == "proj" or (spec.skip == "pool" and spec.cin != spec.cout):
        return conv_macs(spec.cin, spec.cout, 1, h_out, w_out)
    return 0


def skip_params(spec: BlockSpec) -> int:
    if spec.skip == "proj" or (spec.skip == "pool" and spec.cin != spec.cout):
        return conv_params(spec.cin, spec.cout, 1)
    return 0


def mid_channels(spec: BlockSpec) -> int:
    return spec.mid or round(spec.cin * spec.expand)


def shuffle_mid(spec: BlockSpec) -> int:
    return spec.mid or spec.cout // 4


def input_groups(spec: BlockSpec) -> int:
    """Groups of the first 1x1 conv."""
    return 1 if spec.variant == "dense_in" else spec.groups


def branch_channels(spec: BlockSpec) -> int:
    return spec.cout - spec.cin if spec.stride == 2 else spec.cout


def bottleneck_mid(spec: BlockSpec) -> int:
    return spec.mid or spec.cout // 4


def bottleneck_se(spec: BlockSpec) -> tuple[int, int]:
    """(channels excited, squeeze width) of a bottleneck's squeeze-excite; (0, 0) without one."""
    if not spec.se:
        return 0, 0
    if spec.variant == "se_out":
        return spec.cout, max(1, int(spec.cout * spec.se))
    return bottleneck_mid(spec), max(1, int(spec.cin * spec.se))


def has_identity(spec: BlockSpec) -> bool:
    return spec.stride == 1 and spec.cin == spec.cout
