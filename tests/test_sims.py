import json
import re

import h5py
import numpy as np
import pytest
import torch
from astropy.io import fits

from nhpipe.data import RegionDataset, assign_splits, dihedral, load_split, make_dataset, \
    simulate_regions
from nhpipe.errors import InputError
from nhpipe.sims.cloud import CELL_PC, draw_params, gaussian_field, make_cube
from nhpipe.sims.observe import beam_sigma_pixels, observe
from nhpipe.sims.project import project
from nhpipe.sims.readers import DensityCube, read_fits_cube, read_yt
from nhpipe.units import MU_H, PC_CM

from .conftest import SHARED

IDEFIX = SHARED / "idefix_orszagtang3d_mhd" / "data.0001.ref.vtk"


class TestProjection:
    def test_uniform_slab(self):
        cube = np.full((40, 8, 9), 250.0)
        nh, n_m = project(cube, axis=0, cell_pc=0.05)
        np.testing.assert_allclose(nh, 250.0 * 40 * 0.05 * PC_CM, rtol=1e-12)
        np.testing.assert_allclose(n_m, 250.0, rtol=1e-12)

    def test_two_component_column(self):
        # A core n_c over L_c inside a diffuse n_d over L_d (the poster's relation).
        n_c, n_d, cells_c, cells_d, cell = 3.0e5, 150.0, 7, 393, 0.01
        column = np.concatenate([np.full(cells_d // 2, n_d), np.full(cells_c, n_c),
                                 np.full(cells_d - cells_d // 2, n_d)])
        nh, n_m = project(column[:, None, None], axis=0, cell_pc=cell)
        l_c = cells_c * cell * PC_CM
        expected = n_c * (n_d / n_c + (n_c * l_c / nh[0, 0]) * (1 - n_d / n_c))
        assert abs(n_m[0, 0] / expected - 1) < 1e-10

    def test_mass_conserved(self):
        cube = make_cube(draw_params(np.random.default_rng(4)), np.random.default_rng(5),
                         shape=(32, 32, 32))
        volume_sum = cube.astype(np.float64).sum() * CELL_PC * PC_CM
        for axis in range(3):
            nh, _ = project(cube, axis=axis, cell_pc=CELL_PC)
            assert nh.sum() == pytest.approx(volume_sum, rel=1e-10)

    def test_non_uniform_cells(self):
        cube = np.array([1.0, 3.0])[:, None, None] * np.ones((2, 2, 2))
        nh, n_m = project(cube, axis=0, cell_pc=[1.0, 2.0])
        np.testing.assert_allclose(nh, 7.0 * PC_CM)
        np.testing.assert_allclose(n_m, (1 + 9 * 2) / 7.0)


class TestGenerator:
    def test_field_statistics(self):
        field = gaussian_field((64, 64, 64), 3.5, np.random.default_rng(0))
        assert field.mean() == pytest.approx(0, abs=1e-5) and field.std() == pytest.approx(1)

    def test_outer_scale_removes_structure_wider_than_it(self):
        # A thin box (8 cells) 64 cells wide: with the outer scale at its depth, the
        # projected map has little power on scales wider than 8 cells, unlike a pure power
        # law driven on the box's width.
        def wide_fraction(k_floor):
            field = gaussian_field((8, 64, 64), 11 / 3, np.random.default_rng(5),
                                   k_floor=k_floor)
            power = np.abs(np.fft.fft2(field.sum(axis=0))) ** 2
            k = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64)))
            return power[(k > 0) & (k < 1 / 8)].sum() / power[k > 0].sum()

        assert wide_fraction(1 / 8) < 0.5 * wide_fraction(0.0)

    def test_lognormal_width(self):
        params = draw_params(np.random.default_rng(1))
        assert params.sigma_ln == pytest.approx(
            np.sqrt(np.log(1 + params.forcing_b**2 * params.mach**2)))

    def test_same_seed_same_regions(self):
        a = simulate_regions(11, 3, beam_arcsec=18.2, noise=0.02)
        b = simulate_regions(11, 3, beam_arcsec=18.2, noise=0.02)
        c = simulate_regions(11, 4)
        np.testing.assert_array_equal(a["log_nh"], b["log_nh"])
        np.testing.assert_array_equal(a["log_nm"], b["log_nm"])
        assert a["params"] == b["params"]
        assert not np.array_equal(a["log_nm"], c["log_nm"])

    def test_beam(self):
        # 18.2" at 400 pc is 0.0353 pc FWHM.
        sigma = beam_sigma_pixels(18.2, pixel_pc=0.0353, distance_pc=400.0)
        assert sigma * 2.3548 == pytest.approx(1.0, rel=1e-3)
        image = np.zeros((64, 64))
        image[32, 32] = 1.0
        smoothed = observe(image, pixel_pc=0.01, distance_pc=400.0, beam_arcsec=18.2)
        assert smoothed.sum() == pytest.approx(1.0)
        assert smoothed.max() < 0.1


class TestDataset:
    def test_splits_by_cube(self, tmp_path):
        path = make_dataset(tmp_path / "d.h5", n_cubes=10, seed=2, workers=2, family="v1")
        cubes = {s: set(load_split(path, s)[2].tolist()) for s in ("train", "val", "test")}
        assert not cubes["train"] & cubes["val"]
        assert not cubes["train"] & cubes["test"]
        assert not cubes["val"] & cubes["test"]
        assert set().union(*cubes.values()) == set(range(10))
        log_nh, log_nm, cube = load_split(path, "train")
        assert log_nh.shape == (3 * len(cubes["train"]), 128, 128)
        # float16 storage keeps 0.002 dex: compare with a direct simulation.
        direct = simulate_regions(2, int(cube[0]))
        np.testing.assert_allclose(log_nm[0], direct["log_nm"][0], atol=2e-3)
        with h5py.File(path) as h5:
            assert json.loads(h5["train/params"][0])["mach"] > 0
            assert json.loads(h5.attrs["recipe"])["n_cubes"] == 10
            assert h5.attrs["nhpipe_version"]

    def test_assign_splits(self):
        labels = assign_splits(100, seed=0)
        assert np.bincount(labels).tolist() == [80, 10, 10]
        assert np.bincount(assign_splits(3, seed=0)).tolist() == [1, 1, 1]

    def test_dihedral_group(self):
        x = torch.arange(12.0).reshape(1, 3, 4)[..., :3]
        images = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
        assert len(images) == 8

    def test_dataset_augments_pairs_alike(self, tmp_path):
        path = make_dataset(tmp_path / "d.h5", n_cubes=3, seed=0, family="v1")
        data = RegionDataset(path, "train", augment=True,
                             generator=torch.Generator().manual_seed(0))
        plain = RegionDataset(path, "train")
        x, y, beam = data[0]
        x0, y0, _ = plain[0]
        assert float(beam) == 0.0  # v1 data without --beam
        assert x.shape == (1, 128, 128)
        ks = [k for k in range(8) if torch.equal(dihedral(x0, k), x)]
        assert ks and torch.equal(dihedral(y0, ks[0]), y)
        cropped = RegionDataset(path, "train", crop=32, generator=torch.Generator())
        xc, yc, _ = cropped[0]
        assert xc.shape == yc.shape == (1, 32, 32)
        assert any(torch.equal(x0[0, r:r + 32, c:c + 32], xc[0]) and
                   torch.equal(y0[0, r:r + 32, c:c + 32], yc[0])
                   for r in range(97) for c in range(97))

    def test_cli(self, run_cli, tmp_path):
        out = tmp_path / "cli.h5"
        status, _, err = run_cli("make-dataset", "--family", "v1", "--n-cubes", "3", "--out", out,
                                 "--quiet")
        assert status == 0, err
        status, stdout, err = run_cli("describe-dataset", out, "--png", tmp_path / "d.png")
        assert status == 0, err
        assert re.search(r"train:\s+3 regions from\s+1 cubes", stdout)
        assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
        status, _, err = run_cli("make-dataset", "--n-cubes", "0", "--out", tmp_path / "z.h5")
        assert status == 2 and not (tmp_path / "z.h5").exists()


class TestReaders:
    def test_fits_cube(self, tmp_path):
        rho = np.random.default_rng(0).uniform(1, 2, (6, 5, 4)) * 1e-21  # g/cm3
        hdu = fits.PrimaryHDU(rho)
        hdu.header["BUNIT"] = "g/cm3"
        for axis, step in zip((1, 2, 3), (0.01, 0.02, 0.04)):
            hdu.header[f"CDELT{axis}"] = step
            hdu.header[f"CUNIT{axis}"] = "pc"
        hdu.writeto(tmp_path / "cube.fits")
        cube = read_fits_cube(tmp_path / "cube.fits")
        assert cube.cell_pc == pytest.approx((0.04, 0.02, 0.01))
        np.testing.assert_allclose(cube.n, rho / (MU_H * 1.67262192e-24), rtol=1e-6)

    def test_fits_cube_bad_unit(self, tmp_path):
        hdu = fits.PrimaryHDU(np.ones((3, 3, 3)))
        hdu.header["BUNIT"] = "K"
        hdu.writeto(tmp_path / "k.fits")
        with pytest.raises(InputError, match="not a number or mass density"):
            read_fits_cube(tmp_path / "k.fits", cell_pc=0.1)

    def test_resample_keeps_mean(self):
        cube = DensityCube(np.random.default_rng(0).uniform(1, 3, (16, 32, 16)).astype(
            np.float32), (0.052, 0.026, 0.052))
        fine = cube.resampled(0.026)
        assert fine.n.shape == (32, 32, 32)
        assert fine.n.mean() == pytest.approx(cube.n.mean(), rel=1e-3)

    @pytest.mark.skipif(not IDEFIX.exists(), reason="needs ../shared/data")
    def test_idefix_snapshot(self):
        pytest.importorskip("yt_idefix")
        box_pc, scale = 3.33, 1.0e3
        cube = read_yt(IDEFIX, box_pc=box_pc, density_cm3=scale)
        # Direct reading of the legacy VTK file: big-endian float32 in (z, y, x) order.
        raw = IDEFIX.read_bytes()
        start = raw.index(b"SCALARS RHO float")
        start = raw.index(b"LOOKUP_TABLE default\n", start) + len(b"LOOKUP_TABLE default\n")
        rho = np.frombuffer(raw, ">f4", count=32 * 64 * 32, offset=start).reshape(32, 64, 32)
        rho = rho.astype(np.float64) * scale
        dx, dy = box_pc / 32, box_pc / 64
        assert cube.n.shape == (32, 64, 32)
        assert cube.cell_pc == pytest.approx((dx, dy, dx))
        # Along x (axis 0 of yt's (x, y, z) array, axis 2 of the file's (z, y, x) array).
        nh, n_m = project(cube.n, axis=0, cell_pc=cube.cell_pc[0])
        nh_np = (rho * dx * PC_CM).sum(axis=2).T
        nm_np = (rho**2).sum(axis=2).T / rho.sum(axis=2).T
        np.testing.assert_allclose(nh, nh_np, rtol=1e-6)
        np.testing.assert_allclose(n_m, nm_np, rtol=1e-6)
        # Along y, where cells are half as deep.
        nh_y, _ = project(cube.n, axis=1, cell_pc=cube.cell_pc[1])
        np.testing.assert_allclose(nh_y, (rho * dy * PC_CM).sum(axis=1).T, rtol=1e-6)
