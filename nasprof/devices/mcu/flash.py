"""Flash of an int8 deployment: weights (1 B each) + biases (int32, 4 B each) + per-channel quantisation
parameters (runtime-specific, see ``runtimes``) + the runtime's code size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nasprof.devices.mcu.graph import McuGraph
from nasprof.devices.mcu.runtimes import Runtime

__all__ = ["FlashReport", "flash_report"]

BIAS_BYTES = 4


@dataclass(frozen=True)
class FlashReport:
    runtime: str
    weight_bytes: int
    bias_bytes: int
    quant_bytes: int
    code_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.bias_bytes + self.quant_bytes + self.code_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "weight_bytes": self.weight_bytes, "bias_bytes": self.bias_bytes,
                "quant_bytes": self.quant_bytes, "code_bytes": self.code_bytes,
                "total_bytes": self.total_bytes}


def flash_report(graph: McuGraph, runtime: Runtime) -> FlashReport:
    weights = sum(op.weight_elems for op in graph.ops)
    biases = sum(op.bias_elems for op in graph.ops if op.weight_elems and op.quant_channels)
    channels = sum(op.quant_channels for op in graph.ops)
    return FlashReport(runtime.name, weights, BIAS_BYTES * biases,
                       runtime.quant_bytes_per_channel * channels, runtime.code_bytes)
