"""onnxruntime-mobile: ORT-format conversion, its cache, a space's operator config, the usability check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import cli_runner as runner

from nasprof.cli import app
from nasprof.errors import InputError, ModelError
from nasprof.space import export_arch, export_network, get_space
from nasprof.space.ort_format import cached_ort, convert_to_ort, ops_config, read_ops_config, space_ops_config


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


@pytest.mark.parametrize("style", ["fixed", "runtime"])
def test_ort_file_computes_what_the_onnx_file_does(style: str, tmp_path: Path) -> None:
    src = export_arch("mobilenet_v2", tmp_path / "m.onnx", resolution=64, width=0.35)
    dst = convert_to_ort(src, tmp_path / "m.ort", style=style)
    assert dst.read_bytes()[4:8] == b"ORTM"  # the flatbuffer's file identifier
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(_run(dst, x), _run(src, x), rtol=1e-4, atol=1e-5)


def test_conversions_are_cached_by_content_and_settings(tmp_path: Path) -> None:
    src = export_arch("mobilenet_v2", tmp_path / "m.onnx", resolution=64, width=0.35)
    first = cached_ort(src, tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    again = cached_ort(src, tmp_path / "cache")
    assert again == first and again.stat().st_mtime_ns == stamp  # not converted twice
    assert cached_ort(src, tmp_path / "cache", style="runtime") != first
    with pytest.raises(InputError, match="unknown ORT optimisation style"):
        cached_ort(src, tmp_path / "cache", style="eager")


def test_a_model_that_cannot_be_converted_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot convert .*bad.onnx to ORT format: .*"):
        convert_to_ort(bad, tmp_path / "bad.ort")
    assert not (tmp_path / "bad.ort").exists()


def test_space_ops_config_covers_networks_it_never_saw(tmp_path: Path) -> None:
    cfg = space_ops_config("mobilenetv2", tmp_path / "ops.config", resolution=64, samples=1)
    assert cfg.layer_models >= 5 and cfg.ops == read_ops_config(cfg.path)
    assert any("Conv" in ops for ops in cfg.ops.values())
    # Networks of other seeds and widths ask for nothing the config lacks.
    files = []
    for i, arch in enumerate(get_space("mobilenetv2").sample(2, seed=9, resolution=64, width=0.5)):
        files.append(convert_to_ort(export_arch(arch, tmp_path / f"{i}.onnx"), tmp_path / f"{i}.ort"))
    other = read_ops_config(ops_config(files, tmp_path / "other.config"))
    for key, ops in other.items():
        assert ops <= cfg.ops.get(key, frozenset()), (key, ops - cfg.ops.get(key, frozenset()))


def test_read_ops_config_refuses_what_is_not_one(tmp_path: Path) -> None:
    p = tmp_path / "x.config"
    p.write_text("# comment\nai.onnx;13;Conv,Relu\nConv\n")
    with pytest.raises(InputError, match=r"x.config:3: not an operator config line"):
        read_ops_config(p)


def test_cli_export_ort_ops_config_and_check_mobile(tmp_path: Path) -> None:
    r = runner.invoke(app, ["export", "mobilenet_v2", "-o", str(tmp_path / "m.ort"), "--resolution", "64",
                            "--width", "0.35", "--ort-style", "runtime"])
    assert r.exit_code == 0 and "ORT format, all, runtime" in r.stdout, r.output
    for argv, message in (
        (["export", "mobilenet_v2", "-o", str(tmp_path / "m.ort"), "--format", "onnx"], "ending in .onnx"),
        (["export", "mobilenet_v2", "-o", str(tmp_path / "m.onnx"), "--ort-style", "runtime"],
         "apply to --format ort"),
        (["space", "ops-config", "nas", "-o", str(tmp_path / "o.config")], "unknown search space"),
        (["check-mobile", str(tmp_path / "m.ort.missing")], "does not exist"),
    ):
        r = runner.invoke(app, argv)
        assert r.exit_code == 2 and message in r.stderr and "\n" not in r.stderr.strip(), (argv, r.output)
    net = export_network(get_space("mobilenetv2").sample(1, seed=0, resolution=64)[0].network(),
                         tmp_path / "n.onnx")
    r = runner.invoke(app, ["check-mobile", str(net), "--json", str(tmp_path / "u.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "u.json").read_text())
    nnapi = next(p for p in doc["providers"] if p["provider"] == "nnapi")
    assert nnapi["nodes"] > 0 and nnapi["verdict"] in ("YES", "MAYBE", "NO")
