"""Small real models and hand-set kernel predictors shared by the predictor tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nasprof.predictors import KernelPredictor
from nasprof.predictors.kernel.predictor import KernelRegressor


def linear_kernel_predictor(device: str = "cpu", level: str = "extended") -> KernelPredictor:
    """A kernel predictor with exact linear regressors (no forest): conv = 0.01 ms + 1 ms per MMAC."""
    regs = {
        "conv": KernelRegressor(0.01, 1.0, 0.0, None),
        "dwconv": KernelRegressor(0.01, 1.0, 0.0, None),
        "gap": KernelRegressor(0.002, 0.0, 0.0, None),
        "fc": KernelRegressor(0.003, 0.0, 0.0, None),
        "eltwise": KernelRegressor(0.004, 0.0, 0.0, None),
    }
    return KernelPredictor(
        regs,
        overhead_ms=0.005,
        opt_level=level,
        device=device,
        measure_spec={"threads": 1, "opt_level": level},
    )


def make_mixed_model(path: Path, *, unknown_op: str | None = None) -> Path:
    """Conv+BN+Relu, depthwise Conv+Clip, 1x1 Conv, residual Add, GAP, Flatten, Gemm+Relu (opset 17)."""
    rng = np.random.default_rng(0)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)

    c = 16
    inits = [
        w("w1", c, 3, 3, 3),
        w("b1", c),
        w("g", c),
        w("beta", c),
        w("mean", c),
        numpy_helper.from_array(np.ones(c, np.float32), "var"),
        w("w2", c, 1, 3, 3),
        w("w3", c, c, 1, 1),
        w("fcw", 10, c),
        w("fcb", 10),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(6.0, np.float32), "hi"),
    ]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="/stem/Conv", pads=[1] * 4, strides=[2, 2]),
        n(
            "BatchNormalization",
            ["c1", "g", "beta", "mean", "var"],
            ["bn1"],
            name="/stem/bn/BatchNormalization",
        ),
        n("Relu", ["bn1"], ["r1"], name="/stem/act/Relu"),
        n("Conv", ["r1", "w2"], ["c2"], name="/blocks.0/dw/Conv", pads=[1] * 4, group=c),
        n("Clip", ["c2", "lo", "hi"], ["a2"], name="/blocks.0/act/Clip"),
        n("Conv", ["a2", "w3"], ["c3"], name="/blocks.0/pw/Conv"),
        n("Add", ["r1", "c3"], ["s"], name="/blocks.0/Add"),
        n("GlobalAveragePool", ["s"], ["p"], name="/head/pool/GlobalAveragePool"),
        n("Flatten", ["p"], ["f"], name="/head/Flatten"),
        n("Gemm", ["f", "fcw", "fcb"], ["fc"], name="/head/fc/Gemm", transB=1),
        n("Relu", ["fc"], ["y"], name="/head/act/Relu"),
    ]
    if unknown_op:
        nodes[-1] = n("Relu", ["fc"], ["r"], name="/head/act/Relu")
        nodes.append(n(unknown_op, ["r"], ["y"], name=f"/head/{unknown_op}"))
    graph = helper.make_graph(
        nodes,
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


#: Host classes whose probe results are recorded in tests/predictors/data/probes (see record.py there).
RECORDED_HOSTS = ("avx512", "avx2", "plain")


def recorded_probe(host: str) -> dict[str, Any]:
    """The recorded probe report of a host class: rules, every probe's executed op types, layout cases."""
    import json

    return json.loads((Path(__file__).parent / "data" / "probes" / f"{host}.json").read_text())
