"""Bad input never loses data or shows a traceback: one case of each kind the bad-input sweep found.

Every case asserts exit code 2, a one-line message on stderr, no traceback, and that every file the command
was given is byte for byte what it was before.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import cli_runner, make_conv_model
from conftest import cli_runner as runner
from onnx import TensorProto, helper, numpy_helper

from nasprof.cli import app
from nasprof.space import get_space
from nasprof.tables import LatencyTable, TableEntry
from nasprof.tables.build_layers import layer_entry_fields


def _sums(paths: Sequence[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def refused(args: Sequence[object], given: Sequence[Path] = (), contains: str = "") -> str:
    """Run the CLI; assert exit 2, one line, no traceback, ``given`` files unchanged; return the line."""
    before = _sums(given)
    r = runner.invoke(app, [str(a) for a in args])
    err = r.stderr.strip()
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert err.startswith("error:") and "\n" not in err, err
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    assert _sums(given) == before, "an input file changed"
    assert contains in err, err
    return err


def _table(path: Path, n: int = 3) -> list[str]:
    layers = sorted(get_space("mobilenetv2").distinct_layers(224), key=lambda layer: layer.key)
    meta = {"device": "cpu", "space": "mobilenetv2", "resolution": 224,
            "environment": {"backend": "cpu", "threads": 1, "opt_level": "all"}}
    with LatencyTable.open(path, create=True, metadata=meta) as t:
        for layer in layers[:n]:
            t.put(TableEntry(key=layer.key, samples_ms=(1.0, 2.0, 3.0), **layer_entry_fields(layer)))
    return [layer.key for layer in layers[:n]]


def _lut(tmp_path: Path) -> Path:
    from nasprof.predictors import LutPredictor

    p = LutPredictor({"k": 1.0}, space="mobilenetv2", resolution=224, device="cpu")
    return p.save(tmp_path / "p.json")


@pytest.fixture
def table(tmp_path: Path) -> Path:
    _table(tmp_path / "t.db")
    return tmp_path / "t.db"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_conv_model(tmp_path / "m.onnx")


# -- data loss: no command overwrites one of its own inputs ------------------------------------------------
def test_table_export_onto_its_own_table(table: Path) -> None:
    refused(["table", "export", table, "-o", table, "--format", "csv"], [table],
            "is an input of this command")
    assert len(LatencyTable.load(table)) == 3


def test_table_export_whose_format_contradicts_the_file_name(table: Path, tmp_path: Path) -> None:
    refused(["table", "export", table, "-o", tmp_path / "x.yaml", "--format", "csv"], [table], "contradicts")
    refused(["table", "export", table, "-o", tmp_path / "x.csv", "--format", "ofa"], [table], "contradicts")
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "x.csv").exists()


def test_predictor_fit_onto_its_table(table: Path) -> None:
    refused(["predictor", "fit", "--table", table, "-o", table], [table], "would be overwritten")


def test_measure_json_onto_the_model_also_through_a_symlink(model: Path, tmp_path: Path) -> None:
    refused(["measure", model, "--json", model, "--runs", "2"], [model], "is an input")
    link = tmp_path / "link.json"
    link.symlink_to(model)
    refused(["measure", model, "--json", link, "--runs", "2"], [model], "is an input")


def test_two_outputs_of_one_command_are_refused(tmp_path: Path) -> None:

    p = _lut(tmp_path)
    out = tmp_path / "x.png"
    refused(["search", "--space", "mobilenetv2", "--predictor", p, "--target-ms", "1", "--budget", "10",
             "--json", out, "--plot", out], [p], "both name")


def test_output_into_proc_fails_before_any_work(model: Path) -> None:
    start = time.perf_counter()
    refused(["measure", model, "--json", "/proc/x.json", "--runs", "200"], [model], "cannot write --json")
    assert time.perf_counter() - start < 5  # refused up front, not after the measurement


# -- user text is never markup -----------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["[/red]", "[red]x[/]", ":abc: [bold]", "😀 [/]"])
def test_user_text_is_printed_as_is(text: str, tmp_path: Path) -> None:
    err = refused(["count", text], contains=text)
    assert err.count(text) >= 1
    # A path with brackets is written, and the "wrote" line names it as it is.
    out = tmp_path / f"a{text.replace('/', '_')}.onnx"
    r = runner.invoke(app, ["export", "mobilenet_v2", "--resolution", "32", "--width", "0.35",
                            "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.is_file() and f"wrote {out}" in r.stdout + r.stderr


# -- inputs within a memory budget -------------------------------------------------------------------------
def test_a_model_whose_inputs_exceed_memory_is_refused_with_its_size(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [100000, 100000])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [100000, 100000])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "big", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "big.onnx"))
    refused(["measure", tmp_path / "big.onnx", "--runs", "2"], [tmp_path / "big.onnx"], "37.3 GiB")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "free", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "free.onnx"))
    refused(["measure", tmp_path / "free.onnx", "--runs", "2", "--input-shape", "x=1x3x100000x100000"],
            [tmp_path / "free.onnx"], "GiB")


# -- the store validates what it reads ---------------------------------------------------------------------
def _poison(table: Path) -> str:
    conn = sqlite3.connect(table)
    key = conn.execute("SELECT key FROM entries ORDER BY key LIMIT 1").fetchone()[0]
    conn.execute("UPDATE entries SET median_ms = 'abc' WHERE key = ?", (key,))
    conn.commit()
    conn.close()
    return str(key)


def test_a_poisoned_row_is_skipped_by_show_and_refused_by_fit_and_build(table: Path, tmp_path: Path) -> None:
    key = _poison(table)
    r = runner.invoke(app, ["table", "show", str(table)])
    assert r.exit_code == 0 and "1 corrupt row(s) left out" in r.stderr and "Traceback" not in r.output
    refused(["predictor", "fit", "--table", table, "-o", tmp_path / "p.json"], [table], key)
    # --force adds to a table of another environment; it never extends a corrupt one.
    refused(["table", "build", "--space", "mobilenetv2", "--resolution", "224", "--db", table, "--limit", "1",
             "--force"], [table], "corrupt row")


def test_a_read_only_table_is_refused_before_any_work(table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nasprof.tables.connection as connection

    # This suite runs as root, which writes read-only files anyway: the check is forced to see what an
    # ordinary user's read-only file looks like.
    real = connection._may_write
    monkeypatch.setattr(connection, "_may_write", lambda p: False if str(p) == str(table) else real(p))
    start = time.perf_counter()
    refused(["table", "build", "--space", "mobilenetv2", "--resolution", "224", "--db", table,
             "--limit", "1"], [table], "the file is read-only")
    assert time.perf_counter() - start < 5


# -- settings validated where they are stored --------------------------------------------------------------
@pytest.mark.parametrize(("setting", "message"), [
    ("allow_spinning=junk", "allow_spinning must be true or false"),
    ("a b=1", "malformed --set 'a b=1'"),
    ("spin=1", "has no setting 'spin'"),
])
def test_device_settings_are_checked_when_added(setting: str, message: str) -> None:
    devices = Path(os.environ["NASPROF_DEVICES"])
    refused(["devices", "add", "mycpu", "--backend", "cpu", "--set", setting], contains=message)
    assert not devices.exists() or "mycpu" not in devices.read_text()


def test_a_malformed_devices_file_is_one_line_and_kept() -> None:
    devices = Path(os.environ["NASPROF_DEVICES"])
    devices.write_text("schema_version = 1\ndevices = 5\n")
    refused(["devices", "add", "pixel", "--backend", "cpu"], [devices], "'devices' must be a table")
    refused(["devices", "remove", "pixel"], [devices], "'devices' must be a table")


@pytest.mark.parametrize(("change", "message"), [
    ({"device": 42}, "device 42 is not a device name"),
    ({"body.space": "nospace"}, "search space 'nospace'"),
    ({"metadata": [1]}, "metadata must be an object"),
])
def test_a_predictor_file_with_wrong_types_is_refused(tmp_path: Path, change: dict, message: str) -> None:

    path = _lut(tmp_path)
    doc = json.loads(path.read_text())
    for k, v in change.items():
        if k.startswith("body."):
            doc["body"][k[5:]] = v
        else:
            doc[k] = v
    path.write_text(json.dumps(doc))
    refused(["predictor", "show", path], [path], message)


def test_an_overhead_larger_than_an_entry_is_refused_at_fit(table: Path, tmp_path: Path) -> None:
    refused(["predictor", "fit", "--table", table, "--overhead-ms", "1e6", "-o", tmp_path / "p.json"],
            [table], "not below the smallest entry")
    assert not (tmp_path / "p.json").exists()


def test_the_kernel_predictor_refuses_free_spatial_dimensions(tmp_path: Path) -> None:
    from _predictor_helpers import linear_kernel_predictor

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    m = helper.make_model(helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)], "g",
                                            [x], [y], [w]), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "free.onnx"))
    p = linear_kernel_predictor().save(tmp_path / "k.json")
    refused(["predict", tmp_path / "free.onnx", "--predictor", p], [tmp_path / "free.onnx"], "'H'")


# -- bounded work ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["measure", "{model}", "--runs", str(10**12)],
    ["space", "sample", "mnasnet", "--n", str(10**12)],
    ["predictor", "fit", "--kernels", "--budget", str(10**12), "-o", "{tmp}/k.json"],
    ["validate", "--predictor", "{pred}", "--samples", str(10**12)],
    ["search", "--space", "mobilenetv2", "--predictor", "{pred}", "--target-ms", "1",
     "--budget", str(10**12)],
])
def test_counts_above_their_ceiling_are_refused_at_once(args: list[str], model: Path, tmp_path: Path) -> None:

    pred = _lut(tmp_path)
    argv = [a.format(model=model, tmp=tmp_path, pred=pred) for a in args]
    start = time.perf_counter()
    refused(argv, [model, pred], "above the ceiling")
    assert time.perf_counter() - start < 5


# -- one meaning per option --------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["table", "show", "{db}", "--limit", "0"], "use --all"),
    (["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db", "{db}", "--limit", "0"],
     "--limit must be at least 1"),
    (["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db", "{db}",
      "--time-per-entry", "-1"], "--time-per-entry must be seconds (0: --runs for every entry) >= 0"),
    (["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db", "{db}", "--max-runs", "1"],
     "--max-runs 1 is below"),
])
def test_limits_mean_the_same_everywhere(args: list[str], message: str, table: Path) -> None:
    refused([a.format(db=table) for a in args], [table], message)


def test_sigterm_stops_a_build_like_ctrl_c(tmp_path: Path) -> None:
    """SIGTERM (a scheduler, a CI timeout) ends a table build as Ctrl-C does: finished entries stay, the
    table is intact, and the last line says how to resume."""
    db = tmp_path / "t.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nasprof.cli", "table", "build", "--space", "mobilenetv2",
         "--resolution", "32",
         "--db", str(db), "--runs", "3", "--sessions", "1", "--warmup", "1", "--time-per-entry", "0",
         "--target-ci", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    if conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] >= 2:
                        break
                except sqlite3.OperationalError:
                    pass
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command to resume" in err and "Traceback" not in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(LatencyTable.load(db)) >= 2


def test_ray_paths_without_ray_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    r = cli_runner.invoke(app, ["table", "build", "--space", "mobilenetv2", "--resolution", "32", "--db",
                                 str(tmp_path / "t.db"), "--device", "pixel-*", "--ray", "auto"])
    assert r.exit_code == 2 and "pip install 'nasprof[ray]'" in r.stderr, r.output
    assert not (tmp_path / "t.db").exists()
