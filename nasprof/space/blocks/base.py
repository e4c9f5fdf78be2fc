"""The block contract: one frozen ``BlockSpec`` for every block, and a registry of block *families*.

A ``BlockSpec`` is plain data (hashable, JSON-able, no torch). Its ``op`` names a registered
``BlockFamily`` that knows the block's output shape, analytic MACs and parameters, its lookup-table key and
how to build its ``torch.nn.Module`` (torch is imported only inside ``build``). Families register with
``@register_block("name")`` (timm's ``@register_model``); a duplicate name is an error, not an overwrite.

Counting convention (shared by every family and checked against the exported ONNX graph):
  * MACs count Conv, Gemm and MatMul only (conv: H_out * W_out * C_out * C_in/groups * k * k); pooling,
    activations, additions and the SE multiply are free.
  * parameters are those of the deployed graph: BatchNorm folded into its convolution, so a conv-bn pair
    counts ``C_out * C_in/groups * k * k`` weights plus ``C_out`` biases; SE and linear layers keep biases.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from nasprof.errors import SpaceError
from nasprof.registry import Registry

if TYPE_CHECKING:  # pragma: no cover - typing only; torch is imported lazily by build()
    import torch

__all__ = [
    "ACTIVATIONS",
    "SKIPS",
    "BlockSpec",
    "BlockFamily",
    "BlockRegistry",
    "block_registry",
    "register_block",
    "get_family",
    "list_blocks",
    "make_divisible",
    "conv_out",
    "conv_macs",
    "conv_params",
]

#: Activation names a block may use; "none" is a linear (identity) activation.
ACTIVATIONS = ("relu", "relu6", "hswish", "swish", "none")
#: Shortcut kinds: none; identity (shapes must match); pool (avg-pool + 1x1 projection, for shape-changing
#: layers, MnasNet's "pooling" SkipOp); proj (strided 1x1 conv + BN, the ResNet downsample).
SKIPS = ("none", "id", "pool", "proj")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, losing at most 10% (the TF/torchvision rule)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


def conv_out(size: int, kernel: int, stride: int, pad: int | None = None) -> int:
    """Output size of a conv/pool along one axis (``pad`` defaults to "same"-style ``kernel // 2``)."""
    pad = kernel // 2 if pad is None else pad
    return (size + 2 * pad - kernel) // stride + 1


def conv_macs(cin: int, cout: int, kernel: int, h_out: int, w_out: int, groups: int = 1) -> int:
    return h_out * w_out * cout * (cin // groups) * kernel * kernel


def conv_params(cin: int, cout: int, kernel: int, groups: int = 1, bias: bool = True) -> int:
    return cout * (cin // groups) * kernel * kernel + (cout if bias else 0)


def _fmt(value: float) -> str:
    """Numbers in keys: ``3`` not ``3.0``; ``0.25`` stays ``0.25``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class BlockSpec:
    """One block's configuration. Which fields matter depends on ``op`` (the family); others keep defaults.

    ``expand`` is the inverted-bottleneck ratio; ``mid`` an explicit hidden width (expansion channels of an
    mbconv, squeeze width of a fire module, bottleneck width, hidden linear of a head); 0 = derived.
    ``se`` is the squeeze-excite ratio (0 = none). ``variant`` is a family-specific flavour documented in
    the family (e.g. mbconv ``"v3"``: MobileNetV3 SE with hard-sigmoid gate; maxpool ``"ceil"``).
    """

    op: str
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    expand: float = 1.0
    se: float = 0.0
    act: str = "relu"
    skip: str = "none"
    groups: int = 1
    mid: int = 0
    variant: str = ""

    def __post_init__(self) -> None:
        family = get_family(self.op)
        for name in ("cin", "cout", "kernel", "stride", "groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpaceError(f"{self.op}: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.mid, int) or self.mid < 0:
            raise SpaceError(f"{self.op}: mid must be a non-negative integer, got {self.mid!r}")
        if self.expand <= 0:
            raise SpaceError(f"{self.op}: expand must be > 0, got {self.expand!r}")
        if not 0.0 <= self.se < 1.0:
            raise SpaceError(f"{self.op}: se ratio must be in [0, 1), got {self.se!r}")
        if self.act not in ACTIVATIONS:
            raise SpaceError(
                f"{self.op}: unknown activation {self.act!r}; use one of {', '.join(ACTIVATIONS)}"
            )
        if self.skip not in SKIPS:
            raise SpaceError(f"{self.op}: unknown skip {self.skip!r}; use one of {', '.join(SKIPS)}")
        if not family.accepts_variant(self.variant):
            allowed = ", ".join(repr(v) for v in family.variants)
            raise SpaceError(f"{self.op}: unknown variant {self.variant!r}; use one of {allowed}")
        family.check(self)

    @property
    def family(self) -> BlockFamily:
        return get_family(self.op)

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        return self.family.output_hw(self, h, w)

    def macs(self, h: int, w: int) -> int:
        """Analytic MACs at input spatial size ``h`` x ``w``."""
        return self.family.macs(self, h, w)

    def params(self) -> int:
        """Analytic parameters of the deployed (BN-folded) block."""
        return self.family.params(self)

    def key(self, input_shape: tuple[int, int, int]) -> str:
        """The lookup-table key at ``input_shape`` = (C, H, W), ProxylessNAS style."""
        return self.family.key(self, input_shape)

    def build(self) -> torch.nn.Module:
        """The block's ``torch.nn.Module`` in training form (BatchNorm not yet folded)."""
        return self.family.build(self)

    def replace(self, **changes: Any) -> BlockSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from their defaults, so stored specs stay short and readable."""
        out: dict[str, Any] = {"op": self.op, "cin": self.cin, "cout": self.cout}
        for f in dataclasses.fields(self)[3:]:
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> BlockSpec:
        if not isinstance(doc, Mapping) or "op" not in doc:
            raise SpaceError(f"a block must be a JSON object with at least 'op', 'cin', 'cout'; got {doc!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise SpaceError(
                f"unknown block field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**dict(doc))
        except TypeError as exc:
            raise SpaceError(f"malformed block {dict(doc)!r}: {exc}") from None


class BlockFamily(abc.ABC):
    """How one kind of block behaves. Subclasses are stateless; instances live in a ``BlockRegistry``.

    ``key_fields`` lists the (label, spec field) pairs that follow ``input:..-output:..`` in the table key;
    they must include every field that changes the built module, so that distinct blocks get distinct keys.
    """

    name: ClassVar[str] = ""
    key_fields: ClassVar[tuple[tuple[str, str], ...]] = ()
    variants: ClassVar[tuple[str, ...]] = ("",)

    def check(self, spec: BlockSpec) -> None:  # noqa: B027 - optional hook, default accepts everything
        """Raise ``SpaceError`` if ``spec`` is inconsistent for this family (called on construction)."""

    def accepts_variant(self, variant: str) -> bool:
        """Whether ``variant`` is one of the family's flavours (a family whose variant is a grammar, such as
        a NASNet cell's genotype, parses it here)."""
        return variant in self.variants

    def parts(self, spec: BlockSpec, input_shape: tuple[int, int, int]) -> tuple[Any, ...] | None:
        """The single-input ``Layer``s a latency table prices this block by, when it is not priced whole
        (a multi-branch cell is keyed by its operations at shape); None: the block is its own table row."""
        return None

    @abc.abstractmethod
    def output_hw(self, spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
        """Output spatial size for input spatial size ``h`` x ``w``."""

    @abc.abstractmethod
    def macs(self, spec: BlockSpec, h: int, w: int) -> int:
        """MACs (Conv/Gemm/MatMul only) at input spatial size ``h`` x ``w``."""

    @abc.abstractmethod
    def params(self, spec: BlockSpec) -> int:
        """Parameters of the deployed (BN-folded) block."""

    @abc.abstractmethod
    def build(self, spec: BlockSpec) -> torch.nn.Module:
        """A fresh ``torch.nn.Module`` in training form; ``forward`` takes and returns NCHW tensors."""

    @abc.abstractmethod
    def examples(self) -> list[tuple[BlockSpec, tuple[int, int, int]]]:
        """Small (spec, input shape) cases covering every variant, stride and skip kind of the family.

        The test suite runs over the registry and checks each example (export, onnxruntime vs torch, analytic
        vs graph counts, keys), so a new family is tested as soon as it lists its examples.
        """

    def key_value(self, spec: BlockSpec, field_name: str) -> object:
        """The value a key shows for ``field_name``; families override it to show derived values."""
        return getattr(spec, field_name)

    def output_channels(self, spec: BlockSpec) -> int:
        return spec.cout

    def key(self, spec: BlockSpec, input_shape: tuple[int, int, int]) -> str:
        c, h, w = input_shape
        ho, wo = self.output_hw(spec, h, w)
        parts = [f"{self.name}-input:{h}x{w}x{c}-output:{ho}x{wo}x{self.output_channels(spec)}"]
        for label, field_name in self.key_fields:
            value = self.key_value(spec, field_name)
            if field_name == "skip":
                value = {"none": "0", "id": "1"}.get(str(value), str(value))
            elif isinstance(value, float):
                value = _fmt(value)
            parts.append(f"{label}:{value}")
        if spec.mid and "mid" not in {f for _, f in self.key_fields}:
            parts.append(f"mid:{spec.mid}")
        if spec.variant:
            parts.append(f"variant:{spec.variant}")
        return "-".join(parts)


class BlockRegistry(Registry["BlockFamily"]):
    """Name -> family (``nasprof.registry.Registry``); tests can build their own."""

    def __init__(self) -> None:
        super().__init__("block op", error=SpaceError)

    def register(self, name: str, family: Any = None, *, replace: bool = False) -> Any:
        if not name or not name.replace("_", "").isalnum() or name != name.lower():
            raise SpaceError(f"block name {name!r} must be lower-case letters, digits and underscores")
        if name in self._items and not replace:
            raise SpaceError(f"block {name!r} is already registered ({type(self._items[name]).__name__})")
        return super().register(name, family, replace=replace)


block_registry = BlockRegistry()

F = TypeVar("F", bound=type[BlockFamily])


def register_block(name: str, registry: BlockRegistry | None = None) -> Callable[[F], F]:
    """Class decorator: ``@register_block("mbconv") class MBConv(BlockFamily): ...``."""

    def deco(cls: F) -> F:
        cls.name = name
        (registry if registry is not None else block_registry).register(name, cls())
        return cls

    return deco


def get_family(name: str) -> BlockFamily:
    # The built-in families are registered by importing the package, which Python does before this module.
    return block_registry.get(name)


def list_blocks() -> list[str]:
    return block_registry.names()


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def check_divisible(spec: BlockSpec, what: str, channels: int, groups: int) -> None:
    if channels % groups:
        raise SpaceError(f"{spec.op}: {what} ({channels}) must be divisible by groups ({groups})")
