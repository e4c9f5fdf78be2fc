"""Static int8 quantisation of an exported network or block: QDQ ONNX with onnxruntime's quantisation tools.

Phones and microcontrollers run int8. ``quantize_int8`` calibrates activation ranges on seeded synthetic
inputs (standard normal, the model's own input shapes) with MinMax, quantises weights per output channel,
and writes QuantizeLinear/DequantizeLinear pairs around every quantisable op (QDQ: onnxruntime fuses them
into QLinearConv/int8 MatMul kernels where the CPU has them, the MCU estimator reads them as int8 tensors).
Same seed, same calibration, same file.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.errors import ModelError

__all__ = ["QuantizeResult", "quantize_int8", "CALIBRATION_SAMPLES"]

#: Calibration inputs per model: MinMax ranges of random inputs settle after a handful.
CALIBRATION_SAMPLES = 8


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    #: QuantizeLinear/DequantizeLinear nodes written, and the ops they wrap (op type -> count).
    qdq_nodes: int
    quantized_ops: dict[str, int]
    #: Ops left in float (no int8 kernel in onnxruntime's quantiser), op type -> count.
    float_ops: dict[str, int]


def _inputs(model: Any) -> list[tuple[str, list[int], Any]]:
    from onnx import helper

    init = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in init:
            continue
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim]
        if dims and dims[0] <= 0:
            dims[0] = 1  # a free batch (a user's export): calibrated at batch 1, the file keeps it free
        if any(d <= 0 for d in dims):
            free = [d.dim_param or "?" for d in list(t.shape.dim)[1:] if not d.HasField("dim_value")]
            raise ModelError(
                f"input {vi.name!r} has free dimensions {', '.join(free)} beyond the batch; quantise a model "
                "exported with a fixed input size"
            )
        out.append((vi.name, dims, helper.tensor_dtype_to_np_dtype(t.elem_type)))
    return out


@contextlib.contextmanager
def _quiet_quantiser() -> Iterator[None]:
    """The quantiser logs advice to pre-process models on the root logger; nasprof's exports already carry
    every shape, so the advice is noise on a user's terminal."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def quantize_int8(src: str | Path, dst: str | Path, *, seed: int = 0, per_channel: bool = True,
                  samples: int = CALIBRATION_SAMPLES) -> QuantizeResult:
    """Quantise ``src`` (float ONNX; a free batch dimension is calibrated at 1 and stays free, any other
    free dimension is refused) to int8 QDQ at ``dst``; ``ModelError`` for a model the quantiser cannot handle
    or with nothing to quantise (naming what it found)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from nasprof._io import atomic_write_bytes

    src, dst = Path(src), Path(dst)
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # onnx raises DecodeError, OSError...: all mean the same to the user
        raise ModelError(f"{src}: not a readable ONNX model ({exc.__class__.__name__})") from None
    inputs = _inputs(model)
    rng = np.random.default_rng(seed)
    batches = [{n: rng.standard_normal(shape).astype(dt) if np.issubdtype(dt, np.floating)
                else np.zeros(shape, dt) for n, shape, dt in inputs} for _ in range(samples)]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory(prefix="nasprof-int8-") as tmp, _quiet_quantiser():
        out = Path(tmp) / "model.int8.onnx"
        try:
            quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8)
        except Exception as exc:  # the quantiser raises plain exceptions naming the node it failed on
            raise ModelError(f"cannot quantise {src.name} to int8: {exc}".splitlines()[0]) from None
        q = onnx.load(str(out))
        data = out.read_bytes()
    counts: dict[str, int] = {}
    for node in q.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    qdq = counts.get("QuantizeLinear", 0) + counts.get("DequantizeLinear", 0)
    if not qdq:
        ops = ", ".join(sorted({n.op_type for n in model.graph.node})) or "none"
        raise ModelError(f"{src.name}: nothing to quantise (ops: {ops}); int8 needs Conv, MatMul or Gemm")
    # An op is quantised when a DequantizeLinear feeds it (its activations or weights are int8).
    produced_by_dq = {o for n in q.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized: dict[str, int] = {}
    floating: dict[str, int] = {}
    for node in q.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue
        bucket = quantized if any(i in produced_by_dq for i in node.input) else floating
        bucket[node.op_type] = bucket.get(node.op_type, 0) + 1
    atomic_write_bytes(dst, data)
    return QuantizeResult(dst, qdq, quantized, floating)
