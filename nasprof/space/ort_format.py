"""ORT-format models for onnxruntime-mobile: conversion, a content-addressed cache, and operator configs.

Reduced-size (minimal) onnxruntime builds load only ORT-format (``.ort``) files and contain only the operators
a build config lists. The conversion is onnxruntime's own: an ``InferenceSession`` that optimises the graph at
the chosen level and saves it in ORT format. Two styles, as onnxruntime names them:

- ``fixed``: the optimisations are applied once, here, and the saved graph is what the phone runs (its kernels
  are then those this host's optimiser chose; the NCHWc layout transformer, x86-only, is disabled so that the
  file runs on ARM);
- ``runtime``: the graph is saved with the optimisations a minimal build can still apply at load time, so the
  phone's own build decides.

Operator configs use onnxruntime's reduced-build format (``domain;opset;Op1,Op2``), written by onnxruntime's
own tool from the ORT files, so a runner built with ``--include_ops_by_config`` runs exactly those models.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof._io import atomic_write_bytes
from nasprof.errors import InputError, ModelError

__all__ = ["ORT_STYLES", "convert_to_ort", "cached_ort", "default_cache_dir", "ops_config", "read_ops_config",
           "space_ops_config",
           "SpaceOpsConfig", "MobileUsability", "mobile_usability"]

#: Optimisation styles of an ORT-format file (see the module docstring).
ORT_STYLES = ("fixed", "runtime")
_LEVELS = ("disable", "basic", "extended", "all")


def _first_line(exc: BaseException) -> str:
    """onnxruntime's error messages run to many lines; the first says what went wrong."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check(opt_level: str, style: str) -> None:
    if opt_level not in _LEVELS:
        raise InputError(f"unknown optimisation level {opt_level!r}; use one of {', '.join(_LEVELS)}")
    if style not in ORT_STYLES:
        raise InputError(f"unknown ORT optimisation style {style!r}; use fixed or runtime")


def convert_to_ort(model: str | Path, output: str | Path, *, opt_level: str = "all",
                   style: str = "fixed") -> Path:
    """Convert the ONNX file ``model`` to ORT format at ``output`` (written atomically)."""
    import onnxruntime as ort

    _check(opt_level, style)
    model, output = Path(model), Path(output)
    if not model.is_file():
        raise ModelError(f"model file {str(model)!r} does not exist")
    level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    with tempfile.TemporaryDirectory(prefix="nasprof-ort-") as tmp:
        target = Path(tmp) / "model.ort"
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.optimized_model_filepath = str(target)
        so.add_session_config_entry("session.save_model_format", "ORT")
        if style == "runtime":
            so.add_session_config_entry("optimization.minimal_build_optimizations", "save")
        so.log_severity_level = 3
        try:
            # NCHWc is an x86 layout: a phone's build has no kernels for it.
            ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"],
                                 disabled_optimizers=["NchwcTransformer"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelError(f"cannot convert {model} to ORT format: {_first_line(exc)}") from None
        return atomic_write_bytes(output, target.read_bytes())


def default_cache_dir() -> Path:
    """Where converted files are kept: ``$NASPROF_CACHE_DIR/ort``, else the XDG cache directory."""
    base = os.environ.get("NASPROF_CACHE_DIR")
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nasprof")
    return Path(base) / "ort"


def cached_ort(model: str | Path, cache_dir: str | Path | None = None, *, opt_level: str = "all",
               style: str = "fixed") -> Path:
    """The ORT-format version of ``model``, converted once per content and settings: a table build meets the
    same layer file again (resumed builds, several devices) and converts it once."""
    import onnxruntime as ort

    _check(opt_level, style)
    data = Path(model).read_bytes()
    digest = hashlib.sha256(data + f"|{opt_level}|{style}|{ort.__version__}".encode()).hexdigest()[:24]
    cache = default_cache_dir() if cache_dir is None else Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{digest}.{opt_level}.{style}.ort"
    if not target.is_file():
        convert_to_ort(model, target, opt_level=opt_level, style=style)
    return target


def ops_config(ort_models: Sequence[str | Path], output: str | Path, header: Iterable[str] = ()) -> Path:
    """Write onnxruntime's reduced-build operator config covering ``ort_models`` (``.ort`` files)."""
    from onnxruntime.tools.ort_format_model.utils import create_config_from_models

    models = [Path(p) for p in ort_models]
    if not models:
        raise InputError("an operator config needs at least one ORT-format model")
    for p in models:
        if p.suffix.lower() != ".ort":
            raise InputError(f"{p} is not an ORT-format model (.ort); convert it first")
    with tempfile.TemporaryDirectory(prefix="nasprof-ops-") as tmp:
        raw = Path(tmp) / "ops.config"
        quiet = logging.getLogger("ort_format_model.utils")
        quiet.setLevel(logging.WARNING)
        with redirect_stdout(io.StringIO()):
            create_config_from_models(models, raw, enable_type_reduction=False)
        # onnxruntime's header lists the (temporary) model paths: ours says what the config covers instead.
        body = [line for line in raw.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    text = "".join(f"# {line}\n" for line in header) + "\n".join(body) + "\n"
    return atomic_write_bytes(Path(output), text.encode())


def read_ops_config(path: str | Path) -> dict[tuple[str, int], frozenset[str]]:
    """``{(domain, opset): ops}`` of a reduced-build config (``#`` comments and blank lines ignored)."""
    out: dict[tuple[str, int], frozenset[str]] = {}
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read operator config {p}: {exc}") from None
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(";")
        try:
            domain, opset, ops = parts[0], int(parts[1]), parts[2]
        except (IndexError, ValueError):
            raise InputError(f"{p}:{n}: not an operator config line (domain;opset;Op1,Op2): "
                             f"{line!r}") from None
        names = {op.split("{", 1)[0].strip() for op in ops.split(",") if op.strip()}
        out[(domain, opset)] = out.get((domain, opset), frozenset()) | frozenset(names)
    return out


@dataclass(frozen=True)
class SpaceOpsConfig:
    """What ``space_ops_config`` wrote: the file, the models it was derived from, and the operators."""

    path: Path
    layer_models: int
    network_models: int
    ops: dict[tuple[str, int], frozenset[str]]
    #: The ORT-format models, when ``models_dir`` kept them.
    models: tuple[Path, ...] = ()


def _signature(layer: Any) -> tuple[Any, ...]:
    """What decides the operators of a layer's graph (not its channels or spatial size): one layer per
    signature is exported, instead of every distinct layer of the space (2,149 for mnasnet)."""
    s = layer.spec
    return (s.op, s.act, s.se > 0, s.skip, s.variant, s.stride > 1, s.expand != 1, s.groups > 1, s.mid > 0,
            s.kernel > 1, s.cin == s.cout)


def space_ops_config(
    space: str,
    output: str | Path,
    *,
    resolution: int | None = None,
    width: float = 1.0,
    int8: bool = False,
    presets: Sequence[str] = (),
    samples: int = 3,
    opt_level: str = "all",
    style: str = "fixed",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    models_dir: str | Path | None = None,
) -> SpaceOpsConfig:
    """The operator config a minimal onnxruntime build needs to run every layer file a table build of
    ``space`` measures (one layer per operator signature), ``samples`` whole networks of the space (the
    graphs ``validate`` runs, with the fusions across layers) and the ``presets``, as ORT-format models at
    ``opt_level`` and ``style``; ``int8`` quantises them first, as ``table build --int8`` does. With
    ``models_dir`` the ORT-format models are kept there (``SpaceOpsConfig.models``)."""
    from nasprof.space.export import export_layer, export_network
    from nasprof.space.presets import get_preset
    from nasprof.space.spaces import get_space

    _check(opt_level, style)
    sp = get_space(space)
    res = sp.checked_resolution(resolution, width)
    reps: dict[tuple[Any, ...], Any] = {}
    for layer in sp.distinct_layers(res, width):
        reps.setdefault(_signature(layer), layer)
    networks = [a.network() for a in sp.sample(samples, seed=seed, resolution=res, width=width)]
    networks += [get_preset(name, resolution=res) for name in presets]
    jobs: list[tuple[str, Any]] = [("layer", layer) for layer in reps.values()]
    jobs += [("network", net) for net in networks]
    ort_files = []
    with tempfile.TemporaryDirectory(prefix="nasprof-opsconfig-") as tmp:
        for i, (kind, item) in enumerate(jobs):
            onnx_path = Path(tmp) / f"{i}.onnx"
            if kind == "layer":
                export_layer(item, onnx_path, seed=seed)
            else:
                export_network(item, onnx_path, seed=seed)
            if int8:
                from nasprof.space.quantize import quantize_int8

                onnx_path = quantize_int8(onnx_path, Path(tmp) / f"{i}.int8.onnx", seed=seed).path
            keep = Path(models_dir) if models_dir is not None else Path(tmp)
            ort_files.append(
                convert_to_ort(onnx_path, keep / f"{kind}{i}.ort", opt_level=opt_level, style=style))
            if progress is not None:
                progress(i + 1, len(jobs))
        header = [
            f"nasprof space ops-config: space {space} at {res} px, width {width:g}"
            + (", int8 (QDQ)" if int8 else "") + f"; ORT format, optimisation {opt_level}, style {style}",
            f"{len(reps)} layer models (one per operator signature), {len(networks)} networks"
            + (f" (presets: {', '.join(presets)})" if presets else ""),
        ]
        path = ops_config(ort_files, output, header)
    return SpaceOpsConfig(path, len(reps), len(networks), read_ops_config(path),
                          tuple(ort_files) if models_dir is not None else ())


@dataclass(frozen=True)
class MobileUsability:
    """How much of a model one mobile execution provider would take (onnxruntime's usability checker)."""

    provider: str
    nodes: int
    supported_nodes: int
    partitions: int
    unsupported_ops: tuple[str, ...]
    #: onnxruntime's verdict: YES (one partition, most nodes), MAYBE, NO.
    verdict: str
    #: Why the verdict is not YES, in words ("" when it is).
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "nodes": self.nodes, "supported_nodes": self.supported_nodes,
                "partitions": self.partitions, "unsupported_ops": list(self.unsupported_ops),
                "verdict": self.verdict, "reason": self.reason}


def mobile_usability(model: str | Path) -> list[MobileUsability]:
    """Which parts of ``model`` NNAPI and CoreML could take, after the basic optimisations an ORT-format
    conversion applies anyway (onnxruntime's ``check_onnx_model_mobile_usability``, as data)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.tools.mobile_helpers.usability_checker import (
        check_coreml_partitions,
        check_nnapi_partitions,
    )

    model = Path(model)
    if not model.is_file():
        raise ModelError(f"model file {str(model)!r} does not exist")
    with open(model, "rb") as fh:
        head = fh.read(8)
    if model.suffix.lower() == ".ort" or head[4:8] == b"ORTM":  # the ORT format's flatbuffer identifier
        raise ModelError(f"{model} is in the ORT format (already converted for a minimal runtime); "
                         "check-mobile reads ONNX: give the .onnx file it was converted from")
    with tempfile.TemporaryDirectory(prefix="nasprof-mobile-") as tmp:
        basic = Path(tmp) / "basic.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(basic)
        so.log_severity_level = 3
        try:
            ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
            proto = onnx.shape_inference.infer_shapes(onnx.load(str(basic)))
        except Exception as exc:  # onnxruntime/onnx raise their own types for unreadable models
            raise ModelError(f"cannot read {model} as an ONNX model: {_first_line(exc)}") from None
    checks = {
        "nnapi": lambda m: check_nnapi_partitions(m, True),
        "coreml (mlprogram)": lambda m: check_coreml_partitions(m, True, "coreml_supported_mlprogram_ops.md"),
    }
    out = []
    logging.getLogger("usability_checker").setLevel(logging.WARNING)
    free = sorted({d.dim_param or "?" for i in proto.graph.input for d in i.type.tensor_type.shape.dim
                   if not d.dim_value})
    for name, check in checks.items():
        try:
            info = check(proto)
        except Exception as exc:  # the checker raises bare ValueErrors on graphs it cannot size
            raise ModelError(f"onnxruntime's usability checker cannot read {model}: "
                             f"{_first_line(exc)}") from None
        verdict = info.suitability().name
        reasons = []
        if verdict != "YES" and free:
            reasons.append(f"free input dimension(s) {', '.join(free)}: NNAPI/CoreML need fixed shapes "
                           "(export with a fixed --batch, or fix the dimension)")
        if info.unsupported_ops:
            reasons.append(f"operators it lacks: {', '.join(sorted(info.unsupported_ops))}")
        if verdict != "YES" and int(info.num_partitions) > 1:
            reasons.append(f"{int(info.num_partitions)} partitions (each hop costs a copy)")
        out.append(MobileUsability(name, int(info.num_nodes), int(info.num_supported_nodes),
                                   int(info.num_partitions), tuple(sorted(info.unsupported_ops)), verdict,
                                   "; ".join(reasons) if verdict != "YES" else ""))
    return out
