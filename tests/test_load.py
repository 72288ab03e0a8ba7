import numpy as np
import pytest
from astropy.io import fits

from nhpipe.errors import InputError
from nhpipe.load import NhpipeWarning, load_map
from nhpipe.units import parse_column_unit, parse_distance

from .conftest import make_header


class TestUnits:
    @pytest.mark.parametrize(
        "bunit, scale",
        [("cm-2", 1.0), ("cm^-2", 1.0), ("cm^(-2)", 1.0), ("1/cm2", 1.0), ("cm**-2", 1.0),
         ("1/cm^2", 1.0), ("10^21 cm-2", 1e21), ("1e21 cm-2", 1e21), ("10**21 cm**-2", 1e21),
         ("m-2", 1e-4)],
    )
    def test_spellings(self, bunit, scale):
        got, species = parse_column_unit(bunit)
        assert got == pytest.approx(scale)
        assert species is None

    def test_species_inside_bunit(self):
        assert parse_column_unit("cm-2 (H2)") == (1.0, "H2")

    @pytest.mark.parametrize("bunit", ["MJy/sr", "K km/s", "nonsense-unit"])
    def test_unknown_bunit(self, bunit):
        with pytest.raises(InputError, match="not a column density"):
            parse_column_unit(bunit)

    @pytest.mark.parametrize("text, pc", [("400pc", 400), ("400 pc", 400), ("0.4kpc", 400),
                                          (300, 300), ("2e4pc", 2e4)])
    def test_distance(self, text, pc):
        assert parse_distance(text) == pytest.approx(pc)

    @pytest.mark.parametrize("text", ["-5pc", "0pc", "far", "12 km/s", None, "0.3", "1e3",
                                      "3 lyr", "1e-3pc", "1e9pc", "30kpc"])
    def test_bad_distance(self, text):
        with pytest.raises(InputError, match="distance"):
            parse_distance(text)


class TestLoad:
    def test_h2_doubled(self, write_map):
        path = write_map()
        raw = fits.getdata(path)
        cmap = load_map(path, species="H2")
        np.testing.assert_allclose(cmap.nh, 2 * raw)
        assert cmap.species == "H2"
        assert cmap.sha256 and len(cmap.sha256) == 64

    def test_h_kept(self, write_map):
        path = write_map(bunit="10^21 cm-2", data=np.full((40, 40), 3.0))
        np.testing.assert_allclose(load_map(path, species="H").nh, 3e21)

    def test_species_from_header(self, write_map):
        assert load_map(write_map(extra={"BTYPE": "N(H2)"})).species == "H2"

    def test_species_required(self, write_map):
        with pytest.raises(InputError, match="`species='H2'`"):
            load_map(write_map())

    def test_degenerate_third_axis(self, tmp_path):
        header = make_header((30, 40))
        header["NAXIS"] = 3
        path = tmp_path / "cube1.fits"
        data = np.full((1, 30, 40), 1e21)
        hdu = fits.PrimaryHDU(data, header=header)
        hdu.header["CTYPE3"] = "FREQ"
        hdu.writeto(path)
        cmap = load_map(path, species="H2")
        assert cmap.nh.shape == (30, 40)
        assert cmap.wcs.naxis == 2

    def test_second_hdu_by_name(self, tmp_path):
        header = make_header((20, 20))
        path = tmp_path / "two.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.full((20, 20), 5e21), header,
                                                       name="COLDENS")]).writeto(path)
        assert load_map(path, hdu="COLDENS", species="H").nh[0, 0] == 5e21
        assert load_map(path, species="H").nh[0, 0] == 5e21  # first 2-D image found

    def test_in_memory_forms(self):
        header = make_header((20, 20))
        data = np.full((20, 20), 1e21)
        from astropy.wcs import WCS
        a = load_map((data, WCS(header)), species="H", bunit="cm-2")
        b = load_map(fits.ImageHDU(data, header), species="H")
        np.testing.assert_array_equal(a.nh, b.nh)
        with pytest.raises(InputError, match="input must be"):
            load_map([1, 2, 3], species="H")

    def test_minority_nonpositive_masked_with_warning(self, write_map):
        data = np.full((40, 40), 1e21)
        data[:5] = -1.0
        with pytest.warns(NhpipeWarning, match="masked"):
            cmap = load_map(write_map(data=data), species="H")
        assert np.isnan(cmap.nh[:5]).all() and np.isfinite(cmap.nh[5:]).all()
