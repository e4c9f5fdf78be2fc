"""Inference runtimes for microcontrollers: speed (cycles per MAC), code size, Flash format.

Cycles per MAC come from the measured latencies on an STM32H743 (480 MHz) in TinyEngine's README
("Measured results", mit-han-lab/tinyengine): latency × clock ÷ MACs of the same networks gives
≈ 46 for TFLite Micro's reference kernels, ≈ 4.2 for CMSIS-NN, ≈ 2.4 for X-CUBE-AI and ≈ 2.0 for
TinyEngine (../shared/REFERENCE.md "Microcontrollers"). Any latency computed from them is an estimate.

Code size (runtime code + kernels + model-format overhead in Flash) is not published on its own. The same
README's Flash table (STM32H743, identical networks) shows TFLite Micro needing 250–288 kB, CMSIS-NN
269–307 kB and X-CUBE-AI 78–88 kB more Flash than TinyEngine (mbv2-w0.3-r64, proxyless-w0.3-r64).
We assume 32 KiB for TinyEngine's generated code and kernels and add the smaller of those published
differences for the others. Treat all four as ±30% figures.

Per-channel quantisation data in Flash: TinyEngine stores one int32 per output channel (its
``get_scale_size``: 4 B × Cout); a ``.tflite`` flatbuffer (TFLM, CMSIS-NN) stores a float32 scale and an int64
zero point per channel (12 B × Cout); for X-CUBE-AI we assume TinyEngine's 4 B.
"""

from __future__ import annotations

from dataclasses import dataclass

from nasprof.errors import InputError

__all__ = ["Runtime", "RUNTIMES", "get_runtime", "DEFAULT_RUNTIME"]

KB = 1000
KIB = 1024


@dataclass(frozen=True)
class Runtime:
    name: str
    label: str
    cycles_per_mac: float
    code_bytes: int
    quant_bytes_per_channel: int


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("tflm", "TFLite Micro (reference kernels)", 46.0, 32 * KIB + 250 * KB, 12),
        Runtime("cmsis-nn", "TFLite Micro + CMSIS-NN", 4.2, 32 * KIB + 269 * KB, 12),
        Runtime("x-cube-ai", "X-CUBE-AI", 2.4, 32 * KIB + 78 * KB, 4),
        Runtime("tinyengine", "TinyEngine", 2.0, 32 * KIB, 4),
    )
}

#: The runtime each memory model describes (used for Flash and the headline latency).
DEFAULT_RUNTIME = {"per-layer": "tinyengine", "tflm": "cmsis-nn", "tinyengine": "tinyengine"}


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name.strip().lower()]
    except KeyError:
        raise InputError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}") from None
