"""The device work of calibration, shared by ``predictor fit`` and ``validate``: which networks to calibrate
on, measuring them end to end in interleaved rounds (on one device, or spread over several), profiling
them once for the lookup table's in-network ratios, and handing the measurements to the fits
(``LutPredictor.calibrate``, ``KernelPredictor.calibrate``).

A lookup table calibrates on architectures of its own space; the kernel predictor on networks that
alternate between the ``mnasnet``/``mobilenetv2`` spaces (at several resolutions and widths) and random
networks of the whole block zoo, never the networks it is judged on."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nasprof.errors import InputError, PredictorError
from nasprof.predictors.base import Predictor
from nasprof.predictors.kernel.kernels import Kernel
from nasprof.space.layer import priced_layers

__all__ = [
    "calibrate_lut",
    "calibrate_on_measured",
    "lut_calibration_archs",
    "calibration_archs",
    "network_name",
    "CalibrationSet",
    "measure_calibration_set",
    "calibrate_in_rounds",
    "validation_spec",
    "measure_spread",
]

Progress = Callable[[int, int, str], None]


def calibrate_on_measured(
    predictor: Any,
    archs: Sequence[Any],
    measured: Sequence[Any],
    paths: Sequence[Path],
    backend: Any,
    spec: Any,
    in_network: bool,
    progress: Progress | None,
) -> Any:
    """``predictor.calibrate`` on calibration networks already measured end to end (``measured``:
    ``Measurement`` objects, one per path). With ``in_network``, each network first gets one profiled pass
    for the in-network ratios; a device without per-node times calibrates without them, and the training
    error says so."""
    from nasprof.predictors.calibration.in_network import profile_networks

    profiles = profile_networks(paths, backend, spec, progress=progress) if in_network else None
    out = predictor.calibrate(archs, [m.median_ms for m in measured], profiles=profiles)
    if in_network and profiles is None:
        out.training_error["in_network"] = "skipped: the device gives no per-node times"
    return out


def lut_calibration_archs(predictor: Any, samples: int, seed: int) -> list[Any]:
    """``samples`` architectures of a LUT predictor's space at its resolution, minus those with a layer the
    table lacks; ``PredictorError`` if none is left."""
    from nasprof.space import get_space

    if predictor.calibrates_on != "space" or not getattr(predictor, "space", None):
        raise PredictorError(
            "only a lookup-table predictor that knows its space (fitted from a table `nasprof table build` "
            "made) is calibrated this way; calibrate a kernel predictor with `nasprof predictor fit "
            "--kernels --calibrate N` or `nasprof validate --calibrate N`"
        )
    if samples < 1:
        raise InputError(f"--calibrate must be at least 1, got {samples}")
    archs = get_space(predictor.space).sample(samples, seed=seed, resolution=predictor.resolution)
    usable = [a for a in archs if all(layer.key in predictor.entries for layer in priced_layers(a.layers()))]
    if not usable:
        raise PredictorError(f"none of {samples} sampled architectures is fully in the table; build it first")
    return usable


def calibrate_lut(
    predictor: Any,
    device: str,
    *,
    samples: int = 10,
    seed: int = 1000,
    spec: Any = None,
    in_network: bool = True,
    progress: Progress | None = None,
) -> Any:
    """Calibrate a ``LutPredictor`` (``LutPredictor.calibrate``: per-family factors and a cost per MB of
    weights, or a single scale with fewer than ~20 networks) on ``samples`` architectures of its space,
    measured end to end in interleaved rounds.

    The seed defaults to 1000 so calibration architectures differ from a validation run's (seed 0).
    Architectures with layers the table lacks are skipped; ``PredictorError`` if none is left.
    With ``in_network`` (default) each network is also profiled once and the predictor first learns an
    in-network ratio per table key (``LutPredictor.learn_layer_ratios``).
    """
    from nasprof.devices import get_device
    from nasprof.profiler.interleave import measure_interleaved
    from nasprof.space import export_many

    usable = lut_calibration_archs(predictor, samples, seed)
    backend = get_device(device)
    backend.ensure_available()
    from nasprof.predictors.calibration.rounds import validation_spec

    spec = spec or validation_spec(predictor)
    with tempfile.TemporaryDirectory(prefix="nasprof-calibrate-") as tmp:
        paths = export_many(usable, tmp)
        ms = measure_interleaved(backend, paths, spec, seed=seed, progress=progress)
        return calibrate_on_measured(predictor, usable, ms, paths, backend, spec, in_network, progress)


#: Spaces, resolutions and widths the calibration architectures cycle through: varied feature-map and
#: channel sizes, so the factors do not fit one operating point.
_SPACES = ("mnasnet", "mobilenetv2")


_RESOLUTIONS = (160, 192, 224)


_WIDTHS = (0.75, 1.0)


def calibration_archs(samples: int, seed: int = 1000) -> list[Any]:
    """``samples`` networks: every other one a random block-zoo network
    (``nasprof.space.calibration_networks``), the rest
    architectures cycling through the calibration spaces, resolutions and widths.

    Why the zoo: calibrated on mnasnet/mobilenetv2 samples alone, the factors carry what mobile networks
    do to isolated kernels onto every other family. On 30 held-out zoo networks that calibration put 70%
    within ±10% (RMSPE 9.6%); half mobile, half zoo (12 + 12) put 83% (7.9%), and the presets 90% (5.5%,
    against 6.7%), one fit, all measured in one interleaved pass."""
    from nasprof.space import get_space
    from nasprof.space.calibration_networks import sample_zoo_network

    if samples < 2:
        raise InputError(f"--calibrate needs at least 2 architectures, got {samples}")
    rng = np.random.default_rng(seed)
    zoo_rng = np.random.default_rng([seed, 1])  # a stream of its own, independent of the space samples
    combos = [(s, r, w) for s in _SPACES for r in _RESOLUTIONS for w in _WIDTHS]
    out: list[Any] = []
    for i in range(samples):
        if i % 2 == 1:
            out.append(sample_zoo_network(zoo_rng, index=i))
            continue
        space, res, width = combos[(i // 2) % len(combos)]
        out += get_space(space).sample(1, seed=rng, resolution=res, width=width)
    return out


def network_name(net: Any) -> str:
    """The name a calibration network is listed under: an architecture's string, or a zoo network's name."""
    return str(net.to_string()) if hasattr(net, "to_string") else str(net.name)


class CalibrationSet(NamedTuple):
    """What ``measure_calibration_set`` measured: per calibration network its kernels and end-to-end
    median, the device's speed ratio, and the measurements of the ``also`` models, in their order."""

    kernels: list[list[Kernel]]
    measured_ms: list[float]
    speed_ratio: float
    also: list[Any]


def measure_calibration_set(
    archs: Sequence[Any],
    split: Callable[[Path], list[Kernel]],
    device: str,
    spec: Any,
    *,
    progress: Progress | None = None,
    anchors: Sequence[tuple[Kernel, float]] = (),
    also: Sequence[Path] = (),
    seed: int = 0,
) -> CalibrationSet:
    """Export each architecture, split it into kernels with ``split`` (the predictor's own rules) and
    measure it end to end on ``device``, in interleaved rounds (``spec.sessions`` of them; see
    ``nasprof.profiler.interleave``).

    ``anchors`` are (kernel, end-to-end ms when sampled) pairs from the predictor's training
    (``KernelPredictor.anchors``). Their one-kernel models run in the same rounds, and the median of
    (now ÷ then) is returned as the speed ratio (1.0 without anchors). Why: this shared VM's speed moved by
    up to 15% between the kernel sampling and a calibration pass minutes later; with convs never rescaled,
    the other groups' factors absorbed that shift (dwconv 0.79-1.55 over four fits) and carried it to
    networks of other shapes.

    ``also`` are ONNX files to measure in the same rounds (``validate --calibrate``: the networks judged),
    so calibration and judged networks see one machine state, as the lookup tables' calibration does."""
    from nasprof.devices import get_device
    from nasprof.predictors.kernel.kernel_model import build_kernel_model
    from nasprof.profiler.interleave import measure_interleaved
    from nasprof.space import export_many

    backend = get_device(device)
    with tempfile.TemporaryDirectory(prefix="nasprof-kcal-") as tmp:
        paths = export_many(archs, tmp)
        kernels = [split(path) for path in paths]
        anchor_paths = [
            build_kernel_model(k, Path(tmp) / f"anchor{i}.onnx") for i, (k, _) in enumerate(anchors)
        ]
        ms = measure_interleaved(backend, [*paths, *anchor_paths, *also], spec, progress=progress, seed=seed)
    nets = [m.median_ms for m in ms[: len(paths)]]
    done = ms[len(paths) : len(paths) + len(anchor_paths)]
    ratios = [m.median_ms / then for m, (_, then) in zip(done, anchors, strict=True) if then > 0]
    return CalibrationSet(
        kernels, nets, float(np.median(ratios)) if ratios else 1.0, ms[len(paths) + len(anchor_paths) :]
    )


def calibrate_in_rounds(
    predictor: Any,
    archs: Sequence[Any],
    judged: Sequence[Path],
    device: str,
    spec: Any,
    seed: int,
    progress: Progress | None,
    weight_cost: bool = True,
) -> tuple[Any, list[Any], dict[str, Any]]:
    """Calibrate a ``KernelPredictor`` on ``archs`` (``calibration_archs``) measured in the same interleaved
    rounds as the ``judged`` networks and the predictor's anchor kernels. Returns (calibrated predictor,
    measurements of ``judged``, calibration info)."""
    cs = measure_calibration_set(
        archs, predictor.kernels, device, spec, progress=progress, anchors=predictor.anchors, also=judged,
        seed=seed,
    )
    out = predictor.calibrate(
        cs.kernels, cs.measured_ms, names=[network_name(a) for a in archs], speed_ratio=cs.speed_ratio,
        weight_cost=weight_cost,
    )
    cal = out.calibration  # its info already holds the speed ratio
    return out, cs.also, {**cal.info, "ms_per_weight_mb": cal.ms_per_weight_mb, "factors": dict(cal.factors)}


def validation_spec(predictor: Predictor, *, runs: int = 25, warmup: int = 10, sessions: int = 6) -> Any:
    """A MeasureSpec matching how the predictor's data was measured (threads, optimisation level).
    ``sessions`` is the number of interleaved rounds: one fresh session per network per round."""
    from nasprof.devices import MeasureSpec

    ms = predictor.measure_spec
    return MeasureSpec(
        threads=int(ms.get("threads", 1)),
        opt_level=str(ms.get("opt_level", "all")),
        warmup=warmup,
        runs=runs,
        sessions=sessions,
    )


def measure_spread(
    backends: Sequence[Any], paths: Sequence[Path], spec: Any, *, seed: int = 0,
    progress: Progress | None = None, left: dict[str, str] | None = None,
) -> tuple[list[Any], list[str]]:
    """``measure_interleaved`` over several interchangeable devices: the networks are dealt round-robin into
    one share per device, each share measured in its own interleaved rounds on whichever device is free (a
    vanished device's share goes to another, from its first round). Returns the measurements in ``paths``'
    order and the device that measured each; ``left`` (if given) receives the devices that vanished."""
    from nasprof.devices.pool import JobProgress, spread
    from nasprof.profiler.interleave import measure_interleaved

    n = min(len(backends), len(paths)) or 1
    shares = [list(range(len(paths)))[k::n] for k in range(n)]

    def one(backend: Any, share: list[int], report: JobProgress) -> list[Any]:
        return measure_interleaved(backend, [paths[i] for i in share], spec, seed=seed, progress=report)

    done = spread(backends, shares, one, sizes=[len(s) * spec.sessions for s in shares], progress=progress,
                  left=left)
    measured: list[Any] = [None] * len(paths)
    on: list[str] = [""] * len(paths)
    for share, d in zip(shares, done, strict=True):
        for i, m in zip(share, d.result, strict=True):
            measured[i], on[i] = m, d.device
    return measured, on
