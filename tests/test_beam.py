"""The map's beam: read from BMAJ/BMIN or --beam, converted to model pixels, checked."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from nhpipe.errors import InputError
from nhpipe.load import load_map
from nhpipe.pipeline import _map_beam
from nhpipe.sims.cloud import CELL_PC
from nhpipe.units import parse_angle_arcsec

CONDITIONED = SimpleNamespace(name="unet", pixel_pc=CELL_PC, beam_range=(0.5, 16.0))
ONE_BEAM = SimpleNamespace(name="powerlaw", pixel_pc=CELL_PC, beam_range=None)


def arcsec_per_model_pixel(distance_pc):
    return CELL_PC / distance_pc * 180 / np.pi * 3600


class TestBeam:
    def test_bmaj_in_degrees_to_model_pixels(self, write_map):
        path = write_map(extra={"BMAJ": 18.2 / 3600, "BMIN": 18.2 / 3600})
        beam_px, source = _map_beam(load_map(path, species="H2"), None, CONDITIONED, 400.0)
        # 18.2" at 400 pc is 0.0353 pc, i.e. 1.357 pixels of 0.026 pc.
        expected = 18.2 / 3600 * np.pi / 180 * 400.0 / CELL_PC
        assert beam_px == pytest.approx(expected, rel=1e-9)
        assert beam_px == pytest.approx(1.357, abs=1e-3)
        assert source == "header BMAJ/BMIN"

    def test_elliptical_beam_is_the_circular_one_of_equal_area(self, write_map):
        path = write_map(extra={"BMAJ": 40 / 3600, "BMIN": 10 / 3600})
        beam_px, _ = _map_beam(load_map(path, species="H2"), None, CONDITIONED, 2000.0)
        assert beam_px == pytest.approx(20.0 / arcsec_per_model_pixel(2000.0), rel=1e-9)

    def test_option_wins_over_header(self, write_map):
        path = write_map()
        beam_px, source = _map_beam(load_map(path, species="H2"), 36.3, CONDITIONED, 400.0)
        assert source == "--beam"
        assert beam_px == pytest.approx(36.3 / arcsec_per_model_pixel(400.0))

    def test_missing_beam_refused_for_conditioned_models(self, write_map):
        cmap = load_map(write_map(extra={"BMAJ": None, "BMIN": None}), species="H2")
        with pytest.raises(InputError, match="no beam.*`beam='18.2arcsec'`"):
            _map_beam(cmap, None, CONDITIONED, 400.0)
        assert _map_beam(cmap, None, ONE_BEAM, 400.0) == (None, None)

    def test_out_of_range_names_the_range(self, write_map):
        # Hi-GAL Fil8's 43.8" at 3 kpc: 24 model pixels.
        cmap = load_map(write_map(extra={"BMAJ": 43.8 / 3600, "BMIN": 43.8 / 3600}),
                        species="H2")
        with pytest.raises(InputError, match=r"outside the 0.5-16 px .*\"") as info:
            _map_beam(cmap, None, CONDITIONED, 3000.0)
        assert "\n" not in str(info.value)

    def test_coarse_beam_warns_for_single_beam_models(self, write_map):
        cmap = load_map(write_map(extra={"BMAJ": 43.8 / 3600, "BMIN": 43.8 / 3600}),
                        species="H2")
        with pytest.warns(UserWarning, match="one beam only"):
            _map_beam(cmap, None, ONE_BEAM, 3000.0)
        sharp = load_map(write_map(name="s.fits", extra={"BMAJ": 18.2 / 3600}), species="H2")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _map_beam(sharp, None, ONE_BEAM, 400.0)  # 1.4 px: no warning

    def test_parse_angle_requires_a_unit(self):
        assert parse_angle_arcsec("18.2arcsec") == pytest.approx(18.2)
        assert parse_angle_arcsec("0.5 arcmin") == pytest.approx(30.0)
        with pytest.raises(InputError, match="needs a unit"):
            parse_angle_arcsec("18.2")
        with pytest.raises(InputError, match="must look like"):
            parse_angle_arcsec("18.2pc")

    def test_cli_refuses_a_map_without_beam(self, run_cli, write_map, tmp_path,
                                            monkeypatch):
        import nhpipe.pipeline as pipeline

        real = pipeline.load_model

        def conditioned(name, **kwargs):
            model = real("powerlaw", **kwargs)
            model.beam_range = (0.5, 16.0)
            return model

        monkeypatch.setattr(pipeline, "load_model", conditioned)
        out = tmp_path / "o.fits"
        bare = write_map(extra={"BMAJ": None, "BMIN": None})
        status, _, err = run_cli("run", bare, "--distance", "400pc", "--species", "H2",
                                 "--out", out)
        assert status == 2 and "--beam" in err and len(err.strip().splitlines()) == 1
        assert not out.exists()
        status, _, err = run_cli("run", write_map(name="b.fits", extra={"BMAJ": None}),
                                 "--distance", "400pc",
                                 "--species", "H2", "--out", out, "--beam", "18.2arcsec",
                                 "--quiet")
        assert status == 0, err
        header = fits.getheader(out, "MEAN")
        assert header["BEAMSRC"] == "--beam"
        assert header["BEAMPX"] == pytest.approx(18.2 / arcsec_per_model_pixel(400.0), abs=1e-4)

