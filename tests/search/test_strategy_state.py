"""`--strategy-state`: a state file is checked key by key before a strategy takes it, a refused file is left
byte for byte as it was, no search saves a non-finite state, and the resume and the save are each one line.
Also: QMC's trials say nothing, and the search's rate counts the whole search.

Real spaces, a real RL controller and a real LUT predictor file (latencies derived from MACs, as in
test_cli.py); nothing reads ../shared.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nasprof.cli import app
from nasprof.errors import InputError, StateError
from nasprof.predictors import LutPredictor
from nasprof.search import Evaluator, MacsProxy, Reward, get_strategy, run_search
from nasprof.search.strategies.optuna_samplers import QmcSearch
from nasprof.search.strategies.rl import RLController
from nasprof.search.strategies.state import first_non_finite
from nasprof.space import get_space

RES = 96


def _lut(space: str) -> LutPredictor:
    entries = {layer.key: 0.01 + layer.macs / 1e7 for layer in get_space(space).distinct_layers(RES)}
    return LutPredictor(entries, space=space, resolution=RES, device="synthetic")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lut") / "mnasnet.lut.json"
    _lut("mnasnet").save(path)
    return path


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator(_lut("mnasnet"), MacsProxy(), Reward.preset("soft", 4.0))


def _controller(seed: int = 0, space: str = "mnasnet") -> RLController:
    strat = get_strategy("rl", get_space(space), seed=seed, resolution=RES)
    assert isinstance(strat, RLController)
    return strat


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, evaluator: Evaluator) -> bytes:
    """A controller's state after two PPO updates (every key filled, Adam's moments too)."""
    strat = _controller()
    for _ in range(2):
        batch = strat.ask(16)
        strat.tell(batch, evaluator(batch))
    return strat.save(tmp_path_factory.mktemp("state") / "rl.json").read_bytes()


def _stamp(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def cli(predictor: Path, *args: str) -> Any:
    argv = ["search", "--space", "mnasnet", "--predictor", str(predictor), "--target-ms", "4", "--budget",
            "20", *args]
    return CliRunner().invoke(app, argv)


# -- the library: every key checked, the file and the controller untouched ----------------------------------
def _set(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    """An edit of the saved document: ``value`` at ``path`` (keys and list indices)."""

    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return edit


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        for p in path[:-1]:
            node = node[p]
        node.pop(path[-1])

    return edit


HOSTILE = {
    "nan baseline": (_set(math.nan, "baseline"), r"key 'baseline' is NaN, not a finite number"),
    "inf baseline": (_set(math.inf, "baseline"), r"key 'baseline' is Infinity, not a finite number"),
    "text baseline": (_set("0.5", "baseline"), r"key 'baseline' is a string \('0.5'\), not a number"),
    "inf weight": (_set(-math.inf, "weights", "embed.weight", 3, 7),
                   r"key 'weights.embed.weight' holds 1 non-finite number \(the first is -Infinity\)"),
    "nan bias": (_set(math.nan, "weights", "bias", 0, 0), r"key 'weights.bias' holds 1 non-finite"),
    "short weight": (_set([[1.0]], "weights", "lstm.weight_ih_l0"),
                     r"key 'weights.lstm.weight_ih_l0' has shape \(1, 1\), expected \(256, 64\)"),
    "ragged weight": (_set([1.0, [2.0]], "weights", "lstm.bias_hh_l0"),
                      r"key 'weights.lstm.bias_hh_l0' is not a list of numbers"),
    "missing weight": (_drop("weights", "weight"), r"key 'weights.weight' is missing"),
    "extra key": (_set([1.0], "weights", "extra"),
                  r"key 'weights.extra' is not part of this strategy's state"),
    "nan adam step": (_set(math.nan, "optimizer", "state", "0", "step"),
                      r"key 'optimizer.state.0.step' is NaN"),
    "negative second moment": (_set(-1.0, "optimizer", "state", "5", "exp_avg_sq", 0),
                               r"key 'optimizer.state.5.exp_avg_sq' holds 1 number out of range \(must be "
                               r">= 0\) \(the first is -1.0\)"),
    "unknown parameter": (_set({}, "optimizer", "state", "99"),
                          r"key 'optimizer.state.99' is not one of the controller's 7 parameters"),
    "generator byte": (_set(300, "generator", 5), r"key 'generator' holds 1 number out of range \[0, 255\]"),
    "negative updates": (_set(-1, "updates"), r"key 'updates' is -1, out of range \(must be >= 0\)"),
    "fractional updates": (_set(1.5, "updates"), r"key 'updates' is a number \(1.5\), not an integer"),
    "no baseline after updates": (_set(None, "baseline"), r"key 'baseline' is null after 2 updates"),
    "another strategy": (_set("evolution", "strategy"),
                         r"key 'strategy' is 'evolution', not 'rl': a state of another strategy \(resume it "
                         r"with --strategy evolution\)"),
    "another space": (_set("mobilenetv2", "space"), r"key 'space' does not fit: it is the rl state of space "
                      r"'mobilenetv2' with seed 0; this search is space 'mnasnet' with seed 0"),
    "another seed": (_set(7, "seed"), r"key 'seed' does not fit: .* use the same --seed"),
    "newer version": (_set(2, "schema_version"), r"key 'schema_version' is 2, newer than the version 1"),
    "other decisions": (_set(99, "decisions", 0, 1),
                        r"key 'decisions' does not match the decisions of space"),
    "empty object": (lambda doc: doc.clear(), r"key 'strategy' is missing"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_state_is_refused_by_key_and_left_as_it_is(case: str, trained: bytes,
                                                              tmp_path: Path) -> None:
    edit, message = HOSTILE[case]
    doc = json.loads(trained)
    edit(doc)
    path = tmp_path / "rl.json"
    path.write_text(json.dumps(doc))  # NaN and Infinity as Python's json writes them
    before = _stamp(path)
    strat, fresh = _controller(), _controller()
    with pytest.raises(StateError, match=message) as err:
        strat.resume(path)
    text = str(err.value)
    assert str(path) in text and "\n" not in text
    assert "delete it" in text or "another --strategy-state path" in text
    assert _stamp(path) == before
    assert strat.updates == 0 and strat.baseline is None and strat.ask(8) == fresh.ask(8)  # took nothing


@pytest.mark.parametrize(("content", "message"), [
    (None, "is not valid JSON"),  # the trained state cut in half
    (b"{not json", "is not valid JSON"),
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\xff", "is not text"),
    (b"[1, 2, 3]", "holds a list, not a state object"),
    (b"[" * 100_000, "nested too deeply|not valid JSON"),
])
def test_a_garbage_file_is_refused_and_left_as_it_is(content: bytes | None, message: str, trained: bytes,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "rl.json"
    path.write_bytes(trained[: len(trained) // 2] if content is None else content)
    before = _stamp(path)
    with pytest.raises(StateError, match=message):
        _controller().resume(path)
    assert _stamp(path) == before
    with pytest.raises(StateError, match="is a directory"):
        _controller().resume(tmp_path)


def test_a_saved_state_resumes_exactly(trained: bytes, evaluator: Evaluator, tmp_path: Path) -> None:
    path = tmp_path / "rl.json"
    path.write_bytes(trained)
    a, b = _controller(), _controller()
    a.resume(path)
    b.resume(path)
    assert a.updates == 2 and a.progress == "2 updates" and a.baseline is not None
    batch = a.ask(16)
    assert batch == b.ask(16)  # the generator state came back too
    a.tell(batch, evaluator(batch))
    a.save(path)
    saved = json.loads(path.read_text())
    assert saved["updates"] == 3 and first_non_finite(saved) is None


def test_no_search_saves_a_non_finite_state(trained: bytes, evaluator: Evaluator, tmp_path: Path) -> None:
    path = tmp_path / "rl.json"
    path.write_bytes(trained)
    strat = _controller()
    strat.resume(path)
    before = _stamp(path)
    with strat._torch.no_grad():
        next(iter(strat.net.parameters()))[0, 0] = float("nan")
    message = r"not saving the rl state to .*: key 'weights\.weight\[0\]\[0\]\[0\]' is NaN after this search"
    with pytest.raises(StateError, match=message + r" \(2 updates\); .* keeps what it held before"):
        strat.save(path)
    assert _stamp(path) == before
    # A controller that turns non-finite while learning says so at once (the next ask would crash in torch).
    fresh = _controller()
    batch = fresh.ask(8)
    with fresh._torch.no_grad():
        next(iter(fresh.net.parameters())).fill_(float("inf"))
    with pytest.raises(InputError, match="became non-finite at update 1"):
        fresh.tell(batch, evaluator(batch))


def test_first_non_finite_names_the_key() -> None:
    assert first_non_finite({"a": [1.0, 2.0], "b": {"c": [[0.0], [1.0]]}}) is None
    assert first_non_finite({"a": [1.0, 2.0], "b": {"c": [[0.0], [math.inf]]}}) == ("b.c[1][0]", math.inf)
    hit = first_non_finite({"x": ["text", math.nan]})
    assert hit is not None and hit[0] == "x[1]" and math.isnan(hit[1])


# -- the command: one line for each thing done to the state, one error line for a refused file ---------------
def test_the_cli_says_when_it_starts_resumes_and_saves(predictor: Path, tmp_path: Path) -> None:
    state = tmp_path / "rl.json"
    first = cli(predictor, "--strategy", "rl", "--strategy-state", str(state))
    assert first.exit_code == 0, first.output
    assert f"no rl state at {state} yet: starting afresh (seed 0)" in first.stderr
    size = state.stat().st_size
    saved = f"saved rl state to {state} ({size / 1e6:.1f} MB)"
    assert saved in first.stderr and size > 1e6
    again = cli(predictor, "--strategy", "rl", "--strategy-state", str(state))
    assert again.exit_code == 0, again.output
    lines = again.stderr.splitlines()
    assert f"resumed rl state from {state} (1 update, seed 0)" in lines and saved in lines
    assert json.loads(state.read_text())["updates"] == 2


def test_the_cli_refuses_a_nan_baseline_and_keeps_the_file(predictor: Path, trained: bytes,
                                                           tmp_path: Path) -> None:
    state = tmp_path / "rl.json"
    doc = json.loads(trained)
    doc["baseline"] = math.nan
    state.write_text(json.dumps(doc))
    before = _stamp(state)
    time.sleep(0.01)  # a rewrite would show in the modification time
    res = cli(predictor, "--strategy", "rl", "--strategy-state", str(state))
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines() == [
        f"error: strategy state {state}: key 'baseline' is NaN, not a finite number; it was left as it is: "
        "delete it to start afresh, or give another --strategy-state path"
    ]
    assert _stamp(state) == before


@pytest.mark.parametrize(("args", "message"), [
    (["--seed", "3"], "key 'seed' does not fit"),
    (["--strategy", "evolution"], "'evolution' has none (use rl)"),
    (["--strategy", "qmc"], "'qmc' has none (use rl)"),
])
def test_the_cli_refuses_a_state_of_another_search(predictor: Path, trained: bytes, tmp_path: Path,
                                                   args: list[str], message: str) -> None:
    state = tmp_path / "rl.json"
    state.write_bytes(trained)
    before = _stamp(state)
    res = cli(predictor, "--strategy", "rl", "--strategy-state", str(state), *args)
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and _stamp(state) == before


def test_the_cli_refuses_another_spaces_state(trained: bytes, tmp_path: Path) -> None:
    other = tmp_path / "mobilenetv2.lut.json"
    _lut("mobilenetv2").save(other)
    state = tmp_path / "rl.json"
    state.write_bytes(trained)
    before = _stamp(state)
    res = CliRunner().invoke(app, ["search", "--space", "mobilenetv2", "--predictor", str(other),
                                   "--target-ms", "4", "--budget", "10", "--strategy", "rl",
                                   "--strategy-state", str(state)])
    assert res.exit_code == 2 and "key 'space' does not fit" in res.output, res.output
    assert "this search is space 'mobilenetv2'" in res.output and _stamp(state) == before


# -- QMC: no notice per trial -------------------------------------------------------------------------------
@pytest.fixture
def optuna_log() -> Iterator[list[logging.LogRecord]]:
    """What Optuna logs (its logger does not propagate to the root, so caplog would not see it)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("optuna")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


class _ConditionalQmc(QmcSearch):
    """QMC asked only the active decisions, as before: the warning this test must be able to see."""

    fixed_space = False


@pytest.mark.parametrize(("cls", "warns"), [(QmcSearch, False), (_ConditionalQmc, True)])
def test_qmc_trials_say_nothing(cls: type[QmcSearch], warns: bool,
                                optuna_log: list[logging.LogRecord]) -> None:
    space = get_space("mobilenetv2")  # a stage's depth decides which layers exist: a conditional space
    evaluator = Evaluator(_lut("mobilenetv2"), MacsProxy(), Reward.preset("soft", 4.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        strat = cls(space, seed=0, resolution=RES)
        result = run_search(strat, evaluator, budget=60, batch_size=20)
    assert result.evaluated == 60
    said = [r.getMessage() for r in optuna_log] + [str(w.message) for w in caught]
    if warns:  # a notice for nearly every trial of the first batch
        assert len(said) >= 10
        assert all("assumes that the search space does not include any conditions" in m for m in said)
    else:
        assert said == []
        trials = strat.study.trials
        assert all(set(t.params) == {n for n, _ in space.decisions()} for t in trials)  # one Sobol point each


# -- the rate: the whole search's wall time ------------------------------------------------------------------
def test_the_rate_counts_the_whole_search(predictor: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nasprof.search import api

    load = api._load_predictor

    def slow_load(p: Any) -> Any:
        time.sleep(0.3)  # loading a large predictor
        return load(p)

    monkeypatch.setattr(api, "_load_predictor", slow_load)
    result = api.search("mnasnet", predictor, 4.0, budget=40, strategy="random")
    assert result.loop_seconds is not None and result.seconds >= 0.3 + result.loop_seconds
    assert result.per_second == pytest.approx(result.evaluated / result.seconds)
    doc = result.to_dict()
    assert doc["seconds"] == result.seconds and doc["loop_seconds"] == result.loop_seconds
    res = cli(predictor, "--strategy", "random")
    assert res.exit_code == 0, res.output
    assert re.search(r"evaluated 20 in \d+\.\d\d s \([\d,]+/s over the whole search, loading included; "
                     r"\d+\.\d\d s proposing and scoring", res.stdout), res.stdout
