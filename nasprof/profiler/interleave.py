"""Measure many models in interleaved rounds, so the machine's slow drift lands on all of them alike.

A shared machine's speed drifts over seconds to minutes (other tenants load the shared L3 cache and memory
bus). Measuring one model's sessions back to back puts all of them in one moment of that drift, so
averaging sessions does not average it out. Here each round measures every model once (one fresh
session each, in a shuffled order), and a model's result pools its rounds, taken minutes apart.

Measured on the local 2-core VM with 100 sampled ``mnasnet`` networks: two measurements of 6 sessions
taken back to back disagreed by an RMSPE of 4.9% (73% within ±5%); medians of 3 interleaved rounds
against 3 other rounds disagreed by 3.0% (90% within ±5%), for the same number of timed runs.

Two independent halves (even and odd rounds) also give every result its own noise floor
(``half_medians``): the error a perfect predictor would show against one half.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasprof.profiler.measurement import Measurement
from nasprof.profiler.stats import SampleStats

__all__ = ["measure_interleaved", "merge_rounds", "half_medians"]

Progress = Callable[[int, int, str], None]


def merge_rounds(parts: Sequence[Measurement]) -> Measurement:
    """One ``Measurement`` from single-session measurements of one model taken in rounds: samples in
    round order, ``session_index`` = round. Metadata, memory report and per-node times come from round 0."""
    if not parts:
        raise ValueError("merge_rounds needs at least one measurement")
    first = parts[0]
    samples: list[float] = []
    warmup: list[float] = []
    sid: list[int] = []
    for r, m in enumerate(parts):
        samples += m.samples_ms
        warmup += m.warmup_ms
        sid += [r] * m.n
    meta = dict(first.metadata)
    meta["rounds"] = len(parts)
    return Measurement(
        device=first.device,
        backend=first.backend,
        samples_ms=tuple(samples),
        warmup_ms=tuple(warmup),
        session_index=tuple(sid),
        metadata=meta,
        per_node=first.per_node,
        estimated=first.estimated,
        memory=first.memory,
    )


def measure_interleaved(
    backend: Any,
    paths: Sequence[Path],
    spec: Any,
    *,
    rounds: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Measurement]:
    """Measure every model in ``paths`` once per round (one fresh session of ``spec.runs`` timed runs),
    ``rounds`` rounds (default ``spec.sessions``), each round in a new shuffled order. Returns one
    ``Measurement`` per path, in order, whose sessions are its rounds. An estimate (MCU backend) is
    computed once: it does not drift."""
    rounds = spec.sessions if rounds is None else rounds
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    one = dataclasses.replace(spec, sessions=1)
    parts: list[list[Measurement]] = [[] for _ in paths]
    rng = np.random.default_rng(seed)
    total, done = rounds * len(paths), 0
    for r in range(rounds):
        for i in rng.permutation(len(paths)):
            done += 1
            if r and parts[i][0].estimated:
                continue
            parts[i].append(backend.measure(paths[i], one))
            if progress is not None:
                progress(done, total, f"round {r + 1}/{rounds}: {Path(paths[i]).name}")
    return [merge_rounds(p) for p in parts]


def half_medians(m: Measurement) -> tuple[float, float] | None:
    """Medians of the even- and odd-numbered sessions' samples: two independent measurements of the same
    model (``None`` with fewer than two sessions)."""
    even = [v for v, s in zip(m.samples_ms, m.session_index, strict=True) if s % 2 == 0]
    odd = [v for v, s in zip(m.samples_ms, m.session_index, strict=True) if s % 2 == 1]
    if not even or not odd:
        return None
    return SampleStats(even).median, SampleStats(odd).median
