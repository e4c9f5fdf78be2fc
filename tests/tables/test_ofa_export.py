"""`table export --format ofa`: a table OFA's/ProxylessNAS's estimators can read, checked with a reader that
builds its keys as ProxylessNAS's ``predict_network_latency_given_config`` does (written here from the
documented format, not imported)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import cli_runner

from nasprof.cli import app
from nasprof.space import get_preset, get_space
from nasprof.tables import LatencyTable, TableEntry
from nasprof.tables.build_layers import layer_entry_fields

RES = 96


def _table(path: Path, layers: list) -> Path:
    rng = np.random.default_rng(0)
    entries = [
        TableEntry(key=x.key, samples_ms=tuple(0.01 + x.macs / 1e7 * (1 + 0.01 * rng.random(3))),
                   **layer_entry_fields(x))
        for x in layers
    ]
    with LatencyTable.open(path, create=True, metadata={"device": "cpu", "resolution": RES}) as t:
        t.put_many(entries)
    return path


def _proxyless_latency(lut: dict, net: object) -> float:
    """ProxylessNAS's walk: first conv, every MBConv (expand ratio, kernel, stride, identity skip), the
    feature-mix conv and the logits, each looked up by its key's ``mean``."""
    layers = net.layers()  # type: ignore[attr-defined]
    total = 0.0
    for layer in layers:
        s, (c, h, w), (co, ho, wo) = layer.spec, layer.input_shape, layer.output_shape
        io = f"input:{h}x{w}x{c}-output:{ho}x{wo}x{co}"
        if s.op == "conv":
            key = f"{'Conv' if c == 3 else 'Conv_1'}-{io}"
        elif s.op == "mbconv":
            key = (f"expanded_conv-{io}-expand:{int(s.expand)}-kernel:{s.kernel}-stride:{s.stride}-"
                   f"idskip:{1 if s.skip == 'id' else 0}")
        else:
            key = f"Logits-input:{h}x{w}x{c}-output:{s.cout}"
        total += lut[key]["mean"]
    return total


def test_mobilenetv2_space_reads_back_with_proxylessnas_keys(tmp_path: Path) -> None:
    space = get_space("mobilenetv2")
    db = _table(tmp_path / "t.db", space.distinct_layers(RES))
    r = cli_runner.invoke(app, ["table", "export", str(db), "-o", str(tmp_path / "t.yaml")])
    assert r.exit_code == 0, r.output
    assert "in OFA's proxyless layout" in r.output
    lut = yaml.safe_load((tmp_path / "t.yaml").read_text())
    assert len(lut) == len(space.distinct_layers(RES))  # every layer of this space has a counterpart
    with LatencyTable.load(db) as t:
        means = {e.key: float(np.mean(e.samples_ms)) for e in t.entries()}
    for arch in space.sample(20, seed=3, resolution=RES):
        ours = sum(means[x.key] for x in arch.layers())
        assert _proxyless_latency(lut, arch.network()) == pytest.approx(ours, rel=1e-12)
    some = next(k for k in lut if k.startswith("expanded_conv"))
    assert set(lut[some]) == {"mean", "median", "std", "count"}


def test_mbv3_style_and_layers_left_out(tmp_path: Path) -> None:
    net = get_preset("mobilenet_v3_large", resolution=RES)
    db = _table(tmp_path / "v3.db", list(net.layers()))
    r = cli_runner.invoke(app, ["table", "export", str(db), "-o", str(tmp_path / "v3.yml")])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "v3.yml").read_text()
    lut = yaml.safe_load(text)
    assert any(k.endswith("-se:1-hs:1") for k in lut) and any(k.endswith("-se:0-hs:0") for k in lut)
    first = net.layers()[1]  # an MBConv without expansion: expand is its mid width (16)
    assert first.spec.op == "mbconv"
    half = RES // 2
    assert any(k.startswith(f"expanded_conv-input:{half}x{half}x16-") and "-expand:16-" in k for k in lut)
    assert "a head with a hidden layer" in text and "left out" in r.output
    r = cli_runner.invoke(app, ["table", "export", str(db), "-o", str(tmp_path / "x.yaml"),
                                 "--style", "proxyless"])
    assert r.exit_code == 0 and "squeeze-excite, hard-swish" in (tmp_path / "x.yaml").read_text()
    for argv, message in (
        (["--style", "fancy"], "unknown OFA style"),
        (["--format", "csv", "--style", "mbv3"], "--style applies to --format ofa only"),
    ):
        out = tmp_path / ("bad.csv" if "csv" in argv else "bad.yaml")
        r = cli_runner.invoke(app, ["table", "export", str(db), "-o", str(out), *argv])
        assert r.exit_code == 2 and message in r.output, (argv, r.output)
