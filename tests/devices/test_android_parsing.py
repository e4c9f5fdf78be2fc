"""Pure parts of the android backend: perf_test output, CPU clusters, thermal status, quoting."""

from __future__ import annotations

import shlex

import pytest

from nasprof.devices.android.adb import quote_command
from nasprof.devices.android.device_info import (
    CpuTopology,
    parse_cpu_list,
    parse_getprop,
    parse_thermal_status,
    wait_until_cool,
)
from nasprof.devices.android.perf_output import parse_perf_test_output
from nasprof.devices.android.sampling import sample, split_runs
from nasprof.errors import DeviceError, InputError
from nasprof.testing._fake_shell import parse

# Verbatim from onnxruntime_perf_test (REFERENCE.md).
MODERN = """\
Session creation time cost: 0.217932 s
First inference time cost: 196 ms
Total inference time cost: 0.49481 s
Total inference requests: 5
Average inference time cost: 98.96 ms
Total inference run time: 0.494854 s
Number of inferences per second: 10.104
Avg CPU usage: 11 %
Peak working set size: 271122432 bytes
Min Latency: 0.0958 s
Max Latency: 0.1021 s
P50 Latency: 0.0987 s
P90 Latency: 0.1012 s
P95 Latency: 0.1015 s
P99 Latency: 0.1021 s
P999 Latency: 0.1021 s
"""


def test_modern_output() -> None:
    out = parse_perf_test_output(MODERN)
    assert out.dialect == "modern" and out.average_source == "average"
    assert out.average_ms == 98.96
    assert out.requests == 5
    assert out.first_inference_ms == 196.0
    assert out.session_creation_ms == pytest.approx(217.932)
    assert out.total_ms == pytest.approx(494.81)
    assert out.latency_ms["p50"] == pytest.approx(98.7)
    assert out.latency_ms["min"] == pytest.approx(95.8)
    assert out.latency_ms["p999"] == pytest.approx(102.1)


def test_average_total_dialect() -> None:
    text = MODERN.replace("cost: 98.96 ms", "cost total: 12.5 ms")
    out = parse_perf_test_output(text)
    assert (out.dialect, out.average_ms) == ("total", 12.5)


def test_old_dialect() -> None:
    text = (
        "Total inference time cost: 0.587108 s\nTotal inference requests: 10\n"
        "P50 Latency is 0.0587108sec\nP90 Latency is 6.1e-02sec\n"
    )
    out = parse_perf_test_output(text)
    assert out.dialect == "old"
    assert out.average_source == "total/requests"
    assert out.average_ms == pytest.approx(58.7108)
    assert out.latency_ms == pytest.approx({"p50": 58.7108, "p90": 61.0})


def test_old_dialect_with_only_a_median() -> None:
    out = parse_perf_test_output("P50 Latency is 0.0587108sec\n")
    assert (out.average_source, out.average_ms) == ("p50", pytest.approx(58.7108))


def test_scientific_notation() -> None:
    assert parse_perf_test_output("Average inference time cost: 1.5e+02 ms\n").average_ms == 150.0


@pytest.mark.parametrize("text", ["", "Segmentation fault\n", "Average inference time cost: 0 ms\n"])
def test_output_without_a_latency_is_an_error(text: str) -> None:
    with pytest.raises(DeviceError):
        parse_perf_test_output(text)


def test_thermal_status_and_props() -> None:
    assert parse_thermal_status("IsStatusOverride: false\nThermal Status: 3\n") == 3
    assert parse_thermal_status("Can't find service: thermalservice\n") is None
    props = parse_getprop("[ro.product.model]: [Pixel 7]\n[ro.product.cpu.abi]: [arm64-v8a]\n[x]: []\n")
    assert props == {"ro.product.model": "Pixel 7", "ro.product.cpu.abi": "arm64-v8a", "x": ""}


def test_cpu_list() -> None:
    assert parse_cpu_list("0-3,6\n") == [0, 1, 2, 3, 6]
    assert parse_cpu_list("0") == [0]


def _topology(*khz: int) -> CpuTopology:
    return CpuTopology(cpus=tuple(range(len(khz))), max_freq_khz=dict(enumerate(khz)))


def test_big_cores_of_a_4_plus_4_phone() -> None:
    t = _topology(*(1_800_000,) * 4, *(2_400_000,) * 4)
    assert t.select("big") == (4, 5, 6, 7)
    assert CpuTopology.mask(t.select("big")) == "f0"
    assert CpuTopology.mask(t.select("all")) == "ff"


def test_big_cores_of_a_1_plus_3_plus_4_phone() -> None:
    # Pixel 4-like: 4 little (1.78 GHz), 3 big (2.42 GHz), 1 prime (2.84 GHz): "big" is every non-little core.
    t = _topology(*(1_785_600,) * 4, *(2_419_200,) * 3, 2_841_600)
    assert t.select("big") == (4, 5, 6, 7)


def test_equal_or_unknown_frequencies_mean_all_cores() -> None:
    assert _topology(2_000_000, 2_000_000).select("big") == (0, 1)
    assert CpuTopology(cpus=(0, 1, 2)).select("big") == (0, 1, 2)


def test_explicit_masks() -> None:
    t = _topology(*(1_800_000,) * 8)
    assert t.select("0x3") == (0, 1)
    assert t.select("c0") == (6, 7)
    with pytest.raises(InputError, match="does not have"):
        t.select("0x100")
    with pytest.raises(InputError, match="not valid"):
        t.select("fastest")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_wait_until_cool_polls_until_status_0() -> None:
    statuses = iter([2, 2, 0])
    clock = _Clock()
    wait = wait_until_cool(lambda: next(statuses), timeout_s=60, poll_s=10, sleep=clock.sleep, clock=clock)
    assert (wait.initial_status, wait.final_status, wait.polls, wait.waited_s) == (2, 0, 3, 20.0)


def test_wait_until_cool_gives_up_after_the_timeout() -> None:
    clock = _Clock()
    hot = r"still throttling \(Thermal Status: 2, moderate\) after waiting 30 s"
    with pytest.raises(DeviceError, match=hot):
        wait_until_cool(lambda: 2, timeout_s=30, poll_s=10, sleep=clock.sleep, clock=clock)
    assert clock.now == 30.0


def test_unknown_thermal_status_does_not_wait() -> None:
    clock = _Clock()
    wait = wait_until_cool(lambda: None, timeout_s=30, poll_s=10, sleep=clock.sleep, clock=clock)
    assert (wait.final_status, wait.polls, clock.now) == (None, 1, 0.0)


def test_runs_are_split_over_processes() -> None:
    assert split_runs(100, 10) == [10] * 10
    assert split_runs(5, 2) == [2, 2, 1]
    assert split_runs(3, 10) == [3]
    # The planner's hundreds of runs for a tiny layer: longer processes, never more than the cap.
    assert split_runs(500, 2, max_processes=10) == [50] * 10
    assert split_runs(95, 10, max_processes=4) == [24, 24, 24, 23]
    assert split_runs(100, 10, max_processes=10) == [10] * 10


@pytest.mark.parametrize(
    "words",
    [
        ("echo", "a b", "x; rm -rf / && reboot", "it's", "", "$HOME", "`id`", "*"),
        ("cat", "/data/local/tmp/nas prof/model (1).onnx"),
    ],
)
def test_quoted_commands_reach_the_device_word_for_word(words: tuple[str, ...]) -> None:
    line = quote_command(*words)
    assert shlex.split(line) == list(words)
    assert parse(line)[0].argv == words  # the fake device's parser agrees with POSIX quoting


def test_sampling_plan_and_adaptive_extras() -> None:
    from nasprof.devices.android.device_info import ThermalWait
    from nasprof.devices.android.perf_output import PerfTestOutput
    from nasprof.devices.base import MeasureSpec

    averages = iter([1.0, 2.0, 1.5, 3.0, 1.2, 1.1])
    asked: list[int] = []

    def run(runs: int) -> tuple[ThermalWait, PerfTestOutput]:
        asked.append(runs)
        return ThermalWait(0, 0, 0.0, 1), PerfTestOutput(next(averages), "average", "modern", requests=runs)

    spec = MeasureSpec(runs=3, sessions=2, target_rel_ci=1e-9, max_runs=10)
    out = sample(run, spec, per_sample=2)
    # 2 sessions x (2 + 1 runs), then extras of 2 runs, alternating sessions, until 10 runs in all.
    assert asked == out.plan == [2, 1, 2, 1, 2, 2]
    assert out.session == [0, 0, 1, 1, 0, 1]
    assert out.stopped_by == "max_runs"
    assert [o.average_ms for o in out.outputs] == [1.0, 2.0, 1.5, 3.0, 1.2, 1.1]


def test_sampling_cap_is_the_shared_rule_with_its_floor() -> None:
    """perf_test processes stop at ``max_timed_runs`` like every other timing loop; a ``max_runs`` below the
    plan does not cut the plan short."""
    from nasprof.devices.android.device_info import ThermalWait
    from nasprof.devices.android.perf_output import PerfTestOutput
    from nasprof.devices.base import MeasureSpec
    from nasprof.profiler.spec import max_timed_runs

    averages = iter(float(i) for i in range(1, 100))  # ever-growing: the CI never gets tight

    def run(runs: int) -> tuple[ThermalWait, PerfTestOutput]:
        return ThermalWait(0, 0, 0.0, 1), PerfTestOutput(next(averages), "average", "modern", requests=runs)

    for max_runs, runs_taken in ((20, 20), (3, 8)):
        spec = MeasureSpec(runs=4, sessions=2, target_rel_ci=1e-9, max_runs=max_runs)
        out = sample(run, spec, per_sample=2)
        assert sum(out.plan) == max_timed_runs(spec) == runs_taken and out.stopped_by == "max_runs"
