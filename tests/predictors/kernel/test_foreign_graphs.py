"""The kernel predictor on graphs nasprof did not export: classic CNNs in other tools' style, old and new
opsets, operators it has no regressor for, and the regressors outside their training range."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from _predictor_helpers import linear_kernel_predictor
from conftest import cli_runner as runner
from onnx import TensorProto, helper, numpy_helper

from nasprof.cli import app
from nasprof.predictors.kernel.rules import KernelRules
from nasprof.predictors.kernel.split import split_kernels
from nasprof.testing.classic_cnns import CLASSIC_CNNS, build_classic


def _ort_ops(model: Path, tmp_path: Path) -> list[str]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]


#: AlexNet and VGG carry 250-330 MB of classifier weights: built and split in the benchmark, not here.
SMALL = [n for n in CLASSIC_CNNS if n not in ("alexnet", "vgg11")]


@pytest.mark.parametrize("name", SMALL)
def test_classic_cnns_split_into_the_kernels_onnxruntime_runs_here(
    name: str, tmp_path: Path, host_rules: KernelRules
) -> None:
    """Standalone BatchNormalization (DenseNet), ``Sum`` residuals at opset 7 (ResNet-50), LRN and
    Dropout (GoogLeNet), Softmax heads: every kernel and reorder of onnxruntime's optimised graph, counted."""
    model = build_classic(name, tmp_path / f"{name}.onnx")
    ops = _ort_ops(model, tmp_path)
    kernels = [k for k in split_kernels(model, host_rules) if k.type != "free"]
    views = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Constant"}
    assert len(kernels) == sum(op not in views for op in ops)
    reorders = sorted(k.variant for k in kernels if k.type == "reorder")
    assert reorders == sorted(op for op in ops if op.startswith("Reorder"))
    known = {"conv", "dwconv", "fc", "gap", "pool", "eltwise", "act", "lrn", "concat", "memory", "reorder"}
    assert {k.type for k in kernels} <= known  # no operator left without a kernel type


def _small_classic_graph(opset: int) -> onnx.ModelProto:
    """conv -> BN -> Relu -> (Dropout) -> conv -> Sum with the first -> Clip -> upsample -> GAP -> Flatten ->
    Gemm -> Softmax, written the way an exporter of that opset writes each op."""
    rng = np.random.default_rng(0)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)

    inits = [w("w1", 16, 3, 3, 3), w("w2", 16, 16, 3, 3), w("g", 16), w("b", 16), w("m", 16), w("fw", 10, 16),
             w("fb", 10), numpy_helper.from_array(np.ones(16, np.float32), "v")]
    n = helper.make_node
    nodes = [n("Conv", ["x", "w1"], ["c1"], pads=[1] * 4),
             n("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn"]), n("Relu", ["bn"], ["r"])]
    if opset < 12:
        nodes.append(n("Dropout", ["r"], ["d"], ratio=0.5))
    else:
        nodes.append(n("Dropout", ["r"], ["d"]))
    nodes.append(n("Conv", ["d", "w2"], ["c2"], pads=[1] * 4))
    nodes.append(n("Sum", ["c2", "r"], ["s"]))
    if opset < 11:
        nodes.append(n("Clip", ["s"], ["cl"], min=0.0, max=6.0))
    else:
        inits += [numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
                  numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
        nodes.append(n("Clip", ["s", "lo", "hi"], ["cl"]))
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    inits.append(scales)
    if opset < 9:
        nodes.append(n("Upsample", ["cl"], ["up"], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0]))
    elif opset < 10:
        nodes.append(n("Upsample", ["cl", "scales"], ["up"], mode="nearest"))
    else:  # opset 11-12 want a region of interest, even an empty one
        inits.append(numpy_helper.from_array(np.zeros(0, np.float32), "roi"))
        nodes.append(n("Resize", ["cl", "roi", "scales"] if opset >= 11 else ["cl", "scales"], ["up"],
                       mode="nearest"))
    nodes += [n("GlobalAveragePool", ["up"], ["p"]), n("Flatten", ["p"], ["f"], axis=1),
              n("Gemm", ["f", "fw", "fb"], ["fc"], transB=1), n("Softmax", ["fc"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "classic", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 6 if opset <= 11 else 8
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("level", ["extended", "all"])
def test_old_and_new_opsets_split_the_same_way(tmp_path: Path, level: str) -> None:
    rules = KernelRules.fallback(level, 16 if level == "all" else 0)
    seen = {}
    for opset in (7, 9, 11, 13, 17):
        path = tmp_path / f"o{opset}.onnx"
        onnx.save(_small_classic_graph(opset), str(path))
        kernels = [k for k in split_kernels(path, rules) if k.type != "free"]
        seen[opset] = [(k.type, k.variant or k.act, k.fused_add) for k in kernels]
    assert all(v == seen[17] for v in seen.values()), seen
    kinds = {t for t, _, _ in seen[17]}
    assert {"conv", "fc", "gap", "memory", "act"} <= kinds
    assert ("memory", "Resize", False) in seen[17] and ("act", "Softmax", False) in seen[17]


def test_a_custom_operator_is_named_with_its_share_and_partial_json(tmp_path: Path) -> None:
    """An op with no regressor at all (a custom domain op): predict refuses naming it and its share of the
    graph; with --allow-partial the JSON says how much of the graph the figure stands for."""
    model = onnx.load(str(build_classic("mobilenet_v1", tmp_path / "m.onnx")))
    gap = next(node for node in model.graph.node if node.op_type == "GlobalAveragePool")
    custom = helper.make_node("FancyPool", list(gap.input), list(gap.output), domain="com.example")
    model.graph.node.insert(list(model.graph.node).index(gap), custom)
    model.graph.node.remove(gap)
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    onnx.save(model, str(tmp_path / "custom.onnx"))
    p = linear_kernel_predictor(level="all").save(tmp_path / "k.json")
    r = runner.invoke(app, ["predict", str(tmp_path / "custom.onnx"), "--predictor", str(p)])
    assert r.exit_code == 2 and "FancyPool" in r.stderr and "Traceback" not in r.output
    custom = str(tmp_path / "custom.onnx")
    r = runner.invoke(app, ["predict", custom, "--predictor", str(p), "--allow-partial", "--json", "-"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert 0 < doc["covered_node_share"] < 1 and 0 < doc["covered_macs_share"] <= 1
    assert any("FancyPool" in m for m in doc["missing"])
    r = runner.invoke(app, ["predict", custom, "--predictor", str(p), "--allow-partial", "--explain"])
    assert r.exit_code == 0 and "NOT PREDICTED" in r.stdout and "% of the graph's nodes" in r.stdout


def test_regressors_extrapolate_with_the_linear_part_beyond_their_samples() -> None:
    """Fitted on convs up to ~50 M MACs, a conv 10x and 40x larger is predicted about 10x and 40x slower:
    the forest only corrects the linear base, within the factors it learned."""
    from nasprof.predictors.kernel.features import feature_matrix
    from nasprof.predictors.kernel.kernels import Kernel
    from nasprof.predictors.kernel.sampling import sample_kernels
    from nasprof.predictors.kernel.trainer import fit_regressor

    rng = np.random.default_rng(0)
    ks = [k for k in sample_kernels("conv", 400, rng) if 1e6 < feature_matrix([k])[0][9] < 5e7]
    x = feature_matrix(ks)
    y = x[:, 9] / 1e6 * 0.02 * rng.uniform(0.9, 1.1, len(ks)) + 0.01  # 0.02 ms per MMAC, noisy
    reg, _ = fit_regressor(x, y, n_estimators=20)

    def conv(c: int) -> Kernel:
        return Kernel("conv", "c", ("c",), (c, 56, 56), (c, 56, 56), kernel=3, params=c * c * 9)

    base = float(reg.predict(feature_matrix([conv(64)]))[0])  # 116 M MACs, already above the samples
    for c, factor in ((203, 10), (405, 40)):
        big = float(reg.predict(feature_matrix([conv(c)]))[0])
        assert 0.6 * factor < big / base < 1.6 * factor
