"""The turbulence solver of the ``turb`` validation family and the family's files."""

import json

import h5py
import numpy as np
import pytest

from nhpipe.data import load_meta, make_dataset
from nhpipe.sims.families import simulate_region
from nhpipe.sims.hydro import (TurbulenceConfig, TurbulenceRanges, _Driving, make_snapshots,
                               read_snapshot, snapshot_dir, step, time_step, turbulence_cube)


def _state(rho, velocity):
    return np.concatenate([rho[None], rho[None] * velocity]).astype(np.float64)


class TestSolver:
    def test_uniform_state_at_rest_stays(self):
        state = _state(np.full((8, 8, 8), 2.5), np.zeros((3, 8, 8, 8)))
        np.testing.assert_array_equal(step(state, 0.01, 1 / 8), state)

    def test_mass_and_momentum_are_conserved(self):
        rng = np.random.default_rng(0)
        state = _state(np.exp(rng.normal(0, 0.5, (12, 12, 12))),
                       rng.normal(0, 2.0, (3, 12, 12, 12)))
        totals = state.sum(axis=(1, 2, 3))
        for _ in range(20):
            state = step(state, time_step(state, 1 / 12), 1 / 12)
        np.testing.assert_allclose(state.sum(axis=(1, 2, 3)), totals, rtol=0, atol=1e-9)
        assert state[0].min() > 0

    @pytest.mark.parametrize("axis", [0, 1, 2])
    def test_sound_wave_travels_at_the_sound_speed(self, axis):
        # A right-moving linear wave, delta v = c_s delta rho / rho (c_s = 1): after t = 0.25
        # of a box crossing its profile is the initial one shifted by a quarter box.
        n, eps = 64, 1e-3
        x = (np.arange(n) + 0.5) / n
        shape = [1, 1, 1]
        shape[axis] = n
        grid = [2, 2, 2]
        grid[axis] = n  # the wave is 1-D: two cells across suffice
        profile = np.broadcast_to(np.sin(2 * np.pi * x).reshape(shape), grid)
        velocity = np.zeros((3, *grid))
        velocity[axis] = eps * profile
        state = _state(1 + eps * profile, velocity)
        t = 0.0
        while t < 0.25 - 1e-12:
            dt = min(time_step(state, 1 / n), 0.25 - t)
            state, t = step(state, dt, 1 / n), t + dt
        expected = 1 + eps * np.sin(2 * np.pi * (x - 0.25)).reshape(shape)
        assert np.max(np.abs(state[0] - expected)) < 0.03 * eps  # 1 % off in speed: 0.06


class TestDriving:
    def test_forcing_is_solenoidal_with_unit_rms(self):
        field = _Driving(16, np.random.default_rng(1), correlation_time=0.1).field()
        assert np.sqrt(np.mean(np.sum(field.astype(np.float64) ** 2, axis=0))) == \
            pytest.approx(1.0, rel=1e-5)
        k = np.fft.fftfreq(16, 1 / 16)
        spectra = [np.fft.fftn(field[a]) for a in range(3)]
        grids = np.meshgrid(k, k, k, indexing="ij")
        divergence = sum(g * s for g, s in zip(grids, spectra))
        power = sum(np.abs(s) ** 2 for s in spectra)
        assert np.sum(np.abs(divergence) ** 2) < 1e-10 * np.sum(power)

    def test_driven_box_reaches_its_mach_number(self):
        rho, info = turbulence_cube(np.random.default_rng(2),
                                    TurbulenceConfig(n=16, mach=4.0, turnovers=2.0))
        assert rho.shape == (16, 16, 16) and rho.dtype == np.float32
        assert rho.mean() == pytest.approx(1.0, rel=1e-5) and rho.min() > 0
        assert 3.0 < info["mach_rms"] < 5.0
        # Supersonic: a broad density PDF (sigma of ln rho well above the subsonic ~0).
        assert info["sigma_s"] > 0.5


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("turb")
    ranges = TurbulenceRanges(n=12, n_snapshots=2, mach=(3.0, 5.0), turnovers=1.0)
    return root, make_snapshots(root, seed=0, ranges=ranges)


class TestFamily:
    def test_snapshots_are_fits_cubes_with_their_run(self, snapshots):
        root, paths = snapshots
        assert [p.parent for p in paths] == [snapshot_dir(root, 0)] * 2
        rho, cells = read_snapshot(paths[0])
        assert rho.shape == (12, 12, 12) and cells == (1 / 12,) * 3
        from astropy.io import fits

        header = fits.getheader(paths[1])
        assert header["SNAPSHOT"] == 1 and 3.0 <= header["MACHGOAL"] <= 5.0
        assert header["ORIGIN"] == "nhpipe.sims.hydro.turbulence_cube"

    def test_existing_snapshots_are_reused(self, snapshots):
        root, paths = snapshots
        stamps = [p.stat().st_mtime_ns for p in paths]
        again = make_snapshots(root, seed=0, ranges=TurbulenceRanges(
            n=12, n_snapshots=2, mach=(3.0, 5.0), turnovers=1.0))
        assert again == paths and [p.stat().st_mtime_ns for p in paths] == stamps

    def test_region_is_reproducible_and_a_view_of_a_snapshot(self, snapshots):
        root, _ = snapshots
        folder = snapshot_dir(root, 0)
        a = simulate_region("turb", 0, 3, source=folder, width=16)
        b = simulate_region("turb", 0, 3, source=folder, width=16)
        np.testing.assert_array_equal(a["log_nm"], b["log_nm"])
        assert a["params"]["kind"] == "turb" and a["meta"]["uid"] == "turb:0:3"
        assert a["params"]["source"].startswith(str(folder))
        assert np.all(np.isfinite(a["log_nm"]))
        assert a["meta"]["los_depth_pc"] == a["params"]["box_pc"]

    def test_dataset_records_its_snapshots(self, snapshots, tmp_path):
        root, _ = snapshots
        # The folder's two small snapshots are reused; the default ranges ask for eight,
        # so run the family's data set on a copy holding all eight names.
        import shutil

        folder = snapshot_dir(tmp_path / "turb", 0)
        folder.mkdir(parents=True)
        source = snapshot_dir(root, 0)
        for k in range(TurbulenceRanges.n_snapshots):
            shutil.copy(source / f"snapshot_{k % 2:02d}.fits", folder / f"snapshot_{k:02d}.fits")
        out = make_dataset(tmp_path / "turb.h5", family="turb", n_cubes=3, seed=0,
                           source=tmp_path / "turb")
        meta = load_meta(out, "val")
        assert set(meta["family"]) == {"turb"} and len(meta["uid"]) == 3
        with h5py.File(out) as h5:
            recipe = json.loads(h5.attrs["recipe"])
        assert recipe["generator"] == "nhpipe.sims.hydro" and len(recipe["snapshots"]) == 8
        assert recipe["box"]["box_pc"] == [1.0, 30.0]

    def test_cli_refuses_a_source_that_is_not_a_folder(self, run_cli, tmp_path):
        (tmp_path / "file.txt").write_text("not a folder")
        status, _, err = run_cli("make-dataset", "--family", "turb", "--n-cubes", "2",
                                 "--out", tmp_path / "t.h5", "--source", tmp_path / "file.txt")
        assert status == 2 and "cannot keep the turbulence snapshots" in err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "t.h5").exists()

    def test_cli_refuses_turb_without_source(self, run_cli, tmp_path):
        status, _, err = run_cli("make-dataset", "--family", "turb", "--n-cubes", "2",
                                 "--out", tmp_path / "t.h5")
        assert status == 2 and "--source" in err and len(err.strip().splitlines()) == 1
        assert not list(tmp_path.iterdir())
