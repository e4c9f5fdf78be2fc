"""Design-space quality: TinyNAS's width x resolution grid and RegNet's distribution functions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nasprof.cli import app
from nasprof.errors import InputError, PredictorError, SpaceError
from nasprof.predictors.lut.predictor import LutPredictor
from nasprof.search.constraints import MemoryConstraint
from nasprof.search.plot import plot_edf, plot_quality
from nasprof.search.quality import ks_distance, space_edf, space_quality
from nasprof.space import get_space

GRID = dict(widths=[0.35, 0.5], resolutions=[96, 128], n=150)


def test_quality_cells_hold_what_the_decoded_models_measure() -> None:
    res = space_quality("mobilenetv2", **GRID, device="stm32h743", seed=3)
    assert [(c.width, c.resolution) for c in res.cells] == [(0.35, 96), (0.35, 128), (0.5, 96), (0.5, 128)]
    space = get_space("mobilenetv2")
    limit = MemoryConstraint.for_device("stm32h743")
    cell = res.cells[3]
    codes = space.genotypes().sample(150, np.random.default_rng([3, 3]))  # the cell's own stream
    archs = space.genotypes().decode(codes, 128, 0.5)
    np.testing.assert_array_equal(cell.macs, [a.macs for a in archs])
    sram, flash = limit.usage(archs)
    np.testing.assert_array_equal(cell.fits, limit.fits(sram, flash))
    assert 0 < cell.fit_count < cell.sampled  # the head's weights overflow Flash for some
    eligible = [c for c in res.cells if c.share >= res.min_share]
    assert res.best is max(eligible, key=lambda c: c.mean_macs or 0.0)
    doc = res.to_dict()
    assert doc["recommended"] == {"width": res.best.width, "resolution": res.best.resolution}
    assert len(doc["cells"][0]["macs_cdf"]) == 101 and doc["cells"][0]["macs_quantiles"]["p50"] > 0
    again = space_quality("mobilenetv2", **GRID, device="stm32h743", seed=3)
    assert again.to_dict() == doc


def test_quality_with_a_latency_limit_from_a_lookup_table() -> None:
    space = get_space("mnasnet")
    lut = LutPredictor({x.key: 0.01 + x.macs / 1e7 for x in space.distinct_layers(96, width=0.5)},
                       space="mnasnet", resolution=96, device="synthetic")
    target = float(np.median(lut.predict_many(space.sample(200, seed=1, resolution=96, width=0.5))))
    res = space_quality(space, [0.5], [96], n=400, predictors=[lut], target_ms=target)
    cell = res.cells[0]
    assert cell.latency_ms is not None and 0.35 < cell.share < 0.65
    assert (cell.latency_ms[cell.fits] <= target).all()
    with pytest.raises(PredictorError, match="no lookup-table predictor for 128 px"):
        space_quality(space, [0.5], [96, 128], n=10, predictors=[lut], target_ms=target)


def test_cli_with_predictors_defaults_to_their_width_and_resolutions(tmp_path: Path) -> None:
    # A table is built from a space's width-1.0 layers at one resolution: the grid defaults to exactly that.
    files = []
    for name in ("mnasnet", "mobilenetv2"):
        space = get_space(name)
        lut = LutPredictor({x.key: 0.01 + x.macs / 1e7 for x in space.distinct_layers(96)},
                           space=name, resolution=96, device="synthetic")
        files.append(lut.save(tmp_path / f"{name}.json"))
    runner = CliRunner()
    r = runner.invoke(app, ["space", "quality", "mnasnet", "--predictor", str(files[0]), "--target-ms", "60",
                            "--n", "50", "--json", str(tmp_path / "q.json")])
    assert r.exit_code == 0, r.output
    cells = json.loads((tmp_path / "q.json").read_text())["cells"]
    assert [(c["width"], c["resolution"]) for c in cells] == [(1.0, 96)]
    r = runner.invoke(app, ["space", "quality", "mnasnet", "--predictor", str(files[0]), "--target-ms", "60",
                            "--n", "5", "--widths", "0.5"])
    assert r.exit_code == 2 and "use --widths 1.0" in r.stderr, r.output
    r = runner.invoke(app, ["space", "edf", "--spaces", "mnasnet,mobilenetv2", "--metric", "latency", "--n",
                            "30", "--predictor", str(files[0]), "--predictor", str(files[1])])
    assert r.exit_code == 0 and "KS distance" in r.stdout, r.output


def test_no_model_fitting_names_the_closest_cell() -> None:
    # The 1000-way classifier alone (1.28 MB of int8 weights) overflows this board's 512 KiB of Flash.
    closest = r"closest is width [\d.]+ at \d+ px, whose smallest model is 2\d\d% over"
    with pytest.raises(InputError, match=closest):
        space_quality("mnasnet", [0.75, 1.0], [96, 160], n=50, device="stm32f411")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"widths": []}, InputError, "at least one width"),
        ({"widths": [-0.5]}, InputError, "positive numbers"),
        ({"resolutions": [8]}, SpaceError, "resolution must be an integer in"),
        ({"n": 0}, InputError, "--n must be a positive number"),
        ({"min_share": 0.0}, InputError, "--min-share"),
        ({"device": None}, InputError, "give a constraint"),
        ({"target_ms": 3.0}, InputError, "needs both --target-ms and --predictor"),
    ],
)
def test_quality_bad_input(kwargs: dict, error: type, message: str) -> None:
    args = {**GRID, "n": 10, "device": "stm32h743", **kwargs}
    with pytest.raises(error, match=message):
        space_quality("mobilenetv2", **args)


def test_ks_distance_and_edfs() -> None:
    a = np.arange(10.0)
    assert ks_distance(a, a) == 0.0
    assert ks_distance(a, a + 100) == 1.0
    assert ks_distance(a, a + 5) == pytest.approx(0.5)
    res = space_edf(["mnasnet", "regnet"], "params", n=120, seed=2, resolution=96)
    codes = get_space("regnet").genotypes().sample(120, np.random.default_rng([2, 1]))
    archs = get_space("regnet").genotypes().decode(codes, 96)
    np.testing.assert_array_equal(res.values["regnet"], [a.params for a in archs])
    (pair, d), = res.ks().items()
    assert pair == ("mnasnet", "regnet") and d == ks_distance(res.values["regnet"], res.values["mnasnet"])
    doc = res.to_dict()
    assert doc["unit"] == "parameters" and len(doc["spaces"]["mnasnet"]["edf"]) == 101
    for kwargs, message in (
        ({"spaces": ["mnasnet"]}, "at least two spaces"),
        ({"metric": "flops"}, "unknown metric"),
        ({"metric": "sram"}, "needs a microcontroller --board"),
        ({"metric": "latency"}, "lookup-table --predictor"),
    ):
        with pytest.raises(InputError, match=message):
            space_edf(**{"spaces": ["mnasnet", "regnet"], "n": 5, **kwargs})  # type: ignore[arg-type]


def test_plots_are_pngs(tmp_path: Path) -> None:
    res = space_quality("mobilenetv2", **GRID, device="stm32h743")
    assert plot_quality(res, tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"
    edf = space_edf(["mnasnet", "mobilenetv2"], n=50)
    assert plot_edf(edf, tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_quality_and_edf(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["space", "quality", "mobilenetv2", "--widths", "0.35,0.5", "--resolutions", "96",
                            "--n", "100", "--board", "stm32h743", "--json", str(tmp_path / "q.json"),
                            "--plot", str(tmp_path / "q.png")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "q.json").read_text())
    assert doc["schema_version"] == 1 and len(doc["cells"]) == 2 and doc["recommended"] is not None
    r = runner.invoke(app, ["space", "quality", "mobilenetv2", "--n", "100", "--board", "stm32h743"])
    assert r.exit_code == 0 and "recommended: width" in r.stdout, r.output
    r = runner.invoke(app, ["space", "edf", "--spaces", "mnasnet,regnet", "--n", "80"])
    assert r.exit_code == 0 and "KS distance mnasnet / regnet" in r.stdout, r.output
    for argv, message in (
        (["space", "quality", "mobilenetv2", "--widths", "a,b", "--board", "stm32h743"], "comma-separated"),
        (["space", "quality", "mobilenetv2", "--board", "stm32f411", "--widths", "1.0", "--resolutions",
          "224", "--n", "20"], "no sampled model of any cell fits"),
        (["space", "quality", "nas", "--board", "stm32h743"], "unknown search space"),
        (["space", "edf", "--spaces", "mnasnet", "--n", "5"], "at least two spaces"),
    ):
        r = runner.invoke(app, argv)
        assert r.exit_code == 2 and message in r.output, (argv, r.output)
