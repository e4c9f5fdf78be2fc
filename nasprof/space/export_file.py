"""A network, or an ONNX file a user brings, written as a file of the format asked for (``nasprof export``):
ONNX or onnxruntime's ORT format, quantised statically to int8 on request. torch, onnxruntime and the
quantiser are imported when a file is written, not when the format is checked."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from nasprof.errors import InputError

if TYPE_CHECKING:
    from nasprof.space.network import Network
    from nasprof.space.quantize import QuantizeResult

__all__ = ["FORMATS", "convert_model_file", "export_format", "write_network"]

#: The formats ``export`` writes: the suffix of the file is the format's name.
FORMATS = ("onnx", "ort")


def export_format(fmt: str | None, output: Path, *, opt_level: str = "all", ort_style: str = "fixed") -> str:
    """The format (``onnx`` or ``ort``) of ``output``: ``fmt`` when given, else ``output``'s suffix, which
    must match it; ``InputError`` for an unknown format, a mismatched suffix, or ORT options with ONNX."""
    if fmt is not None and fmt.lower() not in FORMATS:
        raise InputError(f"unknown --format {fmt!r}: use onnx or ort")
    kind = (fmt or output.suffix.lstrip(".")).lower()
    if kind not in FORMATS or output.suffix.lower() != f".{kind}":
        # like --plot and .png: the name says what the file holds
        suffix = kind if kind in FORMATS else "onnx"
        raise InputError(f"--output writes {'ORT format' if kind == 'ort' else 'ONNX'}; give a path ending "
                         f"in .{suffix}, got {output}")
    if kind == "onnx" and (opt_level != "all" or ort_style != "fixed"):
        raise InputError("--opt-level and --ort-style apply to --format ort")
    return kind


def write_network(net: Network, output: Path, kind: str, *, int8: bool = False, seed: int = 0, batch: int = 1,
                  opt_level: str = "all", ort_style: str = "fixed") -> Path:
    """Export ``net`` (random weights of ``seed``, ``batch`` images) to ``output`` as ``kind`` (``onnx`` or
    ``ort``: ``opt_level`` and ``ort_style`` of the conversion), quantised to int8 (QDQ) first with
    ``int8``; returns the path written."""
    from nasprof.space.export import export_network

    with tempfile.TemporaryDirectory(prefix="nasprof-export-") as tmp:
        onnx_out = output if kind == "onnx" else Path(tmp) / "model.onnx"
        if int8:
            from nasprof.space.quantize import quantize_int8

            fp32 = export_network(net, Path(tmp) / "fp32.onnx", seed=seed, batch=batch)
            path = quantize_int8(fp32, onnx_out, seed=seed).path
        else:
            path = export_network(net, onnx_out, seed=seed, batch=batch)
        if kind == "ort":
            from nasprof.space.ort_format import convert_to_ort

            path = convert_to_ort(path, output, opt_level=opt_level, style=ort_style)
    return path


def convert_model_file(
    model: str | Path,
    output: Path,
    kind: str,
    *,
    int8: bool = False,
    seed: int = 0,
    opt_level: str = "all",
    ort_style: str = "fixed",
    network_options: dict[str, object] | None = None,
) -> tuple[Path, QuantizeResult | None]:
    """An ONNX file a user brings (``model``), quantised to int8 (``int8``; calibration inputs of
    ``seed``) and/or converted to the ORT format (``kind`` ``ort``). ``network_options`` maps the options
    that build a network (``--resolution``, ...) to their values: a given one is refused, since ``model``
    is a network already. Returns the path written and the quantisation's result (None without ``int8``)."""
    if not Path(model).is_file():
        raise InputError(f"ONNX file {model} does not exist")
    src = Path(model)
    given = [flag for flag, v in (network_options or {}).items() if v is not None]
    if given:
        raise InputError(f"{', '.join(given)} build a network; {src} is one already (export it again from "
                         "its framework to change its size)")
    if not int8 and kind == "onnx":
        raise InputError(f"{src} is already ONNX: add --int8 to quantise it, or write -o NAME.ort to convert "
                         "it")
    quantized = None
    with tempfile.TemporaryDirectory(prefix="nasprof-export-") as tmp:
        path = src
        if int8:
            from nasprof.space.quantize import quantize_int8

            quantized = quantize_int8(src, output if kind == "onnx" else Path(tmp) / "model.int8.onnx",
                                      seed=seed)
            path = quantized.path
        if kind == "ort":
            from nasprof.space.ort_format import convert_to_ort

            path = convert_to_ort(path, output, opt_level=opt_level, style=ort_style)
    return path, quantized
