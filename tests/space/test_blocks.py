"""Registry-wide block tests: every family's examples export, run in onnxruntime like in torch, and count the
same MACs/params analytically and from the graph. A new family is covered once it lists examples."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nasprof.errors import SpaceError
from nasprof.space import BlockSpec, Layer, count_onnx, export_layer, list_blocks
from nasprof.space.blocks import BlockFamily, BlockRegistry, block_registry, register_block
from nasprof.space.nn.common import fold_bn, randomize

EXAMPLES = [
    pytest.param(spec, shape, id=f"{name}-{i}")
    for name in list_blocks()
    for i, (spec, shape) in enumerate(block_registry.get(name).examples())
]


def test_every_family_has_examples() -> None:
    expected = {
        "conv",
        "dwsep",
        "mbconv",
        "fire",
        "shuffle",
        "shuffle_v2",
        "acnet",
        "resnet_basic",
        "resnet_bottleneck",
        "resnext",
        "repvgg",
        "maxpool",
        "head",
        "nasnet_op",
        "nasnet_cell",
    }
    assert expected <= set(list_blocks())
    for name in list_blocks():
        assert block_registry.get(name).examples(), f"{name} lists no examples"


@pytest.mark.parametrize("scale", [1, 3], ids=["small", "traced-small-pinned-large"])
@pytest.mark.parametrize(("spec", "shape"), EXAMPLES)
def test_export_matches_torch_and_counts_agree(
    spec: BlockSpec, shape: tuple[int, int, int], scale: int, tmp_path: Path
) -> None:
    # scale 3 makes inputs larger than TRACE_SIZE, so export_layer traces small and pins the real shapes.
    shape = (shape[0], shape[1] * scale, shape[2] * scale)
    layer = Layer(spec, shape)
    path = export_layer(layer, tmp_path / "block.onnx", seed=3)

    model = onnx.load(str(path))
    # Batch norm is folded into the convolution before it; one that follows a sum (NB201's final BN) stays,
    # as it does in the reference's own export.
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert not [n for n in model.graph.node
                if n.op_type == "BatchNormalization" and producers.get(n.input[0]) == "Conv"]
    assert [i.name for i in model.graph.input] == ["input"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, *shape]
    assert [o.name for o in model.graph.output] == ["output"]
    names = [n.name for n in model.graph.node if n.op_type != "Constant"]
    assert names and all(name.startswith("/blocks.0/") for name in names), names

    counts = count_onnx(path)
    assert (counts.macs, counts.params) == (layer.macs, layer.params)

    # Same weights as the export (same seed), in training form, evaluated in eval mode.
    from nasprof.space.nn.common import NetworkModule

    reference = randomize(NetworkModule([], [spec.build()], []), 3).eval()
    x = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[
        0
    ]
    c, h, w = layer.output_shape
    assert got.shape == ((1, c) if spec.op in ("head", "nb201_head") else (1, c, h, w))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


@pytest.mark.parametrize(("spec", "shape"), EXAMPLES)
def test_folding_preserves_the_function(spec: BlockSpec, shape: tuple[int, int, int]) -> None:
    """Training form (BN, RepVGG branches) in eval mode == deployed form (folded, re-parameterised)."""
    module = randomize(spec.build(), seed=5).eval()
    x = torch.randn((1, *shape), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = module(x)
        after = fold_bn(module)(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_repvgg_deploy_form_is_a_single_conv() -> None:
    module = randomize(BlockSpec("repvgg", 8, 8, kernel=3).build(), seed=1)
    assert module.identity is not None and module.pointwise is not None  # three branches in training form
    fold_bn(module)
    assert module.identity is None and module.pointwise is None
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (3, 3) and convs[0].bias is not None


def test_keys_are_distinct_for_distinct_examples() -> None:
    keys = [
        Layer(spec, shape).key
        for name in list_blocks()
        for spec, shape in block_registry.get(name).examples()
    ]
    assert len(keys) == len(set(keys))


def test_mbconv_key_and_counts_match_hand_computation() -> None:
    layer = Layer(BlockSpec("mbconv", 16, 24, kernel=5, stride=2, expand=3.0, act="relu6"), (16, 112, 112))
    assert (
        layer.key
        == "mbconv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-se:0-act:relu6-skip:0"
    )
    assert layer.output_shape == (24, 56, 56)
    expand = 112 * 112 * 48 * 16
    dw = 56 * 56 * 48 * 25
    project = 56 * 56 * 24 * 48
    assert layer.macs == expand + dw + project == 17_009_664
    assert layer.params == (16 * 48 + 48) + (25 * 48 + 48) + (48 * 24 + 24) == 3_240


def test_se_counts_follow_the_variant_rule() -> None:
    plain = BlockSpec("mbconv", 40, 40, kernel=5, expand=3.0, se=0.25, skip="id")  # squeeze int(40/4) = 10
    v3 = plain.replace(variant="v3")  # squeeze make_divisible(120/4, 8) = 32
    base = plain.replace(se=0.0)
    assert plain.params() - base.params() == (120 * 10 + 10) + (10 * 120 + 120)
    assert v3.params() - base.params() == (120 * 32 + 32) + (32 * 120 + 120)
    assert plain.macs(14, 14) - base.macs(14, 14) == 2 * 120 * 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"op": "mbconv", "cin": 16, "cout": 16, "stride": 2, "skip": "id"}, "identity skip needs stride 1"),
        (
            {"op": "mbconv", "cin": 16, "cout": 24, "skip": "id"},
            "identity skip needs stride 1 and cin == cout",
        ),
        ({"op": "mbconv", "cin": 16, "cout": 16, "skip": "pool"}, "use 'id' here"),
        ({"op": "mbconv", "cin": 16, "cout": 16, "act": "gelu"}, "unknown activation 'gelu'"),
        ({"op": "warp", "cin": 16, "cout": 16}, "unknown block op 'warp'"),
        ({"op": "conv", "cin": 16, "cout": 0}, "cout must be a positive integer"),
        ({"op": "resnet_basic", "cin": 8, "cout": 8}, "always has a shortcut"),
        ({"op": "shuffle", "cin": 24, "cout": 48, "groups": 3}, "cin (24) must equal cout (48)"),
        ({"op": "repvgg", "cin": 8, "cout": 8, "kernel": 5}, "kernel must be 3"),
        ({"op": "mbconv", "cin": 8, "cout": 8, "variant": "v9"}, "unknown variant 'v9'"),
    ],
)
def test_inconsistent_specs_raise_space_error(kwargs: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=re.escape(message)):
        BlockSpec(**kwargs)


def test_layer_rejects_inconsistent_input_shape() -> None:
    spec = BlockSpec("conv", 16, 32, kernel=3)
    with pytest.raises(SpaceError, match="expects 16 input channels"):
        Layer(spec, (8, 32, 32))
    with pytest.raises(SpaceError, match="leaves no output"):
        Layer(BlockSpec("conv", 3, 8, kernel=7, variant="valid"), (3, 5, 5))


def test_spec_and_layer_round_trip_through_dicts() -> None:
    layer = Layer(
        BlockSpec("mbconv", 24, 24, kernel=5, mid=72, se=0.25, act="hswish", skip="id", variant="v3"),
        (24, 28, 28),
    )
    doc = layer.to_dict()
    assert doc["spec"] == {
        "op": "mbconv",
        "cin": 24,
        "cout": 24,
        "kernel": 5,
        "se": 0.25,
        "act": "hswish",
        "skip": "id",
        "mid": 72,
        "variant": "v3",
    }
    assert Layer.from_dict(doc) == layer
    with pytest.raises(SpaceError, match="unknown block field"):
        BlockSpec.from_dict({"op": "conv", "cin": 3, "cout": 8, "colour": "red"})


def test_registry_refuses_duplicates() -> None:
    registry = BlockRegistry()

    class Dummy(BlockFamily):
        def output_hw(self, spec, h, w):  # type: ignore[no-untyped-def]
            return h, w

        def macs(self, spec, h, w):  # type: ignore[no-untyped-def]
            return 0

        def params(self, spec):  # type: ignore[no-untyped-def]
            return 0

        def build(self, spec):  # type: ignore[no-untyped-def]
            return torch.nn.Identity()

        def examples(self):  # type: ignore[no-untyped-def]
            return []

    register_block("dummy", registry)(Dummy)
    assert registry.names() == ["dummy"]
    with pytest.raises(SpaceError, match="already registered"):
        register_block("dummy", registry)(Dummy)
    with pytest.raises(SpaceError, match="already registered"):
        register_block("mbconv")(Dummy)  # the global registry refuses too
