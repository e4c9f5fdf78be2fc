"""`nasprof table show/export/import/merge` and the bad-input contract (one line, exit 2, file untouched)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import cli_runner as runner

from nasprof.cli import app
from nasprof.space import get_space
from nasprof.tables import LatencyTable, TableEntry
from nasprof.tables.build_layers import layer_entry_fields

ENV = {"backend": "cpu", "threads": 1, "opt_level": "all", "cpu_model": "Test CPU"}


def make_table(path: Path, *, device: str = "cpu", env: dict | None = None, n: int = 3,
               samples: tuple[float, ...] = (1.0, 2.0, 3.0)) -> list[str]:
    """A mobilenetv2@224 table with the first ``n`` distinct layers (real keys and specs) and one failure."""
    layers = sorted(get_space("mobilenetv2").distinct_layers(224), key=lambda layer: layer.key)
    meta = {"device": device, "space": "mobilenetv2", "resolution": 224, "environment": env or ENV}
    with LatencyTable.open(path, create=True, metadata=meta) as t:
        for layer in layers[:n]:
            t.put(TableEntry(key=layer.key, samples_ms=samples, **layer_entry_fields(layer)))
        t.put(TableEntry.failed(layers[n].key, "measurement failed: RuntimeError: boom",
                                **layer_entry_fields(layers[n])))
    return [layer.key for layer in layers[: n + 1]]


def invoke(*args: str) -> object:
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result: object, code: int = 2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    err = result.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    return err


def test_show_summarises_entries_coverage_and_device(tmp_path: Path) -> None:
    keys = make_table(tmp_path / "t.db")
    r = invoke("table", "show", tmp_path / "t.db", "--all")
    assert r.exit_code == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "4 entries · 3 ok · 1 failed · 0 unstable · coverage 3/70 (4%) of the space" in out
    assert "device cpu" in out and "Test CPU" in out
    r = invoke("table", "show", tmp_path / "t.db", "--json", "-", "--failed")
    doc = json.loads(r.stdout)
    assert doc["summary"] == {"entries": 4, "ok": 3, "failed": 1, "unstable": 0, "remeasured": 0}
    assert doc["coverage"] == {"measured": 3, "distinct": 70}
    assert [e["key"] for e in doc["entries"]] == [keys[3]]
    assert doc["entries"][0]["error"] == "measurement failed: RuntimeError: boom"


def test_show_filters(tmp_path: Path) -> None:
    keys = make_table(tmp_path / "t.db")
    r = invoke("table", "show", tmp_path / "t.db", "--json", "-", "--key-contains", keys[1])
    assert [e["key"] for e in json.loads(r.stdout)["entries"]] == [keys[1]]
    r = invoke("table", "show", tmp_path / "t.db", "--json", "-", "--op", "nope")
    assert json.loads(r.stdout)["matching"] == 0
    r = invoke("table", "show", tmp_path / "t.db", "--json", "-", "--limit", "2")
    doc = json.loads(r.stdout)
    assert doc["matching"] == 4 and len(doc["entries"]) == 2


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_import_round_trip(tmp_path: Path, fmt: str) -> None:
    make_table(tmp_path / "t.db", samples=(0.25, 0.5, 0.125, 1.0 / 3.0))
    out = tmp_path / f"t.{fmt}"
    r = invoke("table", "export", tmp_path / "t.db", "--format", fmt, "-o", out)
    assert r.exit_code == 0, r.stderr
    r = invoke("table", "import", out, "-o", tmp_path / "back.db")
    assert r.exit_code == 0, r.stderr
    assert "imported 4 entries" in r.stderr
    a, b = LatencyTable.load(tmp_path / "t.db"), LatencyTable.load(tmp_path / "back.db")
    ea = [e.to_row() for e in a.entries()]
    eb = [e.to_row() for e in b.entries()]
    assert ea == eb  # samples (exact floats), spec, flags, errors, timestamps all survive
    assert b.metadata["environment"] == ENV and b.metadata["imported_from"] == str(out)


def test_exported_csv_is_readable_with_pandas(tmp_path: Path) -> None:
    import pandas as pd

    make_table(tmp_path / "t.db")
    invoke("table", "export", tmp_path / "t.db", "-o", tmp_path / "t.csv")
    df = pd.read_csv(tmp_path / "t.csv")  # pandas' defaults, as a spreadsheet would open it
    assert list(df.columns)[0] == "key" and len(df) == 4
    assert df["median_ms"].dropna().tolist() == [2.0, 2.0, 2.0]
    meta = json.loads((tmp_path / "t.csv.meta.json").read_text())
    assert meta["kind"] == "nasprof.latency_table" and meta["environment"] == ENV
    # Without its sidecar the CSV is not taken for a nasprof table; a CSV of the old layout still imports.
    (tmp_path / "lone.csv").write_text((tmp_path / "t.csv").read_text())
    r = invoke("table", "import", tmp_path / "lone.csv", "-o", tmp_path / "lone.db")
    assert "lone.csv.meta.json is not beside it" in one_line_error(r) and not (tmp_path / "lone.db").exists()
    old = tmp_path / "old.csv"
    meta.pop("csv")
    old.write_text("# nasprof.latency_table " + json.dumps(meta) + "\n" + (tmp_path / "t.csv").read_text())
    r = invoke("table", "import", old, "-o", tmp_path / "old.db")
    assert r.exit_code == 0, r.output
    assert len(LatencyTable.load(tmp_path / "old.db").df) == 4


def test_import_rejects_inconsistent_rows_and_writes_nothing(tmp_path: Path) -> None:
    make_table(tmp_path / "t.db")
    invoke("table", "export", tmp_path / "t.db", "-o", tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("median_ms")] = "9.5"  # disagrees with the samples
    (tmp_path / "bad.csv").write_text("\n".join(lines[:1] + [",".join(row)] + lines[2:]) + "\n")
    (tmp_path / "bad.csv.meta.json").write_text((tmp_path / "t.csv.meta.json").read_text())
    r = invoke("table", "import", tmp_path / "bad.csv", "-o", tmp_path / "bad.db")
    assert "row 1" in one_line_error(r) and "disagrees" in r.stderr
    assert not (tmp_path / "bad.db").exists()
    (tmp_path / "plain.csv").write_text("key,median_ms\na,1.0\n")
    r = invoke("table", "import", tmp_path / "plain.csv", "-o", tmp_path / "plain.db")
    assert "not an exported nasprof table" in one_line_error(r)


def test_import_refuses_to_overwrite(tmp_path: Path) -> None:
    make_table(tmp_path / "t.db")
    make_table(tmp_path / "other.db", n=1)
    invoke("table", "export", tmp_path / "t.db", "-o", tmp_path / "t.csv")
    before = (tmp_path / "other.db").read_bytes()
    r = invoke("table", "import", tmp_path / "t.csv", "-o", tmp_path / "other.db")
    assert "already exists" in one_line_error(r)
    assert (tmp_path / "other.db").read_bytes() == before


def test_merge_dedupes_keeping_success_then_more_samples(tmp_path: Path) -> None:
    keys = make_table(tmp_path / "a.db", n=2, samples=(1.0, 2.0, 3.0))  # keys[2] failed in A
    with LatencyTable.open(tmp_path / "b.db", create=True,
                           metadata={"device": "cpu", "space": "mobilenetv2", "resolution": 224,
                                     "environment": {**ENV, "hostname": "other"}}) as b:
        b.put(TableEntry(key=keys[0], samples_ms=(5.0,)))          # fewer samples: A wins
        b.put(TableEntry(key=keys[1], samples_ms=(4.0,) * 5))      # more samples: B wins
        b.put(TableEntry(key=keys[2], samples_ms=(7.0, 7.0)))      # success beats A's failure
        b.put(TableEntry(key="only-in-b", samples_ms=(1.0,)))
    r = invoke("table", "merge", tmp_path / "a.db", tmp_path / "b.db", "-o", tmp_path / "c.db")
    assert r.exit_code == 0, r.stderr
    assert "merged 4 entries" in r.stderr and "2 taken from b.db" in r.stderr
    c = LatencyTable.load(tmp_path / "c.db")
    assert c.get(keys[0]).median_ms == 2.0
    assert c.get(keys[1]).median_ms == 4.0
    assert c.get(keys[2]).ok and c.get(keys[2]).median_ms == 7.0
    assert c.get("only-in-b") is not None
    assert c.metadata["merged_from"] == [str(tmp_path / "a.db"), str(tmp_path / "b.db")]


def test_merge_refuses_other_device_or_environment_unless_forced(tmp_path: Path) -> None:
    make_table(tmp_path / "a.db")
    make_table(tmp_path / "b.db", env={**ENV, "onnxruntime_version": "1.17.0"})
    make_table(tmp_path / "d.db", device="pixel")
    r = invoke("table", "merge", tmp_path / "a.db", tmp_path / "b.db", "-o", tmp_path / "c.db")
    assert "onnxruntime_version" in one_line_error(r) and "--force" in r.stderr
    r = invoke("table", "merge", tmp_path / "a.db", tmp_path / "d.db", "-o", tmp_path / "c.db")
    assert "device: 'cpu' vs 'pixel'" in one_line_error(r)
    assert not (tmp_path / "c.db").exists()
    r = invoke("table", "merge", tmp_path / "a.db", tmp_path / "b.db", "-o", tmp_path / "c.db", "--force")
    assert r.exit_code == 0 and "warning: forced despite onnxruntime_version" in " ".join(r.stderr.split())
    assert LatencyTable.load(tmp_path / "c.db").metadata["forced_differences"]


def test_show_and_build_refuse_foreign_and_newer_files_untouched(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    newer = tmp_path / "newer.db"
    make_table(newer)
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    for path, text in ((foreign, "not a nasprof latency table"), (newer, "newer than this nasprof")):
        before = (path.read_bytes(), path.stat().st_mtime_ns)
        for args in (("table", "show", path),
                     ("table", "build", "--space", "mobilenetv2", "--resolution", "224", "--db", path)):
            assert text in one_line_error(invoke(*args))
        assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_build_rejects_unknown_space_and_bad_resolution(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    assert "unknown" in one_line_error(invoke("table", "build", "--space", "nope", "--resolution", "224",
                                              "--db", db)).lower()
    for res in ("0", "8"):
        one_line_error(invoke("table", "build", "--space", "mnasnet", "--resolution", res, "--db", db))
    one_line_error(invoke("table", "build", "--space", "mnasnet", "--resolution", "224", "--db", db,
                          "--shard", "3/2"))
    assert not db.exists()


def test_show_counts_entries_by_device_host_and_runner(tmp_path: Path) -> None:
    """A farm's table says which phone, on which host, with which runner build measured how many entries;
    a table from before entries recorded host and runner (schema 1) still shows."""
    layers = sorted(get_space("mobilenetv2").distinct_layers(224), key=lambda layer: layer.key)
    meta = {"device": "pixel-a", "space": "mobilenetv2", "resolution": 224, "environment": ENV}
    origin = {"a": ("pixel-a", "lab-1", "onnxruntime_perf_test sha256:aa"),
              "b": ("pixel-b", "lab-2", "onnxruntime_perf_test sha256:aa")}
    with LatencyTable.open(tmp_path / "t.db", create=True, metadata=meta) as t:
        for i, layer in enumerate(layers[:5]):
            device, host, run = origin["a" if i < 3 else "b"]
            t.put(TableEntry(key=layer.key, samples_ms=(1.0, 1.1), measured_on=device, host=host, runner=run,
                             **layer_entry_fields(layer)))
    r = invoke("table", "show", tmp_path / "t.db")
    assert r.exit_code == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert ("measured by pixel-a on lab-1 (onnxruntime_perf_test sha256:aa): 3 · pixel-b on lab-2 "
            "(onnxruntime_perf_test sha256:aa): 2") in out
    doc = json.loads(invoke("table", "show", tmp_path / "t.db", "--json", "-").stdout)
    assert doc["measured_by"][1] == {"device": "pixel-b", "host": "lab-2",
                                     "runner": "onnxruntime_perf_test sha256:aa", "entries": 2}
    old = tmp_path / "v1.db"
    old.write_bytes((Path(__file__).parent / "data" / "v1_table.db").read_bytes())
    r = invoke("table", "show", old)
    assert r.exit_code == 0 and "3 entries" in r.stdout and "measured by" not in r.stdout, r.stderr
