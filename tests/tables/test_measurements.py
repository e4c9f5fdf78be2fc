"""Measurements from elsewhere: reading CSV/Parquet (all or nothing), the versioned store, export."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from nasprof.errors import InputError, SchemaError, SpaceError, TableError
from nasprof.tables.measurement_store import default_store
from nasprof.tables.measurements import (
    MeasurementSet,
    export_measurement_set,
    import_measurements,
    list_measurement_sets,
    load_measurement_set,
    record_measurement,
)
from nasprof.tables.measurements_io import read_measurements_file

A1 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
A2 = "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"
MB = "mobilenetv2:160:1.0|k3e6|k5e3"


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return _csv(tmp_path / "pi.csv", "arch,latency_ms,std_ms,samples_ms,accuracy,board\n"
                                     f"{A1},12.5,0.5,\"[12.0, 12.5, 13.0]\",0.91,pi4\n"
                                     f"{A2},10,,9.9;10;10.1,,pi4\n"
                                     f"{MB},30.25,1.5,,0.7,pi4\n")


def test_read_recognises_columns_and_warns_about_extra_ones(good: Path) -> None:
    rows = read_measurements_file(good)
    assert [r.arch for r in rows] == [A1, A2, MB] and [r.line for r in rows] == [2, 3, 4]
    assert rows[0].samples_ms == (12.0, 12.5, 13.0) and rows[1].samples_ms == (9.9, 10.0, 10.1)
    assert rows[0].spread_ms == 0.5 and rows[1].spread_ms is None and rows[1].accuracy is None
    assert rows.warnings == (f"{good}: column(s) ignored: board",)


def test_variance_becomes_spread_and_model_rows(tmp_path: Path) -> None:
    f = _csv(tmp_path / "v.csv", "model_path,median_ms,latency_ms2_var,acc\nnets/a.onnx,4.0,0.25,0.5\n")
    (row,) = read_measurements_file(f)
    assert row.model == "nets/a.onnx" and row.arch is None and row.spread_ms == 0.5 and row.accuracy == 0.5


def test_identical_duplicates_merge_and_conflicting_ones_are_refused(tmp_path: Path) -> None:
    f = _csv(tmp_path / "d.csv", f"arch,latency_ms\n{A1},1.0\n{A2},2.0\n{A1},1.0\n")
    rows = read_measurements_file(f)
    assert len(rows) == 2 and rows.merged == 1 and "1 identical duplicate row(s) merged" in rows.warnings[0]
    _csv(f, f"arch,latency_ms\n{A1},1.0\n{A2},2.0\n{A1},1.5\n")
    with pytest.raises(InputError, match=r"line 4: duplicate architecture .* \(line 2: 1 ms, here: 1.5 ms\)"):
        read_measurements_file(f)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("-3", "line 3: latency -3 ms is not positive"),
        ("0", "line 3: latency 0 ms is not positive"),
        ("nan", "line 3: latency is nan"),
        ("inf", "line 3: latency is inf"),
        ("fast", "line 3: latency 'fast' is not a number"),
        ("", "line 3: no latency"),
    ],
)
def test_a_bad_latency_names_file_and_line_and_reads_nothing(tmp_path: Path, body: str, message: str) -> None:
    f = _csv(tmp_path / "b.csv", f"arch,latency_ms\n{A1},1.0\n{A2},{body}\n")
    with pytest.raises(InputError, match="nothing read") as exc:
        read_measurements_file(f)
    assert str(f) in str(exc.value) and message in str(exc.value)


def test_nan_accuracy_missing_column_and_empty_file(tmp_path: Path) -> None:
    f = _csv(tmp_path / "a.csv", f"arch,latency_ms,accuracy\n{A1},1.0,nan\n")
    with pytest.raises(InputError, match="line 2: accuracy is nan"):
        read_measurements_file(f)
    _csv(f, f"arch,latency\n{A1},1.0\n")
    with pytest.raises(InputError, match=r"no latency column .* columns found: arch, latency"):
        read_measurements_file(f)
    assert read_measurements_file(f, latency_column="latency")[0].latency_ms == 1.0
    _csv(f, "")
    with pytest.raises(InputError, match="is empty"):
        read_measurements_file(f)
    _csv(f, "arch,latency_ms\n")
    with pytest.raises(InputError, match="no rows"):
        read_measurements_file(f)


def test_binary_and_misnamed_files_are_refused_clearly(tmp_path: Path, good: Path) -> None:
    blob = tmp_path / "blob.csv"
    blob.write_bytes(b"arch,latency_ms\n\xff\xfe\x00\x01garbage")
    with pytest.raises(InputError, match="binary file"):
        read_measurements_file(blob)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"arch,latency_ms\ncaf\xe9,1.0\n")
    with pytest.raises(InputError, match="line 2: not UTF-8 text"):
        read_measurements_file(latin)
    pytest.importorskip("pyarrow")
    store = tmp_path / "s.db"
    import_measurements(good, "pi", device="rpi4", store=store)
    export_measurement_set("pi", tmp_path / "x.parquet", store=store)
    misnamed = tmp_path / "x.csv"
    misnamed.write_bytes((tmp_path / "x.parquet").read_bytes())
    with pytest.raises(InputError, match=r"holds Parquet data but is named \.csv"):
        read_measurements_file(misnamed)


def test_validator_errors_carry_their_lines(tmp_path: Path) -> None:
    f = _csv(tmp_path / "v.csv", f"arch,latency_ms\n{A1},1\nbad,2\nbad,2\n")

    def validate(text: str) -> None:
        if text == "bad":
            raise SpaceError("not an architecture")

    with pytest.raises(SpaceError, match="lines 3, 4: not an architecture"):
        read_measurements_file(f, validate_arch=validate)


def test_import_versions_provenance_and_round_trip(tmp_path: Path, good: Path) -> None:
    store = tmp_path / "store.db"
    ms = import_measurements(good, "pi4-nb201", device="rpi4", runtime="tflite 2.14", threads=4,
                             measured_by="me", measured_at="2024-05-01", notes="fan on", space="nb201",
                             arch_options={"input": "1x52x16", "outputs": 18}, store=store)
    assert ms.version == 1 and ms.archs() == [A1, A2, MB]
    assert ms.latencies_ms().tolist() == [12.5, 10.0, 30.25]
    loaded = load_measurement_set("pi4-nb201", store=store)
    assert loaded == ms and loaded.arch_options == {"input": "1x52x16", "outputs": 18}
    p = loaded.provenance
    assert (p["device"], p["runtime"], p["threads"], p["measured_by"], p["measured_at"], p["notes"]) == (
        "rpi4", "tflite 2.14", "4", "me", "2024-05-01", "fan on")
    assert p["source"] == str(good.resolve()) and len(p["sha256"]) == 64 and p["imported_at"]
    with pytest.raises(InputError, match=r"already imported as pi4-nb201@v1"):
        import_measurements(good, "pi4-nb201", device="rpi4", store=store)
    _csv(good, good.read_text() + f"{A1.replace('none', 'skip_connect')},3.0,,,,pi4\n")
    v2 = import_measurements(good, "pi4-nb201", device="rpi4", store=store)
    assert v2.version == 2 and len(load_measurement_set("pi4-nb201", store=store)) == 4
    assert len(load_measurement_set("pi4-nb201@v1", store=store)) == 3
    assert [(i.name, i.version, i.count) for i in list_measurement_sets(store)] == [
        ("pi4-nb201", 1, 3), ("pi4-nb201", 2, 4)]
    df = loaded.to_dataframe()
    assert list(df.columns)[:3] == ["arch", "model", "latency_ms"]
    assert df["samples_ms"][0] == [12.0, 12.5, 13.0]
    with pytest.raises(InputError, match="has no version 7; it has v1, v2"):
        load_measurement_set("pi4-nb201@v7", store=store)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_reads_back_to_the_same_rows(tmp_path: Path, good: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    store = tmp_path / "store.db"
    ms = import_measurements(good, "pi", device="rpi4", space="nb201", store=store)
    out = export_measurement_set("pi", tmp_path / f"out{suffix}", store=store)
    back = read_measurements_file(out)
    assert [r.data() for r in back] == [r.data() for r in ms.rows]
    direct = load_measurement_set(out)  # a file is read directly, its provenance from the export
    assert direct.version == 0 and direct.provenance["device"] == "rpi4" and direct.space == "nb201"
    assert [i.version for i in list_measurement_sets(store)] == [1]  # reading a file stores nothing


def test_export_refuses_unknown_suffix_and_the_store_itself(tmp_path: Path, good: Path) -> None:
    store = tmp_path / "store.db"
    import_measurements(good, "pi", device="rpi4", store=store)
    with pytest.raises(InputError, match="name a .csv or .parquet file"):
        export_measurement_set("pi", tmp_path / "out.json", store=store)
    before = store.read_bytes()
    with pytest.raises(InputError, match="name a .csv or .parquet file"):
        export_measurement_set("pi", store, store=store)
    assert store.read_bytes() == before


def test_a_bad_row_stores_nothing(tmp_path: Path, good: Path) -> None:
    store = tmp_path / "store.db"
    import_measurements(good, "pi", device="rpi4", store=store)
    bad = _csv(tmp_path / "bad.csv", f"arch,latency_ms\n{A1},1\n{A2},-1\n")
    with pytest.raises(InputError, match="line 3"):
        import_measurements(bad, "pi", device="rpi4", store=store)
    with pytest.raises(InputError, match="needs the device"):
        import_measurements(good, "other", device=" ", store=store)
    assert [(i.name, i.version) for i in list_measurement_sets(store)] == [("pi", 1)]


def test_newer_schema_and_foreign_databases_are_refused(tmp_path: Path, good: Path) -> None:
    store = tmp_path / "store.db"
    import_measurements(good, "pi", device="rpi4", store=store)
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(SchemaError, match="newer than this nasprof reads"):
        load_measurement_set("pi", store=store)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(TableError, match="not a nasprof measurement store"):
        import_measurements(good, "pi", device="rpi4", store=foreign)


def test_record_appends_a_new_version(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    v1 = record_measurement("mine", A1, [1.0, 2.0, 3.0], {"device": "cpu", "backend": "onnxruntime",
                                                          "threads": 2}, store=store)
    assert v1.version == 1 and v1.rows[0].latency_ms == 2.0 and v1.rows[0].spread_ms == 1.0
    v2 = record_measurement("mine", tmp_path / "m.onnx", [4.0], {"device": "cpu"}, store=store)
    assert v2.version == 2 and [r.key for r in v2.rows] == [A1, str(tmp_path / "m.onnx")]
    assert v2.rows[1].model == str(tmp_path / "m.onnx") and v1.provenance["runtime"] == "onnxruntime"
    assert v1.provenance["threads"] == "2" and v1.provenance["measured_by"] == "nasprof measure"
    with pytest.raises(InputError, match="measured on 'cpu'"):
        record_measurement("mine", A2, [1.0], {"device": "pixel"}, store=store)


def test_default_store_honours_nasprof_home_and_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NASPROF_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store() == tmp_path / "xdg" / "nasprof" / "measurements.db"
    monkeypatch.setenv("NASPROF_HOME", str(tmp_path / "home"))
    assert default_store() == tmp_path / "home" / "measurements.db"


def test_a_measurement_set_is_immutable_data() -> None:
    ms = MeasurementSet(name="x", version=1, rows=())
    with pytest.raises(AttributeError):
        ms.name = "y"  # type: ignore[misc]
    assert ms.summary()["count"] == 0 and json.loads(json.dumps(ms.to_dict()))["rows"] == []


def test_row_ceiling_and_missing_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from nasprof.errors import MissingDependencyError
    from nasprof.tables import measurements_io

    f = _csv(tmp_path / "many.csv", "arch,latency_ms\n" + "".join(f"a{i},1\n" for i in range(4)))
    monkeypatch.setattr(measurements_io, "MAX_ROWS", 3)
    with pytest.raises(InputError, match="more than 3 rows"):
        read_measurements_file(f)
    pq = tmp_path / "x.parquet"
    pq.write_bytes(b"PAR1" + b"\x00" * 16 + b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'nasprof\[parquet\]'"):
        read_measurements_file(pq)
