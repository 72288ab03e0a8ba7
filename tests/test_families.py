"""Generator v5 (deep, layered lines of sight, any beam) and the validation families."""

import json
import re

import h5py
import numpy as np
import pytest

from nhpipe.data import load_meta, load_split, make_dataset
from nhpipe.sims.cloud import CELL_PC
from nhpipe.sims.families import mhd_region, simulate_region
from nhpipe.sims.fractal import fractal_cube
from nhpipe.sims.gravity import tail_quantiles, with_tail
from nhpipe.sims.observe import observe_pixels
from nhpipe.sims.project import combine, project
from nhpipe.sims.sky import SkyRanges, cloud_component, simulate_sightline
from nhpipe.units import PC_CM

from .conftest import SHARED

IDEFIX = SHARED / "idefix_orszagtang3d_mhd" / "data.0001.ref.vtk"


class TestLayeredProjection:
    def test_three_slabs_by_hand(self):
        # A foreground sheet, a dense core and a deep cloud: n (cm-3) over L (pc).
        slabs = [(10.0, 20.0), (3.0e4, 0.1), (200.0, 5.0)]
        columns = [project(np.full((4, 3, 3), n), axis=0, cell_pc=depth / 4)
                   for n, depth in slabs]
        nh, n_m = combine(columns)
        nh_hand = sum(n * depth for n, depth in slabs) * PC_CM
        nm_hand = sum(n * n * depth for n, depth in slabs) * PC_CM / nh_hand
        np.testing.assert_allclose(nh, nh_hand, rtol=1e-12)
        np.testing.assert_allclose(n_m, nm_hand, rtol=1e-12)
        # (100 * 20 + 9e8 * 0.1 + 4e4 * 5) / (200 + 3000 + 1000) = 90202000 / 4200
        assert n_m[0, 0] == pytest.approx(90202000 / 4200, rel=1e-12)

    def test_combine_equals_one_stacked_column(self):
        rng = np.random.default_rng(0)
        a, b = rng.lognormal(3, 1, (17, 5, 6)), rng.lognormal(6, 0.5, (9, 5, 6))
        # Same cell size: one cube stacked along the line of sight.
        stacked = project(np.concatenate([a, b]), axis=0, cell_pc=0.026)
        parts = combine([project(a, axis=0, cell_pc=0.026), project(b, axis=0, cell_pc=0.026)])
        for whole, part in zip(stacked, parts):
            np.testing.assert_allclose(part, whole, rtol=1e-12)
        # Different cell sizes: a non-uniform grid.
        mixed = project(np.concatenate([a, b]), axis=0, cell_pc=[0.026] * 17 + [0.104] * 9)
        parts = combine([project(a, axis=0, cell_pc=0.026), project(b, axis=0, cell_pc=0.104)])
        for whole, part in zip(mixed, parts):
            np.testing.assert_allclose(part, whole, rtol=1e-12)

    def test_sightline_is_sum_of_its_components(self):
        # A full line of sight with 3 components, small width for speed.
        ranges = SkyRanges(component_weights=(0.0, 0.0, 1.0), los_depth_pc=(1.0, 2.0),
                           sheet_depth_pc=(2.0, 4.0))
        region = simulate_sightline(np.random.default_rng(5), ranges, width=24)
        comps = region["params"]["components"]
        assert region["meta"]["n_components"] == 3 == len(comps)
        assert [c["kind"] for c in comps] == ["cloud", "sheet", "cloud"]
        assert region["meta"]["los_depth_pc"] == pytest.approx(sum(c["depth_pc"] for c in comps))
        assert np.all(region["n_m"] > 0) and np.all(np.isfinite(region["nh"]))

    @pytest.mark.parametrize("fraction", [0.0, 1.0])
    def test_smooth_clouds_take_the_smooth_ranges(self, fraction):
        ranges = SkyRanges(smooth_fraction=fraction, los_depth_pc=(1.0, 2.0))
        for seed in range(4):
            _, params = cloud_component(np.random.default_rng(seed), ranges, width=16)
            smooth = (ranges.smooth_mach[0] <= params["mach"] <= ranges.smooth_mach[1]
                      and params["fill"] >= ranges.smooth_fill[0])
            # The cloud range's Mach numbers start at 2 and its filling fractions end at 0.9.
            assert smooth == (fraction == 1.0)

    def test_quiescent_lines_of_sight(self):
        ranges = SkyRanges(quiescent_fraction=1.0, los_depth_pc=(1.0, 1.5))
        region = simulate_sightline(np.random.default_rng(3), ranges, width=64)
        (comp,) = region["params"]["components"]
        assert comp["kind"] == "quiescent" and region["meta"]["n_components"] == 1
        assert ranges.quiescent_mach[0] <= comp["mach"] <= ranges.quiescent_mach[1]
        assert comp["fill"] == 1.0 and not comp["filaments"] and not comp["cores"]
        assert comp["self_gravity"] is None
        # A shallow quiescent map is smooth, unlike a shallow cloud of the cloud range.
        cloud = simulate_sightline(np.random.default_rng(3), SkyRanges(
            quiescent_fraction=0.0, smooth_fraction=0.0, los_depth_pc=(1.0, 1.5)), width=64)
        assert np.std(np.log10(region["nh"])) < 0.15 < np.std(np.log10(cloud["nh"]))

    @pytest.mark.parametrize("fraction", [0.0, 0.25])
    def test_quiescent_fraction(self, fraction):
        ranges = SkyRanges(quiescent_fraction=fraction, los_depth_pc=(1.0, 2.0))
        kinds = [region["params"]["components"][0]["kind"] for region in (
            simulate_sightline(np.random.default_rng(seed), ranges, width=16)
            for seed in range(12))]
        assert ("quiescent" in kinds) == (fraction > 0)


class TestObservation:
    @pytest.mark.parametrize("beam_px", [0.5, 1.35, 4.0, 16.0])
    def test_beam_conserves_total_column(self, beam_px):
        nh = np.random.default_rng(1).lognormal(np.log(1e21), 1.0, (128, 128))
        smoothed = observe_pixels(nh, beam_px=beam_px, noise=0.0)
        assert smoothed.sum() == pytest.approx(nh.sum(), rel=1e-12)
        assert smoothed.max() < nh.max()

    def test_beam_fwhm_in_pixels(self):
        image = np.zeros((128, 128))
        image[64, 64] = 1.0
        profile = observe_pixels(image, beam_px=10.0, noise=0.0)[64]
        half = profile >= profile.max() / 2
        # 10 px FWHM: 9 or 11 pixel centres above half maximum
        assert half.sum() in (9, 11)

    def test_offset_keeps_columns_positive(self):
        for index in range(20):
            region = simulate_region("fractal", 7, index, width=16)
            assert np.all(np.isfinite(region["log_nh"]))
            assert abs(region["meta"]["offset_cm2"]) <= 3e20


class TestSelfGravity:
    def test_tail_slope_and_mean(self):
        g = np.random.default_rng(0).standard_normal(2_000_000)
        sigma, slope, start = 1.2, 2.0, 1.0
        n = with_tail(g, sigma, slope=slope, start=start)
        assert n.mean() == pytest.approx(1.0, rel=1e-5)
        # The top 5 % of cells lie in the tail, where p(s) ~ exp(-slope s): fit the log of
        # their histogram.
        top = np.sort(np.log(n))[-100_000:]
        counts, edges = np.histogram(top, bins=20, range=(top[0], top[0] + 2.5))
        centres = 0.5 * (edges[1:] + edges[:-1])
        keep = counts > 50
        fitted = -np.polyfit(centres[keep], np.log(counts[keep]), 1)[0]
        assert fitted == pytest.approx(slope, rel=0.1)

    def test_quantile_table(self):
        cdf, s = tail_quantiles(1.0, slope=1.5, start=0.5)
        assert cdf[0] == 0 and cdf[-1] == 1 and np.all(np.diff(cdf) >= 0)
        with pytest.raises(ValueError, match="must be > 1"):
            tail_quantiles(1.0, slope=1.0, start=0.5)


class TestFamilies:
    @pytest.mark.parametrize("family", ["clouds", "fractal"])
    def test_seed_reproduces_region(self, family):
        a = simulate_region(family, 3, 1, width=24)
        b = simulate_region(family, 3, 1, width=24)
        c = simulate_region(family, 3, 2, width=24)
        np.testing.assert_array_equal(a["log_nh"], b["log_nh"])
        np.testing.assert_array_equal(a["log_nm"], b["log_nm"])
        assert a["meta"] == b["meta"] and a["params"] == b["params"]
        assert not np.array_equal(a["log_nm"], c["log_nm"])

    def test_families_use_separate_streams(self):
        clouds = simulate_region("clouds", 0, 0, width=16)
        fractal = simulate_region("fractal", 0, 0, width=16)
        assert clouds["meta"]["uid"] == "clouds:0:0" and fractal["meta"]["uid"] == "fractal:0:0"
        assert clouds["meta"]["beam_px"] != fractal["meta"]["beam_px"]

    def test_fractal_mean_density(self):
        cube, params = fractal_cube(np.random.default_rng(2), width=32)
        assert cube.mean() == pytest.approx(params["n_floor"] + params["n_mean"], rel=1e-4)
        assert cube.shape == (round(params["depth_pc"] / CELL_PC), 32, 32)

    def test_mhd_rescaling_of_a_uniform_snapshot(self):
        region = mhd_region(np.random.default_rng(4), np.ones((8, 16, 8)), (1 / 8, 1 / 16, 1 / 8),
                            width=16)
        params = region["params"]
        np.testing.assert_allclose(region["nh"], params["n_mean"] * params["box_pc"] * PC_CM,
                                   rtol=1e-10)
        np.testing.assert_allclose(region["n_m"], params["n_mean"], rtol=1e-10)

    def test_mhd_layers_along_the_line_of_sight(self):
        # Two layers of 0.5 and 1.5 times the mean along axis 0: seen along that axis,
        # <n>_m = n_mean (0.5^2 + 1.5^2) / 2 = 1.25 n_mean wherever the line of sight falls.
        n_rel = np.ones((2, 2, 2)) * np.array([0.5, 1.5])[:, None, None]
        for seed in range(40):
            region = mhd_region(np.random.default_rng(seed), n_rel, (0.5, 0.5, 0.5), width=8)
            params = region["params"]
            if params["axis"] != 0:
                continue
            np.testing.assert_allclose(region["n_m"], params["n_mean"] * 1.25, rtol=1e-10)
            return
        pytest.fail("no seed chose axis 0")

    @pytest.mark.skipif(not IDEFIX.exists(), reason="needs ../shared/data (IDEFIX snapshot)")
    def test_mhd_family_from_idefix(self):
        pytest.importorskip("yt_idefix")
        region = simulate_region("mhd", 0, 0, source=IDEFIX, width=32)
        assert region["meta"]["family"] == "mhd"
        assert region["params"]["source"].endswith("data.0001.ref.vtk")
        # The snapshot's density contrast is ~8: <n>_m lies within it of the mean.
        ratio = 10 ** region["log_nm"] / region["params"]["n_mean"]
        assert 0.3 < ratio.min() and ratio.max() < 3.0


class TestFamilyFiles:
    def test_family_file_shares_no_cube_with_training(self, tmp_path):
        train = make_dataset(tmp_path / "clouds.h5", n_cubes=3, seed=0)
        other = make_dataset(tmp_path / "fractal.h5", family="fractal", n_cubes=3, seed=0)
        uids_train = set(np.concatenate([load_meta(train, s)["uid"] for s in
                                         ("train", "val", "test")]))
        meta = load_meta(other, "val")
        assert set(meta["family"]) == {"fractal"} and len(meta["uid"]) == 3
        assert not uids_train & set(meta["uid"])
        assert len(load_split(other, "train")[0]) == 0 == len(load_split(other, "test")[0])
        family_maps = load_split(other, "val")[1]
        for split in ("train", "val", "test"):
            for target in load_split(train, split)[1]:
                assert not any(np.array_equal(target, m) for m in family_maps)
        with h5py.File(other) as h5:
            recipe = json.loads(h5.attrs["recipe"])
            assert recipe["family"] == "fractal" and recipe["observation"]["beam_px"] == [0.5, 16]
            assert h5.attrs["format"] == "nhpipe-regions-2"

    def test_describe_ranges(self, run_cli, tmp_path):
        path = make_dataset(tmp_path / "f.h5", family="fractal", n_cubes=4, seed=1)
        status, stdout, err = run_cli("describe-dataset", path, path, "--png", tmp_path / "d.png")
        assert status == 0, err
        meta = load_meta(path, "val")
        line = re.search(r"los_depth_pc: ([\d.]+)\.\.([\d.]+)", stdout)
        assert float(line[1]) == pytest.approx(meta["los_depth_pc"].min(), abs=0.01)
        assert float(line[2]) == pytest.approx(meta["los_depth_pc"].max(), abs=0.01)
        assert re.search(r"beam_px: [\d.]+\.\.[\d.]+", stdout)
        assert re.search(r"noise: [\d.]+\.\.[\d.]+", stdout)
        assert "family: fractal (4)" in stdout and "family: fractal (8)" in stdout
        assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"

    def test_cli_refusals(self, run_cli, tmp_path):
        status, _, err = run_cli("make-dataset", "--family", "mhd", "--n-cubes", "2",
                                 "--out", tmp_path / "m.h5")
        assert status == 2 and "--source" in err and len(err.strip().splitlines()) == 1
        status, _, err = run_cli("make-dataset", "--family", "fractal", "--n-cubes", "2",
                                 "--beam", "18.2", "--out", tmp_path / "f.h5")
        assert status == 2 and "v1 only" in err
        assert not list(tmp_path.iterdir())
