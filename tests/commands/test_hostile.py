"""Hostile input, swept over every command of the typer app (issue: every command survives hostile input).

The matrix is generated from the app itself, so a command or option added later is swept too:

- every numeric option of every command, given values outside its rule (below, above, NaN, infinities,
  not a number) -> exit code 2, one line on stderr, no traceback, within a time limit, nothing written;
- every command is wrapped by the shared validation layer (``commands/_validate.py``) and every numeric
  option has a rule;
- every output option pointed at a file that cannot be written, and every model argument given a
  directory -> exit 2 with a message that says what is true.
"""

from __future__ import annotations

import math
import time
import typing
from pathlib import Path
from typing import Any

import pytest
import typer

from nasprof.cli import app
from nasprof.commands._validate import iter_commands, numeric_options, rule_for

#: A hostile value is answered well within this (checks run before any heavy import or work).
LIMIT_S = 10.0


COMMANDS = iter_commands(app)


def _required_args(path: str) -> list[str]:
    """Placeholder values for a command's required arguments and options (never reached: the hostile
    option fails first)."""
    click_cmd = typer.main.get_command(app)
    for part in path.split():
        click_cmd = click_cmd.commands[part]  # type: ignore[attr-defined]
    args: list[str] = []
    for p in click_cmd.params:
        if not p.required:
            continue
        # A number where a number is required, so the hostile option (not a placeholder) is what fails.
        descriptor = getattr(p, "type_descriptor", None)
        numeric = getattr(descriptor, "annotation", None) in (int, float)
        value = "1" if numeric else "placeholder.onnx"
        if getattr(p, "opts", None) and p.opts[0].startswith("-"):
            args += [p.opts[0], value]
        else:
            args.append(value)
    return args


def _hostile_values(rule: Any, kind: type) -> list[str]:
    vals: list[str] = []
    if rule.low is not None:
        below = rule.low if rule.low_open else rule.low - 1
        vals.append(str(int(below)) if kind is int and float(below).is_integer() else repr(float(below)))
    if rule.high is not None:
        above = rule.high if rule.high_open else (rule.high + 1 if kind is int else rule.high * 2 + 1)
        vals.append(str(int(above)) if kind is int else repr(float(above)))
    if kind is float:
        vals += ["nan", "inf", "-inf"]
    else:
        vals.append(str(2**64) if rule.high is None and rule.low is None else "1.5")
    vals.append("abc")
    return vals


CASES = [
    pytest.param(path, flag, value, id=f"{path}:{flag}={value}")
    for path, info in COMMANDS
    for name, flag, kind in numeric_options(info.callback.__wrapped__)
    for value in _hostile_values(rule_for(path, name, kind), kind)
]


def test_every_command_is_validated_and_every_numeric_option_has_a_rule() -> None:
    assert len(COMMANDS) >= 35
    for path, info in COMMANDS:
        assert getattr(info.callback, "__nasprof_validated__", False), f"{path} bypasses _validate.install"
        for name, _flag, kind in numeric_options(info.callback.__wrapped__):
            rule = rule_for(path, name, kind)
            assert rule.low is not None or rule.high is not None, f"{path} --{name} has no bound"


def test_the_sweep_is_large() -> None:
    assert len(CASES) >= 300


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """``nasprof ARGV`` as a user runs it: through ``nasprof.cli.main`` (which also turns click's usage
    errors into one line), in this process."""
    from nasprof.cli import main

    monkeypatch.setattr("sys.argv", ["nasprof", *argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.mark.parametrize(("path", "flag", "value"), CASES)
def test_hostile_number(path: str, flag: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NASPROF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path / "devices.toml"))
    t0 = time.perf_counter()
    code, out, err = run_main([*path.split(), *_required_args(path), flag, value], capsys, monkeypatch)
    elapsed = time.perf_counter() - t0
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert flag in lines[0], lines[0]  # the hostile option is named, not a placeholder of another one
    assert elapsed < LIMIT_S
    assert {p.name for p in tmp_path.iterdir()} <= {"home"}


def _output_options() -> list[tuple[str, str]]:
    out = []
    for path, info in COMMANDS:
        hints = typing.get_type_hints(info.callback.__wrapped__, include_extras=True)
        for hint in hints.values():
            if typing.get_origin(hint) is not typing.Annotated:
                continue
            base, *meta = typing.get_args(hint)
            decls = [d for m in meta for d in getattr(m, "param_decls", ()) or ()]
            if Path in (typing.get_args(base) or (base,)) and any(d in ("--json", "-o", "--output", "--csv",
                                                                         "--plot") for d in decls):
                out.append((path, max(decls, key=len)))
    return out


@pytest.mark.parametrize(("path", "flag"), _output_options(), ids=lambda v: str(v))
def test_output_that_cannot_be_written(path: str, flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """An output inside a regular file (so its directory cannot exist) is refused with one line, and the
    file is untouched."""
    monkeypatch.setenv("NASPROF_HOME", str(tmp_path / "home"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    suffix = {"--plot": ".png", "--csv": ".csv", "--output": ".onnx", "-o": ".onnx"}.get(flag, ".json")
    code, out, err = run_main([*path.split(), *_required_args(path), flag, str(blocker / ("out" + suffix))],
                              capsys, monkeypatch)
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:")
    assert blocker.read_text() == "x"


def test_rules_refuse_nan_everywhere() -> None:
    from nasprof.commands._validate import Rule, check_value
    from nasprof.errors import InputError

    for rule in (Rule(0, None), Rule(0, 1, low_open=True), Rule(None, 10)):
        with pytest.raises(InputError, match="finite"):
            check_value("--x", math.nan, rule, float)
