"""Profile parsing and block attribution: synthetic traces for exact numbers, real onnxruntime profiles for
the fused graphs onnxruntime actually produces."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest

from nasprof.devices.base import MeasureSpec
from nasprof.profiler.onnx_model import load_model, random_inputs
from nasprof.profiler.ort_profile import BlockNamer, block_of, parse_profile, profile_nodes


@pytest.mark.parametrize(
    ("name", "block"),
    [
        ("/blocks.3/conv/Conv", "blocks.3"),
        ("/features/features.3/conv/conv.0/conv.0.0/Conv", "features.3"),
        ("/features/features.0/features.0.0/Conv", "features.0"),
        ("/layer1/layer1.0/conv1/Conv", "layer1.0"),
        ("/blocks/blocks.1/blocks.1.0/conv_pw/Conv", "blocks.1.0"),
        ("/head/pool/GlobalAveragePool", "head"),
        ("/stem/stem.0/Conv", "stem"),
        ("/blocks.3/act/Relu_output_0_nchwc", "blocks.3"),
        ("/Flatten", "(top)"),
        ("Conv_12", "(unscoped)"),
    ],
)
def test_block_rule(name: str, block: str) -> None:
    assert block_of(name) == block


def test_block_rule_uses_graph_context() -> None:
    # Alone, /blocks/blocks.0/Add looks like a leaf layer of a Sequential;
    # the rest of the graph shows that blocks.0 is a block.
    assert block_of("/blocks/blocks.0/Add") == "blocks"
    namer = BlockNamer(["/blocks/blocks.0/conv/Conv", "/blocks/blocks.0/Add", "/stem/stem.0/Conv"])
    assert namer("/blocks/blocks.0/Add") == "blocks.0"
    assert namer("/stem/stem.0/Conv") == "stem"


def _ev(cat: str, name: str, ts: int, dur: int, **args: str) -> dict:
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X", "pid": 1, "tid": 1, "args": args}


def test_parse_profile_windows_fences_and_medians() -> None:
    events = [_ev("Session", "session_initialization", 0, 50)]
    # run 0 is a warm-up (excluded with runs=3); runs 1-3 are counted.
    conv = [900, 10, 30, 20]  # median of the counted runs: 20 us
    relu = [900, 4, 6, 5]
    for r in range(4):
        t0 = 100 + 100 * r
        events += [
            _ev("Node", "/blocks.0/conv/Conv_fence_before", t0 + 1, 0, op_name="Conv"),
            _ev("Node", "/blocks.0/conv/Conv_kernel_time", t0 + 2, conv[r], op_name="Conv",
                provider="CPUExecutionProvider", output_type_shape=[{"float": [1, 8, 4, 4]}]),  # type: ignore[arg-type]
            _ev("Node", "/blocks.0/act/Relu_kernel_time", t0 + 40, relu[r], op_name="Relu",
                provider="CPUExecutionProvider"),
            _ev("Session", "model_run", t0, 60),
        ]
    # A node that ran only in the last run counts as 0 in the others: median 0.
    events.append(_ev("Node", "/head/Gemm_kernel_time", 450, 7, op_name="Gemm"))
    nodes, run_ms = parse_profile(events, runs=3)
    assert [n.name for n in nodes] == ["/blocks.0/conv/Conv", "/blocks.0/act/Relu", "/head/Gemm"]
    assert [n.duration_ms for n in nodes] == [0.020, 0.005, 0.0]
    assert nodes[0].output_shape == (1, 8, 4, 4)
    assert nodes[0].provider == "CPUExecutionProvider"
    assert {n.block for n in nodes} == {"blocks.0", "head"}
    assert run_ms == [0.06, 0.06, 0.06]


def _profile(model: Path, opt_level: str) -> list:
    info = load_model(model)
    spec = MeasureSpec(warmup=2, per_node_runs=5, opt_level=opt_level, per_node=True)
    return list(profile_nodes(info.path, random_inputs(info), spec).nodes)


def test_real_profile_unfused(conv_model: Path) -> None:
    nodes = _profile(conv_model, "basic")
    assert [n.name for n in nodes] == [
        "/blocks.0/conv/Conv", "/blocks.0/act/Relu", "/blocks.1/conv/Conv", "/blocks.1/act/Relu",
        "/head/pool/GlobalAveragePool",
    ]
    assert [n.block for n in nodes] == ["blocks.0", "blocks.0", "blocks.1", "blocks.1", "head"]
    assert all(n.covers == (n.name,) for n in nodes)
    assert all(n.duration_ms > 0 for n in nodes)


def test_real_profile_fused_conv_relu(conv_model: Path) -> None:
    nodes = _profile(conv_model, "extended")
    by_name = {n.name: n for n in nodes}
    assert set(by_name) == {"/blocks.0/conv/Conv", "/blocks.1/conv/Conv", "/head/pool/GlobalAveragePool"}
    fused = by_name["/blocks.1/conv/Conv"]
    assert fused.op_type == "FusedConv"
    assert fused.block == "blocks.1"
    assert fused.covers == ("/blocks.1/conv/Conv", "/blocks.1/act/Relu")


def test_real_profile_nchwc_layout(conv_model: Path, host_rules: object) -> None:
    """At level all the kernels are renamed and reordered as this host's layout has it (how many reorders,
    and whether the head's 8-channel pool is blocked, depend on the CPU's NCHWc block: taken from its
    probed rules), yet every kernel is attributed to the right block and covers the right exported nodes."""
    from nasprof.predictors.kernel.split import split_kernels

    nodes = _profile(conv_model, "all")
    expected = split_kernels(conv_model, host_rules)  # type: ignore[arg-type]
    reorders = [n for n in nodes if n.op_type.startswith("Reorder")]
    assert len(reorders) == sum(k.type == "reorder" for k in expected)
    assert len(nodes) == sum(k.type != "free" for k in expected)
    convs = [n for n in nodes if n.op_type in ("Conv", "FusedConv")]
    assert len(convs) == 2 and [c.block for c in convs] == ["blocks.0", "blocks.1"]
    assert convs[1].covers == ("/blocks.1/conv/Conv", "/blocks.1/act/Relu")
    if host_rules.nchwc_block:  # type: ignore[attr-defined]
        # Renamed after tensors, yet attributed to the right blocks; layout conversions cover nothing.
        assert [c.name for c in convs] == [f"/blocks.{b}/act/Relu_output_0_nchwc" for b in (0, 1)]
    assert all(r.covers == () for r in reorders)
    assert {r.block for r in reorders} <= {"blocks.0", "blocks.1", "head"}
    pool = next(n for n in nodes if n.op_type == "GlobalAveragePool")
    assert pool.block == "head" and pool.covers == ("/head/pool/GlobalAveragePool",)
    # Every exported node is covered exactly once.
    covered = [c for n in nodes for c in n.covers]
    assert sorted(covered) == sorted(
        ["/blocks.0/conv/Conv", "/blocks.0/act/Relu", "/blocks.1/conv/Conv", "/blocks.1/act/Relu",
         "/head/pool/GlobalAveragePool"])
    assert np.isfinite([n.duration_ms for n in nodes]).all()


def test_the_split_expects_the_layout_of_each_block_size(conv_model: Path) -> None:
    """The same model with blocks of 16 (the head's 8-channel pool runs plain: a reorder after each conv)
    and of 8 (the pool runs blocked: one reorder at the end), from the recorded host classes. The first
    conv reads the 3-channel input plain, so nothing is reordered in."""
    from _predictor_helpers import recorded_probe

    from nasprof.predictors.kernel.rules import KernelRules
    from nasprof.predictors.kernel.split import split_kernels

    def reorders(host: str) -> list[str]:
        rules = KernelRules.from_dict(recorded_probe(host)["rules"])
        return [k.variant for k in split_kernels(conv_model, rules) if k.type == "reorder"]

    assert reorders("avx512") == ["ReorderOutput", "ReorderOutput"]
    assert reorders("avx2") == ["ReorderOutput"]
    assert reorders("plain") == []


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="NCHWc layout is an x86 transform")
def test_real_profile_fused_residual_add(tmp_path: Path) -> None:
    from profiler.measure_models import make_residual_model

    nodes = _profile(make_residual_model(tmp_path / "res.onnx"), "all")
    owner = {c: n for n in nodes for c in n.covers}
    # The residual Add runs inside the second conv's kernel, not in the ReorderOutput after it.
    assert owner["/blocks.0/Add"].op_type == "Conv"
    assert owner["/blocks.0/Add"].covers == ("/blocks.0/conv.1/Conv", "/blocks.0/Add")
    assert owner["/stem/act/Relu"].block == "stem"
    # The layout conversion at the graph output has no scoped tensor; it belongs to the kernel it converts.
    assert [n.block for n in nodes if n.op_type == "ReorderOutput"] == ["blocks.0"]
    assert len(owner) == 6  # every exported node covered once


def test_kernel_origins_on_a_handmade_nchwc_graph(conv_model: Path) -> None:
    """The optimised graph onnxruntime 1.32 saves at level `all` on x86, written out by hand so the mapping
    is pinned down on every platform (names and tensors as observed)."""
    import onnx
    from onnx import helper

    from nasprof.profiler.ort_profile import kernel_origins

    nodes = [
        helper.make_node("Conv", ["input", "reorder", "reorder_token_0"], ["reorder_token_1"],
                         name="/blocks.0/act/Relu_output_0_nchwc", domain="com.microsoft.nchwc"),
        helper.make_node("ReorderOutput", ["reorder_token_1"], ["/blocks.0/act/Relu_output_0"],
                         name="ReorderOutput_token_4", domain="com.microsoft.nchwc"),
        helper.make_node("Conv", ["/blocks.0/act/Relu_output_0", "reorder_token_2", "reorder_token_0"],
                         ["reorder_token_3"], name="/blocks.1/act/Relu_output_0_nchwc",
                         domain="com.microsoft.nchwc"),
        helper.make_node("ReorderOutput", ["reorder_token_3"], ["/blocks.1/act/Relu_output_0"],
                         name="ReorderOutput", domain="com.microsoft.nchwc"),
        helper.make_node("GlobalAveragePool", ["/blocks.1/act/Relu_output_0"], ["output"],
                         name="/head/pool/GlobalAveragePool"),
    ]
    optimized = helper.make_model(helper.make_graph(nodes, "opt", [], []))
    origins = kernel_origins(onnx.load(str(conv_model)), optimized)
    for b in (0, 1):
        conv = origins[f"/blocks.{b}/act/Relu_output_0_nchwc"]
        assert conv.covers == (f"/blocks.{b}/conv/Conv", f"/blocks.{b}/act/Relu")
        assert conv.block == f"blocks.{b}"
    for name, block in (("ReorderOutput_token_4", "blocks.0"), ("ReorderOutput", "blocks.1")):
        assert (origins[name].covers, origins[name].block) == ((), block)
    assert origins["/head/pool/GlobalAveragePool"].covers == ("/head/pool/GlobalAveragePool",)
