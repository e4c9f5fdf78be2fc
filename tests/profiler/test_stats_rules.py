"""Statistics and stability rules on synthetic samples, with exact expected values."""

from __future__ import annotations

import pytest

from nasprof.profiler.measurement import Measurement
from nasprof.profiler.stats import SampleStats, median_ci, stability_warnings


def test_sample_stats_exact() -> None:
    s = SampleStats([1.0, 2.0, 3.0, 4.0, 10.0])
    assert (s.median, s.mean, s.min, s.max) == (3.0, 4.0, 1.0, 10.0)
    assert s.mad == 1.0  # |x - 3| = 2, 1, 0, 1, 7 -> median 1
    assert s.p90 == pytest.approx(7.6)  # numpy linear interpolation between 4 and 10


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (100, (40.0, 61.0)),  # P(39 < B < 61) = 0.9648 >= 0.95, one step tighter is 0.9431
        (9, (2.0, 8.0)),  # 1 - 2 * (1 + 9) / 512 = 0.961
        (5, (1.0, 5.0)),  # too few samples for 95%: the whole range
        (1, (1.0, 1.0)),
    ],
)
def test_median_ci_order_statistics(n: int, expected: tuple[float, float]) -> None:
    assert median_ci([float(v) for v in range(n, 0, -1)]) == expected


def test_steady_samples_have_no_warnings() -> None:
    samples = [1.0 + 0.001 * (i % 7) for i in range(60)]
    assert stability_warnings(samples, [i // 20 for i in range(60)]) == []


def test_outliers_are_counted() -> None:
    samples = [1.0 + 0.01 * (i % 5) for i in range(97)] + [9.0, 9.0, 9.0]
    warnings = stability_warnings(samples)
    assert any(w.startswith("3 of 100 samples are outliers") for w in warnings)


def test_first_run_outlier_and_session_disagreement() -> None:
    s0 = [5.0] + [1.0 + 0.01 * (i % 3) for i in range(19)]
    s1 = [1.2 + 0.01 * (i % 3) for i in range(20)]
    w = stability_warnings(s0 + s1, [0] * 20 + [1] * 20)
    assert any("first timed run of a session is an outlier" in x for x in w)
    assert any(x.startswith("medians of fresh sessions disagree by 20%") for x in w)


def test_measurement_statistics_follow_samples() -> None:
    m = Measurement(device="cpu", backend="cpu", samples_ms=(1.0, 2.0, 3.0, 2.0), session_index=(0, 0, 1, 1))
    assert m.median_ms == 2.0
    assert m.session_medians_ms == (1.5, 2.5)
    assert m.latency_ms()["min"] == 1.0
    with pytest.raises(ValueError):
        Measurement(device="cpu", backend="cpu", samples_ms=(1.0, -2.0))


def test_node_times_above_end_to_end_are_flagged() -> None:
    # Found in QA: on a 0.43 ms MobileNetV2 at 64x64 the profiled nodes summed to 122% of the end-to-end
    # median (Conv alone "106.7%") with no word of warning.
    from nasprof.profiler.measurement import NodeTime

    samples = tuple(1.0 + 0.001 * (i % 7) for i in range(60))
    index = tuple(i // 20 for i in range(60))

    def nodes(*ms: float) -> tuple[NodeTime, ...]:
        return tuple(NodeTime(f"/b.{i}/Conv", "Conv", f"b.{i}", v) for i, v in enumerate(ms))

    over = Measurement(device="cpu", backend="cpu", samples_ms=samples, session_index=index,
                       per_node=nodes(0.7, 0.5))
    assert over.node_coverage == pytest.approx(1.2 / 1.003)
    assert over.warnings == ("per-node times sum to 120% of the end-to-end median: the profiled pass ran "
                             "slower than the timed runs; read node shares as relative, not absolute",)
    within = Measurement(device="cpu", backend="cpu", samples_ms=samples, session_index=index,
                         per_node=nodes(0.6, 0.4))
    assert within.warnings == ()
