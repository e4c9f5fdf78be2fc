"""Pareto front: minimise latency, maximise accuracy."""

from __future__ import annotations

import numpy as np

from nasprof.search.pareto import pareto_front


def test_front_of_a_small_set() -> None:
    #            0    1    2    3    4    5    6
    lat = [5.0, 3.0, 4.0, 3.0, 8.0, 1.0, 6.0]
    acc = [0.7, 0.6, 0.5, 0.65, 0.9, 0.3, 0.7]
    # 2 is dominated by 1/3; 1 by 3 (same latency, less accurate); 6 by 0 (slower, equal accuracy)
    assert pareto_front(lat, acc).tolist() == [5, 3, 0, 4]


def test_duplicates_appear_once_and_infeasible_points_are_ignored() -> None:
    lat = [2.0, 1.0, 2.0, 0.5]
    acc = [0.8, 0.5, 0.8, 0.9]
    assert pareto_front(lat, acc).tolist() == [3]
    assert pareto_front(lat, acc, feasible=[True, True, True, False]).tolist() == [1, 0]
    assert pareto_front(lat, acc, feasible=[False] * 4).tolist() == []


def test_front_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    lat = rng.integers(1, 20, 300).astype(float)  # integers: many ties
    acc = rng.integers(1, 20, 300).astype(float)
    brute = []
    for i in range(lat.size):
        dominated = np.any((lat <= lat[i]) & (acc >= acc[i]) & ((lat < lat[i]) | (acc > acc[i])))
        first_copy = not np.any((lat[:i] == lat[i]) & (acc[:i] == acc[i]))
        if not dominated and first_copy:
            brute.append(i)
    front = pareto_front(lat, acc)
    assert sorted(front.tolist()) == brute
    assert np.all(np.diff(lat[front]) > 0) and np.all(np.diff(acc[front]) > 0)
