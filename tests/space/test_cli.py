"""The space / export / count commands through typer's runner (real export, real onnx)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli_runner as runner

from nasprof.cli import app
from nasprof.space import Arch, get_preset, get_space


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_space_list_and_show() -> None:
    code, out, _ = run("space", "list", "--json", "-")
    assert code == 0
    doc = json.loads(out)
    assert [s["name"] for s in doc["spaces"]] == ["mnasnet", "mobilenetv2", "nasnet", "nb201", "regnet"]
    assert doc["spaces"][0]["size"] == 1_247_968_747_541_495_808
    assert doc["spaces"][0]["distinct_layers_224"] == 2149
    assert {p["name"] for p in doc["presets"]} >= {"mobilenet_v2", "resnet50"}

    code, out, _ = run("space", "show", "mnasnet")
    assert code == 0
    assert "size: 1247968747541495808 architectures" in " ".join(out.split())

    code, out, _ = run("space", "show", "mobilenetv2", "--json", "-")
    assert json.loads(out)["choices"][0]["kernel"] == [3, 5, 7]


def test_space_sample_is_seeded_and_parseable() -> None:
    code, out, _ = run("space", "sample", "mnasnet", "--n", "3", "--seed", "4", "--json", "-")
    assert code == 0
    docs = json.loads(out)
    expected = get_space("mnasnet").sample(3, seed=4)
    assert [Arch.from_json(d) for d in docs] == expected
    assert [d["macs"] for d in docs] == [a.macs for a in expected]

    code, out, _ = run("space", "sample", "mobilenetv2", "--n", "2", "--seed", "4")
    assert code == 0 and "mobilenetv2:224:1.0|" in out


def test_space_layers_json() -> None:
    code, out, _ = run("space", "layers", "mobilenetv2", "--resolution", "128", "--json", "-")
    assert code == 0
    docs = json.loads(out)
    assert len(docs) == len(get_space("mobilenetv2").distinct_layers(128))
    assert (
        docs[0]["key"]
        == "conv-input:128x128x3-output:64x64x32-kernel:3-stride:2-groups:1-se:0-act:relu6-skip:0"
    )


def test_export_and_count_a_preset(tmp_path: Path) -> None:
    out_path = tmp_path / "m.onnx"
    code, out, _ = run(
        "export",
        "mobilenet_v2",
        "--resolution",
        "96",
        "--width",
        "0.35",
        "--last-channel",
        "448",
        "-o",
        str(out_path),
    )
    assert code == 0, out
    assert out_path.is_file() and f"wrote {out_path}" in " ".join(out.split())

    code, out, _ = run("count", str(out_path), "--json", "-")
    assert code == 0
    graph = json.loads(out)
    net = get_preset("mobilenet_v2", width=0.35, resolution=96, last_channel=448)
    assert (graph["macs"], graph["params"]) == (net.macs, net.params)

    code, out, _ = run("count", "mobilenet_v2", "--resolution", "96", "--width", "0.35", "--json", "-")
    analytic = json.loads(out)
    assert (
        analytic["source"] == "analytic"
        and analytic["params"] == get_preset("mobilenet_v2", width=0.35).params
    )

    code, out, _ = run("count", "resnet18")
    assert code == 0 and "1,814,073,344" in out and "total" in out


def test_export_an_architecture_string_and_json(tmp_path: Path) -> None:
    arch = get_space("mobilenetv2").sample(1, seed=0)[0]
    code, out, _ = run("export", arch.to_string(), "--resolution", "64", "-o", str(tmp_path / "a.onnx"))
    assert code == 0, out
    json_path = tmp_path / "arch.json"
    json_path.write_text(arch.to_json())
    code, out, _ = run("count", str(json_path), "--json", "-")
    assert json.loads(out)["macs"] == arch.macs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("export", "mobilenet_v4", "-o", "x.onnx"), "unknown preset 'mobilenet_v4'; known:"),
        (("export", "mnasnet:224:1.0|mb6_k3", "-o", "x.onnx"), "malformed mnasnet block 0"),
        (("count", "mnasnet:224:1.0|mb6_k3_se0_id_f1.0_l2"), "have 7 blocks, got 1"),
        (("space", "show", "darts"), "unknown search space 'darts'"),
        (("count", "missing.onnx"), "does not exist"),
        (("export", "model.onnx", "-o", "x.onnx"), "ONNX file model.onnx does not exist"),
        (("count", "squeezenet1_0", "--resolution", "16"), "inconsistent shapes"),
        (("export", "resnet18", "--last-channel", "448", "-o", "x.onnx"),
         "has no option 'last_channel' (--last-channel)"),
        # Found in QA: these used to succeed silently (a default in place of 0, ONNX in a .txt, an empty
        # table) or end in a traceback.
        (("export", "mobilenet_v2", "--last-channel", "0", "--resolution", "32", "-o", "x.onnx"),
         "--last-channel must be at least 1, got 0"),
        (("export", "mobilenet_v2", "--resolution", "32", "-o", "x.txt"), "give a path ending in .onnx"),
        (("export", "mobilenet_v2", "--resolution", "32", "-o", "/dev/null/x.onnx"),
         "cannot write --output /dev/null/x.onnx: /dev/null is not a directory"),
        (("count", "empty.onnx"), "empty.onnx holds no ONNX graph"),
        (("space", "sample", "mnasnet", "--resolution", "0"), "--resolution must be at least 1, got 0"),
        (("space", "sample", "mnasnet", "--seed", "-1"),
         "--seed must be an integer in 0…4,294,967,295, got -1"),
        (("space", "layers", "mnasnet", "--width", "0"),
         "--width must be a width multiplier >= 0.1 and <= 4, got 0"),
        (("space", "layers", "mobilenetv2", "--resolution", "0"), "--resolution must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: tuple[str, ...], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.onnx").touch()
    code, out, err = run(*args)
    assert code == 2
    assert err.startswith("error:") and message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err
    assert not (tmp_path / "x.onnx").exists()


def test_malformed_json_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "arch.json"
    bad.write_text('{"schema_version": 1, "space": "mnasnet"')
    code, _, err = run("count", str(bad))
    assert code == 2 and "malformed architecture JSON" in err
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)))
    code, _, err = run("count", str(binary))
    assert code == 2 and "cannot read architecture file" in err


def test_count_rejects_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    code, _, err = run("count", str(bad))
    assert code == 2 and "cannot read" in err and "as ONNX" in err


def test_export_to_a_directory_is_one_line_and_keeps_it(tmp_path: Path) -> None:
    # Used to export, then fail in os.replace with a traceback.
    target = tmp_path / "model.onnx"
    target.mkdir()
    code, out, err = run("export", "mobilenet_v2", "--resolution", "32", "-o", str(target))
    assert code == 2 and "Traceback" not in out + err
    assert err == f"error: cannot write --output {target}: it is a directory; give a file name\n"
    assert target.is_dir() and not list(tmp_path.glob(".model.onnx.*"))  # no temporary file left behind
