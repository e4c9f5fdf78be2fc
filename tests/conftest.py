"""Shared fixtures: tiny ONNX models made inside the tests, real onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def make_conv_model(
    path: Path,
    *,
    channels: int = 8,
    size: int = 16,
    symbolic_batch: bool = False,
    blocks: int = 2,
) -> Path:
    """A small conv-relu chain whose node names carry a module scope (``/blocks.N/conv/Conv``)."""
    rng = np.random.default_rng(0)
    batch: int | str = "N" if symbolic_batch else 1
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])]
    nodes, inits = [], []
    prev, cin = "input", 3
    for b in range(blocks):
        w = numpy_helper.from_array(rng.standard_normal((channels, cin, 3, 3)).astype(np.float32), f"w{b}")
        bias = numpy_helper.from_array(np.zeros(channels, np.float32), f"b{b}")
        inits += [w, bias]
        conv_out, relu_out = f"/blocks.{b}/conv/Conv_output_0", f"/blocks.{b}/act/Relu_output_0"
        nodes.append(
            helper.make_node(
                "Conv", [prev, f"w{b}", f"b{b}"], [conv_out], name=f"/blocks.{b}/conv/Conv", pads=[1, 1, 1, 1]
            )
        )
        nodes.append(helper.make_node("Relu", [conv_out], [relu_out], name=f"/blocks.{b}/act/Relu"))
        prev, cin = relu_out, channels
    pool = helper.make_node("GlobalAveragePool", [prev], ["output"], name="/head/pool/GlobalAveragePool")
    nodes.append(pool)
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, channels, 1, 1])]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture
def conv_model(tmp_path: Path) -> Path:
    return make_conv_model(tmp_path / "tiny.onnx")


@pytest.fixture(autouse=True)
def _isolated_devices_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the developer's own devices file (~/.config/nasprof or ./nasprof.toml)."""
    import os

    if "NASPROF_DEVICES" not in os.environ:
        monkeypatch.setenv("NASPROF_DEVICES", str(tmp_path_factory.mktemp("devices") / "devices.toml"))


@pytest.fixture(scope="session")
def host_rules() -> object:
    """This host's kernel rules, probed once per test session (about a second): tests whose expectations
    depend on onnxruntime's layout on this CPU take them from here, never from a remembered host."""
    from nasprof.predictors.kernel.probe import probe_rules

    return probe_rules("cpu").rules


#: One typer test runner for every CLI test (it keeps no state between ``invoke`` calls).
from typer.testing import CliRunner  # noqa: E402

cli_runner = CliRunner()
