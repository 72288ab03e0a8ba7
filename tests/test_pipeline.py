import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from nhpipe.summarise import STATISTICS

from nhpipe.models import models_dir

from .conftest import HIGAL8, PERSEUS

MODELS = models_dir()

HDUS = list(STATISTICS) + ["NH", "COVERAGE"]


def open_checked(path):
    hdul = fits.open(path)
    hdul.verify("exception")
    assert [h.name for h in hdul[1:]] == HDUS
    for hdu in hdul[1:]:
        assert WCS(hdu.header).has_celestial
        assert "BUNIT" in hdu.header
        for key in ("NHPVERS", "MODEL", "MODELSHA", "NSAMPLES", "SEED", "DISTPC",
                    "SPECIES", "INFILE", "INSHA256", "DATE", "NHPCMD"):
            assert key in hdu.header, key
    return hdul


class TestRun:
    @pytest.mark.parametrize("kind", ["plain", "rotated", "flipped", "galactic"])
    def test_input_grid(self, run_cli, write_map, tmp_path, kind):
        path = write_map((90, 110), kind=kind, pixel_arcsec=4.0)
        out = tmp_path / "res.fits"
        status, stdout, stderr = run_cli("run", path, "--distance", "400pc", "--species", "H2",
                                         "--samples", "4", "--out", out, "--quiet")
        assert status == 0, stderr
        hdul = open_checked(out)
        header_in = fits.getheader(path)
        for hdu in hdul[1:]:
            assert hdu.data.shape == (90, 110)
            w_out, w_in = WCS(hdu.header), WCS(header_in)
            np.testing.assert_allclose(w_out.wcs.crval, w_in.wcs.crval)
            np.testing.assert_allclose(w_out.pixel_scale_matrix, w_in.pixel_scale_matrix)
        np.testing.assert_allclose(hdul["NH"].data, 2 * fits.getdata(path), rtol=1e-6)
        assert np.isfinite(hdul["MEAN"].data).all()
        assert (hdul["Q16"].data <= hdul["Q50"].data + 1e-6).all()
        assert (hdul["Q50"].data <= hdul["Q84"].data + 1e-6).all()
        coverage = hdul["COVERAGE"].data
        assert (coverage >= 1).all() and np.array_equal(coverage, np.rint(coverage))
        assert hdul["MEAN"].header["BUNIT"] == "dex(cm-3)"
        # Every image HDU loads in astropy with its unit.
        import astropy.units as u
        from astropy.nddata import CCDData

        for hdu in hdul[1:]:
            u.Unit(hdu.header["BUNIT"])
            assert CCDData.read(out, hdu=hdu.name).unit == u.Unit(hdu.header["BUNIT"])
        assert hdul["NH"].header["BUNIT"] == "cm-2"

    def test_model_grid_and_seed(self, run_cli, write_map, tmp_path):
        path = write_map((90, 110), pixel_arcsec=3.0)
        outs = []
        for name in ("a.fits", "b.fits"):
            out = tmp_path / name
            status, _, err = run_cli("run", path, "--distance", "400pc", "--species", "H2",
                                     "--output-grid", "model", "--seed", "3", "--out", out,
                                     "--quiet")
            assert status == 0, err
            outs.append(open_checked(out))
        scale = proj_plane_pixel_scales(WCS(outs[0]["MEAN"].header))
        np.testing.assert_allclose(scale, np.degrees((3.33 / 128) / 400.0), rtol=1e-6)
        np.testing.assert_array_equal(outs[0]["Q84"].data, outs[1]["Q84"].data)

    def test_width_model_exact(self, run_cli, write_map, tmp_path):
        path = write_map((60, 60), data=np.full((60, 60), 1.5e21))
        out = tmp_path / "w.fits"
        status, _, err = run_cli("run", path, "--distance", "400pc", "--species", "H2",
                                 "--model", "width", "--out", out, "--quiet")
        assert status == 0, err
        expected = np.log10(3e21 / (0.1 * 3.0856775814913673e18))
        np.testing.assert_allclose(fits.getdata(out, "MEAN"), expected, rtol=1e-6)
        np.testing.assert_allclose(fits.getdata(out, "STD"), 0.0, atol=1e-6)

    def test_overwrite(self, run_cli, write_map, tmp_path):
        path = write_map((40, 40))
        out = tmp_path / "o.fits"
        args = ["run", path, "--distance", "400pc", "--species", "H2", "--out", out, "--quiet"]
        assert run_cli(*args)[0] == 0
        assert run_cli(*args)[0] == 2
        assert run_cli(*args, "--overwrite")[0] == 0
        assert not list(tmp_path.glob(".o.fits*"))


@pytest.mark.skipif(not PERSEUS.exists(), reason="needs ../shared/data")
class TestRealMaps:
    def test_perseus_b5(self, run_cli, tmp_path):
        out = tmp_path / "perB5.fits"
        status, _, err = run_cli("run", PERSEUS, "--distance", "300pc", "--species", "H2",
                                 "--beam", "36.3arcsec",
                                 "--samples", "8", "--out", out, "--quiet")
        assert status == 0, err
        hdul = open_checked(out)
        data_in = fits.getdata(PERSEUS)
        header_in = fits.getheader(PERSEUS)
        mean = hdul["MEAN"].data
        assert mean.shape == data_in.shape
        assert WCS(hdul["MEAN"].header).to_header_string() == \
            WCS(header_in).celestial.to_header_string()
        # Every valid input pixel has an estimate; blanks stay blank.
        assert np.array_equal(np.isfinite(mean), np.isfinite(data_in))
        assert 1.0 < np.nanmedian(mean) < 5.0

    def test_higal_two_hdus_galactic(self, run_cli, tmp_path):
        out = tmp_path / "fil8.fits"
        status, _, err = run_cli("run", HIGAL8, "--distance", "700pc", "--species", "H2",
                                 "--samples", "4", "--out", out, "--quiet")
        assert status == 0, err
        hdul = open_checked(out)
        assert WCS(hdul["MEAN"].header).wcs.ctype[0].startswith("GLON")
        data_in = fits.getdata(HIGAL8)
        assert np.array_equal(np.isfinite(hdul["MEAN"].data), np.isfinite(data_in))


@pytest.mark.skipif(not PERSEUS.exists(), reason="needs ../shared/data")
@pytest.mark.parametrize("model", ["unet", "cinn", "ddpm"])
def test_shipped_networks_on_perseus(run_cli, tmp_path, model):
    out = tmp_path / f"{model}.fits"
    status, _, err = run_cli("run", PERSEUS, "--distance", "300pc", "--species", "H2",
                             "--beam", "36.3arcsec",
                             "--model", model, "--samples", "4", "--out", out, "--quiet")
    assert status == 0, err
    hdul = open_checked(out)
    mean, data_in = hdul["MEAN"].data, fits.getdata(PERSEUS)
    assert np.array_equal(np.isfinite(mean), np.isfinite(data_in))
    card = __import__("json").loads((MODELS / f"{model}.json").read_text())
    assert hdul["MEAN"].header["MODELSHA"] == card["sha256"]
    # The card's recalibration, applied to the samples, is written beside them.
    assert hdul["MEAN"].header["CALOFFS"] == pytest.approx(card["config"]["offset"], abs=1e-12)
    assert hdul["MEAN"].header["CALSPRD"] == pytest.approx(card["config"]["spread"], rel=1e-12)
    from nhpipe.calibrate import from_header, same_calibration
    assert same_calibration(from_header(hdul[0].header), card["config"])
    # Perseus B5 is a Gould Belt cloud: <n_H>_m of 10 to 1e5 cm-3.
    assert 1.0 < np.nanmin(mean) and np.nanmax(mean) < 5.5
    assert (hdul["STD"].data[np.isfinite(mean)] > 0).all()


@pytest.mark.parametrize("kind, beam_arcsec, distance_pc, pixel_arcsec", [
    ("plain", 18.2, 400, 3.0),        # HGBS-like
    ("galactic", 36.3, 2000, 11.5),   # Hi-GAL-like
])
def test_survey_like_maps_with_shipped_unet(run_cli, write_map, tmp_path, kind, beam_arcsec,
                                            distance_pc, pixel_arcsec):
    path = write_map((64, 72), kind=kind, pixel_arcsec=pixel_arcsec,
                     extra={"BMAJ": beam_arcsec / 3600, "BMIN": beam_arcsec / 3600})
    out = tmp_path / "res.fits"
    status, _, err = run_cli("run", path, "--distance", f"{distance_pc}pc", "--species", "H2",
                             "--model", "unet", "--samples", "4", "--out", out, "--quiet")
    assert status == 0, err
    header = fits.getheader(out, "MEAN")
    pixel_arcsec_model = header["PIXPC"] / distance_pc * 206264.806
    if "BEAMPX" in header:  # beam-conditioned weights record the beam they were given
        assert header["BEAMSRC"] == "header BMAJ/BMIN"
        assert header["BEAMPX"] == pytest.approx(beam_arcsec / pixel_arcsec_model, rel=1e-3)
    assert np.isfinite(fits.getdata(out, "MEAN")).all()
