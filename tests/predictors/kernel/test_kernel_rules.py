"""Kernel rules detected by probing a device: recorded host classes (blocks of 16, of 8, no blocked layout)
on every host, the live probe of this host and of fake phones over the real adb client, the stored rules
in predictor files and the warnings when a file meets another CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _predictor_helpers import RECORDED_HOSTS, linear_kernel_predictor, make_mixed_model, recorded_probe
from conftest import cli_runner as runner

from nasprof.cli import app
from nasprof.errors import PredictorError
from nasprof.predictors import KernelPredictor, Predictor
from nasprof.predictors.kernel.predictor import KernelRegressor
from nasprof.predictors.kernel.probe import ProbeReport, observed_signature, rules_from_observations
from nasprof.predictors.kernel.probe_graphs import phase_one_probes, phase_two_probes, probe_graph
from nasprof.predictors.kernel.rules import KernelRules
from nasprof.predictors.kernel.sampling import sample_kernels
from nasprof.predictors.kernel.split import split_kernels

#: What each recorded host class runs (onnxruntime 1.32): the facts the tests pin.
EXPECTED = {
    "avx512": {"nchwc_block": 16, "conv_add": True, "hardswish_in_conv": True},
    "avx2": {"nchwc_block": 8, "conv_add": True, "hardswish_in_conv": True},
    "plain": {"nchwc_block": 0, "conv_add": False, "hardswish_in_conv": False},
}


@pytest.mark.parametrize("host", RECORDED_HOSTS)
def test_rules_are_detected_from_each_recorded_host(host: str) -> None:
    doc = recorded_probe(host)
    report = ProbeReport.from_dict(doc)
    rules = rules_from_observations(report.observations, "all", report.rules.device)
    assert rules.split_fields() == report.rules.split_fields()
    assert rules.unexplained == () and rules.source == "probed"
    want = EXPECTED[host]
    assert rules.nchwc_block == want["nchwc_block"] and rules.conv_add is want["conv_add"]
    assert ("HardSwish" in rules.conv_acts) is want["hardswish_in_conv"]
    # Seen on every host class: onnxruntime 1.32 fuses no Clip (ReLU6) and no HardSwish into a Gemm, which
    # the hand-written rules got wrong for Clip.
    assert "Clip" not in rules.gemm_acts and "HardSwish" not in rules.gemm_acts and "Relu" in rules.gemm_acts
    assert "Clip" in KernelRules.fallback("all").gemm_acts
    if rules.nchwc_block:
        assert (rules.dwconv_align, rules.conv_align) == (4, 4)
        assert rules.group_align == rules.concat_align == rules.nchwc_block
        assert rules.residual_needs_blocked and not rules.avgpool_ceil_pad_blocked


@pytest.mark.parametrize("host", RECORDED_HOSTS)
def test_the_split_reproduces_every_probe_of_each_recorded_host(host: str) -> None:
    doc = recorded_probe(host)
    rules = KernelRules.from_dict(doc["rules"])
    names = phase_one_probes() + phase_two_probes(rules.nchwc_block)
    assert sorted(doc["observations"]) == sorted(names)
    for name in names:
        kernels = [k for k in split_kernels(probe_graph(name), rules) if k.type != "free"]
        seen = observed_signature(doc["observations"][name])
        reorders = [k.variant for k in kernels if k.type == "reorder"]
        ri, ro = reorders.count("ReorderInput"), reorders.count("ReorderOutput")
        assert (ri, ro, len(kernels) - ri - ro) == seen, name


def test_a_probe_that_disagrees_is_reported_not_hidden() -> None:
    doc = recorded_probe("avx512")
    observed = {k: list(v) for k, v in doc["observations"].items()}
    observed["silu"] = ["ReorderInput", "Conv", "Sigmoid", "Mul", "Conv", "Mul", "ReorderOutput"]
    rules = rules_from_observations(observed)
    assert any(u.startswith("silu:") for u in rules.unexplained)
    with pytest.raises(PredictorError, match="lack"):
        rules_from_observations({"silu": ["Conv"]})


def test_the_hosts_own_probe_matches_its_class(host_rules: KernelRules) -> None:
    """Whatever this host is, its probe is explained completely and matches the recorded class of its block
    (fusions included); the CPU and runtime it ran on are recorded."""
    assert host_rules.source == "probed" and host_rules.unexplained == ()
    cls = {16: "avx512", 8: "avx2", 0: "plain"}[host_rules.nchwc_block]
    assert host_rules.split_fields() == KernelRules.from_dict(recorded_probe(cls)["rules"]).split_fields()
    assert host_rules.device["backend"] == "cpu" and host_rules.device["runtime_version"]
    assert isinstance(host_rules.device["cpu_flags"], list)


def test_rules_round_trip_and_refuse_bad_fields() -> None:
    rules = KernelRules.from_dict(recorded_probe("avx2")["rules"])
    assert KernelRules.from_dict(json.loads(json.dumps(rules.to_dict()))) == rules
    good = rules.to_dict()
    for change, match in (
        ({"rules_version": 99}, "version 99"),
        ({"nchwc_block": -8}, "nchwc_block"),
        ({"nchwc_block": "8"}, "nchwc_block"),
        ({"conv_add": "yes"}, "conv_add"),
        ({"conv_acts": "Relu"}, "conv_acts"),
        ({"opt_level": "max"}, "optimisation level"),
        ({"surprise": 1}, "unknown fields"),
    ):
        with pytest.raises(PredictorError, match=match):
            KernelRules.from_dict({**good, **change})


def test_a_predictor_file_keeps_its_rules_and_an_old_one_gets_the_fallback(tmp_path: Path) -> None:
    rules = KernelRules.from_dict(recorded_probe("avx2")["rules"])
    p = KernelPredictor(linear_kernel_predictor("cpu", "all").regressors, overhead_ms=0.005, rules=rules,
                        device="cpu")
    path = p.save(tmp_path / "k.json")
    q = Predictor.load(path)
    assert isinstance(q, KernelPredictor) and q.rules == rules and q.nchwc_block == 8 and q.reorders
    model = make_mixed_model(tmp_path / "m.onnx")
    assert [k.type for k in q.kernels(model)] == [k.type for k in split_kernels(model, rules)]
    # A file written before rules were stored: the level, the reorders flag and the block it carried.
    doc = json.loads(path.read_text())
    del doc["body"]["rules"]
    doc["body"].update(opt_level="all", reorders=True, nchwc_block=16)
    doc["metadata"]["profiler_node_cost_ms"] = 0.002  # else the older reason (reorder times) comes first
    path.write_text(json.dumps(doc))
    old = Predictor.load(path)
    assert isinstance(old, KernelPredictor)
    assert old.rules.split_fields() == KernelRules.fallback("all", 16).split_fields()
    assert old.refit_reason is not None and "predates detected kernel rules" in old.refit_reason


def test_rules_from_another_cpu_warn_and_strict_refuses(tmp_path: Path, host_rules: KernelRules) -> None:
    other = dict(host_rules.device, cpu_flags=["avx", "avx2", "fma"], cpu_model="Some Other CPU")
    regs = {**linear_kernel_predictor("cpu", "all").regressors, "reorder": KernelRegressor(0.001, 0, 0, None)}
    p = KernelPredictor(regs, overhead_ms=0.005, rules=host_rules.replace(device=other), device="cpu",
                        metadata={"profiler_node_cost_ms": 0.002})
    path = p.save(tmp_path / "k.json")
    (msg,) = Predictor.load(path).compatibility()  # type: ignore[attr-defined]
    assert "CPU flags differ" in msg and "devices probe cpu" in msg
    model = make_mixed_model(tmp_path / "m.onnx")
    warned = runner.invoke(app, ["predict", str(model), "--predictor", str(path)])
    assert warned.exit_code == 0 and "CPU flags differ" in warned.stderr
    strict = runner.invoke(app, ["predict", str(model), "--predictor", str(path), "--strict"])
    assert strict.exit_code == 2 and "Traceback" not in strict.output
    assert len(strict.stderr.strip().splitlines()) == 1 and "--strict" in strict.stderr
    same = KernelPredictor(p.regressors, overhead_ms=0.005, rules=host_rules, device="cpu")
    assert same.compatibility() == []
    newer = host_rules.replace(device=dict(host_rules.device, runtime_version="9.9.9"))
    assert "onnxruntime 9.9.9 ->" in KernelPredictor(p.regressors, overhead_ms=0.005, rules=newer,
                                                     device="cpu").compatibility()[0]


def test_cli_probe_prints_and_writes_the_rules(tmp_path: Path, host_rules: KernelRules) -> None:
    out = runner.invoke(app, ["devices", "probe", "cpu", "--json", "-"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["rules"]["nchwc_block"] == host_rules.nchwc_block
    assert set(doc["observations"]) == set(phase_one_probes() + phase_two_probes(host_rules.nchwc_block))
    path = tmp_path / "rules.json"
    table = runner.invoke(app, ["devices", "probe", "cpu", "--json", str(path)])
    assert table.exit_code == 0 and "layout" in table.stdout
    assert ProbeReport.load_json(path).rules.split_fields() == host_rules.split_fields()


@pytest.mark.parametrize("device", ["stm32f746", "no-such-device"])
def test_a_device_that_cannot_be_probed_is_one_line_and_writes_nothing(tmp_path: Path, device: str) -> None:
    path = tmp_path / "rules.json"
    out = runner.invoke(app, ["devices", "probe", device, "--json", str(path)])
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert len(out.stderr.strip().splitlines()) == 1
    assert not path.exists()


def test_the_sampler_aligns_widths_to_the_detected_block() -> None:
    """Half the draws fill the device's block when it is wider than 8 (AVX-512: 16); with blocks of 8 or no
    blocked layout every width is a plain multiple of 8, with no preference for 16."""
    def share16(block: int) -> float:
        ks = sample_kernels("conv", 600, np.random.default_rng(7), block)
        plain = [k for k in ks if k.groups == 1 and k.in_shape[0] >= 16 and k.in_shape[-1] > 1]
        assert all(k.out_shape[0] % 8 == 0 for k in plain)
        return sum(k.out_shape[0] % 16 == 0 for k in plain) / len(plain)

    assert share16(16) > 0.65 and 0.4 < share16(8) < 0.6 and share16(0) == pytest.approx(share16(8))
