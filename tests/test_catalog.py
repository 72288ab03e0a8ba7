import json

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table
from regions import Regions

from nhpipe import correction
from nhpipe.cores import CatalogueColumns, CorrectionOptions, core_coordinates, correct_catalog, \
    draw_from_quantiles, read_catalog, write_outputs
from nhpipe.errors import InputError
from nhpipe.load import NhpipeWarning
from nhpipe.units import PC_CM
from nhpipe._write import Plane, write_planes

from .conftest import SHARED, make_header

ORION = SHARED / "hgbs_orionB_core_catalog" / "HGBS_orionb_derived_core_catalog.txt"
LOG_NM = np.log10(3e3)


class TestCorrection:
    @pytest.fixture
    def columns(self):
        rng = np.random.default_rng(0)
        n_c = 10 ** rng.uniform(3.5, 6, 500)
        n_d = 10 ** rng.uniform(1, 3, 500)
        l_c = rng.uniform(0.02, 0.2, 500) * PC_CM
        l_d = rng.uniform(1, 20, 500) * PC_CM
        nh = n_c * l_c + n_d * l_d
        n_m = (n_c**2 * l_c + n_d**2 * l_d) / nh
        return n_c, n_d, l_c, l_d, nh, n_m

    def test_a3_recovers_core(self, columns):
        n_c, n_d, l_c, l_d, nh, n_m = columns
        got, reason = correction.core_density_ld(nh, n_m, l_c, l_d)
        assert (reason == correction.OK).all()
        np.testing.assert_allclose(got, n_c, rtol=1e-9)

    def test_a4_recovers_core(self, columns):
        n_c, n_d, l_c, l_d, nh, n_m = columns
        got, reason = correction.core_density_nd(nh, n_m, l_c, n_d)
        assert (reason == correction.OK).all()
        np.testing.assert_allclose(got, n_c, rtol=1e-9)

    def test_limits(self):
        nh, n_m, l_c = 3e22, 2e4, 0.1 * PC_CM
        limit = np.sqrt(n_m * nh / l_c)
        assert correction.core_density_ld(nh, n_m, l_c, np.inf)[0] == pytest.approx(limit)
        assert correction.core_density_nd(nh, n_m, l_c, 0.0)[0] == pytest.approx(limit)
        assert correction.core_density_ld(nh, n_m, l_c, 1e9 * PC_CM)[0] == \
            pytest.approx(limit, rel=1e-4)
        assert correction.core_density_nd(nh, n_m, l_c, 1e-6)[0] == pytest.approx(limit,
                                                                                rel=1e-6)

    def test_vectorised_equals_scalar(self, columns):
        n_c, n_d, l_c, l_d, nh, n_m = columns
        vec, _ = correction.core_density_ld(nh, n_m, l_c, l_d)
        for i in range(0, 500, 50):
            scalar, reason = correction.core_density_ld(nh[i], n_m[i], l_c[i], l_d[i])
            assert scalar == vec[i] and reason == 0

    def test_inconsistent_inputs_flagged(self):
        l_c, l_d = 0.1 * PC_CM, 10 * PC_CM
        value, reason = correction.core_density_ld(1e22, 10.0, l_c, l_d)
        assert np.isnan(value) and reason == correction.NEGATIVE_DISCRIMINANT
        value, reason = correction.core_density_nd(1e20, 1e5, l_c, 1e3)
        assert np.isnan(value) and reason == correction.CORE_EXCEEDS_COLUMN
        value, reason = correction.core_density_ld(np.nan, 1e3, l_c, l_d)
        assert reason == correction.INVALID_INPUT
        # No diffuse parameter (a core whose surroundings are blank, --nd local).
        for value, reason in (correction.core_density_nd(3e22, 2e4, l_c, np.nan),
                              correction.core_density_ld(3e22, 2e4, l_c, np.nan)):
            assert np.isnan(value) and reason == correction.INVALID_INPUT

    def test_taper(self):
        assert correction.taper(1e5, 1e4, 1e20, nh_taper=1e23) == pytest.approx(1e5, rel=1e-5)
        assert correction.taper(1e5, 1e4, 1e26, nh_taper=1e23) == pytest.approx(1e4, rel=1e-5)


class TestReaders:
    @pytest.mark.skipif(not ORION.exists(), reason="needs ../shared/data")
    def test_every_orion_row(self):
        table = read_catalog(ORION)
        lines = ORION.read_text(encoding="utf-8").splitlines()
        data_lines = [line for line in lines if not line.startswith("|")][4:]
        assert len(table) == len([line for line in data_lines if line.strip()]) == 1844
        assert table["no"].tolist() == list(range(1, 1845))
        coords = core_coordinates(table, CatalogueColumns())
        assert (coords.ra.deg > 84).all() and (coords.ra.deg < 90).all()
        assert (coords.dec.deg > -4.5).all() and (coords.dec.deg < 4.5).all()
        assert table["r_obs"].unit == "pc"
        assert set(table["core_type"]) == {1, 2, 3}
        assert (table["comment"] == "tentative bound").sum() == 251

    @pytest.mark.skipif(not ORION.exists(), reason="needs ../shared/data")
    def test_malformed_row(self, tmp_path):
        lines = ORION.read_text(encoding="utf-8").splitlines()
        data = [i for i, line in enumerate(lines) if not line.startswith("|")][4:]
        bad = data[10]
        lines[bad] = lines[bad].replace("05:", "xx:", 1)
        path = tmp_path / "bad.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(InputError, match=f"line {bad + 1} is malformed"):
            read_catalog(path)

    def test_other_formats(self, tmp_path):
        table = Table({"name": ["a", "b"], "ra": [85.4, 85.5], "dec": [-1.9, -2.0],
                       "r_obs": [0.05, 0.04], "n_h2_ave_obs": [2.0, 3.0]})
        table["r_obs"].unit = "pc"
        table["n_h2_ave_obs"].unit = "1e4 cm-3"
        for suffix, fmt in ((".ecsv", "ascii.ecsv"), (".fits", "fits"), (".xml", "votable"),
                            (".mrt", "ascii.mrt")):
            path = tmp_path / f"cat{suffix}"
            table.write(path, format=fmt)
            back = read_catalog(path)
            assert list(back["ra"]) == pytest.approx([85.4, 85.5])
            coords = core_coordinates(back, CatalogueColumns())
            assert coords[0].dec.deg == pytest.approx(-1.9)


def _nhpipe_file(path, shape=(200, 200), nh=2e22, blank_cols=0, log_nm=LOG_NM,
                 spread=(-0.4, -0.2, 0.0, 0.2, 0.4)):
    header = make_header(shape, pixel_arcsec=3.0)
    from astropy.wcs import WCS

    planes = [Plane("NH", np.full(shape, nh), "cm-2", "")]
    spread = dict(zip(["Q02_5", "Q16", "Q50", "Q84", "Q97_5"], spread))
    for name, offset in spread.items():
        planes.append(Plane(name, np.full(shape, log_nm + offset), "dex(cm-3)", ""))
    if blank_cols:
        for p in planes:
            p.data[:, :blank_cols] = np.nan
    write_planes(path, planes, WCS(header), {})
    return path


def _sharp_and_extended_cores(path, ra, dec):
    """An nhpipe file with two cores of R = 0.03 pc (5.2 pixels at 400 pc) at the first
    two positions: a sharp-edged disc (envelope ratio ~0) and one flat out to 2R (ratio
    ~1), both 2e22 cm-2 over a 2e21 floor; any further position is on no excess."""
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS

    shape = (200, 200)
    wcs = WCS(make_header(shape, pixel_arcsec=3.0))
    x, y = wcs.world_to_pixel(SkyCoord(ra, dec, unit="deg"))
    r_pix = 0.03 / 400 * 206264.806 / 3.0
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    nh = np.full(shape, 2e21)
    for i, reach in enumerate([1.0, 2.0]):
        nh[np.hypot(xx - x[i], yy - y[i]) <= reach * r_pix] += 2e22
    return _nhpipe_file(path, shape=shape, nh=nh)


def _cores(ra, dec):
    table = Table({"name": [f"c{i}" for i in range(len(ra))], "ra": ra, "dec": dec,
                   "r_obs": np.full(len(ra), 0.03), "r_deconv": np.full(len(ra), 0.02),
                   "n_h2_ave_obs": np.full(len(ra), 5.0), "mass": np.full(len(ra), 1.0),
                   "core_type": np.full(len(ra), 2), "alpha_be": np.full(len(ra), 1.0),
                   "comment": [""] * len(ra)})
    table["r_obs"].unit = table["r_deconv"].unit = "pc"
    table["n_h2_ave_obs"].unit = "1e4 cm-3"
    table["mass"].unit = "Msun"
    return table


class TestApply:
    def test_constant_map(self, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits", blank_cols=60)
        # centre, blank part, far outside
        cores = _cores([85.5, 85.5 + 0.075, 80.0], [-1.0, -1.0, 5.0])
        # Fixed model parameters: the intervals are the exact transforms of the quantiles.
        options = CorrectionOptions(distance_pc=400.0, l_d_pc=10.0, lc_spread=0, ld_dex=0)
        result, draws = correct_catalog(cores, path, options)
        assert list(result["status"]) == ["ok", "masked", "outside"]
        assert result["nh_ap"][0] == pytest.approx(2e22)
        assert result["log_nm_q50"][0] == pytest.approx(LOG_NM)
        expected, _ = correction.core_density_ld(2e22, 3e3, 0.06 * PC_CM, 10 * PC_CM)
        assert result["nc_med"][0] == pytest.approx(expected, rel=0.03)
        assert result["nc_lo68"][0] < result["nc_med"][0] < result["nc_hi68"][0]
        assert result["nc_lo95"][0] < result["nc_lo68"][0]
        assert np.isnan(result["nc_med"][2]) and result["reason"][2] == -1
        assert result["nc_med"].unit == "cm-3"
        paths = write_outputs(result, tmp_path / "out", draws=draws)
        back = Table.read(paths[".ecsv"])
        assert back["nc_med"].unit == "cm-3" and len(back) == 3
        assert len(Table.read(paths[".fits"])) == 3
        regions = Regions.read(paths[".reg"], format="ds9")
        # DS9 green is the default colour, which regions leaves out when reading back.
        assert [r.visual.get("edgecolor", "green") for r in regions] == ["green", "yellow",
                                                                        "yellow"]
        assert "color=yellow" in paths[".reg"].read_text()
        # A flat map: no core stands above its background, so the solved ones are dashed.
        assert regions[0].meta["tag"] == ["ok", "low_contrast"]
        assert regions[0].visual["linestyle"] == "dashed"
        for key in ("_fig10.png", "_cmf.png"):
            assert paths[key].read_bytes()[:4] == b"\x89PNG"

    def test_filters_keep_rows(self, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        cores = _cores([85.5, 85.5], [-1.0, -1.0])
        cores["core_type"][1] = 3
        options = CorrectionOptions(distance_pc=400.0, n_d=100.0, types=(2,))
        result, draws = correct_catalog(cores, path, options)
        assert list(result["status"]) == ["ok", "filtered"]

    def test_no_core_inside(self, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        with pytest.warns(NhpipeWarning, match="no core"):
            result, draws = correct_catalog(_cores([10.0], [10.0]), path,
                                     CorrectionOptions(distance_pc=400.0, l_d_pc=10.0))
        assert list(result["status"]) == ["outside"]
        write_outputs(result, tmp_path / "empty", draws=draws)

    def test_parameter_priors_widen_the_interval(self, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        cores = _cores([85.5], [-1.0])
        widths = []
        for lc_spread, ld_dex in ((0.0, 0.0), (0.25, 0.3), (0.5, 0.6)):
            result, draws = correct_catalog(cores, path, CorrectionOptions(
                distance_pc=400.0, l_d_pc=10.0, lc_spread=lc_spread, ld_dex=ld_dex, seed=3))
            assert result["status"][0] == "ok"
            widths.append(np.log10(result["nc_hi68"][0] / result["nc_lo68"][0]))
            assert result.meta["ld_dex"] == ld_dex
        assert widths[0] < widths[1] < widths[2]

    def test_quantile_draws_gaussian(self):
        from scipy.special import ndtri

        q = np.array([ndtri(p) for p in (0.025, 0.16, 0.5, 0.84, 0.975)])[:, None] * 0.3 + 2
        draws = draw_from_quantiles(q, np.random.default_rng(0).standard_normal((200000, 1)))
        assert draws.mean() == pytest.approx(2.0, abs=0.003)
        assert draws.std() == pytest.approx(0.3, rel=0.01)

    def test_cli(self, run_cli, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        cores = _cores([85.5], [-1.0])
        cores.write(tmp_path / "cores.ecsv")
        status, out, err = run_cli("catalog", path, tmp_path / "cores.ecsv", "--distance",
                                   "400pc", "--ld", "10pc", "--out", tmp_path / "res")
        assert status == 0, err
        assert "1 ok" in out and (tmp_path / "res.ecsv").exists()
        assert "A.3 (L_d prescribed); model-error term: none (no card of None)" in out
        status, out, err = run_cli("catalog", path, tmp_path / "cores.ecsv", "--distance",
                                   "400pc", "--nd", "local", "--out", tmp_path / "local")
        assert status == 0, err
        assert "A.4 (n_d of each core's surroundings); model-error term: none" in out
        assert "drawn with correlation 0 (no card of None)" in out
        status, out, err = run_cli("catalog", path, tmp_path / "cores.ecsv", "--distance",
                                   "400pc", "--nd", "local", "--nd-correlation", "0.7",
                                   "--out", tmp_path / "given")
        assert status == 0 and "drawn with correlation 0.7 (given)" in out, err
        status, _, err = run_cli("catalog", path, tmp_path / "cores.ecsv", "--distance",
                                 "400pc", "--ld", "10pc", "--nd-correlation", "0.7",
                                 "--out", tmp_path / "refused")
        assert status == 2 and "--nd-correlation is for --nd local only" in err
        assert len(err.strip().splitlines()) == 1
        assert not list(tmp_path.glob("refused*"))
        from astropy.table import Table

        table = Table.read(tmp_path / "local.ecsv")
        assert table["log_nm_around"].unit == u.dex(u.cm**-3) and table["nc_med"][0] > 0
        # The FITS copy keeps the logarithmic units too (FITS has no dex: written as text).
        from astropy.io import fits

        header = fits.getheader(tmp_path / "local.fits", 1)
        units = {header[f"TTYPE{i}"]: header.get(f"TUNIT{i}")
                 for i in range(1, header["TFIELDS"] + 1)}
        assert units["log_nm_around"] == units["log_nm_q50"] == "dex(cm-3)"
        assert units["log_ratio"] == "dex" and units["nc_med"] == "cm-3"
        status, _, err = run_cli("catalog", path, tmp_path / "cores.ecsv", "--distance",
                                 "400pc", "--out", tmp_path / "res2")
        assert status == 2 and "--ld" in err and len(err.strip().splitlines()) == 1

    def test_density_unit_not_a_density(self, run_cli, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        cores = _cores([85.5], [-1.0])
        cores["n_h2_ave_obs"].unit = "pc"
        cores.write(tmp_path / "c.ecsv")
        status, _, err = run_cli("catalog", path, tmp_path / "c.ecsv", "--distance", "400pc",
                                 "--ld", "10pc", "--out", tmp_path / "res")
        assert status == 2 and "not a number density" in err and "--col-density" in err
        status, _, err = run_cli("catalog", path, tmp_path / "c.ecsv", "--distance", "400pc",
                                 "--ld", "10pc", "--out", tmp_path / "res", "--col-ra", "RAJ")
        assert status == 2 and "--col-ra" in err

    def test_types_checked_against_the_column(self, run_cli, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        _cores([85.5], [-1.0]).write(tmp_path / "c.ecsv")
        status, _, err = run_cli("catalog", path, tmp_path / "c.ecsv", "--distance", "400pc",
                                 "--ld", "10pc", "--out", tmp_path / "res", "--types", "7")
        assert status == 2 and "no core has these types" in err and "[2]" in err

    def test_never_overwrites_its_input_catalogue(self, run_cli, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        _cores([85.5], [-1.0]).write(tmp_path / "c.ecsv")
        before = (tmp_path / "c.ecsv").read_bytes()
        status, _, err = run_cli("catalog", path, tmp_path / "c.ecsv", "--distance", "400pc",
                                 "--ld", "10pc", "--out", tmp_path / "c", "--overwrite")
        assert status == 2 and "is an input" in err
        assert (tmp_path / "c.ecsv").read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ecsv", "map.fits"]

    def test_outputs_all_or_nothing(self, tmp_path, monkeypatch):
        import nhpipe.cores._report as catalog

        path = _nhpipe_file(tmp_path / "map.fits")
        result, draws = correct_catalog(_cores([85.5], [-1.0]), path,
                                 CorrectionOptions(distance_pc=400.0, l_d_pc=10.0))
        (tmp_path / "out.ecsv").write_text("old")

        def broken(*args):
            raise RuntimeError("disk full while plotting")

        monkeypatch.setattr(catalog, "_plot_cmf", broken)
        with pytest.raises(RuntimeError):
            write_outputs(result, tmp_path / "out", overwrite=True, draws=draws)
        assert (tmp_path / "out.ecsv").read_text() == "old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["map.fits", "out.ecsv"]


def test_run_with_catalog(run_cli, write_map, tmp_path):
    path = write_map((120, 120), pixel_arcsec=3.0)
    _cores([85.5, 85.51], [-1.0, -1.0]).write(tmp_path / "cores.ecsv")
    out = tmp_path / "res.fits"
    status, stdout, err = run_cli("run", path, "--distance", "400pc", "--species", "H2",
                                  "--out", out, "--quiet", "--catalog", tmp_path / "cores.ecsv",
                                  "--ld", "10pc")
    assert status == 0, err
    table = Table.read(tmp_path / "res_cores.ecsv")
    assert list(table["status"]) == ["ok", "ok"]
    assert np.isfinite(table["nc_med"]).all()
    status, _, err = run_cli("run", path, "--distance", "400pc", "--species", "H2", "--out",
                             tmp_path / "x.fits", "--catalog", tmp_path / "cores.ecsv")
    assert status == 2 and "--ld" in err and not (tmp_path / "x.fits").exists()


class TestBadRows:
    """A bad row is kept as 'invalid' with its reason; it never crashes the job."""

    def test_bad_rows_flagged(self, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        cores = _cores([85.5, 85.5, 85.5, 85.5, 85.5], [-1.0, 95.0, -1.0, -1.0, -1.0])
        cores["r_obs"][2] = -0.03
        cores["r_obs"][3] = 1e6
        cores["r_obs"][4] = np.nan
        with pytest.warns(UserWarning, match="4 catalogue rows are invalid"):
            result, draws = correct_catalog(cores, path, CorrectionOptions(distance_pc=400.0,
                                                                   l_d_pc=10.0))
        assert list(result["status"]) == ["ok", "invalid", "invalid", "invalid", "invalid"]
        assert list(result["invalid_reason"]) == ["", "position", "radius", "radius", "radius"]
        paths = write_outputs(result, tmp_path / "out", draws=draws)
        assert Table.read(paths[".ecsv"])["status"][1] == "invalid"

    def test_unparsable_sexagesimal_and_blank_density(self, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        cores = _cores([85.5, 85.5], [-1.0, -1.0])
        cores["ra"] = ["05:42:00.0", "xx:42:00"]
        cores["dec"] = ["-01:00:00", "-01:00:00"]
        cores["n_h2_ave_obs"] = np.ma.masked_array([5.0, 5.0], mask=[True, False])
        cores["n_h2_ave_obs"].unit = "1e4 cm-3"
        with pytest.warns(UserWarning, match="1 catalogue rows are invalid"):
            result, draws = correct_catalog(cores, path, CorrectionOptions(distance_pc=400.0,
                                                                   l_d_pc=10.0))
        assert result["invalid_reason"][1] == "position"
        # A blank catalogued density stays blank: no 0, no infinite ratio.
        assert np.isnan(result["n_cat_h"][0]) and not np.isfinite(result["log_ratio"][0])


def test_non_ascii_names_and_no_name_column(tmp_path):
    path = _nhpipe_file(tmp_path / "map.fits")
    cores = _cores([85.5, 85.5], [-1.0, -1.0])
    cores["name"] = ["c\u0153ur-1", "\u6838-2"]
    result, draws = correct_catalog(cores, path, CorrectionOptions(distance_pc=400.0, l_d_pc=10.0))
    paths = write_outputs(result, tmp_path / "out", draws=draws)
    assert list(Table.read(paths[".ecsv"])["name"]) == ["c\u0153ur-1", "\u6838-2"]
    assert len(Table.read(paths[".fits"])) == 2
    del cores["name"]
    result, draws = correct_catalog(cores, path, CorrectionOptions(distance_pc=400.0, l_d_pc=10.0))
    write_outputs(result, tmp_path / "anon", draws=draws)


class TestModelErrorTerm:
    """The empirical model-error term of the core correction, and the mocks it is fitted on."""

    def test_term_shifts_and_widens_exactly(self, tmp_path):
        path = _nhpipe_file(tmp_path / "map.fits")
        cores = _cores([85.5, 85.5005], [-1.0, -1.0003])
        base = CorrectionOptions(distance_pc=400.0, l_d_pc=10.0, lc_spread=0, ld_dex=0,
                                 model_offset_dex=0.0, model_scatter_dex=0.0)
        plain, _ = correct_catalog(cores, path, base)
        from dataclasses import replace

        shifted, _ = correct_catalog(cores, path, replace(base, model_offset_dex=0.2))
        # Monte-Carlo percentiles of the quantile draws, moved by exactly 0.2 dex.
        np.testing.assert_allclose(np.log10(shifted["nc_med"] / plain["nc_med"]), 0.2,
                                   atol=0.02)
        wide, _ = correct_catalog(cores, path, replace(base, model_scatter_dex=0.3))
        width = np.log10(wide["nc_hi68"] / wide["nc_lo68"])
        assert (width > np.log10(plain["nc_hi68"] / plain["nc_lo68"]) + 0.4).all()
        assert wide.meta["model_scatter_dex"] == 0.3

    def test_refused_values(self, tmp_path):
        from nhpipe.api import correction_options

        with pytest.raises(InputError, match="`model_scatter` must be a number of dex"):
            correction_options(400.0, ld="10pc", model_scatter=-0.1)
        with pytest.raises(InputError, match="`model_offset` must be a number of dex"):
            correction_options(400.0, ld="10pc", model_offset=float("nan"))

    @pytest.mark.parametrize("profile", ["plummer", "sphere"])
    def test_mock_holds_the_catalogued_mass(self, profile):
        """The mock map carries each core's mass (N_H summed over its pixels, minus the
        cloud's), and the catalogue's true density is that mass inside R_obs."""
        from astropy.table import Table

        from nhpipe.sims.coremock import add_cores, draw_cores, true_density
        from nhpipe.sims.cores import mean_density
        from nhpipe.sims.observe import tan_wcs
        from nhpipe.units import MU_H, PC_CM

        rng = np.random.default_rng(0)
        cores = draw_cores(3, rng, size_deg=0.05)
        cores["mass"] = [0.5, 1.0, 2.0]
        nh = np.zeros((100, 100))
        wcs = tan_wcs(nh.shape, pixel_arcsec=3.0)
        inside = add_cores(nh, wcs, cores, profile)
        assert inside.all()
        pixel_cm = 3.0 / 206264.806 * 400.0 * PC_CM
        from astropy.constants import M_sun, m_p

        mass = nh.sum() * pixel_cm**2 * MU_H * m_p.cgs.value / M_sun.cgs.value
        # Plummer cores are truncated at 2 R_obs and hold their mass inside R_obs: more in all.
        expected = 3.5 if profile == "sphere" else None
        if expected is not None:
            assert mass == pytest.approx(expected, rel=0.02)
        else:
            assert mass > 3.5
        np.testing.assert_allclose(
            true_density(Table(cores)),
            mean_density(np.asarray(cores["mass"]), np.asarray(cores["r_obs"]) * PC_CM))


    def test_mock_cores_follow_the_hgbs_radius_convention(self):
        """R_obs^2 = R_deconv^2 + HPBW^2 (18.2" at 400 pc), as in the HGBS catalogues."""
        from nhpipe.sims.coremock import draw_cores

        cores = draw_cores(200, np.random.default_rng(3))
        hpbw_pc = 18.2 / 206264.806 * 400.0
        np.testing.assert_allclose(np.asarray(cores["r_obs"]) ** 2
                                   - np.asarray(cores["r_deconv"]) ** 2, hpbw_pc**2)
        assert 0.02 < np.median(cores["r_deconv"]) < 0.04
        assert 0.1 < np.median(cores["mass"]) < 0.4

    def test_mock_catalogues_only_cores_that_stand_out(self):
        """A core far below the cloud's fluctuations is in the map but not catalogued."""
        from nhpipe.sims.coremock import draw_cores, make_mock

        cores = draw_cores(2, np.random.default_rng(0), size_deg=0.1)
        cores["mass"] = [20.0, 1e-4]
        hdu, found = make_mock("sphere", seed=2, cores=cores, size_deg=0.1)
        assert list(found["name"]) == [cores["name"][0]]
        faint_in_map, everything = make_mock("sphere", seed=2, cores=cores, size_deg=0.1,
                                             detect=False)
        assert len(everything) == 2 and np.array_equal(faint_in_map.data, hdu.data)

    @pytest.mark.parametrize("profile", ["plummer", "sphere"])
    def test_mock_core_at_the_map_edge(self, profile):
        """A core whose profile runs off the map's far corner adds what falls inside."""
        from nhpipe.sims.coremock import add_cores, draw_cores
        from nhpipe.sims.observe import tan_wcs

        wcs = tan_wcs((100, 100), pixel_arcsec=3.0)
        cores = draw_cores(1, np.random.default_rng(0))
        corner = wcs.pixel_to_world(98.0, 98.0)
        cores["ra"], cores["dec"] = [corner.ra.deg], [corner.dec.deg]
        nh = np.zeros((100, 100))
        assert add_cores(nh, wcs, cores, profile).all()
        assert nh[98, 98] == nh.max() > 0 and nh[0, 0] == 0

    @pytest.mark.parametrize("cloud", ["turbulent", "fractal", "driven"])
    def test_mock_clouds_are_hgbs_maps_with_their_cores(self, cloud, monkeypatch):
        from nhpipe.sims import coremock
        from nhpipe.sims.coremock import make_mock

        monkeypatch.setattr(coremock, "DRIVEN_CELLS", 16)  # a quick turbulence run
        hdu, cores = make_mock("sphere", seed=1, n_cores=5, size_deg=0.1, cloud=cloud,
                               detect=False)
        assert hdu.header["BUNIT"] == "cm-2" and hdu.header["BMAJ"] * 3600 == \
            pytest.approx(18.2)
        assert np.all(np.isfinite(hdu.data)) and np.median(hdu.data) > 0
        assert cores.meta["cloud"] == cloud and len(cores) == 5
        other, _ = make_mock("sphere", seed=1, n_cores=5, size_deg=0.1,
                             cloud="fractal" if cloud == "turbulent" else "turbulent")
        assert not np.allclose(other.data, hdu.data)
        with pytest.raises(ValueError, match="cloud one of"):
            make_mock("sphere", cloud="mhd")

    def test_superposed_clumps_add_column_and_catalogue_mass_not_truth(self):
        """The same mock with a clump on each core's line of sight: the map gains exactly
        the clumps' columns (same cloud, cores and noise), the catalogue the clump's share
        of each aperture, 1 - (1 - 1 / 1.5^2)^(3/2) = 58.5 % of its mass, within 0.3-1 x
        the core's; the true densities do not change."""
        from nhpipe.sims.coremock import make_mock
        from nhpipe.sims.cores import mean_density

        alone, cores = make_mock("plummer", seed=3, n_cores=6, size_deg=0.1, detect=False)
        both, confused = make_mock("plummer", seed=3, n_cores=6, size_deg=0.1, detect=False,
                                   superposed=True)
        np.testing.assert_array_equal(confused["n_true_h"], cores["n_true_h"])
        added = np.asarray(confused["mass"]) / np.asarray(cores["mass"]) - 1
        assert np.all((added >= 0.3 * 0.585 - 1e-9) & (added <= 0.585 + 1e-9))
        np.testing.assert_allclose(
            np.asarray(confused["n_h2_ave_obs"]) * 2e4,
            mean_density(np.asarray(confused["mass"]), np.asarray(confused["r_obs"]) * PC_CM),
            rtol=1e-12)
        extra = both.data - alone.data  # the clumps, through the beam
        assert extra.min() > -1e-6 * alone.data.max() and extra.max() > 0
        assert confused.meta["superposed"] and not cores.meta["superposed"]

    def test_dense_positions_follow_the_squared_column(self):
        """All the weight in one block: every core lands in it; a block with a quarter of
        the squared column of another (half its N_H) gets a fifth of the cores."""
        from nhpipe.sims.coremock import dense_positions
        from nhpipe.sims.observe import tan_wcs

        wcs = tan_wcs((100, 100), pixel_arcsec=3.0)
        nh = np.zeros((100, 100))
        nh[40:50, 20:30], nh[60:70, 70:80] = 2.0, 1.0
        ra, dec = dense_positions(nh, wcs, 4000, np.random.default_rng(1))
        x, y = wcs.world_to_pixel_values(ra, dec)
        first = (np.abs(y - 44.5) <= 5.0) & (np.abs(x - 24.5) <= 5.0)
        second = (np.abs(y - 64.5) <= 5.0) & (np.abs(x - 74.5) <= 5.0)
        assert (first | second).all()
        assert second.mean() == pytest.approx(0.2, abs=0.02)
        edge = np.ones((100, 100))  # the field's margin (5 %) stays free
        x, y = wcs.world_to_pixel_values(*dense_positions(edge, wcs, 2000,
                                                          np.random.default_rng(2)))
        assert x.min() >= 4.5 - 1e-6 and x.max() <= 94.5 + 1e-6 and y.min() >= 4.5 - 1e-6

    def test_dense_placement_moves_the_cores_only(self):
        """The same cores (radii, masses, truths) in the same cloud with the same noise,
        elsewhere: the maps differ by the cores alone."""
        from nhpipe.sims.coremock import make_mock

        uniform, cores = make_mock("sphere", seed=4, n_cores=6, size_deg=0.1, detect=False)
        dense, moved = make_mock("sphere", seed=4, n_cores=6, size_deg=0.1, detect=False,
                                 placement="dense")
        for column in ("r_obs", "mass", "n_true_h"):
            np.testing.assert_array_equal(moved[column], cores[column])
        assert not np.allclose(moved["ra"], cores["ra"])
        assert moved.meta["placement"] == "dense" and cores.meta["placement"] == "uniform"
        bare, _ = make_mock("sphere", seed=4, n_cores=6, size_deg=0.1, detect=False,
                            placement="dense")
        np.testing.assert_array_equal(bare.data, dense.data)  # reproducible
        # Far from every core the two maps are the same cloud and noise.
        from astropy.wcs import WCS

        wcs = WCS(dense.header)
        yy, xx = np.mgrid[:dense.data.shape[0], :dense.data.shape[1]]
        far = np.ones(dense.data.shape, bool)
        for table in (cores, moved):
            x, y = wcs.world_to_pixel_values(table["ra"], table["dec"])
            for xi, yi, r in zip(x, y, np.asarray(table["r_obs"]) / 400 * 206264.8 / 3.0):
                far &= np.hypot(xx - xi, yy - yi) > 3 * r + 10
        assert far.sum() > 100
        np.testing.assert_allclose(dense.data[far], uniform.data[far], rtol=1e-6)
        with pytest.raises(ValueError, match="placement must be one of"):
            make_mock("sphere", placement="clustered")
        with pytest.raises(ValueError, match="given cores keep their positions"):
            make_mock("sphere", cores=cores, placement="dense")

    def test_cloud_only_is_the_mock_without_its_cores(self):
        """The bare cloud comes with the same WCS and beam and changes nothing else; the
        mock is that cloud plus the core seen through the beam, plus 2 % noise."""
        from astropy.wcs import WCS

        from nhpipe.sims.coremock import BEAM_ARCSEC, add_cores, make_mock
        from nhpipe.sims.observe import observe

        cores = Table({"name": ["big"], "ra": [85.5], "dec": [-1.0], "r_obs": [0.035],
                       "r_deconv": [0.02], "mass": [30.0], "core_type": [2],
                       "alpha_be": [1.0], "comment": [""]})
        hdu, cat = make_mock("plummer", cores=cores, size_deg=0.1, detect=False)
        same, same_cat, cloud = make_mock("plummer", cores=cores, size_deg=0.1,
                                          detect=False, cloud_only=True)
        np.testing.assert_array_equal(same.data, hdu.data)
        assert list(same_cat["n_true_h"]) == list(cat["n_true_h"])
        for key in ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "BMAJ", "BUNIT"):
            assert cloud.header[key] == hdu.header[key]
        alone = np.zeros(hdu.data.shape)
        add_cores(alone, WCS(hdu.header), cores, "plummer")
        alone = observe(alone, pixel_pc=3.0 / 206264.80624709636 * 400.0,
                        distance_pc=400.0, beam_arcsec=BEAM_ARCSEC, periodic=False)
        mock = np.asarray(hdu.data, float)
        noise = (mock - np.asarray(cloud.data, float) - alone / 2.0) / mock
        assert abs(noise.mean()) < 2e-3 and noise.std() == pytest.approx(0.02, rel=0.05)
        *_, with_truth, cloud_too = make_mock("plummer", cores=cores, size_deg=0.1,
                                              detect=False, true_nm=True, cloud_only=True)
        np.testing.assert_array_equal(cloud_too.data, cloud.data)
        assert with_truth.shape == hdu.data.shape

    def test_plummer_square_column_is_the_integral_of_n_squared(self):
        from scipy.integrate import quad

        from nhpipe.sims.cores import plummer_square_column

        n0, a, r_out = 1e5, 0.01 * PC_CM, 0.08 * PC_CM
        for b in (0.0, 0.005 * PC_CM, 0.05 * PC_CM, 0.09 * PC_CM):
            half = np.sqrt(max(r_out**2 - b**2, 0.0))
            expected = quad(lambda z: (n0 / (1 + (b**2 + z**2) / a**2)) ** 2, -half, half,
                            epsabs=0.0, epsrel=1e-10)[0] if half else 0.0
            assert plummer_square_column(b, n0=n0, a_cm=a, r_out_cm=r_out) == \
                pytest.approx(expected, rel=1e-8, abs=1e-30)

    def test_true_nm_of_a_mock(self):
        """The truth map changes nothing else, and where a dense uniform sphere dominates the
        column, <n_H>_m is its density (the cloud adds a fraction of its column)."""
        from nhpipe.sims.coremock import make_mock
        from nhpipe.sims.cores import mean_density

        cores = Table({"name": ["big"], "ra": [85.5], "dec": [-1.0], "r_obs": [0.035],
                       "r_deconv": [0.02], "mass": [30.0], "core_type": [2],
                       "alpha_be": [1.0], "comment": [""]})
        hdu, cat = make_mock("sphere", cores=cores, size_deg=0.1, detect=False)
        same, _, log_nm = make_mock("sphere", cores=cores, size_deg=0.1, detect=False,
                                    true_nm=True)
        np.testing.assert_array_equal(same.data, hdu.data)
        assert log_nm.shape == hdu.data.shape and np.isfinite(log_nm).all()
        centre = log_nm[log_nm.shape[0] // 2, log_nm.shape[1] // 2]
        n_sphere = mean_density(30.0, 0.02 * PC_CM)
        assert np.log10(n_sphere) - 0.05 < centre <= np.log10(n_sphere)
        assert np.median(log_nm) < np.log10(n_sphere) - 2  # the cloud away from it

    def test_driven_cloud_has_a_larson_column(self, monkeypatch):
        # Mean N_H of the 3.33 pc deep box: Larson's n_H(3.33 pc) times the depth, within
        # the +-0.5 dex scatter (five faint cores and 2 % noise add little).
        from nhpipe.grid import PIXEL_PC
        from nhpipe.sims import coremock
        from nhpipe.sims.fractal import larson_density
        from nhpipe.units import PC_CM

        monkeypatch.setattr(coremock, "DRIVEN_CELLS", 16)
        depth_pc = 128 * PIXEL_PC
        expected = larson_density(depth_pc) * depth_pc * PC_CM / 2  # N(H2)
        for seed in range(3):
            hdu, _ = coremock.make_mock("sphere", seed=seed, n_cores=5, size_deg=0.1,
                                        cloud="driven", detect=False)
            assert -0.5 <= np.log10(hdu.data.mean() / expected) <= 0.55


class TestEnvelope:
    """A core's contrast (over its background) and envelope ratio (background-subtracted
    N_H in R-2R over that inside R)."""

    def _ratio(self, excess_out_to):
        from astropy.coordinates import SkyCoord
        from astropy.wcs import WCS

        from nhpipe.cores import core_profile

        shape = (121, 121)
        header = make_header(shape, pixel_arcsec=3.0)
        y, x = np.mgrid[: shape[0], : shape[1]]
        # A core of radius R = 10 pixels (30"): excess 1e22 out to `excess_out_to` R.
        b = np.hypot(x - 60, y - 60) / 10.0
        nh = 2e21 + 1e22 * (b <= excess_out_to)
        wcs = WCS(header)
        centre = SkyCoord(*wcs.wcs.crval, unit="deg")
        return core_profile(nh, np.zeros(shape, bool), centre, 30 * u.arcsec, wcs)

    def test_sharp_edged_and_extended_cores(self):
        # Excess 1e22 over a 2e21 background: contrast 5 wherever the excess fills R (to
        # the pixelisation of a disc 10 pixels wide).
        for reach, envelope in ((1.0, 0.0), (2.0, 1.0), (1.5, (1.5**2 - 1) / 3)):
            contrast, ratio = self._ratio(reach)
            assert contrast == pytest.approx(5.0, rel=0.03)
            assert ratio == pytest.approx(envelope, abs=0.03)
        assert np.isnan(self._ratio(-1.0)).all()                    # no core above background

    def test_columns_of_correct_catalog(self, tmp_path):
        ra, dec = [85.5, 85.5, 85.5], [-1.0, -1.03, -1.06]
        path = _sharp_and_extended_cores(tmp_path / "map.fits", ra, dec)
        table, _ = correct_catalog(_cores(ra, dec), path,
                                   CorrectionOptions(distance_pc=400.0, l_d_pc=10.0,
                                                     model_offset_dex=0.0,
                                                     model_scatter_dex=0.0))
        envelope = np.asarray(table["envelope"])
        assert envelope[0] < 0.1 and envelope[1] > 0.9 and np.isnan(envelope[2])
        # 2e22 over 2e21 inside R for both (the flat core's background annulus is clean)
        np.testing.assert_allclose(table["contrast"][:2], 10.0, rtol=0.05)
        assert np.isnan(table["contrast"][2])
        assert list(table["low_contrast"]) == [False, False, True]

    def test_crowding_is_the_share_of_the_annulus_in_other_cores(self, tmp_path):
        """A core ringed by five catalogued neighbours 2.5 R away (R = 0.03 pc, 5.2 px):
        its crowding is the fraction of its annulus 2R-3R inside their apertures, 0 when
        they are not in the catalogue; the measurement itself does not depend on the
        catalogue (the neighbours stay in the annulus)."""
        from astropy.wcs import WCS

        shape = (200, 200)
        wcs = WCS(make_header(shape, pixel_arcsec=3.0))
        r_pix = 0.03 / 400 * 206264.806 / 3.0
        angles = np.radians(np.arange(5) * 72.0)
        x = np.concatenate([[100.0], 100 + 2.5 * r_pix * np.cos(angles)])
        y = np.concatenate([[100.0], 100 + 2.5 * r_pix * np.sin(angles)])
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        nh = np.full(shape, 2e21)
        for cx, cy in zip(x, y):
            nh[np.hypot(xx - cx, yy - cy) <= r_pix] = 2e22
        path = _nhpipe_file(tmp_path / "map.fits", shape=shape, nh=nh)
        annulus = (np.hypot(xx - 100, yy - 100) >= 2 * r_pix) \
            & (np.hypot(xx - 100, yy - 100) <= 3 * r_pix)
        covered = (nh[annulus] > 2e21).mean()   # pixel centres: photutils' 'center' rule
        coords = wcs.pixel_to_world(x, y)
        options = CorrectionOptions(distance_pc=400.0, l_d_pc=10.0, model_offset_dex=0.0,
                                    model_scatter_dex=0.0)
        table, _ = correct_catalog(_cores(coords.ra.deg, coords.dec.deg), path, options)
        alone, _ = correct_catalog(_cores(coords.ra.deg[:1], coords.dec.deg[:1]), path,
                                   options)
        assert table["crowding"][0] == pytest.approx(covered, abs=0.05)
        assert 0.5 < covered < 0.75 and alone["crowding"][0] == 0.0
        # The neighbours' centres are 2.5 R away: none inside an aperture.
        assert not table["blended"].any() and not alone["blended"].any()
        for name in ("nh_background", "contrast", "envelope", "log_nm_around", "log_nm_q50"):
            np.testing.assert_array_equal(table[name][0], alone[name][0])
        # More than half of the annulus is neighbours: its median is theirs.
        assert table["nh_background"][0] == pytest.approx(2e22)


class TestLocalDiffuse:
    """A.4 with the n_d of each core's surroundings (``--nd local``): the median <n_H>_m
    of the annulus 2R-3R around it."""

    def _map(self, folder, spread=(0.0,) * 5):
        from astropy.coordinates import SkyCoord
        from astropy.wcs import WCS

        # A disc of R = 0.03 pc (5.2 pixels) of N_H 3e22 and log <n>_m 4.5 on a floor of
        # 1e22 and 3.0: the annulus 2R-3R sees the floor only.
        shape = (120, 120)
        wcs = WCS(make_header(shape, pixel_arcsec=3.0))
        x, y = wcs.world_to_pixel(SkyCoord(85.5, -1.0, unit="deg"))
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        inside = np.hypot(xx - x, yy - y) <= 0.03 / 400 * 206264.806 / 3.0
        folder.mkdir(exist_ok=True)
        return _nhpipe_file(folder / "map.fits", shape=shape,
                            nh=np.where(inside, 3e22, 1e22),
                            log_nm=np.where(inside, 4.5, 3.0), spread=spread)

    def test_exact_a4_with_the_surroundings_density(self, tmp_path):
        path = self._map(tmp_path)
        options = CorrectionOptions(distance_pc=400.0, n_d="local", lc_spread=0.0,
                                    model_offset_dex=0.0, model_scatter_dex=0.0)
        result, _ = correct_catalog(_cores([85.5], [-1.0]), path, options)
        assert result["log_nm_around"][0] == pytest.approx(3.0)
        assert result["nh_background"][0] == pytest.approx(1e22)
        expected, reason = correction.core_density_nd(
            result["nh_ap"][0], 10**result["log_nm_q50"][0], 0.06 * PC_CM, 1e3)
        assert reason == correction.OK
        assert result["nc_med"][0] == pytest.approx(expected, rel=1e-9)
        assert result.meta["method"] == "A.4 (n_d of each core's surroundings)"
        assert result.meta["n_d_cm3"] == "local"

    def test_the_surroundings_uncertainty_widens_the_interval(self, tmp_path):
        options = CorrectionOptions(distance_pc=400.0, n_d="local", lc_spread=0.0,
                                    model_offset_dex=0.0, model_scatter_dex=0.0)
        cores = _cores([85.5], [-1.0])
        sure, _ = correct_catalog(cores, self._map(tmp_path / "sure"), options)
        unsure, _ = correct_catalog(cores, self._map(tmp_path / "unsure",
                                                     (-0.4, -0.2, 0, 0.2, 0.4)), options)
        width = [np.log10(t["nc_hi68"][0] / t["nc_lo68"][0]) for t in (sure, unsure)]
        assert width[0] == pytest.approx(0.0, abs=1e-9) and width[1] > 0.05

    def test_a_core_without_surroundings_is_not_solved(self, tmp_path):
        # Blank columns over the whole annulus on one side and the core: no local n_d.
        path = _nhpipe_file(tmp_path / "map.fits", shape=(200, 200))
        from astropy.io import fits

        with fits.open(path, mode="update") as hdul:
            for hdu in hdul[1:]:
                if hdu.name in ("Q02_5", "Q16", "Q50", "Q84", "Q97_5"):
                    data = hdu.data
                    yy, xx = np.mgrid[: data.shape[0], : data.shape[1]]
                    data[np.hypot(xx - 99.5, yy - 99.5) > 8] = np.nan
        result, _ = correct_catalog(_cores([85.5], [-1.0]), path, CorrectionOptions(
            distance_pc=400.0, n_d="local", model_offset_dex=0.0, model_scatter_dex=0.0))
        assert result["reason"][0] == correction.INVALID_INPUT
        assert np.isnan(result["nc_med"][0])

    def test_api_accepts_local(self):
        from nhpipe.api import correction_options

        assert correction_options(400.0, nd="local").n_d == "local"
        assert correction_options(400.0, nd="1e3cm-3").n_d == pytest.approx(1e3)
        with pytest.raises(InputError, match="nd"):
            correction_options(400.0, nd="nearby")
        assert correction_options(400.0, nd="local", nd_correlation=0.5).nd_correlation == 0.5
        with pytest.raises(InputError, match="`nd_correlation` is for `nd='local'` only"):
            correction_options(400.0, ld="10pc", nd_correlation=0.5)
        with pytest.raises(InputError, match="`nd_correlation` must be .* at most 1"):
            correction_options(400.0, nd="local", nd_correlation=1.5)

    def test_correlated_errors_narrow_the_interval(self, tmp_path):
        """A faint core: n_c rests on the difference of the <n_H>_m inside and around
        it, so drawing the two independently (rho 0) widens its interval; drawn together
        (rho 1), every draw moves both the same number of standard deviations."""
        path = _nhpipe_file(tmp_path / "map.fits", shape=(200, 200),
                            nh=np.full((200, 200), 1e22), log_nm=np.full((200, 200), 3.0),
                            spread=(-0.4, -0.2, 0, 0.2, 0.4))
        from astropy.io import fits

        with fits.open(path, mode="update") as hdul:  # a core 0.1 dex denser than around
            yy, xx = np.mgrid[:200, :200]
            inside = np.hypot(xx - 99.5, yy - 99.5) <= 0.03 / 400 * 206264.806 / 3.0
            for hdu in hdul[1:]:
                if hdu.name == "NH":
                    hdu.data[inside] = 1.3e22
                elif hdu.name.startswith("Q"):
                    hdu.data[inside] += 0.1
        widths = {}
        for rho in (0.0, 0.5, 1.0):
            options = CorrectionOptions(distance_pc=400.0, n_d="local", lc_spread=0.0,
                                        nd_correlation=rho, model_offset_dex=0.0,
                                        model_scatter_dex=0.0)
            result, _ = correct_catalog(_cores([85.5], [-1.0]), path, options)
            assert result.meta["nd_correlation"] == f"{rho:g} (given)"
            widths[rho] = np.log10(result["nc_hi68"][0] / result["nc_lo68"][0])
        assert widths[0.0] > widths[0.5] > widths[1.0] > 0

    def test_correlation_from_the_card_at_the_cores_separation(self, tmp_path):
        import nhpipe
        from nhpipe.cards import read_card
        from nhpipe.cores import SEPARATION, local_correlation, map_card
        from nhpipe.grid import PIXEL_PC
        from nhpipe.models import models_dir

        from .conftest import beam_hdu

        entry = read_card(models_dir() / "unet")["error_correlation"]
        path = tmp_path / "unet.fits"
        nhpipe.estimate(beam_hdu((48, 40)), distance="400pc", species="H2", model="unet",
                        samples=4).writeto(path)
        radius = np.array([0.01, 0.05, 10.0])
        rho, source = local_correlation(CorrectionOptions(distance_pc=400.0, n_d="local"),
                                        map_card(path), radius)
        np.testing.assert_allclose(rho, np.interp(SEPARATION * radius / PIXEL_PC,
                                                  entry["lag_px"], entry["rho"]))
        assert rho[2] == entry["rho"][-1] and rho[0] > rho[1]
        assert source == f"{rho.min():.2f}-{rho.max():.2f} (card of unet, at 2.5 R)"
        rho, source = local_correlation(CorrectionOptions(distance_pc=400.0, l_d_pc=10.0),
                                        map_card(path), radius)
        assert source is None and not rho.any()
        from nhpipe.cores import between_cores_correlation

        shared, source = between_cores_correlation(
            CorrectionOptions(distance_pc=400.0, l_d_pc=10.0), map_card(path))
        assert shared == {"lag_px": entry["lag_px"], "rho": entry["rho"]}
        assert source == (f"{entry['rho'][0]:.2f} at 1 px to {entry['rho'][-1]:.2f} at "
                          f"{entry['lag_px'][-1]} px and beyond (card of unet)")


def test_profile_term_by_bin():
    from nhpipe.cores import profile_term

    term = {"envelope_edges": [0.2, 0.4], "contrast_edges": [1.0],
            "offset_dex": [[0.3, 0.2], [0.1, 0.0], [-0.1, -0.2]],
            "scatter_dex": [[0.0, 0.05], [0.1, 0.15], [0.3, 0.35]]}
    envelope = [0.1, 0.3, 0.5, 0.5, np.nan, 0.3]
    contrast = [0.5, 0.5, 0.5, 2.0, 2.0, np.nan]
    offset, scatter = profile_term(envelope, contrast, term, 0.05, 0.25)
    np.testing.assert_allclose(offset, [0.3, 0.1, -0.1, -0.2, 0.05, 0.05])
    np.testing.assert_allclose(scatter, [0.0, 0.1, 0.3, 0.35, 0.25, 0.25])
    offset, scatter = profile_term([0.1, np.nan], [1.0, 1.0], None, 0.05, 0.2)
    np.testing.assert_allclose(offset, [0.05, 0.05])
    # A blended core gets the blended term whatever its bins (known or not); a card
    # without one (older) leaves it its bins' term.
    blended = [True, False, False, False, True, False]
    offset, scatter = profile_term(envelope, contrast, term, 0.05, 0.25, blended)
    np.testing.assert_allclose(offset, [0.3, 0.1, -0.1, -0.2, 0.05, 0.05])
    term["blended"] = {"offset_dex": -0.3, "scatter_dex": 0.5}
    offset, scatter = profile_term(envelope, contrast, term, 0.05, 0.25, blended)
    np.testing.assert_allclose(offset, [-0.3, 0.1, -0.1, -0.2, -0.3, 0.05])
    np.testing.assert_allclose(scatter, [0.5, 0.1, 0.3, 0.35, 0.5, 0.25])


def test_profile_width_by_bin():
    from nhpipe.cores import profile_width
    from nhpipe.cores._correct import spread_about_median

    term = {"envelope_edges": [0.5], "contrast_edges": [1.0],
            "offset_dex": [[0.0, 0.0], [0.0, 0.0]], "scatter_dex": [[0.0, 0.0], [0.0, 0.0]]}
    envelope, contrast = [0.1, 0.9, 0.9, np.nan], [2.0, 0.5, 2.0, 2.0]
    # A term without widths (every card so far) keeps the draws' spread.
    np.testing.assert_array_equal(profile_width(envelope, contrast, term), 1.0)
    term["width"] = [[0.9, 0.8], [0.7, 0.6]]
    np.testing.assert_allclose(profile_width(envelope, contrast, term), [0.8, 0.7, 0.6, 1.0])
    term["blended"] = {"offset_dex": 0.0, "scatter_dex": 0.3, "width": 1.0}
    np.testing.assert_allclose(profile_width(envelope, contrast, term,
                                             [False, True, False, False]),
                               [0.8, 1.0, 0.6, 1.0])
    # Spread about the median in log: the median stays, every deviation scales.
    draws = np.array([[3.0, 4.0], [4.0, np.nan], [5.0, 6.0]])
    out = spread_about_median(draws, np.array([0.5, 1.0]))
    np.testing.assert_allclose(out[:, 0], [3.5, 4.0, 4.5])
    np.testing.assert_allclose(out[[0, 2], 1], [4.0, 6.0])
    assert np.isnan(out[1, 1])


def test_profile_width_narrows_the_interval_in_correct_catalog(tmp_path):
    """Through the code path of `nhpipe catalog`: with L_c's prior as the only spread, a
    width of 0.5 halves the 68 % interval in log and keeps the median."""
    from dataclasses import replace

    ra, dec = [85.5, 85.5], [-1.0, -1.03]
    path = _sharp_and_extended_cores(tmp_path / "map.fits", ra, dec)
    zero = [[0.0, 0.0], [0.0, 0.0]]
    term = {"envelope_edges": [0.5], "contrast_edges": [1.0], "offset_dex": zero,
            "scatter_dex": zero}
    base = CorrectionOptions(distance_pc=400.0, l_d_pc=10.0, ld_dex=0.0,
                             model_offset_dex=0.0, model_scatter_dex=0.0,
                             model_profile_term=term)
    wide, _ = correct_catalog(_cores(ra, dec), path, base)
    narrow, _ = correct_catalog(_cores(ra, dec), path, replace(
        base, model_profile_term={**term, "width": [[0.5, 0.5], [0.5, 0.5]]}))

    def log_width(t):
        return np.log10(t["nc_hi68"] / t["nc_lo68"])

    assert np.all(log_width(wide) > 0.01)
    np.testing.assert_allclose(log_width(narrow), 0.5 * log_width(wide), rtol=0.02)
    # (1000 draws: the median is the mean of the two middle ones, in linear n_c)
    np.testing.assert_allclose(narrow["nc_med"], wide["nc_med"], rtol=1e-5)


def test_profile_term_moves_each_core_by_its_bin(tmp_path):
    """A sharp-edged core (ratio ~0) and an extended one (ratio ~1), both of contrast 10,
    get their own bin's offset."""
    from dataclasses import replace

    ra, dec = [85.5, 85.5], [-1.0, -1.03]
    path = _sharp_and_extended_cores(tmp_path / "map.fits", ra, dec)
    base = CorrectionOptions(distance_pc=400.0, l_d_pc=10.0, model_offset_dex=0.0,
                             model_scatter_dex=0.0)
    plain, _ = correct_catalog(_cores(ra, dec), path, base)
    term = {"envelope_edges": [0.5], "contrast_edges": [1.0],
            "offset_dex": [[0.5, 0.2], [0.5, -0.1]], "scatter_dex": [[0.0, 0.0], [0.0, 0.0]]}
    moved, _ = correct_catalog(_cores(ra, dec), path, replace(base, model_profile_term=term))
    np.testing.assert_allclose(np.log10(moved["nc_med"] / plain["nc_med"]), [0.2, -0.1],
                               atol=1e-9)
    assert '"contrast_edges": [1.0]' in moved.meta["model_profile_term"]


def test_profile_term_gives_blended_cores_their_own(tmp_path):
    """A third core 1" from the sharp one's centre blends both: they get the blended
    term, the extended core keeps its bin's."""
    from dataclasses import replace

    ra, dec = [85.5, 85.5, 85.5], [-1.0, -1.03, -1.0003]
    path = _sharp_and_extended_cores(tmp_path / "map.fits", ra, dec)
    base = CorrectionOptions(distance_pc=400.0, l_d_pc=10.0, model_offset_dex=0.0,
                             model_scatter_dex=0.0)
    plain, _ = correct_catalog(_cores(ra, dec), path, base)
    term = {"envelope_edges": [0.5], "contrast_edges": [1.0],
            "offset_dex": [[0.5, 0.2], [0.5, -0.1]], "scatter_dex": [[0.0, 0.0], [0.0, 0.0]],
            "blended": {"offset_dex": -0.4, "scatter_dex": 0.0}}
    moved, draws = correct_catalog(_cores(ra, dec), path,
                                   replace(base, model_profile_term=term))
    assert list(moved["blended"]) == [True, False, True]
    np.testing.assert_allclose(np.log10(moved["nc_med"] / plain["nc_med"])[:2], [-0.4, -0.1],
                               atol=1e-9)
    # DS9 gets the flag as a tag, to select or hide the blended cores.
    regions = Regions.read(write_outputs(moved, tmp_path / "out", draws=draws)[".reg"],
                           format="ds9")
    assert ["blended" in r.meta["tag"] for r in regions] == [True, False, True]


class TestModelTermFromCard:
    """Without --model-offset/--model-scatter the term comes from the card of the model
    that made the map, and only when the map's MODELSHA is that card's weights."""

    def _map(self, tmp_path, model):
        import nhpipe

        from .conftest import beam_hdu

        hdul = nhpipe.estimate(beam_hdu((48, 40)),
                               distance="400pc", species="H2", model=model, samples=4)
        path = tmp_path / f"{model}.fits"
        hdul.writeto(path)
        return path

    def test_card_term_used_and_recorded(self, tmp_path):
        from nhpipe.cards import read_card
        from nhpipe.cores import profile_term
        from nhpipe.cores._correct import TERM_SCOPE
        from nhpipe.models import models_dir

        terms = read_card(models_dir() / "unet")["core_terms"]
        term = next(t for t in terms if t["method"] == "A.3 L_d=10pc")
        path = self._map(tmp_path, "unet")
        cores = _cores([85.5, 85.5005], [-1.0, -1.0003])
        options = CorrectionOptions(distance_pc=400.0, l_d_pc=10.0)
        result, _ = correct_catalog(cores, path, options)
        assert result.meta["model_offset_dex"] == term["offset_dex"]
        assert result.meta["model_term"] == \
            f"card of unet: A.3 L_d=10pc, {term['fitted_on']}; {TERM_SCOPE}"
        assert "placed uniformly" in result.meta["model_term"]
        assert "mock cores" in term["fitted_on"]
        from dataclasses import replace

        off, _ = correct_catalog(cores, path, replace(options, model_offset_dex=0.0,
                                                      model_scatter_dex=0.0))
        assert off.meta["model_term"] == "given"
        shift = np.log10(result["nc_med"] / off["nc_med"])
        expected, _ = profile_term(result["envelope"], result["contrast"],
                                   term.get("by_profile"), term["offset_dex"],
                                   term["scatter_dex"], result["blended"])
        np.testing.assert_allclose(shift, expected, atol=0.03)

    def test_a_map_recalibrated_otherwise_gets_no_term(self, tmp_path):
        from astropy.io import fits

        from nhpipe.cards import read_card
        from nhpipe.models import models_dir

        fitted = read_card(models_dir() / "unet")["core_terms"][0]["map_calibration"]
        path = self._map(tmp_path, "unet")
        assert fits.getheader(path)["CALOFFS"] == pytest.approx(fitted["offset"], abs=1e-9)
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["CALOFFS"] = fitted["offset"] - 0.1
        with pytest.warns(UserWarning, match="fitted on maps recalibrated"):
            result, _ = correct_catalog(_cores([85.5], [-1.0]), path,
                                        CorrectionOptions(distance_pc=400.0, l_d_pc=10.0))
        assert result.meta["model_offset_dex"] == 0.0

    def test_a_local_term_holds_for_its_error_correlation_only(self, tmp_path, monkeypatch):
        import shutil

        from nhpipe.cards import read_card, update_card
        from nhpipe.models import models_dir

        path = self._map(tmp_path, "unet")
        options = CorrectionOptions(distance_pc=400.0, n_d="local")
        cores = _cores([85.5], [-1.0])
        result, _ = correct_catalog(cores, path, options)
        assert result.meta["model_term"].startswith("card of unet: A.4 n_d=local")
        # The same weights, their card's correlation measured again (and different).
        folder = tmp_path / "models"
        folder.mkdir()
        for suffix in (".json", ".safetensors"):
            shutil.copy(models_dir() / f"unet{suffix}", folder / f"unet{suffix}")
        entry = read_card(folder / "unet")["error_correlation"]
        update_card(folder / "unet", error_correlation={**entry,
                                                        "rho": [r - 0.1 for r in entry["rho"]]})
        monkeypatch.setenv("NHPIPE_MODELS", str(folder))
        with pytest.warns(UserWarning, match="fitted with another error_correlation"):
            result, _ = correct_catalog(cores, path, options)
        assert result.meta["model_offset_dex"] == 0.0
        assert result.meta["nd_correlation"].endswith("(card of unet, at 2.5 R)")

    @pytest.mark.parametrize("changes, method", [
        ({"l_d_pc": 20.0}, "A.3 L_d=20pc"),
        ({"l_d_pc": 10.0, "lc_factor": 1.5}, "A.3 L_d=10pc"),
        ({"n_d": 1e3}, "A.4 n_d=1000cm-3"),
    ])
    def test_a_term_holds_for_its_method_and_priors_only(self, tmp_path, changes, method):
        path = self._map(tmp_path, "unet")
        with pytest.warns(UserWarning, match=f"no core term fitted for {method} with"):
            result, _ = correct_catalog(_cores([85.5], [-1.0]), path,
                                        CorrectionOptions(distance_pc=400.0, **changes))
        assert result.meta["model_offset_dex"] == 0.0
        assert result.meta["model_term"].startswith("none (unet has no core term")

    def test_other_weights_get_no_term_and_a_warning(self, tmp_path):
        from astropy.io import fits

        path = self._map(tmp_path, "unet")
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["MODELSHA"] = "0" * 64
        cores = _cores([85.5], [-1.0])
        with pytest.warns(UserWarning, match="not the installed ones"):
            result, _ = correct_catalog(cores, path,
                                        CorrectionOptions(distance_pc=400.0, l_d_pc=10.0))
        assert result.meta["model_offset_dex"] == 0.0
        baseline = self._map(tmp_path, "powerlaw")
        with pytest.warns(UserWarning, match="powerlaw is an analytic baseline"):
            result, _ = correct_catalog(cores, baseline,
                                        CorrectionOptions(distance_pc=400.0, l_d_pc=10.0))
        assert result.meta["model_offset_dex"] == 0.0


def test_catalog_summary_counts_low_contrast_cores():
    from nhpipe.cli._maps import _catalog_summary

    table = Table({"status": ["ok", "ok", "inconsistent"], "low_contrast": [True, False, True],
                   "blended": [False, True, True], "neighbour_dominated": [True, True, True],
                   "log_ratio": [0.1, 0.3, np.nan]})
    text = _catalog_summary(table)
    assert text.startswith("3 cores: 1 inconsistent, 2 ok")
    assert "\n1 ok cores have low contrast" in text and "median +0.200" in text
    assert "\n1 ok cores have another catalogued core's centre inside" in text
    assert "\n2 ok cores have an aperture excess that their catalogued neighbours" in text
    table["low_contrast"] = False
    table["blended"] = False
    table["neighbour_dominated"] = False
    text = _catalog_summary(table)
    assert "low contrast" not in text and "blended" not in text and "neighbours" not in text


def test_joint_draws_keep_each_cores_density_and_share_the_errors():
    from scipy.stats import spearmanr

    from nhpipe.cores import joint_draws

    rng = np.random.default_rng(1)
    draws = 10 ** rng.normal(4.0, 0.3, (4000, 3))
    draws[:1000, 1] = np.nan            # a quarter of core 1's draws have no solution
    draws[:, 2] = np.nan                # core 2 has none
    for rho, expected in ((0.0, 0.0), (0.8, 6 / np.pi * np.arcsin(0.4))):
        joint = joint_draws(draws, rho, rng)
        assert np.isfinite(joint[:, :2]).all() and np.isnan(joint[:, 2]).all()
        for core in (0, 1):  # the same density as its draws with a solution
            np.testing.assert_allclose(np.percentile(joint[:, core], [2.5, 16, 50, 84, 97.5]),
                                       np.nanpercentile(draws[:, core],
                                                        [2.5, 16, 50, 84, 97.5]), rtol=0.02)
        assert spearmanr(joint[:, 0], joint[:, 1])[0] == pytest.approx(expected, abs=0.04)


def test_errors_shared_between_cores_widen_sums_not_intervals(tmp_path):
    """30 alike cores: the correlation between cores changes no core's interval, and the
    mean of log n_c over the cores spreads as sigma * sqrt(rho + (1 - rho) / N) instead
    of sigma / sqrt(N) in the joint draws."""
    from nhpipe.cores import joint_draws

    path = _nhpipe_file(tmp_path / "map.fits", nh=1e22)
    ra, dec = np.meshgrid(85.5 + 0.012 * np.arange(-2, 4), -1.0 + 0.012 * np.arange(-2, 3))
    cores = _cores(ra.ravel(), dec.ravel())
    base = dict(distance_pc=400.0, l_d_pc=10.0, lc_spread=0.0, ld_dex=0.0,
                model_offset_dex=0.0, model_scatter_dex=0.0)
    spreads, tables = {}, {}
    for rho in (0.0, 0.9):
        table, draws = correct_catalog(cores, path, CorrectionOptions(
            **base, between_cores_correlation=rho))
        assert (table["status"] == "ok").all()
        assert table.meta["between_cores_correlation"] == f"{rho:g} (given)"
        curve = json.loads(table.meta["between_cores_curve"])
        assert curve == {"lag_px": [1.0], "rho": [rho]}
        joint = joint_draws(draws, curve["rho"][0], np.random.default_rng(0))
        spreads[rho] = np.std(np.log10(joint).mean(axis=1))
        tables[rho] = table
    for name in ("nc_med", "nc_lo68", "nc_hi68", "nc_lo95", "nc_hi95", "frac_consistent"):
        np.testing.assert_array_equal(tables[0.0][name], tables[0.9][name])
    n = len(cores)
    assert spreads[0.9] / spreads[0.0] == pytest.approx(np.sqrt((0.9 + 0.1 / n) * n), rel=0.15)


def test_shared_error_matrix_reads_the_curve_at_each_separation():
    """Cores 1, 3 and 100 model pixels apart (0.026 pc each, at 400 pc) get the curve at
    those separations; a curve that is no valid correlation for three cores is mended to
    the nearest positive semi-definite one with unit diagonal."""
    from astropy.coordinates import SkyCoord

    from nhpipe.cores import shared_error_matrix
    from nhpipe.grid import PIXEL_PC

    step_deg = np.degrees(PIXEL_PC / 400.0)
    coords = SkyCoord([0.0, step_deg, 101 * step_deg], [0.0, 0.0, 0.0], unit="deg")
    curve = {"lag_px": [1.0, 2.0, 96.0], "rho": [0.9, 0.8, 0.2]}
    matrix = shared_error_matrix(coords, 400.0, curve)
    np.testing.assert_allclose(matrix, [[1, 0.9, 0.2], [0.9, 1, 0.2], [0.2, 0.2, 1]],
                               atol=1e-6)
    # 0.9 between neighbours and 0 two pixels apart cannot all hold at once.
    coords = SkyCoord([0.0, step_deg, 2 * step_deg], [0.0, 0.0, 0.0], unit="deg")
    mended = shared_error_matrix(coords, 400.0, {"lag_px": [1.0, 2.0], "rho": [0.9, 0.0]})
    np.testing.assert_allclose(np.diag(mended), 1.0)
    assert np.linalg.eigvalsh(mended).min() > -1e-9
    assert 0.0 < mended[0, 2] and mended[0, 1] < 0.9


def test_joint_draws_share_errors_by_separation():
    """Two cores close together share more of their errors than a core far away: the rank
    correlations of the joint draws follow the matrix, each core's values are its own."""
    from scipy.stats import spearmanr

    from nhpipe.cores import joint_draws

    rng = np.random.default_rng(2)
    draws = 10 ** rng.normal(4.0, 0.3, (8000, 3))
    matrix = np.array([[1.0, 0.9, 0.2], [0.9, 1.0, 0.2], [0.2, 0.2, 1.0]])
    joint = joint_draws(draws, matrix, rng)
    np.testing.assert_array_equal(np.sort(joint, axis=0),
                                  np.quantile(draws, (np.arange(8000) + 0.5) / 8000, axis=0))
    for (a, b), rho in (((0, 1), 0.9), ((0, 2), 0.2), ((1, 2), 0.2)):
        expected = 6 / np.pi * np.arcsin(rho / 2)
        assert spearmanr(joint[:, a], joint[:, b])[0] == pytest.approx(expected, abs=0.03)
    # A singular matrix (two cores at one place, fully shared errors) has no Cholesky
    # factor: the cores then move in lockstep, through the eigendecomposition.
    joint = joint_draws(draws[:, :2], np.ones((2, 2)), rng)
    assert spearmanr(joint[:, 0], joint[:, 1])[0] == pytest.approx(1.0)


def test_cmf_shares_errors_by_the_cores_separations(tmp_path, monkeypatch):
    """The CMF of a catalogue whose metadata holds a curve draws with the matrix of the
    cores' separations; one number for every pair when the curve is flat."""
    from nhpipe.cores import _report
    from nhpipe.grid import PIXEL_PC

    path = _nhpipe_file(tmp_path / "map.fits")
    cores = _cores([85.5, 85.5 + 0.012, 85.5 + 0.024], [-1.0, -1.0, -1.0])
    seen = []
    real = _report.joint_draws
    monkeypatch.setattr(_report, "joint_draws",
                        lambda draws, correlation, rng: seen.append(correlation)
                        or real(draws, correlation, rng))
    for rho, expected in (([0.9, 0.5, 0.2], "matrix"), ([0.4], 0.4)):
        table, draws = correct_catalog(cores, path, CorrectionOptions(
            distance_pc=400.0, l_d_pc=10.0, model_offset_dex=0.0, model_scatter_dex=0.0))
        table.meta["between_cores_curve"] = json.dumps(
            {"lag_px": [1.0, 8.0, 64.0][:len(rho)], "rho": rho})
        write_outputs(table, tmp_path / f"out{len(rho)}", draws=draws)
        if expected == "matrix":
            # 0.012 deg at 400 pc is 3.2 model px: between the curve's 0.9 and 0.5.
            step = np.interp(np.radians(0.012) * 400 / PIXEL_PC, [1, 8, 64], rho)
            assert seen[-1].shape == (3, 3) and seen[-1][0, 1] == pytest.approx(step, 0.01)
            assert seen[-1][0, 1] > seen[-1][0, 2]
        else:
            assert seen[-1] == expected


def test_blended_cores_are_those_holding_another_centre():
    """A core is blended when another core's centre lies inside its own aperture: the big
    core holding a small one's centre is, the small one (the big centre outside its
    radius) and a far one are not; a core without a radius neither counts nor is counted."""
    from astropy.coordinates import SkyCoord

    from nhpipe.cores import blended_cores

    arcsec = 1.0 / 3600.0
    coords = SkyCoord([85.0, 85.0, 85.0, 85.0], [-1.0, -1.0 + 5 * arcsec, -1.0 + 60 * arcsec,
                                                 -1.0 + 1 * arcsec], unit="deg")
    np.testing.assert_array_equal(blended_cores(coords, [10.0, 2.0, 10.0, np.nan]),
                                  [True, False, False, False])
    np.testing.assert_array_equal(blended_cores(coords[:1], [10.0]), [False])
    np.testing.assert_array_equal(blended_cores(coords[:2], [4.9, 4.9]), [False, False])


def _gaussian_cores_map(path, ra, dec, peaks, floor=2e21):
    """An nhpipe file of Gaussian cores, half maximum at R = 0.03 pc (the apertures of
    :func:`_cores` at 400 pc), with the given peak excesses (cm-2) over a flat floor."""
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS

    shape = (200, 200)
    wcs = WCS(make_header(shape, pixel_arcsec=3.0))
    x, y = wcs.world_to_pixel(SkyCoord(ra, dec, unit="deg"))
    sigma = 0.03 / 400 * 206264.806 / 3.0 / np.sqrt(2 * np.log(2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    nh = np.full(shape, floor)
    for xi, yi, peak in zip(x, y, peaks):
        nh += peak * np.exp(-0.5 * ((xx - xi) ** 2 + (yy - yi) ** 2) / sigma**2)
    return _nhpipe_file(path, shape=shape, nh=nh)


def test_own_excess_recovers_overlapping_gaussian_cores(tmp_path):
    """Two Gaussian cores drawn on pixels 15" apart (their half-maximum radius): each
    one's own excess, solved from the measured aperture excesses, is what the core alone
    gives in its aperture (a map with that core only), though the neighbour adds 40-90 %
    to the measured one; a far core is left as it is."""
    ra, dec = [85.5, 85.5, 85.45], [-1.0, -1.0 + 15 / 3600, -1.0]
    peaks = [3e22, 2e22, 1e22]
    options = CorrectionOptions(distance_pc=400.0, l_d_pc=10.0)
    with pytest.warns(NhpipeWarning):  # an analytic test map has no card and no term
        result, _ = correct_catalog(_cores(ra, dec),
                                    _gaussian_cores_map(tmp_path / "all.fits", ra, dec, peaks),
                                    options)
    excess = result["nh_ap"] - result["nh_background"]
    assert np.all(excess[:2] > 1.3 * result["nh_own"][:2])  # the neighbour adds a lot
    for i, peak in enumerate(peaks):
        with pytest.warns(NhpipeWarning):
            alone, _ = correct_catalog(_cores(ra[i:i + 1], dec[i:i + 1]), _gaussian_cores_map(
                tmp_path / f"{i}.fits", ra[i:i + 1], dec[i:i + 1], [peak]), options)
        own = alone["nh_ap"][0] - alone["nh_background"][0]
        assert result["nh_own"][i] == pytest.approx(own, rel=0.05)
    assert result["nh_own"].unit == u.cm**-2
    assert not result["neighbour_dominated"].any()


def test_neighbour_dominated_core_has_no_excess_of_its_own(tmp_path):
    """A catalogued position on a bright core's wing, with no core of its own there: the
    bright core accounts for its aperture's excess, so it is flagged (and tagged in DS9);
    the bright core keeps its excess and is not."""
    ra, dec = [85.5, 85.5], [-1.0, -1.0 + 14 / 3600]
    path = _gaussian_cores_map(tmp_path / "map.fits", ra[:1], dec[:1], [3e22])
    with pytest.warns(NhpipeWarning):
        result, draws = correct_catalog(_cores(ra, dec), path,
                                        CorrectionOptions(distance_pc=400.0, l_d_pc=10.0))
    assert list(result["neighbour_dominated"]) == [False, True]
    assert result["nh_own"][1] < 0.01 * result["nh_own"][0]
    assert result["nh_ap"][1] > 1.5 * result["nh_background"][1]  # a clear excess
    regions = Regions.read(write_outputs(result, tmp_path / "out", draws=draws)[".reg"],
                           format="ds9")
    assert ["neighbour_dominated" in r.meta["tag"] for r in regions] == [False, True]


def test_own_excess_takes_odd_catalogues():
    """Cores without a radius or an excess are left out (NaN) and do not count; two
    entries at one position share its excess; no core at all gives an empty answer."""
    from astropy.coordinates import SkyCoord

    from nhpipe.cores import own_excess

    arcsec = 1.0 / 3600.0
    coords = SkyCoord([85.0] * 4, [-1.0, -1.0, -1.0 + 5 * arcsec, -1.0 + 200 * arcsec],
                      unit="deg")
    out = own_excess(coords, [10.0, 10.0, np.nan, 10.0], [2e22, 2e22, 1e22, np.nan])
    assert np.isnan(out[2]) and np.isnan(out[3])
    assert out[0] + out[1] == pytest.approx(2e22, rel=1e-6)
    assert own_excess(coords[:0], np.zeros(0), np.zeros(0)).shape == (0,)
