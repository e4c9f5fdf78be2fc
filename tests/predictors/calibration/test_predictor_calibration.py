"""In-network calibration of the kernel predictor, and the ``memory`` kernels (Transpose/Split/Slice)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _predictor_helpers import linear_kernel_predictor, make_mixed_model
from conftest import cli_runner as runner

from nasprof.cli import app
from nasprof.devices import MeasureSpec, get_device
from nasprof.errors import PredictorError
from nasprof.predictors import KernelPredictor, Predictor
from nasprof.predictors.calibration.kernel import (
    FIXED_GROUPS,
    GROUPING,
    WEIGHT_GROUPS,
    Calibration,
    calibration_group,
    fit_calibration,
)
from nasprof.predictors.calibration.rounds import calibration_archs, network_name
from nasprof.predictors.kernel.kernel_model import build_kernel_model
from nasprof.predictors.kernel.kernels import Kernel
from nasprof.predictors.kernel.predictor import KernelRegressor
from nasprof.predictors.kernel.sampling import sample_kernels
from nasprof.predictors.kernel.split import split_kernels


def _k(kind: str, kernel: int = 1, hw: int = 14) -> Kernel:
    return Kernel(kind, kind, (kind,), (16, hw, hw), (16, hw, hw), kernel=kernel)


def test_groups_split_convs_by_what_bounds_them() -> None:
    assert calibration_group(_k("conv", 1)) == "conv"  # compute-bound: in FIXED_GROUPS, never rescaled
    assert calibration_group(_k("conv", 3)) == "conv"
    assert "conv" in FIXED_GROUPS
    assert calibration_group(_k("conv", 1, hw=1)) == "conv_se"
    stem = Kernel("conv", "s", ("s",), (3, 224, 224), (32, 112, 112), kernel=3, stride=2)
    assert calibration_group(stem) == "conv_stem"
    assert calibration_group(_k("dwconv", 3)) == "dwconv"
    assert calibration_group(_k("reorder")) == "reorder"


def test_factors_recovered_exactly_without_prior() -> None:
    # Networks whose measured time is 1.2 x their SE convs + 0.9 x their depthwise convs + their (fixed)
    # compute-bound convs + overhead.
    rng = np.random.default_rng(0)
    sets, measured = [], []
    for _ in range(6):
        a, b, c = rng.uniform(0.5, 3.0, 3)
        sets.append([(_k("conv", 1, hw=1), float(a)), (_k("dwconv", 3), float(b)), (_k("conv", 3), float(c))])
        measured.append(0.01 + 1.2 * a + 0.9 * b + c)
    cal = fit_calibration(sets, measured, 0.01, prior_weight=0.0, per_mb=False)
    assert cal.factors == pytest.approx({"conv_se": 1.2, "dwconv": 0.9}, rel=1e-9)
    assert cal.ms_per_mb == {}
    assert cal.info["after_in_sample"]["rmspe"] == pytest.approx(0.0, abs=1e-9)
    assert cal.info["leave_one_out"]["rmspe"] == pytest.approx(0.0, abs=1e-9)
    assert cal.info["before"]["rmspe"] > 0.05
    # A group no calibration network had keeps its isolated prediction.
    assert cal.adjust(_k("memory"), 0.5) == 0.5
    assert cal.adjust(_k("conv", 1, hw=1), 0.5) == pytest.approx(0.6)
    assert cal.adjust(_k("conv", 3), 0.5) == 0.5


def test_a_calibration_worse_than_none_on_held_out_networks_says_so() -> None:
    # Two networks that disagree: A runs its depthwise convs at 0.5x, B needs 2.5x on its adds. Fitted on
    # one, the other is predicted worse than without calibration (+200% and -50% against +100% and -33%).
    a = [(_k("dwconv", 3), 1.0)]
    b = [(_k("dwconv", 3), 1.0), (_k("eltwise", 1), 1.0)]
    cal = fit_calibration([a, b], [0.5, 3.0], 0.0, weight_cost=False)
    assert cal.info["leave_one_out"]["rmspe"] > cal.info["before"]["rmspe"]
    assert "2 networks are too few for 2 fitted terms" in cal.info["warning"]
    # Consistent networks: the held-out error is small and nothing is said.
    fine = fit_calibration([a, b, a, b], [0.5, 1.5, 0.5, 1.5], 0.0, weight_cost=False)
    assert "warning" not in fine.info


def test_speed_ratio_scales_every_group_and_leaves_the_factors_to_the_network() -> None:
    # The same networks as above, measured on a device running 1.25x slower than when its kernels were
    # sampled: with the ratio the anchors measured, the factors are the in-network ones again.
    rng = np.random.default_rng(0)
    sets, measured = [], []
    for _ in range(6):
        a, b, c = rng.uniform(0.5, 3.0, 3)
        sets.append([(_k("conv", 1, hw=1), float(a)), (_k("dwconv", 3), float(b)), (_k("conv", 3), float(c))])
        measured.append(1.25 * (1.2 * a + 0.9 * b + c))
    cal = fit_calibration(sets, measured, 0.0, prior_weight=0.0, speed_ratio=1.25)
    assert cal.factors == pytest.approx({"conv_se": 1.2, "dwconv": 0.9}, rel=1e-9)
    assert cal.speed_ratio == 1.25 and cal.info["speed_ratio"] == 1.25
    assert cal.adjust(_k("conv", 3), 0.5) == pytest.approx(0.625)  # the never-rescaled conv too
    assert cal.adjust(_k("dwconv", 3), 0.5) == pytest.approx(0.5625)
    # Without the ratio the slowdown lands on the free groups (what happened before anchors).
    drifted = fit_calibration(sets, measured, 0.0, prior_weight=0.0)
    assert drifted.factors["dwconv"] > 1.0
    again = Calibration.from_dict(cal.to_dict())
    assert again.speed_ratio == 1.25 and dict(again.factors) == pytest.approx(dict(cal.factors))
    old = {k: v for k, v in cal.to_dict().items() if k != "speed_ratio"}  # a file from before anchors
    assert Calibration.from_dict(old).speed_ratio == 1.0
    with pytest.raises(PredictorError, match="speed_ratio"):
        Calibration.from_dict({**cal.to_dict(), "speed_ratio": -1})
    with pytest.raises(PredictorError, match="speed_ratio"):
        fit_calibration(sets, measured, 0.0, speed_ratio=float("nan"))


def test_cold_weight_cost_is_recovered_on_conv_weights_not_the_classifier() -> None:
    # Networks that pay 0.02 ms per MB of conv/dwconv weights on top of 1.1 x their depthwise convs, 1.3 x
    # their classifier and their (never-rescaled) convs: the weights of a kernel alone stay in cache, in a
    # network they arrive cold. The cost applies to the fixed convs' weights too; the classifier's
    # matrix-vector product has only its factor (a cost per MB already, as its time scales with them).
    def weighted(kind: str, params: int, kernel: int = 1) -> Kernel:
        return Kernel(kind, kind, (kind,), (16, 14, 14), (16, 14, 14), kernel=kernel, params=params)

    rng = np.random.default_rng(2)
    sets, measured = [], []
    for _ in range(8):
        a, c, f, e = rng.uniform(0.05, 3.0, 4)
        pw, pc, pf = (int(v) for v in rng.integers(10_000, 3_000_000, 3))
        ks = [(weighted("dwconv", pw, 3), float(a)), (weighted("conv", pc, 3), float(c)),
              (weighted("fc", pf), float(f)), (weighted("eltwise", 0), float(e))]
        sets.append(ks)
        mb = (pw + pc) * 4 / 1e6
        measured.append(1.1 * a + c + 1.3 * f + e + 0.02 * mb)
    cal = fit_calibration(sets, measured, 0.0, prior_weight=0.0)
    assert cal.ms_per_weight_mb == pytest.approx(0.02, rel=1e-6)
    assert cal.factors["dwconv"] == pytest.approx(1.1, rel=1e-6)
    assert cal.factors["fc"] == pytest.approx(1.3, rel=1e-6)
    assert "gamma * weight MB" in cal.info["model"]
    conv = weighted("conv", 250_000, 3)  # 1 MB of weights
    assert cal.adjust(conv, 0.5) == pytest.approx(0.52)
    assert cal.adjust(weighted("fc", 250_000), 0.5) == pytest.approx(0.65)  # no γ on the classifier
    assert cal.adjust(weighted("eltwise", 0), 0.5) == pytest.approx(0.5)
    again = Calibration.from_dict(cal.to_dict())
    assert again.ms_per_weight_mb == cal.ms_per_weight_mb and again.weight_groups == WEIGHT_GROUPS
    assert again.adjust(weighted("fc", 250_000), 0.5) == pytest.approx(0.65)
    old = {k: v for k, v in cal.to_dict().items() if k != "ms_per_weight_mb"}  # a file from before it
    assert Calibration.from_dict(old).ms_per_weight_mb == 0.0
    with pytest.raises(PredictorError, match="ms_per_weight_mb"):
        Calibration.from_dict({**cal.to_dict(), "ms_per_weight_mb": -0.1})
    with pytest.raises(PredictorError, match="weight_groups"):
        Calibration.from_dict({**cal.to_dict(), "weight_groups": "conv"})
    # Without the term, the factors absorb what the weights cost, and the fit is no longer exact.
    off = fit_calibration(sets, measured, 0.0, prior_weight=0.0, weight_cost=False)
    assert off.ms_per_weight_mb == 0.0 and off.info["after_in_sample"]["rmspe"] > 1e-3


def test_files_fitted_before_the_classifier_left_gamma_keep_predicting_as_fitted() -> None:
    # A file without ``weight_groups`` had its γ fitted with the classifier's weights in: it keeps charging
    # them, so its predictions do not move under it.
    fc = Kernel("fc", "fc", ("fc",), (1280,), (1000,), params=250_000)  # 1 MB of weights
    new = Calibration({"fc": 1.0}, {}, ms_per_weight_mb=0.02)
    legacy = {k: v for k, v in new.to_dict().items() if k != "weight_groups"}
    old = Calibration.from_dict(legacy)
    assert "fc" not in new.weight_groups and "fc" in old.weight_groups
    assert new.adjust(fc, 0.5) == pytest.approx(0.5) and old.adjust(fc, 0.5) == pytest.approx(0.52)


def test_anchor_kernels_measure_the_speed_ratio_in_the_calibration_rounds() -> None:
    from nasprof.devices import MeasureSpec
    from nasprof.predictors.calibration.rounds import measure_calibration_set
    from nasprof.predictors.kernel.measure import measure_kernels, measure_overhead
    from nasprof.space import get_space

    spec = MeasureSpec(warmup=2, runs=5, sessions=2)
    kernels = sample_kernels("dwconv", 3, np.random.default_rng(0))
    then = [s.e2e_ms for s in measure_kernels(kernels, "cpu", MeasureSpec(warmup=2, runs=5, sessions=1))]
    assert measure_overhead("cpu", spec) > 0
    archs = get_space("mobilenetv2").sample(2, seed=0, resolution=32, width=0.35)
    # Anchors recorded at half their real time: the device now looks twice as slow.
    anchors = [(k, t / 2) for k, t in zip(kernels, then, strict=True)]
    sets, ms, ratio, also = measure_calibration_set(
        archs, lambda path: split_kernels(path, "all"), "cpu", spec, anchors=anchors
    )
    assert len(sets) == len(ms) == 2 and all(m > 0 for m in ms) and also == []
    assert 1.4 < ratio < 2.8
    assert measure_calibration_set(archs, lambda path: split_kernels(path, "all"), "cpu", spec)[2] == 1.0


def test_prior_keeps_a_sliver_group_near_one() -> None:
    # gap is 0.1% of each network: the data cannot pin its factor, the prior keeps it at ~1.
    rng = np.random.default_rng(1)
    sets, measured = [], []
    for _ in range(8):
        a = float(rng.uniform(1.0, 2.0))
        g = a * 0.001
        sets.append([(_k("dwconv", 3), a), (_k("gap"), g)])
        measured.append(1.1 * a + g * float(rng.uniform(0.0, 10.0)))
    cal = fit_calibration(sets, measured, 0.0, prior_weight=0.05, per_mb=False)
    assert abs(cal.factors["gap"] - 1.0) < 0.01
    assert cal.factors["dwconv"] == pytest.approx(1.1, abs=0.01)


def test_calibration_needs_two_sane_networks() -> None:
    with pytest.raises(PredictorError, match="at least two"):
        fit_calibration([[(_k("dwconv"), 1.0)]], [1.2], 0.0)
    with pytest.raises(PredictorError, match="above the per-call overhead"):
        fit_calibration([[(_k("dwconv"), 1.0)]] * 2, [1.2, float("nan")], 0.0)
    with pytest.raises(PredictorError, match="no kernels of a calibrated group"):
        fit_calibration([[(_k("conv", 3), 1.0)]] * 2, [1.2, 1.3], 0.0)


def test_calibrated_predictor_round_trips_and_is_refused_when_foreign(tmp_path: Path) -> None:
    p = linear_kernel_predictor(level="all")
    model = make_mixed_model(tmp_path / "m.onnx")
    plain_ms = p.predict(model)
    cal = Calibration({"conv_stem": 1.5, "dwconv": 2.0, "conv": 3.0}, {"conv_stem": 0.25}, info={"x": 1})
    q = p.with_calibration(cal)
    parts = {x.name: x.latency_ms for x in q.explain(model).parts}
    plain_parts = {x.name: x.latency_ms for x in p.explain(model).parts}
    stem = next(k for k in q.kernels(model) if k.name == "/stem/Conv")
    from nasprof.predictors.kernel.features import kernel_bytes

    assert parts["/stem/Conv"] == pytest.approx(
        1.5 * plain_parts["/stem/Conv"] + 0.25 * kernel_bytes(stem) / 1e6
    )
    assert parts["/blocks.0/dw/Conv"] == pytest.approx(2.0 * plain_parts["/blocks.0/dw/Conv"])
    assert parts["/blocks.0/pw/Conv"] == pytest.approx(3.0 * plain_parts["/blocks.0/pw/Conv"])
    assert parts["/head/fc/Gemm"] == plain_parts["/head/fc/Gemm"]  # fc: no factor fitted
    assert q.predict(model) > plain_ms
    path = q.save(tmp_path / "k.json")
    loaded = Predictor.load(path, device="cpu")
    assert loaded.predict(model) == q.predict(model)
    assert loaded.training_error["calibration"] == {"x": 1}
    doc = json.loads(path.read_text())
    doc["body"]["calibration"]["grouping"] = "v0"
    path.write_text(json.dumps(doc))
    with pytest.raises(PredictorError, match="grouping 'v0'"):
        Predictor.load(path)
    doc["body"]["calibration"]["grouping"] = GROUPING
    doc["body"]["calibration"]["factors"]["dwconv"] = -1.0
    path.write_text(json.dumps(doc))
    with pytest.raises(PredictorError, match="negative or non-finite"):
        Predictor.load(path)
    # A file written before calibration existed (no key) loads as uncalibrated.
    del doc["body"]["calibration"]
    path.write_text(json.dumps(doc))
    assert Predictor.load(path).predict(model) == plain_ms


def test_calibrate_on_real_measurements(tmp_path: Path) -> None:
    p = linear_kernel_predictor(level="all")
    models = [make_mixed_model(tmp_path / f"m{i}.onnx") for i in range(2)]
    spec = MeasureSpec(warmup=1, runs=3, sessions=1, opt_level="all")
    measured = [get_device("cpu").measure(m, spec).median_ms for m in models]
    q = p.calibrate(models, measured)
    assert q.calibration is not None and q.calibration.info["networks"] == 2
    groups = {calibration_group(k) for k in p.kernels(models[0]) if k.type != "free"}
    assert set(q.calibration.factors) == groups - FIXED_GROUPS


def test_calibration_archs_alternate_spaces_and_the_block_zoo() -> None:
    from nasprof.space.network import Network

    archs = calibration_archs(12, seed=5)
    spaces, zoo = archs[0::2], archs[1::2]
    assert [(a.space, a.resolution, a.width) for a in spaces[:3]] == [
        ("mnasnet", 160, 0.75),
        ("mnasnet", 160, 1.0),
        ("mnasnet", 192, 0.75),
    ]
    assert {a.space for a in spaces} == {"mnasnet"}  # 6 space samples: the first 6 combos are mnasnet
    assert {a.space for a in calibration_archs(24, seed=5)[0::2]} == {"mnasnet", "mobilenetv2"}
    assert all(isinstance(n, Network) and n.name.startswith("zoo") for n in zoo)
    # Zoo networks mix families, so the calibration sees more than mobile blocks.
    assert len({b.op for n in zoo for b in n.blocks}) >= 4
    again = calibration_archs(12, seed=5)
    assert [network_name(a) for a in again] == [network_name(a) for a in archs]
    assert [n.specs() for n in again[1::2]] == [n.specs() for n in zoo]


def _shuffle_model(path: Path, c: int = 24, g: int = 3, hw: int = 8) -> Path:
    k = Kernel("memory", "k", ("k",), (c, hw, hw), (c, hw, hw), groups=g, variant="Transpose")
    return build_kernel_model(k, path)


def test_channel_shuffle_is_one_memory_kernel_as_onnxruntime_runs_it(tmp_path: Path) -> None:
    model = _shuffle_model(tmp_path / "shuffle.onnx")
    kernels = split_kernels(model, "all")
    assert [(k.type, k.variant, k.in_shape, k.groups) for k in kernels] == [
        ("free", "Reshape", (24, 8, 8), 1),  # a view: onnxruntime runs it without copying
        ("memory", "Transpose", (24, 8, 8), 3),
        ("free", "Reshape", (8, 3, 8, 8), 1),
    ]
    spec = MeasureSpec(warmup=1, runs=2, sessions=1, per_node=True, per_node_runs=2, opt_level="all")
    profiled = get_device("cpu").measure(model, spec).per_node or ()
    assert [n.op_type for n in profiled] == ["Reshape", "Transpose", "Reshape"]


@pytest.mark.parametrize("variant", ["Transpose", "Split", "Slice"])
def test_sampled_memory_kernels_round_trip_through_the_splitter(tmp_path: Path, variant: str) -> None:
    rng = np.random.default_rng(2)
    ks = [k for k in sample_kernels("memory", 40, rng) if k.variant == variant][:3]
    assert ks
    for i, k in enumerate(ks):
        found = [
            x for x in split_kernels(build_kernel_model(k, tmp_path / f"{i}.onnx"), "all") if x.type != "free"
        ]
        assert [(x.type, x.variant, x.in_shape, x.out_shape, x.groups) for x in found] == [
            (k.type, k.variant, k.in_shape, k.out_shape, k.groups)
        ]


def test_grouped_convs_are_sampled_and_not_depthwise() -> None:
    ks = [k for k in sample_kernels("conv", 300, np.random.default_rng(0)) if k.groups > 1]
    assert ks
    for k in ks:
        assert k.in_shape[0] % k.groups == 0 and k.out_shape[0] % k.groups == 0
        assert k.in_shape[0] >= 2 * k.groups


def test_memory_regressor_predicts_shuffle(tmp_path: Path) -> None:
    p = linear_kernel_predictor(level="all")
    model = _shuffle_model(tmp_path / "shuffle.onnx")
    with pytest.raises(PredictorError, match="cannot predict 1 part"):
        p.predict(model)
    regs = dict(p.regressors, memory=KernelRegressor(0.001, 0.0, 0.5, None))
    q = KernelPredictor(regs, overhead_ms=0.005, opt_level="all", device="cpu")
    # in + out, float32: 2 * 24*8*8 * 4 bytes.
    assert q.predict(model) == pytest.approx(0.005 + 0.001 + 0.5 * 2 * 24 * 64 * 4 / 1e6, rel=1e-12)


def test_cli_fit_kernels_with_calibration(tmp_path: Path) -> None:
    out = tmp_path / "k.json"
    result = runner.invoke(
        app,
        [
            "predictor",
            "fit",
            "--kernels",
            "--budget",
            "12",
            "--runs",
            "3",
            "--calibrate",
            "2",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "calibrated on 2 sampled architectures" in result.output
    p = Predictor.load(out, device="cpu")
    assert p.calibration is not None and p.calibration.info["networks"] == 2
    assert p.metadata["calibration"]["archs"] == 2
    assert p.calibration.info["names"][1].startswith("zoo")  # the second network is a block-zoo one
    assert 0.2 < p.calibration.speed_ratio < 5 and p.anchors  # measured by the anchors in the rounds
    shown = runner.invoke(app, ["predictor", "show", str(out)])
    assert shown.exit_code == 0 and "calibration factors" in shown.output
    assert "calibration speed ratio" in shown.output
    bad = runner.invoke(
        app, ["predictor", "fit", "--kernels", "--budget", "12", "--calibrate", "1", "-o", str(out)]
    )
    assert bad.exit_code == 2 and "at least 2" in bad.output
    assert Predictor.load(out).calibration is not None  # the earlier file is untouched
    # validate --calibrate: the same calibration, in the rounds of the judged networks.
    from nasprof.space import export_arch

    model = export_arch("mobilenet_v2", tmp_path / "mbv2.onnx", resolution=64)
    again = tmp_path / "k2.json"
    v = runner.invoke(app, ["validate", "--predictor", str(out), "--models", str(model), "--runs", "3",
                            "--sessions", "2", "--calibrate", "2", "--calibrate-seed", "7", "--allow-partial",
                            "--no-cold-weights", "--save-predictor", str(again),
                            "--json", str(tmp_path / "v.json")])
    assert v.exit_code == 0, v.output
    assert "calibrated on 2 other networks measured in the same rounds" in v.output
    assert "cold weights" in v.output and "(anchors)" in v.output
    q = Predictor.load(again, device="cpu")
    assert q.calibration is not None and q.calibration.info["networks"] == 2
    assert q.calibration.info["names"] != p.calibration.info["names"]  # seed 7's networks, not 1000's
    assert q.calibration.ms_per_weight_mb == 0.0 and "gamma" not in q.calibration.info["model"]
    doc = json.loads((tmp_path / "v.json").read_text())
    assert doc["n"] == 1 and doc["rows"][0]["predicted_ms"] == pytest.approx(q.explain(model).latency_ms)
    assert doc["metadata"]["calibration"]["seed"] == 7 and doc["metadata"]["calibration"]["speed_ratio"] > 0
