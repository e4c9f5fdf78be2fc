"""Compound scaling: EfficientNet's depth rounding on any network, the (alpha, beta, gamma) grid, the family
against a latency target and an MCU board, and `nasprof scale`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasprof.cli import app
from nasprof.errors import InputError, SpaceError
from nasprof.predictors.kernel.predictor import KernelPredictor, KernelRegressor
from nasprof.search.scaling import compound_grid, scale_family
from nasprof.space.presets import get_preset
from nasprof.space.scaling import scale_depth, stages


@pytest.mark.parametrize(
    ("width", "depth", "resolution", "mmacs", "mparams"),
    [(1.0, 1.1, 240, 700, 7.8), (1.1, 1.2, 260, 1000, 9.1), (1.2, 1.4, 300, 1800, 12.0)],
)
def test_efficientnet_b1_to_b3_from_b0(width: float, depth: float, resolution: int, mmacs: float,
                                       mparams: float) -> None:
    """B0 scaled by the paper's (width, depth, resolution) gives B1-B3's published MACs and parameters
    (0.70 / 1.0 / 1.8 B, 7.8 / 9.1 / 12 M) within 3%."""
    net = scale_depth(get_preset("efficientnet_b0", width=width, resolution=resolution), depth)
    layers = net.layers()
    assert sum(x.macs for x in layers) / 1e6 == pytest.approx(mmacs, rel=0.03)
    assert sum(x.params for x in layers) / 1e6 == pytest.approx(mparams, rel=0.03)


def test_depth_rounds_each_stage_up_and_keeps_shapes() -> None:
    base = get_preset("mobilenet_v2", resolution=96)
    counts = [len(s) for s in stages(base.blocks)]
    assert counts == [1, 2, 3, 4, 3, 3, 1]  # torchvision's (t, c, n, s) table
    deeper = scale_depth(base, 1.5)
    assert [len(s) for s in stages(deeper.blocks)] == [2, 3, 5, 6, 5, 5, 2]
    assert deeper.layers()[-1].output_shape == base.layers()[-1].output_shape
    shallower = scale_depth(base, 0.5)
    assert [len(s) for s in stages(shallower.blocks)] == [1, 1, 2, 2, 2, 2, 1]
    with pytest.raises(SpaceError, match="depth multiplier"):
        scale_depth(base, float("nan"))


def test_the_grid_keeps_alpha_beta2_gamma2_near_two() -> None:
    grid = compound_grid(0.1)
    assert len(grid) == 15 and (1.0, 1.0, 1.4) in grid
    assert all(abs(a * b * b * g * g - 2) <= 0.1 for a, b, g in grid)
    with pytest.raises(InputError, match="--grid-step"):
        compound_grid(0.0)


def _linear_predictor() -> KernelPredictor:
    regs = {t: KernelRegressor(0.002, 0.02, 0.0, None)
            for t in ("conv", "dwconv", "fc", "gap", "eltwise", "act", "pool", "memory", "concat")}
    return KernelPredictor(regs, overhead_ms=0.01, opt_level="extended", device="cpu")


def test_family_with_a_predictor_and_a_grid_search() -> None:
    p = _linear_predictor()
    res = scale_family("mobilenet_v2", (0, 1), base_resolution=64, grid_step=0.4, predictor=p, target_ms=1e6)
    assert 2 <= len(res.grid) <= 4 and "grid search" in res.how
    # The winner has the lowest predicted latency per MAC of the grid.
    best = min(res.grid, key=lambda c: c.latency_ms / c.macs)  # type: ignore[operator]
    assert res.coefficients == (best.alpha, best.beta, best.gamma)
    phi0, phi1 = res.family
    assert phi0.resolution == 64 and phi0.width == 1.0 and phi0.depth == 1.0
    assert phi1.macs > phi0.macs and phi1.latency_ms > phi0.latency_ms  # type: ignore[operator]
    assert all(c.feasible for c in res.family)


def test_no_member_fits_names_the_nearest_miss() -> None:
    with pytest.raises(InputError, match=r"nearest, phi=0 .* breaks latency"):
        scale_family("mobilenet_v2", (0,), base_resolution=64, coefficients=(1.2, 1.1, 1.15),
                     predictor=_linear_predictor(), target_ms=1e-6)


def test_scale_cli(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    r = CliRunner().invoke(app, ["scale", "efficientnet_b0", "--phi", "0,1,2", "--json", str(out),
                                 "--plot", str(tmp_path / "s.png")])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["coefficients"] == {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}
    assert [c["resolution"] for c in doc["family"]] == [224, 256, 296]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    for argv, message in (
        (["scale", "efficientnet_b0", "--target-ms", "5"], "--target-ms needs --predictor"),
        (["scale", "efficientnet_b0", "--phi", "1,x"], "--phi takes comma-separated numbers"),
        (["scale", "efficientnet_b0", "--coefficients", "1.2,1.1"], "alpha,beta,gamma"),
        (["scale", "efficientnet_b9"], "unknown preset"),
        (["scale", "efficientnet_b0", "--phi", "9"], "--phi values must be in [0, 8]"),
    ):
        bad = CliRunner().invoke(app, argv)
        assert bad.exit_code == 2 and message in bad.output, (argv, bad.output)


def test_an_architecture_is_scaled_from_its_own_resolution(tmp_path: Path) -> None:
    """A 160 px architecture starts the family at 160 px (it was sized as a 224 px network, with twice the
    MACs); --resolution still overrides it."""
    from nasprof.space.spaces import get_space

    arch = get_space("mobilenetv2").sample(1, seed=3, resolution=160)[0]
    own = scale_family(arch.to_string(), (0,))
    assert own.family[0].resolution == 160
    assert own.family[0].macs == sum(layer.macs for layer in arch.network().layers())
    assert scale_family(arch.to_string(), (0,), base_resolution=224).family[0].resolution == 224
    r = CliRunner().invoke(app, ["scale", arch.to_string(), "--phi", "0", "--json", str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "a.json").read_text())["family"][0]["resolution"] == 160


def test_phi_zero_is_the_base_as_given() -> None:
    """The base network is not rounded to a multiple of 8 (1025 px was shown as 1024 px)."""
    assert scale_family("mnasnet_a1", (0,), base_resolution=1025).family[0].resolution == 1025
    # 100 px * 1.15 = 115 px, to the nearest multiple of 8
    assert scale_family("mnasnet_a1", (0, 1), base_resolution=100).family[1].resolution == 112
