"""Grid search and compound scaling (EfficientNet, Tan & Le 2019) of a base network under device limits.

A base network (a preset or an architecture string) is scaled by ``d = α^φ`` (depth, ``scale_depth``),
``w = β^φ`` (width) and ``r = γ^φ`` (resolution, rounded to a multiple of 8), with ``α·β²·γ² ≈ 2`` so each
step of φ about doubles the MACs. EfficientNet chose (α, β, γ) = (1.2, 1.1, 1.15) by a grid search at φ = 1
scored by ImageNet accuracy. Without training, nasprof scores the grid on the device instead: every
candidate at φ = 1 has about twice the base's MACs, and the grid's winner is the one with the lowest
predicted latency per MAC — the scaling direction this device runs most efficiently. Then the family
φ = 0, 1, 2, ... is sized (exact MACs and parameters, latency from a kernel predictor, SRAM and Flash from an
MCU board's estimator) and candidates breaking a limit are marked.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import InputError

__all__ = ["ScaledNetwork", "ScalingResult", "compound_grid", "scale_family", "EFFICIENTNET_COEFFICIENTS"]

#: EfficientNet's coefficients, found by its grid search on ImageNet accuracy.
EFFICIENTNET_COEFFICIENTS = (1.2, 1.1, 1.15)
#: Largest alpha, beta or gamma taken: 4^phi already leaves the depths, widths and resolutions networks have.
MAX_COEFFICIENT = 4.0


@dataclass(frozen=True)
class ScaledNetwork:
    """One scaled network with its figures; ``latency_ms``/memory are None when not estimated."""

    alpha: float
    beta: float
    gamma: float
    phi: float
    depth: float
    width: float
    resolution: int
    macs: int
    params: int
    latency_ms: float | None = None
    sram_bytes: int | None = None
    flash_bytes: int | None = None
    #: Limits it breaks ("latency 7.1 > 5 ms", "Flash 2.1 MB > 2.0 MB"); empty when it fits.
    violations: tuple[str, ...] = ()

    @property
    def feasible(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "feasible": self.feasible}


@dataclass(frozen=True)
class ScalingResult:
    base: str
    coefficients: tuple[float, float, float]
    #: The φ = 1 candidates of the grid search (empty when the coefficients were given).
    grid: tuple[ScaledNetwork, ...]
    family: tuple[ScaledNetwork, ...]
    target_ms: float | None = None
    board: str | None = None
    how: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "base": self.base,
            "coefficients": {"alpha": self.coefficients[0], "beta": self.coefficients[1],
                             "gamma": self.coefficients[2]},
            "how": self.how,
            "target_ms": self.target_ms,
            "board": self.board,
            "grid": [c.to_dict() for c in self.grid],
            "family": [c.to_dict() for c in self.family],
        }


def compound_grid(
    step: float = 0.05, max_coef: float = 1.4, tolerance: float = 0.05
) -> list[tuple[float, float, float]]:
    """Every (α, β, γ) on a grid of ``step`` in [1, ``max_coef``] with α·β²·γ² within ``tolerance`` of 2."""
    if not (math.isfinite(step) and 0.01 <= step <= 0.5):
        raise InputError(f"--grid-step must be in [0.01, 0.5], got {step!r}")
    if not (math.isfinite(max_coef) and 1.0 < max_coef <= 3.0):
        raise InputError(f"grid maximum must be in (1, 3], got {max_coef!r}")
    values = np.round(np.arange(1.0, max_coef + 1e-9, step), 6)
    out = []
    for a in values:
        for b in values:
            for g in values:
                if abs(a * b * b * g * g - 2.0) <= 2.0 * tolerance:
                    out.append((float(a), float(b), float(g)))
    if not out:
        raise InputError(f"no (alpha, beta, gamma) on a grid of {step} up to {max_coef} has "
                         "alpha*beta^2*gamma^2 near 2: use a finer --grid-step")
    return out


def _resolution(base: int, gamma: float, phi: float) -> int:
    """The scaled resolution, a multiple of 8 (at least 32); phi = 0 is the base network as it was given."""
    if phi == 0 or gamma == 1.0:
        return base
    return max(32, int(round(base * gamma**phi / 8.0)) * 8)


def scale_family(
    base: str,
    phis: Sequence[float] = (0, 1, 2, 3),
    *,
    coefficients: tuple[float, float, float] | None = None,
    base_resolution: int | None = None,
    grid_step: float = 0.1,
    predictor: Any = None,
    target_ms: float | None = None,
    board: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> ScalingResult:
    """Scale ``base`` (a preset name or an architecture string) by compound coefficients.

    ``coefficients`` None: grid-search them with ``predictor`` (a kernel predictor, which reads any exported
    graph) by latency per MAC at φ = 1; without a predictor EfficientNet's are used. ``target_ms`` and
    ``board`` (an MCU board: SRAM and Flash) are limits each family member is checked against.
    ``base_resolution`` None: the architecture's own resolution (224 px for a preset).
    """
    from nasprof.space.presets import resolve_model

    if not phis or any(not math.isfinite(p) or p < 0 or p > 8 for p in phis):
        raise InputError(f"--phi values must be in [0, 8], got {list(phis)}")
    if target_ms is not None and not (math.isfinite(target_ms) and target_ms > 0):
        raise InputError(f"--target-ms must be a positive number, got {target_ms!r}")
    if predictor is not None and getattr(predictor, "kind", "") != "kernel":
        raise InputError(
            "compound scaling changes the resolution and the layers, which a lookup table does not hold: "
            "give a kernel predictor (`nasprof predictor fit --kernels`)"
        )
    # An unknown base fails before any work; an architecture keeps its own resolution unless told otherwise
    # (a 160 px network sized as 224 px would be another network), a preset starts at 224 px.
    base_resolution = resolve_model(base, resolution=base_resolution).resolution
    memory = _memory(board) if board else None
    how = "given"
    grid: list[ScaledNetwork] = []
    with tempfile.TemporaryDirectory(prefix="nasprof-scale-") as tmp:
        size = _Sizer(base, base_resolution, predictor, memory, Path(tmp))
        if coefficients is None and predictor is not None:
            triples = compound_grid(grid_step)
            for i, (a, b, g) in enumerate(triples):
                grid.append(size(a, b, g, 1.0))
                if progress:
                    progress(i + 1, len(triples), "grid")
            base_net = size(1.0, 1.0, 1.0, 0.0)
            best = min(grid, key=lambda c: (c.latency_ms or 0.0) / c.macs)
            coefficients = (best.alpha, best.beta, best.gamma)
            how = (f"grid search at phi=1 over {len(grid)} (alpha, beta, gamma) with alpha*beta^2*gamma^2 ~ "
                   f"2: lowest predicted latency per MAC (base {base_net.latency_ms:.3f} ms)")
        elif coefficients is None:
            coefficients = EFFICIENTNET_COEFFICIENTS
            how = "EfficientNet's coefficients (no predictor to grid-search them on the device)"
        a, b, g = coefficients
        # Huge ones would overflow a float (224 * 1e308 ** phi) instead of naming the coefficient.
        if not all(math.isfinite(c) and 1.0 <= c <= MAX_COEFFICIENT for c in coefficients):
            raise InputError(f"alpha, beta, gamma must be finite and in [1, {MAX_COEFFICIENT:g}], got "
                             f"{', '.join(f'{c:g}' for c in coefficients)} (EfficientNet's: 1.2, 1.1, 1.15)")
        family = []
        for i, phi in enumerate(phis):
            family.append(_check(size(a, b, g, phi), target_ms, memory))
            if progress:
                progress(i + 1, len(phis), "family")
    result = ScalingResult(base, (a, b, g), tuple(grid), tuple(family), target_ms, board, how)
    if (target_ms is not None or board) and not any(c.feasible for c in family):
        nearest = min(family, key=lambda c: len(c.violations))
        raise InputError(
            f"no member of the scaled family of {base} fits: the nearest, phi={nearest.phi:g} "
            f"({nearest.resolution} px, width {nearest.width:.3f}), breaks {'; '.join(nearest.violations)}"
        )
    return result


def _memory(board: str) -> Any:
    from nasprof.search.constraints import MemoryConstraint

    return MemoryConstraint.for_device(board)


class _Sizer:
    """Builds one scaled network and measures its figures (exported once for a predictor or a board)."""

    def __init__(self, base: str, resolution: int, predictor: Any, memory: Any, tmp: Path) -> None:
        self.base, self.resolution, self.tmp = base, resolution, tmp
        self.predictor, self.memory = predictor, memory
        self.n = 0

    def __call__(self, a: float, b: float, g: float, phi: float) -> ScaledNetwork:
        from nasprof.space import export_network
        from nasprof.space.presets import resolve_model
        from nasprof.space.scaling import scale_depth

        depth, width, res = a**phi, b**phi, _resolution(self.resolution, g, phi)
        net = scale_depth(resolve_model(self.base, resolution=res, width=width), depth)
        layers = net.layers()
        macs, params = sum(x.macs for x in layers), sum(x.params for x in layers)
        latency = sram = flash = None
        if self.predictor is not None:
            self.n += 1
            path = export_network(net, self.tmp / f"scaled{self.n}.onnx")
            latency = float(self.predictor.predict(path))
            path.unlink()
        if self.memory is not None:
            s, f = self.memory.usage_fn(net)  # per-layer MCU estimates: a Network has layers() like an Arch
            sram, flash = int(s), int(f)
        return ScaledNetwork(a, b, g, phi, depth, width, res, macs, params, latency, sram, flash)


def _check(c: ScaledNetwork, target_ms: float | None, memory: Any) -> ScaledNetwork:
    out = []
    if target_ms is not None and c.latency_ms is not None and c.latency_ms > target_ms:
        out.append(f"latency {c.latency_ms:.3g} > {target_ms:g} ms")
    if memory is not None:
        for what, used, limit in (("SRAM", c.sram_bytes, memory.sram_bytes),
                                  ("Flash", c.flash_bytes, memory.flash_bytes)):
            if used is not None and used > limit:
                out.append(f"{what} {used / 1e6:.2f} MB > {limit / 1e6:.2f} MB of {memory.name}")
    if not out:
        return c
    from dataclasses import replace

    return replace(c, violations=tuple(out))
