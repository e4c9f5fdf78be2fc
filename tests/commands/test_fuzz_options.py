"""Property-based fuzzing of every command's options (issue 39: every command survives hostile input).

Hypothesis draws values for the options of every command of the typer app — numbers (NaN, infinities,
huge, negative, integers beyond 2**64, not numbers), text and comma lists (empty items, unicode, rich
markup), paths (a directory, a missing file, a binary file, a file under a file, ``/proc``) — and checks
what a user may rely on whatever they type:

- the exit code is 0 or 2, never 1 or a traceback;
- exit code 2 ends in exactly one line on stderr;
- no file of the input directory changes (nothing is added, removed or rewritten there).

Two sweeps. ``test_every_command`` covers every command, with required arguments that fail only after the
options have been read (a file of junk for a model, an unknown space), so no case starts real work.
``test_cheap_commands_run_fully`` runs commands whose work takes milliseconds (analytic counts, sampling,
reading a small table or predictor) on real inputs, with their counts bounded. Examples are derandomized, so
a run in CI draws what a run here draws.
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from nasprof.cli import app
from nasprof.commands._validate import _flag, iter_commands

# -- the app's commands and options ------------------------------------------------------------------------


def _commands() -> dict[str, Callable[..., Any]]:
    return {path: getattr(info.callback, "__wrapped__", info.callback) for path, info in iter_commands(app)}


COMMANDS = _commands()


class Opt(typing.NamedTuple):
    flag: str
    kind: type  # int, float, str, Path or bool
    multiple: bool  # repeatable (list[...])


def _options(fn: Callable[..., Any]) -> list[Opt]:
    """Every typer option of a command function (arguments are left out: the sweeps give them)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = []
    for name in inspect.signature(fn).parameters:
        hint = hints.get(name)
        if typing.get_origin(hint) is not typing.Annotated:
            continue
        base, info, *_ = typing.get_args(hint)
        if type(info).__name__ != "OptionInfo":
            continue
        types = [t for t in (typing.get_args(base) or (base,)) if t is not type(None)]
        if typing.get_origin(base) is list:
            types = [base]
        multiple = any(typing.get_origin(t) is list for t in types)
        if multiple:
            types = [typing.get_args(t)[0] for t in types if typing.get_origin(t) is list]
        kind = types[0]
        assert kind in (int, float, str, Path, bool), (fn.__name__, name, base)
        flag = _flag(name, info).split("/")[0]  # a boolean pair: --in-network/--no-in-network
        out.append(Opt(flag, kind, multiple))
    return out


#: Never drawn: flags that lift the ceilings or reach outside this process (a Ray cluster, the kernel
#: measurements of `predictor fit --kernels`, a file in the working directory's project).
NEVER = {"--force", "--ray", "--head", "--stop", "--kernels", "--measure-overhead", "--project"}
#: Path options a command writes (the rest are files it reads).
WRITES = {"--json", "--output", "--csv", "--plot", "--export-best", "--save-predictor", "--db", "--store",
          "--strategy-state"}

# -- values ------------------------------------------------------------------------------------------------
INT_EDGES = [0, -1, 1, 2, 3, 2**31, 2**32 - 1, 2**32, -(2**32), 2**63, 2**64, 2**64 + 1, -(2**64), 10**30]
INT_TEXT = ["1.5", "abc", "", " 7", "0x10", "1e3", "١٢", "-0", "+3", "1_000", "9" * 400]
FLOAT_TEXT = ["nan", "-nan", "inf", "-inf", "1e308", "1e309", "-1e309", "5e-324", "-0.0", "1e-300", "1_0.5",
              "0x1p3", "abc", "", "1,5", "½"]
ITEMS = ["", " ", "0", "-1", "1", "2", "0.5", "1.5", "nan", "inf", "-inf", "1e308", "abc", "[red]x[/]",
         "[/]", "😀", "18446744073709551617", "x=1", "=", "a b=1", "1x3x32x32", "0:10", "3:1",
         "mobilenetv2", "nb201", "macs", "sram", "stm32f746", "all", "fixed", "csv", "onnx", "ort"]
MARKUP = ["[red]x[/]", "[/red]", "[bold]", ":abc:", "[link=file:///etc/passwd]x[/link]", "\x1b[31mred",
          "é\u0301", "\u202eevil", "a\nb", "\t", "%s%n", "{0}", "..", "~", "$HOME"]

_ints = st.one_of(st.sampled_from(INT_EDGES).map(str), st.integers().map(str), st.integers(0, 10).map(str),
                  st.sampled_from(INT_TEXT))
_floats = st.one_of(st.floats().map(repr), st.sampled_from([0.0, 1.0, 0.5, 1e-9, 1e9, -1.0]).map(repr),
                    st.sampled_from(FLOAT_TEXT))
_texts = st.one_of(
    st.lists(st.sampled_from(ITEMS), min_size=1, max_size=4).map(",".join),
    st.sampled_from(MARKUP),
    st.text(max_size=12),
)
#: Files a command reads, relative to the test's directory (see ``_inputs``).
READ_PATHS = ["inputs", "inputs/missing.onnx", "inputs/junk.onnx", "inputs/junk.json", "inputs/empty.csv",
              "inputs/binary.csv", "inputs/parquet.csv", "inputs/junk.db", "inputs/[bold]x.json",
              "inputs/sub", "inputs/junk.onnx/below", "/proc/version", "/dev/null", "-"]
WRITE_PATHS = ["out/r.json", "out/r.png", "out/r.csv", "out/r.onnx", "out/r.db", "out/deep/er/r.json",
               "out/[red]x[/].json", "out/😀.json", "inputs", "inputs/sub", "inputs/junk.onnx/r.json",
               "/proc/version", "/proc/nasprof-fuzz.json", "/dev/null", "-", "out"]


def _values(opt: Opt, reads: list[str],
            counts: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    if opt.kind is bool:
        return st.booleans()
    if opt.kind is int:
        return counts if counts is not None else _ints
    if opt.kind is float:
        return _floats
    if opt.kind is Path:
        if opt.flag in WRITES:
            # Also the command's own input: it must refuse to write over it.
            return st.sampled_from(WRITE_PATHS + reads[:1])
        return st.sampled_from(READ_PATHS + reads)
    return _texts


@st.composite
def _argv(draw: st.DrawFn, command: str, fixed: list[str], only: set[str] | None = None,
          counts: st.SearchStrategy[str] | None = None,
          extra: dict[str, st.SearchStrategy[Any]] | None = None,
          always: frozenset[str] = frozenset(), odds: int = 2) -> list[str]:
    """``command`` with ``fixed`` arguments, then a random subset of its other options (each with chance
    1/``odds``; those in ``always`` every time) with drawn values."""
    fixed_flags = {a for a in fixed if a.startswith("-")}
    reads = [a for a in fixed if a.startswith("inputs/")]
    argv = [*command.split(), *fixed]
    extra = extra or {}
    for opt in _options(COMMANDS[command]):
        if opt.flag in NEVER or opt.flag in fixed_flags or (only is not None and opt.flag not in only):
            continue
        if opt.flag not in always and draw(st.integers(0, odds - 1)) != 0:
            continue
        strategy = extra[opt.flag] if opt.flag in extra else _values(opt, reads, counts)
        for value in draw(st.lists(strategy, min_size=1, max_size=2 if opt.multiple else 1)):
            if opt.kind is bool:
                argv += [opt.flag] if value else []
            else:
                argv += [opt.flag, str(value)]
    return argv


# -- running -----------------------------------------------------------------------------------------------
def _inputs(root: Path) -> Path:
    """The directory of files commands are given to read: junk of every kind."""
    d = root / "inputs"
    (d / "sub").mkdir(parents=True)
    (d / "junk.onnx").write_bytes(bytes(range(256)) * 8)
    (d / "junk.json").write_text('{"kind": "nasprof.', encoding="utf-8")
    (d / "empty.csv").write_bytes(b"")
    (d / "binary.csv").write_bytes(b"\x00\xff" * 300)
    (d / "parquet.csv").write_bytes(b"PAR1" + b"\x00" * 60 + b"PAR1")
    (d / "junk.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 200)
    (d / "[bold]x.json").write_text("[1, 2", encoding="utf-8")
    return d


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


def _run(argv: list[str], root: Path, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> None:
    """``nasprof ARGV`` as a user runs it (``nasprof.cli.main``), and the properties every run must have."""
    from nasprof.cli import main

    note(f"argv: {argv!r}")
    for leftover in ("out", "home"):
        shutil.rmtree(root / leftover, ignore_errors=True)
    (root / "devices.toml").unlink(missing_ok=True)
    (root / "out").mkdir()
    before = _snapshot(root / "inputs")
    monkeypatch.setattr("sys.argv", ["nasprof", *argv])
    capsys.readouterr()
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    out, err = capsys.readouterr()
    note(f"exit {code!r}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}")
    assert code in (0, 2, None), code
    assert "Traceback" not in out + err
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, lines
    assert _snapshot(root / "inputs") == before, "a file of the input directory changed"


@pytest.fixture(scope="module")
def made_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Junk of every kind and small real files, made once for the module (copied for each test)."""
    d = _inputs(tmp_path_factory.mktemp("fuzz"))
    _real_inputs(d)
    return d


@pytest.fixture
def root(tmp_path: Path, made_inputs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(made_inputs, tmp_path / "inputs")
    # Without a terminal, work past 2 s prints a progress line: a slow run on a busy host would then end
    # in two lines; the progress lines are tested elsewhere.
    monkeypatch.setattr("nasprof.commands._common.PLAIN_PROGRESS_AFTER_S", float("inf"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NASPROF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    return tmp_path


_SETTINGS = settings(max_examples=12, deadline=10_000, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# -- every command, stopped after its options --------------------------------------------------------------
#: Required arguments of each command that fail only after the options are read and before any real work:
#: a model of junk, an unknown space or set, a device that is not in the devices file. ``doctor`` has none
#: (its checks sample the CPU for --window seconds), so its --json names a directory.
STOPPERS: dict[str, list[str]] = {
    "measure": ["inputs/junk.onnx"],
    "compare": ["inputs/junk.json", "inputs/[bold]x.json"],
    "doctor": ["--json", "inputs"],
    "export": ["inputs/junk.onnx", "-o", "out/x.onnx"],
    "count": ["inputs/junk.onnx"],
    "check-mobile": ["inputs/junk.onnx"],
    "predict": ["--predictor", "inputs/junk.json"],
    "validate": ["--predictor", "inputs/junk.json"],
    "search": ["--space", "mobilenetv2", "--predictor", "inputs/junk.json", "--target-ms", "1"],
    "worker": [],  # neither --head nor --ray: refused
    "scale": ["inputs/junk.onnx"],
    "space list": [],
    "space show": ["nospace"],
    "space sample": ["nospace"],
    "space layers": ["nospace"],
    "space quality": ["nospace"],
    "space edf": ["--spaces", "nospace,other"],
    "space ops-config": ["nospace", "-o", "out/ops.config"],
    "table build": ["--space", "nospace", "--resolution", "32", "--db", "out/t.db"],
    "table show": ["inputs/junk.db"],
    "table export": ["inputs/junk.db", "-o", "out/t.csv"],
    "table import": ["inputs/binary.csv", "-o", "out/t.db"],
    "table merge": ["inputs/junk.db", "inputs/junk.db", "-o", "out/m.db"],
    "predictor fit": ["-o", "out/p.json", "--table", "inputs/junk.db"],
    "predictor show": ["inputs/junk.json"],
    "predictor adapt": ["-o", "out/p.json", "--space", "nospace"],
    "devices add": ["not a name", "--backend", "cpu"],
    "devices remove": ["nodev"],
    "devices list": [],
    "devices check": ["nodev"],
    "devices probe": ["nodev"],
    "measurements import": ["inputs/binary.csv", "--name", "x", "--device", "d"],
    "measurements show": ["noset"],
    "measurements list": [],
    "measurements export": ["noset", "-o", "out/x.csv"],
}


def test_every_command_has_a_stopper() -> None:
    """A command added later is fuzzed too: it needs its entry above."""
    assert set(COMMANDS) == set(STOPPERS), set(COMMANDS) ^ set(STOPPERS)


@pytest.mark.parametrize("command", sorted(STOPPERS))
@_SETTINGS
@given(data=st.data())
def test_every_command(command: str, data: st.DataObject, root: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    argv = data.draw(_argv(command, STOPPERS[command]), label="argv")
    _run(argv, root, capsys, monkeypatch)


# -- cheap commands, run to the end ------------------------------------------------------------------------
_small = st.one_of(st.integers(1, 12), st.integers(1, 12), st.sampled_from(INT_EDGES)).map(str)
NB201 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def _real_inputs(d: Path) -> None:
    """Small real files, made once per test: a table, its LUT predictor, two measurements, a tiny model."""
    import json

    from conftest import make_conv_model

    from nasprof.predictors import LutPredictor
    from nasprof.profiler.measurement import Measurement
    from nasprof.space import get_space
    from nasprof.tables import LatencyTable, TableEntry
    from nasprof.tables.build_layers import layer_entry_fields

    layers = sorted(get_space("mobilenetv2").distinct_layers(224), key=lambda layer: layer.key)[:4]
    meta = {"device": "cpu", "space": "mobilenetv2", "resolution": 224,
            "environment": {"backend": "cpu", "threads": 1, "opt_level": "all"}}
    with LatencyTable.open(d / "t.db", create=True, metadata=meta) as t:
        for layer in layers:
            t.put(TableEntry(key=layer.key, samples_ms=(1.0, 2.0, 3.0), **layer_entry_fields(layer)))
    LutPredictor({layer.key: 1.0 for layer in layers}, device="cpu", space="mobilenetv2",
                 resolution=224).save(d / "lut.json")
    (d / "a.json").write_text(json.dumps(Measurement("cpu", "cpu", (1.0, 1.1, 1.2, 1.0)).to_dict()))
    (d / "b.json").write_text(json.dumps(Measurement("cpu", "cpu", (2.0, 2.1, 2.2, 2.0)).to_dict()))
    make_conv_model(d / "m.onnx", channels=4, size=8, blocks=1)


_models = st.sampled_from(["mobilenet_v2", "mnasnet_a1", "efficientnet_b0", NB201, "inputs/m.onnx",
                           "mobilenetv2:224:1.0|xxx", "[red]x[/]", ""])
_spaces = st.lists(st.sampled_from(["mobilenetv2", "mnasnet", "nb201", "regnet", "nasnet", "", " ", "x",
                                    "[red]x[/]"]), min_size=1, max_size=3).map(",".join)
_boards = st.sampled_from(["stm32f746", "stm32h743", "cpu", "nope", "[red]x[/]", ""])
#: Comma lists of numbers, most of them valid somewhere (phi, coefficients, widths, resolutions).
_numbers = st.lists(st.sampled_from(["", "0", "0.5", "1", "1.15", "1.2", "2", "3", "8", "9", "-1", "nan",
                                     "inf", "1e308", "96", "160", "224", "abc"]),
                    min_size=1, max_size=4).map(",".join)
#: alpha,beta,gamma: three numbers, from valid to absurd.
_triples = st.lists(st.sampled_from(["1", "1.1", "1.2", "2", "4", "5", "1e308", "inf", "0.5", ""]),
                    min_size=3, max_size=3).map(",".join)


class Full(typing.NamedTuple):
    """How a command is run to the end: its arguments, the options drawn (None: all), strategies of some
    options, and the options always given (a count, so the work stays small)."""

    args: st.SearchStrategy[list[str]]
    only: set[str] | None = None
    extra: dict[str, st.SearchStrategy[Any]] = {}
    always: frozenset[str] = frozenset()


def _one(*choices: list[str]) -> st.SearchStrategy[list[str]]:
    return st.sampled_from(list(choices))


FULL: dict[str, Full] = {
    "count": Full(_models.map(lambda m: [m])),
    "space sample": Full(_one(["mobilenetv2"], ["nb201"], ["mnasnet"]), always=frozenset({"--n"})),
    "space layers": Full(_one(["mobilenetv2"], ["mnasnet"], ["nb201"])),
    "space show": Full(_one(["nb201"], ["regnet"], ["[red]x[/]"])),
    "scale": Full(
        _one(["mobilenet_v2"], ["mnasnet_a1"]),
        {"--phi", "--coefficients", "--resolution", "--board"},  # the others: in the sweep above
        {"--board": _boards, "--phi": _numbers, "--coefficients": st.one_of(_triples, _numbers),
         "--resolution": st.sampled_from(["96", "160", "224", "32", "31", "1025", "0"])},
    ),
    "space quality": Full(
        _one(["mobilenetv2", "--board", "stm32f746"], ["mnasnet", "--board", "stm32h743"]),
        {"--widths", "--resolutions", "--n", "--seed", "--min-share", "--json", "--target-ms"},
        {"--widths": _numbers, "--resolutions": _numbers},
        always=frozenset({"--n"}),
    ),
    "space edf": Full(
        _spaces.map(lambda s: ["--spaces", s]),
        {"--metric", "--n", "--seed", "--resolution", "--width", "--board", "--json"},
        {"--metric": st.sampled_from(["macs", "params", "sram", "latency", "MACS", "", "[red]x"]),
         "--board": _boards},
        always=frozenset({"--n"}),
    ),
    "compare": Full(_one(["inputs/a.json", "inputs/b.json"], ["inputs/a.json", "inputs/a.json"])),
    "table show": Full(_one(["inputs/t.db"])),
    "predictor show": Full(_one(["inputs/lut.json"])),
    "predict": Full(_models.map(lambda m: [m, "--predictor", "inputs/lut.json"])),
    "devices add": Full(
        st.sampled_from(["cpu", "mcu", "android", "ssh", "x"]).map(lambda b: ["fuzzdev", "--backend", b]),
        {"--serial", "--cores", "--threads", "--runner", "--board", "--device-id", "--set"},
        {"--board": _boards},
    ),
    "measurements list": Full(_one([])),
}


@pytest.mark.parametrize("command", sorted(FULL))
@settings(_SETTINGS, max_examples=25)
@given(data=st.data())
def test_cheap_commands_run_fully(command: str, data: st.DataObject, root: Path,
                                  capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    how = FULL[command]
    args = data.draw(how.args, label="arguments")
    # Fewer options at a time than in the sweep above: one refused option hides what the others would do.
    argv = data.draw(_argv(command, args, how.only, counts=_small, extra=how.extra, always=how.always,
                           odds=3), label="argv")
    _run(argv, root, capsys, monkeypatch)
