"""What a device executes: the fusion and layout rules the kernel split follows.

onnxruntime does not run the graph a user exports. It folds constants and batch norms, fuses activations
and residual adds into convolutions, and on x86 converts blocks of the graph into the NCHWc layout, whose
block size comes from the CPU (16 channels with AVX-512, 8 with AVX2; none on ARM64 or CUDA). Which of these
happen differs per device, per onnxruntime version and per optimisation level, so a ``KernelRules`` is
*detected* on the device (``nasprof.predictors.kernel.probe``) and stored with the predictor that was fitted
there. ``KernelRules.fallback`` holds the rules observed by hand on onnxruntime 1.32 on an AVX-512 host; it
is used only for a device that cannot be probed, and for predictor files written before probing, and says so
(``source``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nasprof.errors import PredictorError

__all__ = ["KernelRules", "LEVELS", "RULES_VERSION", "ACTIVATIONS", "local_mismatch"]

LEVELS = ("disable", "basic", "extended", "all")
#: Version of the ``to_dict`` layout.
RULES_VERSION = 1
#: Activations a conv or Gemm may absorb; each is probed on its own.
ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish")
_EXTENDED_ACTS = frozenset({"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid"})


@dataclass(frozen=True)
class KernelRules:
    """Which kernels a device runs for a graph at one optimisation level.

    Layout fields matter only when ``nchwc_block`` > 0 (a blocked channel layout exists: x86 CPUs at level
    ``all``). A width "fills" an alignment ``a`` when it is a multiple of ``a``.
    """

    opt_level: str = "all"
    #: Channels per block of the blocked (NCHWc) layout; 0 when the device has none.
    nchwc_block: int = 0
    #: A depthwise conv runs blocked only when its channels fill this.
    dwconv_align: int = 4
    #: A conv reading at least a block of channels reads them blocked only when they fill this.
    conv_align: int = 4
    #: A grouped conv runs blocked only when each group's input and output channels fill this.
    group_align: int = 0
    #: A concat stays blocked only when every input fills this.
    concat_align: int = 0
    #: Whether ``AveragePool(ceil_mode=1, count_include_pad=1)`` gets a blocked kernel.
    avgpool_ceil_pad_blocked: bool = False
    #: Whether a residual Add folds into a blocked conv only when the other operand is blocked too.
    residual_needs_blocked: bool = True
    #: Activations fused into the conv before them.
    conv_acts: frozenset[str] = frozenset()
    #: Activations fused into the Gemm before them.
    gemm_acts: frozenset[str] = frozenset()
    #: Whether a residual Add of two computed tensors fuses into the conv producing one of them.
    conv_add: bool = False
    #: Activations fused after such a fused Add.
    conv_add_acts: frozenset[str] = frozenset()
    #: Whether ``x * sigmoid(x)`` runs as one kernel.
    silu: bool = False
    #: Whether a standalone BatchNormalization on a blocked tensor runs as a blocked 1×1 depthwise conv
    #: (absorbing the activation after it), as onnxruntime's NCHWc transformer does on x86.
    bn_as_conv: bool = False
    #: "probed" (detected on ``device``) or "fallback" (hand-written; why in ``note``).
    source: str = "fallback"
    note: str = ""
    #: Where the rules were detected: backend, device, runtime and version, CPU model and SIMD flags.
    device: Mapping[str, Any] = field(default_factory=dict)
    #: Probes whose outcome the split, following these rules, does not reproduce (``probe:expected/seen``).
    unexplained: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.opt_level not in LEVELS:
            raise PredictorError(f"kernel rules: unknown optimisation level {self.opt_level!r}")
        for name in ("nchwc_block", "dwconv_align", "conv_align", "group_align", "concat_align"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > 1024:
                raise PredictorError(f"kernel rules: {name} must be an integer in 0..1024, got {v!r}")
        if self.source not in ("probed", "fallback"):
            raise PredictorError(f"kernel rules: source must be 'probed' or 'fallback', got {self.source!r}")
        for name in ("conv_acts", "gemm_acts", "conv_add_acts"):
            object.__setattr__(self, name, frozenset(str(a) for a in getattr(self, name)))
        # Alignments left at 0 follow the block (the rule observed everywhere so far).
        for name in ("group_align", "concat_align"):
            if getattr(self, name) == 0:
                object.__setattr__(self, name, self.nchwc_block)
        object.__setattr__(self, "device", dict(self.device))
        object.__setattr__(self, "unexplained", tuple(self.unexplained))

    @property
    def level(self) -> int:
        return LEVELS.index(self.opt_level)

    @property
    def reorders(self) -> bool:
        """Whether the device inserts layout reorders (a blocked layout exists)."""
        return self.nchwc_block > 0

    @property
    def layout(self) -> str:
        if self.nchwc_block:
            return f"NCHWc, blocks of {self.nchwc_block}"
        return "plain NCHW (no blocked layout)"

    @classmethod
    def fallback(cls, opt_level: str = "all", nchwc_block: int = 0, note: str = "") -> KernelRules:
        """The hand-written rules (onnxruntime 1.32 on an AVX-512 host, checked by hand): for devices that
        cannot be probed and predictor files written before probing."""
        if opt_level not in LEVELS:
            raise PredictorError(
                f"unknown optimisation level {opt_level!r}: use one of {', '.join(LEVELS)}"
            )
        lvl = LEVELS.index(opt_level)
        acts = _EXTENDED_ACTS if lvl >= 2 else frozenset()
        return cls(
            opt_level=opt_level,
            nchwc_block=nchwc_block if lvl >= 3 else 0,
            conv_acts=acts | ({"HardSwish"} if lvl >= 3 else set()),
            gemm_acts=acts,
            conv_add=lvl >= 3,
            conv_add_acts=frozenset({"Relu"}) if lvl >= 3 else frozenset(),
            silu=lvl >= 2,
            source="fallback",
            note=note or "hand-written rules (onnxruntime 1.32, AVX-512 host); not detected on this device",
        )

    def replace(self, **changes: Any) -> KernelRules:
        return dataclasses.replace(self, **changes)

    # -- comparison ---------------------------------------------------------------------------------------
    def split_fields(self) -> dict[str, Any]:
        """The fields that decide the split (not where or how they were found)."""
        skip = {"source", "note", "device", "unexplained"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}

    def differences(self, other: KernelRules) -> list[str]:
        """``field: mine -> other`` for every split-deciding field that differs."""
        a, b = self.split_fields(), other.split_fields()
        return [f"{k}: {_show(a[k])} -> {_show(b[k])}" for k in a if a[k] != b[k]]

    def identity(self) -> str:
        """One line naming the device and runtime these rules were detected on."""
        d = self.device
        parts = [str(d.get("device") or d.get("backend") or "unknown device")]
        if d.get("cpu_model"):
            parts.append(str(d["cpu_model"]))
        if d.get("runtime_version"):
            parts.append(f"{d.get('runtime', 'onnxruntime')} {d['runtime_version']}")
        parts.append(self.layout)
        return ", ".join(parts)

    # -- files ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rules_version": RULES_VERSION}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, frozenset):
                v = sorted(v)
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, Mapping):
                v = dict(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KernelRules:
        if not isinstance(d, Mapping):
            raise PredictorError(f"kernel rules must be a JSON object, got {type(d).__name__}")
        version = d.get("rules_version")
        if version != RULES_VERSION:
            raise PredictorError(
                f"kernel rules of version {version!r}; this nasprof reads version {RULES_VERSION}: "
                "probe the device again (or upgrade nasprof if the file is newer)"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known - {"rules_version"})
        if unknown:
            raise PredictorError(f"kernel rules have unknown fields {', '.join(unknown)}")
        args: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name in ("conv_acts", "gemm_acts", "conv_add_acts", "unexplained"):
                if not isinstance(v, Sequence) or isinstance(v, str):
                    raise PredictorError(f"kernel rules: {f.name} must be a list, got {v!r}")
                v = frozenset(v) if f.name != "unexplained" else tuple(str(x) for x in v)
            elif f.name in ("avgpool_ceil_pad_blocked", "residual_needs_blocked", "conv_add", "silu",
                            "bn_as_conv"):
                if not isinstance(v, bool):
                    raise PredictorError(f"kernel rules: {f.name} must be true or false, got {v!r}")
            elif f.name == "device" and not isinstance(v, Mapping):
                raise PredictorError(f"kernel rules: device must be an object, got {v!r}")
            elif f.name in ("opt_level", "source", "note") and not isinstance(v, str):
                raise PredictorError(f"kernel rules: {f.name} must be a string, got {v!r}")
            args[f.name] = v
        return cls(**args)

    def describe(self) -> dict[str, Any]:
        """Rows for people: what runs how on this device."""
        rows: dict[str, Any] = {
            "source": self.source if not self.note else f"{self.source} ({self.note})",
            "detected on": self.identity(),
            "optimisation level": self.opt_level,
            "layout": self.layout,
        }
        if self.nchwc_block:
            rows.update(
                {
                    "depthwise conv blocked when channels divide by": self.dwconv_align,
                    "conv reads blocks when channels divide by": self.conv_align,
                    "grouped conv blocked when each group divides by": self.group_align,
                    "concat blocked when every input divides by": self.concat_align,
                    "AveragePool(ceil, count_include_pad) blocked": self.avgpool_ceil_pad_blocked,
                    "residual Add needs a blocked operand": self.residual_needs_blocked,
                    "standalone BatchNormalization runs as a blocked conv": self.bn_as_conv,
                }
            )
        rows.update(
            {
                "conv + activation fused": _show(self.conv_acts),
                "Gemm + activation fused": _show(self.gemm_acts),
                "conv + residual Add fused": self.conv_add,
                "activation after a fused Add": _show(self.conv_add_acts),
                "x*sigmoid(x) as one kernel": self.silu,
            }
        )
        if self.unexplained:
            rows["probes the split does not reproduce"] = ", ".join(self.unexplained)
        return rows


def local_mismatch(rules: KernelRules) -> list[str]:
    """How this host differs from the local CPU ``rules`` were detected on: its CPU model, SIMD flags or
    onnxruntime version (one line each; empty when they match, or when the rules came from another kind of
    device, which cannot be read without connecting to it)."""
    d = rules.device
    if d.get("backend") != "cpu":
        return []
    import onnxruntime as ort

    from nasprof.profiler.environment import cpu_flags, cpu_model

    out = []
    if d.get("runtime_version") and d["runtime_version"] != ort.__version__:
        out.append(f"onnxruntime {d['runtime_version']} -> {ort.__version__}")
    if "cpu_flags" in d:
        then, now = set(d["cpu_flags"]), set(cpu_flags())
        if then != now:
            lost, gained = sorted(then - now), sorted(now - then)
            what = "; ".join(filter(None, [f"lacks {' '.join(lost)}" if lost else "",
                                           f"adds {' '.join(gained)}" if gained else ""]))
            out.append(f"CPU flags differ (this CPU {what})")
    if d.get("cpu_model") and d["cpu_model"] != cpu_model() and not out:
        out.append(f"CPU {d['cpu_model']!r} -> {cpu_model()!r}")
    if not out:
        return []
    return [
        f"kernel rules were detected on {rules.identity()}; this host differs ({'; '.join(out)}): "
        "its fusions and layout may differ; run `nasprof devices probe cpu` to compare, and refit"
    ]


def _show(v: Any) -> str:
    if isinstance(v, frozenset):
        return ", ".join(sorted(v)) or "none"
    return str(v)
