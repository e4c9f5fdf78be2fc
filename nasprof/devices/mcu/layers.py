"""Memory figures of one search-space layer (a table entry) and of a network assembled from them.

``mcu_memory_for_layer`` exports the layer alone to ONNX (``nasprof.space.export_layer``) and runs the same
estimator as ``nasprof measure``, so a table entry's figures are exactly what the full-graph path says for
that block. For a chain of blocks under the ``per-layer`` model, the network's peak SRAM is the maximum of the
blocks' peaks (every tensor alive inside a block is that block's own, plus its input) and its Flash is the sum
of the blocks' Flash plus the runtime's code size; ``network_fits`` does that sum for search.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasprof.devices.mcu.boards import Board, get_board
from nasprof.devices.mcu.report import estimate_mcu, fits
from nasprof.devices.mcu.runtimes import DEFAULT_RUNTIME, get_runtime
from nasprof.errors import InputError, MissingDependencyError

__all__ = ["LayerMcuMemory", "mcu_memory_for_layer", "network_fits"]


@dataclass(frozen=True)
class LayerMcuMemory:
    """Peak SRAM and Flash (weights + biases + quantisation data, no code) of one layer, in bytes."""

    key: str
    memory_model: str
    runtime: str
    peak_sram_bytes: int
    flash_bytes: int
    macs: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "memory_model": self.memory_model, "runtime": self.runtime,
                "peak_sram_bytes": self.peak_sram_bytes, "flash_bytes": self.flash_bytes, "macs": self.macs}


def mcu_memory_for_layer(layer: Any, board: Board | str = "stm32f746", memory_model: str = "per-layer",
                         runtime: str | None = None, *, method: str = "auto") -> LayerMcuMemory:
    """Memory of one ``nasprof.space.Layer`` under ``memory_model``.

    ``method``: ``"analytic"`` builds the graph from the block spec (microseconds; ``conv``/``mbconv`` without
    squeeze-excite), ``"onnx"`` exports the block and reads the ONNX graph (any block; needs torch),
    ``"auto"`` uses the analytic graph when the block is covered. Both give the same bytes. The runtime's
    code size is left out: it is paid once per network (see ``network_fits``).
    """
    if method not in ("auto", "analytic", "onnx"):
        raise InputError(f"unknown method {method!r}; use auto, analytic or onnx")
    b = get_board(board) if isinstance(board, str) else board
    return _layer_memory(layer, b, memory_model, runtime, method)


# Search asks for the same few thousand layers again and again; Layer and Board are frozen and hashable.
@functools.lru_cache(maxsize=8192)
def _layer_memory(layer: Any, b: Board, memory_model: str, runtime: str | None,
                  method: str) -> LayerMcuMemory:
    from nasprof.devices.mcu.analytic import graph_from_layer

    graph = graph_from_layer(layer) if method != "onnx" else None
    if graph is not None:
        report = estimate_mcu(graph, b, memory_model, runtime)
    elif method == "analytic":
        raise InputError(f"no analytic memory model for block {layer.spec.op!r} with these options; "
                         "use method='onnx' or 'auto'")
    else:
        try:
            from nasprof.space import export_layer
        except ImportError:
            raise MissingDependencyError("mcu_memory_for_layer needs nasprof.space.export_layer") from None
        with tempfile.TemporaryDirectory(prefix="nasprof-mcu-") as tmp:
            path = export_layer(layer, Path(tmp) / "layer.onnx")
            report = estimate_mcu(path, b, memory_model, runtime)
    return LayerMcuMemory(
        key=str(getattr(layer, "key", "")),
        memory_model=memory_model,
        runtime=report.runtime,
        peak_sram_bytes=report.peak_sram_bytes,
        flash_bytes=report.flash_bytes - report.flash.code_bytes,
        macs=report.macs,
    )


def network_fits(board: Board | str, layers: Iterable[LayerMcuMemory], runtime: str | None = None) -> bool:
    """Hard constraint for search from per-layer table figures: max peak ≤ SRAM and Σ Flash + code ≤ Flash."""
    items = list(layers)
    if not items:
        return True
    rt = get_runtime(runtime or items[0].runtime or DEFAULT_RUNTIME[items[0].memory_model])
    peak = max(x.peak_sram_bytes for x in items)
    flash = sum(x.flash_bytes for x in items) + rt.code_bytes
    return fits(board, peak, flash)
