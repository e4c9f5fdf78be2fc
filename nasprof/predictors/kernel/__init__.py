"""The kernel predictor: any ONNX graph split into the kernels the device runs (``split``, following the
device's detected ``rules``), each kernel's latency from a regressor fitted on sampled one-kernel models
(``sampling``, ``features``), and an in-network correction (``calibration``)."""

from __future__ import annotations

from nasprof.predictors.kernel.predictor import KernelPredictor
from nasprof.predictors.kernel.rules import KernelRules

__all__ = ["KernelPredictor", "KernelRules"]
