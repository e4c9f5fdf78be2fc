"""ACNet's asymmetric convolution block: the kxk + 1xk + kx1 fusion is exact, the export is the fused single
conv, and bad kernels are refused. (The registry-wide tests in test_blocks.py also run its examples.)"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nasprof.errors import SpaceError
from nasprof.space import BlockSpec, Layer, count_onnx, export_layer
from nasprof.space.nn.acnet import ACBlock
from nasprof.space.nn.common import NetworkModule, fold_bn, randomize

CASES = [
    pytest.param(kernel, stride, groups, id=f"k{kernel}-s{stride}-g{groups}")
    for kernel in (3, 5)
    for stride in (1, 2)
    for groups in (1, 4)
]


def _conv_count(proto: onnx.ModelProto) -> int:
    return sum(n.op_type == "Conv" for n in proto.graph.node)


def _unfused_onnx(spec: BlockSpec, shape: tuple[int, int, int], seed: int) -> onnx.ModelProto:
    """The training form exported as is (torch folds each BN into its own conv, but the branches stay)."""
    model = randomize(NetworkModule([], [spec.build()], []), seed).eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation warning
        torch.onnx.export(
            model,
            (torch.zeros((1, *shape)),),
            buf,  # type: ignore[arg-type]  # torch's stub says path-only; file objects are accepted
            input_names=["input"],
            output_names=["output"],
            opset_version=17,
            dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize(("kernel", "stride", "groups"), CASES)
def test_fused_block_computes_the_training_form(kernel: int, stride: int, groups: int) -> None:
    spec = BlockSpec("acnet", 8, 16, kernel=kernel, stride=stride, groups=groups)
    # randomize gives every BN non-trivial running mean/var and affine weights, so folding is really tested.
    module = randomize(spec.build(), seed=7).eval()
    assert isinstance(module, ACBlock)
    bn = module.square.bn
    assert isinstance(bn, torch.nn.BatchNorm2d) and bn.running_var is not None
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    # 11 x 11: odd and even output sizes at stride 2 exercise the borders, where padding must align.
    x = torch.randn((2, 8, 11, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = module(x)
        fold_bn(module)
        after = module(x)
    assert module.horizontal is None and module.vertical is None
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (kernel, kernel) and convs[0].bias is not None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
    assert after.shape == before.shape == (2, 16, *spec.output_hw(11, 11))
    assert torch.allclose(after, before, rtol=1e-5, atol=1e-5)


def test_fold_is_idempotent() -> None:
    module = randomize(BlockSpec("acnet", 8, 8, kernel=3).build(), seed=2).eval()
    x = torch.randn((1, 8, 7, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        once = fold_bn(module)(x)
        twice = fold_bn(module)(x)
    assert torch.equal(once, twice)


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        (BlockSpec("acnet", 16, 16, kernel=3), (16, 20, 20)),
        (BlockSpec("acnet", 16, 32, kernel=5, stride=2, groups=2, act="relu6"), (16, 21, 21)),
    ],
)
def test_export_is_one_conv_matching_torch_and_counts(
    spec: BlockSpec, shape: tuple[int, int, int], tmp_path: Path
) -> None:
    layer = Layer(spec, shape)
    path = export_layer(layer, tmp_path / "acnet.onnx", seed=3)
    proto = onnx.load(str(path))
    assert _conv_count(proto) == 1
    assert not [n for n in proto.graph.node if n.op_type == "BatchNormalization"]

    counts = count_onnx(path)
    assert (counts.macs, counts.params) == (layer.macs, layer.params)
    ho, wo = layer.output_shape[1:]
    k, g = spec.kernel, spec.groups
    assert layer.macs == ho * wo * spec.cout * (spec.cin // g) * k * k
    assert layer.params == spec.cout * (spec.cin // g) * k * k + spec.cout

    # Same seed as the export: the training form (three branches, BN) in eval mode.
    reference = randomize(NetworkModule([], [spec.build()], []), 3).eval()
    x = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[
        0
    ]
    assert got.shape == (1, *layer.output_shape)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def test_fused_graph_has_fewer_convs_than_the_training_form(tmp_path: Path) -> None:
    # The structural reason the fused graph is not slower (timing lives in benchmarks/acnet_fusion.py).
    spec, shape = BlockSpec("acnet", 16, 16, kernel=3), (16, 12, 12)
    fused = onnx.load(str(export_layer(Layer(spec, shape), tmp_path / "fused.onnx", seed=4)))
    unfused = _unfused_onnx(spec, shape, seed=4)
    assert (_conv_count(fused), _conv_count(unfused)) == (1, 3)

    # Both files compute the same function.
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    cpu = ["CPUExecutionProvider"]
    sessions = [ort.InferenceSession(p.SerializeToString(), providers=cpu) for p in (fused, unfused)]
    outs = [s.run(None, {"input": x})[0] for s in sessions]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4 * float(np.abs(outs[1]).max()))


def test_key_shows_kernel_stride_groups_act() -> None:
    layer = Layer(BlockSpec("acnet", 16, 32, kernel=5, stride=2, groups=2, act="relu6"), (16, 21, 21))
    assert layer.key == "acnet-input:21x21x16-output:11x11x32-kernel:5-stride:2-groups:2-act:relu6"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kernel": 4}, "kernel must be odd and at least 3"),
        ({"kernel": 2}, "kernel must be odd and at least 3"),
        ({"kernel": 1}, "kernel must be odd and at least 3"),
        ({"kernel": 3, "groups": 3}, "cin (8) must be divisible by groups (3)"),
        ({"kernel": 3, "skip": "id"}, "leave skip, se, expand and mid at their defaults"),
        ({"kernel": 3, "se": 0.25}, "leave skip, se, expand and mid at their defaults"),
    ],
)
def test_bad_specs_raise_space_error(kwargs: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=re.escape(message)):
        BlockSpec("acnet", 8, 8, **kwargs)
