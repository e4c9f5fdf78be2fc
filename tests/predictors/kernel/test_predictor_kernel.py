"""Kernel splitting (checked against a real onnxruntime profile), kernel-predictor sums, a real small fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _predictor_helpers import RECORDED_HOSTS, linear_kernel_predictor, make_mixed_model, recorded_probe
from layout_cases import LAYOUT_CASES, layout_model

from nasprof.devices import MeasureSpec, get_device
from nasprof.errors import PredictorError
from nasprof.predictors import Predictor
from nasprof.predictors.kernel.kernel_model import build_kernel_model
from nasprof.predictors.kernel.probe import observed_signature, rules_from_observations, split_signature
from nasprof.predictors.kernel.rules import KernelRules
from nasprof.predictors.kernel.sampling import resample_around, sample_kernels
from nasprof.predictors.kernel.split import split_kernels
from nasprof.predictors.kernel.trainer import fit_kernel_predictor

#: The hand-written rules of the AVX-512 host (blocks of 16), for tests of the split's mechanics.
RULES16 = KernelRules.fallback("all", 16)


def _profile(model: Path, level: str) -> list:
    spec = MeasureSpec(warmup=1, runs=2, sessions=1, per_node=True, per_node_runs=2, opt_level=level)
    return list(get_device("cpu").measure(model, spec).per_node or ())


@pytest.mark.parametrize("level", ["basic", "extended"])
def test_kernels_match_onnxruntime_profile(tmp_path: Path, level: str) -> None:
    model = make_mixed_model(tmp_path / "m.onnx")
    kernels = split_kernels(model, level)
    profiled = _profile(model, level)
    # At these levels onnxruntime keeps the exported names of the nodes that head each kernel.
    assert [k.name for k in kernels] == [n.name.removeprefix("fused ") for n in profiled]


def test_fusion_rules_per_level(tmp_path: Path) -> None:
    model = make_mixed_model(tmp_path / "m.onnx")
    ext = {k.name: k for k in split_kernels(model, "extended")}
    assert ext["/stem/Conv"].covers == ("/stem/Conv", "/stem/bn/BatchNormalization", "/stem/act/Relu")
    assert ext["/blocks.0/dw/Conv"].type == "dwconv" and ext["/blocks.0/dw/Conv"].act == "Clip"
    assert "/blocks.0/Add" in ext  # residual add stays separate below level all
    assert ext["/head/fc/Gemm"].act == "Relu"
    everything = {k.name: k for k in split_kernels(model, "all")}
    assert everything["/blocks.0/pw/Conv"].fused_add and "/blocks.0/Add" not in everything


def test_reorders_match_onnxruntime_profile_at_level_all(tmp_path: Path, host_rules: KernelRules) -> None:
    model = make_mixed_model(tmp_path / "m.onnx")
    profiled = _profile(model, "all")
    kernels = split_kernels(model, host_rules)
    assert [k.type for k in kernels].count("reorder") == sum(
        n.op_type.startswith("Reorder") for n in profiled
    )
    assert len(kernels) == len(profiled)


def test_prediction_is_the_exact_sum_of_kernels(tmp_path: Path) -> None:
    from conftest import make_conv_model

    model = make_conv_model(tmp_path / "tiny.onnx")  # conv 3->8 + relu, conv 8->8 + relu, GAP at 16x16
    p = linear_kernel_predictor()
    macs = 16 * 16 * 8 * 3 * 9 + 16 * 16 * 8 * 8 * 9
    expected = 0.005 + 2 * 0.01 + macs / 1e6 + 0.002
    assert p.predict(model) == pytest.approx(expected, rel=1e-12)
    parts = p.explain(model).parts
    assert [x.kind for x in parts] == ["conv", "conv", "gap"]


def test_unseen_operators_are_listed(tmp_path: Path) -> None:
    model = make_mixed_model(tmp_path / "m.onnx", unknown_op="Hardmax")
    p = linear_kernel_predictor()
    e = p.explain(model)
    assert e.missing == ("/head/Hardmax (Hardmax)",)
    assert e.latency_ms > 0  # the rest is still predicted
    assert 0.8 < e.covered_node_share < 1.0 and e.covered_macs_share > 0.99
    with pytest.raises(PredictorError, match=r"cannot predict 1 part\(s\) \(\d+% of the graph's nodes"):
        p.predict(model)
    # A Softmax is an activation kernel now; a file without an ``act`` regressor still names it.
    soft = p.explain(make_mixed_model(tmp_path / "s.onnx", unknown_op="Softmax"))
    assert soft.missing == ("/head/Softmax (act)",)


def test_a_variant_the_regressor_never_saw_is_refused_not_extrapolated(tmp_path: Path) -> None:
    from nasprof.predictors.kernel.predictor import KernelPredictor

    lin = linear_kernel_predictor()
    covered = {t: [""] for t in lin.regressors} | {"eltwise": ["Add"], "gap": ["GlobalAveragePool"]}
    p = KernelPredictor(lin.regressors, overhead_ms=0.005, rules=lin.rules, device="cpu", covered=covered)
    assert p.explain(make_mixed_model(tmp_path / "m.onnx")).missing == ()
    q = KernelPredictor(lin.regressors, overhead_ms=0.005, rules=lin.rules, device="cpu",
                        covered=covered | {"gap": ["GlobalMaxPool"]})
    (miss,) = q.explain(make_mixed_model(tmp_path / "m.onnx")).missing
    assert "gap GlobalAveragePool, never sampled" in miss
    assert Predictor.load(q.save(tmp_path / "q.json")).covered == q.covered  # type: ignore[attr-defined]
    assert "gap (GlobalMaxPool)" in q.details()["covers"]


def test_kernel_predictor_refuses_architectures() -> None:
    with pytest.raises(PredictorError, match="reads ONNX graphs"):
        linear_kernel_predictor().predict("mnasnet:224:1.0|x")


def test_sampled_kernels_build_valid_models(tmp_path: Path) -> None:
    import onnx

    rng = np.random.default_rng(0)
    for kind in ("conv", "dwconv", "fc", "gap", "pool", "eltwise", "act", "lrn", "concat", "memory"):
        k = sample_kernels(kind, 1, rng)[0]
        path = build_kernel_model(k, tmp_path / f"{kind}.onnx")
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        n = resample_around(k, rng)
        assert n.type == k.type
        if kind in ("conv", "dwconv") and k.in_shape[0] > 3:
            assert 0.4 * k.in_shape[0] - 8 <= n.in_shape[0] <= 1.2 * k.in_shape[0] + 8


def test_small_real_fit_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit whose kernel budget two identical devices share (the local CPU and a named twin of it)."""
    from nasprof.devices.resolve import add_named_device

    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    add_named_device("cpu-twin", "cpu")
    spec = MeasureSpec(warmup=1, runs=3, sessions=1, per_node_runs=2)
    steps: list[int] = []
    p = fit_kernel_predictor(
        "cpu,cpu-twin",
        budget=20,
        spec=spec,
        seed=1,
        n_estimators=5,
        progress=lambda done, total, what: steps.append(done),
    )
    assert steps == list(range(1, 21))  # one step per kernel, counted over both devices
    assert p.device == "cpu" and p.fitted_devices == ["cpu", "cpu-twin"]
    by_device = p.metadata["samples_by_device"]
    assert sum(by_device.values()) == 20 and min(by_device.values()) > 0
    assert p.overhead_ms > 0 and set(p.kernel_types) >= {"conv", "dwconv"}
    model = make_mixed_model(tmp_path / "m.onnx")
    pred = p.predict(model)
    assert np.isfinite(pred) and pred > p.overhead_ms
    q = Predictor.load(p.save(tmp_path / "k.json"), device="cpu")
    assert q.predict(model) == pred
    # Batched across graphs, each answer is the one-graph answer; a graph with an uncovered op is named.
    other = make_mixed_model(tmp_path / "m2.onnx")
    assert q.predict_many([model, other]).tolist() == [pred, q.predict(other)]
    assert [e.latency_ms for e in q.explain_many([model, other])] == [pred, q.predict(other)]
    odd = make_mixed_model(tmp_path / "odd.onnx", unknown_op="Celu")
    with pytest.raises(PredictorError, match="odd.onnx: kernel predictor cannot predict 1 part"):
        q.predict_many([model, odd])
    assert q.training_error["method"] == "out-of-bag"
    # Anchor kernels (re-measured by calibration to tell speed drift from in-network effects) round-trip.
    assert 0 < len(p.anchors) <= 20 and q.anchors == p.anchors
    assert q.rules == p.rules and q.rules.source == "probed" and q.nchwc_block in (0, 8, 16, 32, 64)
    assert all(ms > 0 for _, ms in q.anchors)
    # The profiler's per-node cost fitted on the samples (≤ 10 µs by construction) is recorded.
    assert 0.0 <= q.metadata["profiler_node_cost_ms"] <= 0.01


@pytest.mark.parametrize(
    "preset", ["mnasnet_a1", "efficientnet_b0", "resnet18", "shufflenet_v1", "squeezenet1_0", "mobilenet_v2"]
)
def test_kernel_list_matches_profile_on_presets(tmp_path: Path, preset: str, host_rules: KernelRules) -> None:
    from nasprof.space import export_arch

    model = export_arch(preset, tmp_path / f"{preset}.onnx", resolution=64)
    profiled = _profile(model, "all")
    kernels = split_kernels(model, host_rules)
    assert len(kernels) == len(profiled)
    assert [k.type for k in kernels].count("reorder") == sum(
        n.op_type.startswith("Reorder") for n in profiled
    )


@pytest.mark.parametrize("preset", ["mobilenet_v3_small", "efficientnet_b0", "mobilenet_v2", "shufflenet_v1"])
def test_profile_covers_the_same_nodes_as_each_split_kernel(
    tmp_path: Path, preset: str, host_rules: KernelRules
) -> None:
    """The profiler's node attribution (``NodeTime.covers``) and the kernel split agree kernel for kernel:
    a fused HardSwish / Clip (``activation`` of an NCHWc conv), a residual Add (its ``Sum`` input) and a
    ``QuickGelu`` fusion belong to the kernel that runs them, not to the next one."""
    import onnx

    from nasprof.space import export_arch

    model = export_arch(preset, tmp_path / f"{preset}.onnx", resolution=64)
    constants = {n.name for n in onnx.load(str(model), load_external_data=False).graph.node
                 if n.op_type == "Constant"}
    theirs = {tuple(sorted(set(n.covers) - constants)) for n in _profile(model, "all") if n.covers}
    kernels = split_kernels(model, host_rules)
    ours = {tuple(sorted(k.covers)) for k in kernels if k.type != "reorder"}
    computed = {tuple(sorted(k.covers)) for k in kernels if k.type not in ("reorder", "free")}
    # The one known difference: a HardSwish after the head's Gemm runs as new HardSigmoid + Mul nodes
    # (no exported name to cover), which the split counts as one ``act`` kernel.
    split_act = {tuple(k.covers) for k in kernels if k.type == "act" and k.act == "HardSwish"}
    assert theirs <= ours  # every kernel onnxruntime ran covers exactly one of ours ...
    assert computed - split_act <= theirs  # ... and each of ours that computes something is one it ran


def test_which_kernels_run_blocked_follows_the_rules_block() -> None:
    from nasprof.predictors.kernel.kernels import Kernel
    from nasprof.predictors.kernel.split import _blocked_kernel

    # Which pools run blocked decides where reorders go: 24 channels are plain with blocks of 16 only.
    k24 = Kernel("pool", "p", ("p",), (24, 8, 8), (24, 4, 4), kernel=3, stride=2, variant="MaxPool")
    assert not _blocked_kernel(k24, RULES16) and _blocked_kernel(k24, KernelRules.fallback("all", 8))
    grouped = Kernel("conv", "g", ("g",), (240, 8, 8), (60, 8, 8), groups=3)
    assert not _blocked_kernel(grouped, RULES16) and _blocked_kernel(grouped, RULES16.replace(group_align=4))


def test_a_kernels_own_time_is_its_share_of_the_profiled_pass() -> None:
    from nasprof.predictors.kernel.kernels import Kernel
    from nasprof.predictors.kernel.measure import KernelSample

    pool = Kernel("pool", "p", ("p",), (96, 109, 109), (96, 54, 54), kernel=3, stride=2, variant="MaxPool")
    reorders = ((Kernel("reorder", "ri", (), (96, 109, 109), (96, 109, 109)), 0.084),
                (Kernel("reorder", "ro", (), (96, 54, 54), (96, 54, 54)), 0.023))
    # Measured here: 0.167 ms end to end; profiled, the pool node took 0.061 ms and the reorders 0.107 ms.
    s = KernelSample(pool, 0.167, reorders, 0.061)
    assert s.own_ms(0.002) == pytest.approx(0.165 * 0.061 / 0.168, rel=1e-12)
    # Without a profiled kernel time, or without reorders, the old rule: end to end minus the rest.
    assert KernelSample(pool, 0.167, reorders).own_ms(0.002) == pytest.approx(0.165 - 0.107, rel=1e-12)
    assert KernelSample(pool, 0.167, (), 0.2).own_ms(0.002) == pytest.approx(0.165, rel=1e-12)


def test_the_profilers_cost_per_node_is_taken_off_before_the_pass_is_shared_out() -> None:
    from nasprof.predictors.kernel.kernels import Kernel
    from nasprof.predictors.kernel.measure import KernelSample

    conv = Kernel("conv", "c", ("c",), (64, 1, 1), (16, 1, 1))
    r_in = Kernel("reorder", "ri", (), (64, 1, 1), (64, 1, 1), variant="ReorderInput")
    r_out = Kernel("reorder", "ro", (), (16, 1, 1), (16, 1, 1), variant="ReorderOutput")
    # A squeeze-excite 1x1 conv: profiled at 4 µs, its two reorders at 3 and 2.5 µs; 2 µs of each node is
    # the profiler's own cost. End to end 0.0075 ms, of which 0.002 ms is the per-call overhead.
    s = KernelSample(conv, 0.0075, ((r_in, 0.003), (r_out, 0.0025)), 0.004)
    body = 0.0055
    # Raw shares hand the reorders 5.5 of 9.5 µs; net of the profiler, 1.5 of 3.5.
    assert s.own_ms(0.002) == pytest.approx(body * 4 / 9.5, rel=1e-12)
    assert s.own_ms(0.002, 0.002) == pytest.approx(body * 2 / 3.5, rel=1e-12)
    assert s.reorder_times(0.002, 0.002) == pytest.approx([body * 1 / 3.5, body * 0.5 / 3.5], rel=1e-12)
    assert s.own_ms(0.002, 0.002) + sum(s.reorder_times(0.002, 0.002)) == pytest.approx(body, rel=1e-12)
    # A node no longer than the cost keeps a tenth of its time instead of vanishing.
    tiny = KernelSample(conv, 0.0075, ((r_in, 0.0015),), 0.004)
    assert tiny.reorder_times(0.002, 0.002) == pytest.approx([body * 0.00015 / 0.00215], rel=1e-12)
    # Without a profile the reorders keep their node times.
    assert KernelSample(conv, 0.0075, ((r_in, 0.003),)).reorder_times(0.002, 0.002) == [0.003]


def test_profiler_node_cost_is_fitted_across_samples_with_different_node_counts() -> None:
    from nasprof.predictors.kernel.kernels import Kernel
    from nasprof.predictors.kernel.measure import KernelSample, profiler_node_cost

    r = Kernel("reorder", "r", (), (16, 8, 8), (16, 8, 8), variant="ReorderInput")
    rng = np.random.default_rng(0)
    samples = []
    for i in range(60):  # true times; the profiler adds 2.5 µs per node and runs 3% slow
        own, reo = rng.uniform(0.002, 0.2), rng.uniform(0.0005, 0.02, size=i % 3)
        body = own + reo.sum()
        samples.append(
            KernelSample(
                Kernel("conv", f"c{i}", (f"c{i}",), (16, 8, 8), (16, 8, 8)),
                body + 0.002,
                tuple((r, 1.03 * t + 0.0025) for t in reo),
                1.03 * own + 0.0025,
            )
        )
    assert profiler_node_cost(samples, 0.002) == pytest.approx(0.0025, rel=1e-6)
    assert profiler_node_cost(samples[:2], 0.002) == 0.0  # too few samples to tell


def test_channel_alignment_is_the_largest_power_of_two_divisor() -> None:
    from nasprof.predictors.kernel.features import channel_align

    assert [channel_align(c) for c in (1, 3, 24, 96, 104, 120, 256, 1000)] == [1, 1, 8, 32, 8, 8, 64, 8]


def test_a_grouped_conv_is_predicted_as_its_groups() -> None:
    from nasprof.predictors.kernel.features import FEATURES, feature_matrix, multiplicity, per_group
    from nasprof.predictors.kernel.kernels import Kernel

    grouped = Kernel("conv", "g", ("g",), (240, 14, 14), (960, 14, 14), groups=3, params=240 * 960 // 3 + 960)
    one, g = per_group(grouped)
    assert g == 3 and one.in_shape == (80, 14, 14) and one.out_shape == (320, 14, 14) and one.groups == 1
    assert one.params == (240 * 960 // 3 + 960) // 3
    row = feature_matrix([grouped])[0]
    assert row[FEATURES.index("cin")] == 80 and row[FEATURES.index("groups")] == 3
    assert row[FEATURES.index("macs")] == 14 * 14 * 320 * 80  # one group's MACs
    assert row[FEATURES.index("cin_align")] == 16  # per group: 80 channels fill 16-channel blocks
    depthwise = Kernel("dwconv", "d", ("d",), (240, 14, 14), (240, 14, 14), kernel=3, groups=240)
    assert per_group(depthwise) == (depthwise, 1)
    assert multiplicity([grouped, depthwise]).tolist() == [3.0, 1.0]
    # The predictor multiplies one group's prediction by the group count.
    p = linear_kernel_predictor()
    single = p.explain_kernels([one]).parts[0].latency_ms
    assert p.explain_kernels([grouped]).parts[0].latency_ms == pytest.approx(3 * single)


def _ort_reorders(model: Path, tmp_path: Path) -> list[str]:
    """The layout reorders in onnxruntime's optimized graph of ``model`` (level all), sorted."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(tmp_path / "optimized.onnx")).graph
    return sorted(n.op_type for n in graph.node if n.op_type.startswith("Reorder"))


@pytest.mark.parametrize(("case", "c", "blocked"), LAYOUT_CASES)
def test_layout_rules_place_the_reorders_onnxruntime_does_here(
    tmp_path: Path, host_rules: KernelRules, case: str, c: int, blocked: bool
) -> None:
    """Which kernels onnxruntime runs in NCHWc decides where layout reorders go; each case is one rule of
    ``_blocked_kernel``, followed with this host's probed rules and checked against onnxruntime itself."""
    model = layout_model(tmp_path / f"{case}.onnx", case, c)
    ours = sorted(k.variant for k in split_kernels(model, host_rules) if k.type == "reorder")
    assert ours == _ort_reorders(model, tmp_path)


@pytest.mark.parametrize("host", RECORDED_HOSTS)
@pytest.mark.parametrize(("case", "c", "blocked"), LAYOUT_CASES)
def test_layout_rules_place_the_reorders_each_recorded_host_did(
    tmp_path: Path, host: str, case: str, c: int, blocked: bool
) -> None:
    """The same cases on the recorded host classes (AVX-512: blocks of 16; AVX2: 8; no blocked layout), so
    every path of the split runs on every host: the rules detected from that host's probes place the
    reorders where its onnxruntime did."""
    from nasprof.predictors.kernel.split import AVGPOOL_CEIL_PAD, _blocked_kernel

    doc = recorded_probe(host)
    rules = rules_from_observations(doc["observations"], "all", doc["rules"]["device"])
    model = layout_model(tmp_path / f"{case}.onnx", case, c)
    kernels = split_kernels(model, rules)
    seen = doc["layout_cases"][f"{case}:{c}"]
    assert split_signature(model, rules) == observed_signature(seen)
    assert sorted(k.variant for k in kernels if k.type == "reorder") == sorted(
        op for op in seen if op.startswith("Reorder"))
    if case.startswith("avgpool"):
        pool = next(k for k in kernels if k.type == "pool")
        assert (pool.variant == AVGPOOL_CEIL_PAD) == (case == "avgpool_ceil_pad")
    if case in ("depthwise", "conv") and host == "avx512":
        k = next(k for k in kernels if k.name in ("/dw", "/pw"))
        assert _blocked_kernel(k, rules) == blocked  # the widths observed by hand with blocks of 16


def test_one_kernel_pool_models_keep_the_attributes_and_output_size(tmp_path: Path) -> None:
    import onnx

    from nasprof.predictors.kernel.kernels import Kernel
    from nasprof.predictors.kernel.split import AVGPOOL_CEIL_PAD

    def pool(c: int, h: int, o: int, k: int, variant: str) -> Kernel:
        return Kernel("pool", "p", ("p",), (c, h, h), (c, o, o), kernel=k, stride=2, variant=variant)

    cases = [  # (kernel, the padding that gives its output size)
        (pool(16, 80, 40, 2, AVGPOOL_CEIL_PAD), 0),  # the mnasnet shortcut
        (pool(16, 81, 41, 2, AVGPOOL_CEIL_PAD), 0),  # rounding up
        (pool(64, 112, 56, 3, "MaxPool"), 1),  # ResNet's stem pool
        (pool(24, 8, 5, 2, "MaxPool"), 1),  # the samplers' rule for 2×2 pools
    ]
    for i, (k, pad) in enumerate(cases):
        m = onnx.shape_inference.infer_shapes(onnx.load(str(build_kernel_model(k, tmp_path / f"p{i}.onnx"))))
        onnx.checker.check_model(m, full_check=True)
        node = m.graph.node[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["pads"] == [pad] * 4
        ceil = (attrs.get("ceil_mode", 0), attrs.get("count_include_pad", 0))
        assert ceil == ((1, 1) if k.variant == AVGPOOL_CEIL_PAD else (0, 0))
        out = [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
        assert out == [1, *k.out_shape]
    rng = np.random.default_rng(3)
    sampled = [k for k in sample_kernels("pool", 200, rng) if k.variant == AVGPOOL_CEIL_PAD]
    assert 10 <= len(sampled) <= 40  # about 12% of pool samples
    for i, k in enumerate(sampled[:5]):
        path = build_kernel_model(k, tmp_path / f"s{i}.onnx")
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def test_sampler_covers_widths_that_run_plain(tmp_path: Path) -> None:
    """Depthwise convs and convs reading a width that is not a multiple of 4 run in plain NCHW; the sampler
    gives about a tenth of them such widths (and some widths of 4 mod 8, which stay blocked), and adaptive
    re-sampling keeps them unaligned."""
    import onnx

    from nasprof.predictors.kernel.split import _blocked_kernel

    rng = np.random.default_rng(5)
    for kind in ("dwconv", "conv"):
        kernels = sample_kernels(kind, 300, rng)
        # Not the 3-channel stems, nor grouped convs (their rule is per group).
        odd = [k for k in kernels
               if k.in_shape[0] % 4 and k.in_shape[0] >= 16 and (kind == "dwconv" or k.groups == 1)]
        assert 10 <= len(odd) <= 60
        assert not any(_blocked_kernel(k, RULES16) for k in odd)
        path = build_kernel_model(odd[0], tmp_path / f"{kind}.onnx")
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        assert all(resample_around(k, rng).in_shape[0] % 4 for k in odd[:20])
        assert any(k.in_shape[0] % 8 == 4 for k in kernels)


def test_sampler_draws_widths_aligned_to_the_nchwc_block_as_networks_do() -> None:
    """Most of a network's conv time is in convs whose widths are both multiples of 16 (65% in the presets
    and calibration sets); the sampler gives about half its plain convs such widths (a fifth when it rounded
    to 8 alone), and every width stays a multiple of 8 unless deliberately unaligned."""
    kernels = sample_kernels("conv", 600, np.random.default_rng(7))
    plain = [k for k in kernels if k.groups == 1 and k.in_shape[0] >= 16 and k.in_shape[-1] > 1]
    both = [k for k in plain if k.in_shape[0] % 16 == 0 and k.out_shape[0] % 16 == 0]
    assert 0.35 <= len(both) / len(plain) <= 0.6
    assert all(k.out_shape[0] % 8 == 0 for k in plain)
    assert sum(k.in_shape[0] % 8 != 0 for k in plain) < 0.25 * len(plain)


def test_sampler_draws_grouped_convs_as_networks_have_them() -> None:
    """Grouped convs get per-group widths that are multiples of 4 from 4 to 320 (ShuffleNet's 20-320,
    ResNeXt's 4-32), an output 1/4 to 4x the input per group, and never a 1×1 map; adaptive re-sampling
    keeps the per-group widths multiples of 4."""
    rng = np.random.default_rng(3)
    grouped = [k for k in sample_kernels("conv", 800, rng) if k.groups > 1]
    assert len(grouped) >= 40 and {k.groups for k in grouped} == {2, 3, 4, 8}
    for k in grouped:
        wide_in, wide_out = k.in_shape[0] // k.groups, k.out_shape[0] // k.groups
        assert k.in_shape[0] % k.groups == 0 and k.out_shape[0] % k.groups == 0
        assert wide_in % 4 == 0 and wide_out % 4 == 0 and 4 <= wide_in <= 320
        assert wide_in / 4 - 2 <= wide_out <= wide_in * 4 + 2 and k.in_shape[-1] > 1
        near = resample_around(k, rng)
        assert near.groups == k.groups and (near.in_shape[0] // k.groups) % 4 == 0
        assert near.in_shape[0] % k.groups == 0 and (near.out_shape[0] // k.groups) % 4 == 0


def test_unfolding_a_residual_add_does_not_need_node_names(tmp_path: Path) -> None:
    """Exported graphs may leave nodes unnamed; the split finds the Add it unfolds from the tensors."""
    import onnx

    named = layout_model(tmp_path / "named.onnx", "add_plain", 32)
    model = onnx.load(str(named))
    for node in model.graph.node:
        node.name = ""
    onnx.save(model, str(tmp_path / "unnamed.onnx"))
    ours = split_kernels(named, RULES16)
    theirs = split_kernels(tmp_path / "unnamed.onnx", RULES16)
    assert [(k.type, k.variant, k.fused_add) for k in ours] == [(k.type, k.variant, k.fused_add)
                                                                 for k in theirs]
    assert [k.variant for k in theirs if k.type == "eltwise"] == ["Mul", "Add"]  # the Add unfolded from /c2
    assert not any(k.fused_add for k in theirs)
