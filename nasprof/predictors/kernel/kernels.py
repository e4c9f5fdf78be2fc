"""``Kernel``: one kernel as a device's onnxruntime executes it (a conv with its fused activation and
residual, a pool, a layout reorder ...), with the shapes and attributes the regressors read.

Apart from ``split`` (which finds the kernels of a graph) because everything downstream — features,
sampling, measuring, training, calibration — handles kernels without splitting anything.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Kernel"]


@dataclass(frozen=True)
class Kernel:
    """One executed kernel: its type (``conv``, ``dwconv``, ``fc``, ``gap``, ``pool``, ``eltwise``, ``act``,
    ``lrn``, ``concat``, ``memory``, ``free``, or the op type of an unsupported op), the exported nodes it
    covers, and its shapes.

    Shapes are NCHW with batch 1 dropped: ``in_shape`` = (C, H, W) of the main input, ``out_shape`` likewise.
    """

    type: str
    name: str
    covers: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    act: str = ""
    fused_add: bool = False
    params: int = 0
    #: Op-specific variant: the element-wise op for ``eltwise``, pool op for ``pool``, inputs for ``concat``.
    variant: str = ""
    broadcast: bool = False
    #: Data tensors read and the tensor written (for the layout pass); empty for sampled configurations.
    inputs: tuple[str, ...] = ()
    output: str = ""
