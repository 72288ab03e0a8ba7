"""Every bad input gives one line on stderr, exit status 2, no traceback and no output."""

import numpy as np
import pytest
from astropy.io import fits

from nhpipe.errors import InputError

from .conftest import make_header

GOOD = ["--distance", "400pc", "--species", "H2"]


def check_refused(run_cli, tmp_path, argv, match):
    out = tmp_path / "out.fits"
    status, stdout, stderr = run_cli("run", *argv, "--out", out, "--quiet")
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("nhpipe: error:")
    assert match in lines[0]
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.fits.*"))


class TestBadInput:
    def test_not_fits(self, run_cli, tmp_path):
        path = tmp_path / "notes.fits"
        path.write_text("this is a text file\n")
        check_refused(run_cli, tmp_path, [path, *GOOD], "not a readable FITS file")

    def test_empty_file(self, run_cli, tmp_path):
        path = tmp_path / "empty.fits"
        path.write_bytes(b"")
        check_refused(run_cli, tmp_path, [path, *GOOD], "empty")

    def test_truncated(self, run_cli, tmp_path, write_map):
        good = write_map()
        path = tmp_path / "cut.fits"
        path.write_bytes(good.read_bytes()[:5000])
        check_refused(run_cli, tmp_path, [path, *GOOD], "truncated")

    def test_missing_file(self, run_cli, tmp_path):
        check_refused(run_cli, tmp_path, [tmp_path / "nope.fits", *GOOD], "no such file")

    def test_no_image_hdu(self, run_cli, tmp_path):
        path = tmp_path / "table.fits"
        table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=[1.0])])
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
        check_refused(run_cli, tmp_path, [path, *GOOD], "no 2-D image HDU")

    def test_no_celestial_wcs(self, run_cli, tmp_path):
        path = tmp_path / "linear.fits"
        hdu = fits.PrimaryHDU(np.full((30, 30), 1e21))
        hdu.header["BUNIT"] = "cm-2"
        hdu.header["CTYPE1"] = "LINEAR"
        hdu.header["CTYPE2"] = "LINEAR"
        hdu.writeto(path)
        check_refused(run_cli, tmp_path, [path, *GOOD], "no celestial WCS")

    def test_real_cube(self, run_cli, tmp_path):
        header = make_header((20, 20))
        path = tmp_path / "cube.fits"
        hdu = fits.PrimaryHDU(np.full((3, 20, 20), 1e21), header=header)
        hdu.header["CTYPE3"] = "VRAD"
        hdu.writeto(path)
        check_refused(run_cli, tmp_path, [path, *GOOD], "real third axis")

    def test_all_blank(self, run_cli, tmp_path, write_map):
        path = write_map(data=np.full((30, 30), np.nan))
        check_refused(run_cli, tmp_path, [path, *GOOD], "every pixel is blank")

    def test_majority_nonpositive(self, run_cli, tmp_path, write_map):
        data = np.full((30, 30), -1.0)
        data[:5] = 1e21
        path = write_map(data=data)
        check_refused(run_cli, tmp_path, [path, *GOOD], "zero or negative")

    def test_unknown_bunit(self, run_cli, tmp_path, write_map):
        path = write_map(bunit="MJy/sr")
        check_refused(run_cli, tmp_path, [path, *GOOD], "not a column density")

    def test_missing_bunit(self, run_cli, tmp_path, write_map):
        path = write_map(bunit=None)
        check_refused(run_cli, tmp_path, [path, *GOOD], "--bunit")

    def test_missing_species(self, run_cli, tmp_path, write_map):
        check_refused(run_cli, tmp_path, [write_map(), "--distance", "400pc"], "--species")

    def test_missing_distance(self, run_cli, tmp_path, write_map):
        check_refused(run_cli, tmp_path, [write_map(), "--species", "H2"], "distance")

    @pytest.mark.parametrize("distance", ["0pc", "-400pc"])
    def test_nonpositive_distance(self, run_cli, tmp_path, write_map, distance):
        path = write_map()
        check_refused(run_cli, tmp_path, [path, f"--distance={distance}", "--species", "H2"],
                      "positive")

    def test_samples_zero(self, run_cli, tmp_path, write_map):
        check_refused(run_cli, tmp_path, [write_map(), *GOOD, "--samples", "0"], "--samples")

    def test_bad_stride(self, run_cli, tmp_path, write_map):
        check_refused(run_cli, tmp_path, [write_map(), *GOOD, "--stride", "200"], "stride")

    def test_unknown_model(self, run_cli, tmp_path, write_map):
        check_refused(run_cli, tmp_path, [write_map(), *GOOD, "--model", "gpt"], "unknown model")

    def test_output_in_missing_directory(self, run_cli, tmp_path, write_map):
        out = tmp_path / "missing" / "out.fits"
        status, _, stderr = run_cli("run", write_map(), *GOOD, "--out", out, "--quiet")
        assert status == 2 and "does not exist" in stderr and len(stderr.splitlines()) == 1
        assert not out.exists()

    def test_existing_output_kept(self, run_cli, tmp_path, write_map):
        out = tmp_path / "out.fits"
        out.write_bytes(b"precious")
        status, _, stderr = run_cli("run", write_map(), *GOOD, "--out", out, "--quiet")
        assert status == 2 and "--overwrite" in stderr
        assert out.read_bytes() == b"precious"

    def test_output_is_input(self, run_cli, tmp_path, write_map):
        path = write_map()
        before = path.read_bytes()
        status, _, stderr = run_cli("run", path, *GOOD, "--out", path, "--overwrite", "--quiet")
        assert status == 2 and "is an input" in stderr
        assert path.read_bytes() == before

    def test_unknown_option(self, run_cli, write_map):
        status, _, stderr = run_cli("run", write_map(), *GOOD, "--frobnicate")
        assert status == 2 and len(stderr.strip().splitlines()) == 1


class TestOutputSafety:
    """Only regular files are written; no input is ever overwritten (issue: output safety)."""

    def test_refuses_special_files(self, run_cli, write_map, tmp_path):
        import os

        path = write_map()
        fifo = tmp_path / "pipe.fits"
        os.mkfifo(fifo)
        folder = tmp_path / "dir.fits"
        folder.mkdir()
        dangling = tmp_path / "link.fits"
        dangling.symlink_to(tmp_path / "nowhere.fits")
        for out, what in ((fifo, "not a regular file"), (folder, "a directory"),
                          (dangling, "dangling symbolic link")):
            status, _, err = run_cli("run", path, *GOOD, "--out", out, "--overwrite", "--quiet")
            assert status == 2 and what in err and len(err.strip().splitlines()) == 1
        assert fifo.exists() and folder.is_dir() and os.path.islink(dangling)
        assert not (tmp_path / "nowhere.fits").exists()

    def test_newline_and_long_names(self, run_cli, write_map, tmp_path):
        path = write_map()
        for out, what in ((tmp_path / "a\nb.fits", "line break"),
                          (tmp_path / ("x" * 300 + ".fits"), "too long")):
            status, _, err = run_cli("run", path, *GOOD, "--out", out, "--quiet")
            assert status == 2 and what in err

    def test_stale_temporaries_removed(self, run_cli, write_map, tmp_path):
        import os

        path = write_map()
        out = tmp_path / "res.fits"
        stale = tmp_path / ".res.fits.abcd1234.tmp"
        stale.write_bytes(b"left by a killed run")
        os.utime(stale, (0, 0))
        other = tmp_path / ".other.fits.abcd1234.tmp"
        other.write_bytes(b"not ours")
        status, _, err = run_cli("run", path, *GOOD, "--out", out, "--quiet")
        assert status == 0, err
        assert not stale.exists() and other.exists()


class TestImplausible:
    """Values no real map holds are refused or masked, never turned into a map in silence."""

    def test_huge_values(self, run_cli, tmp_path, write_map):
        path = write_map(data=np.full((96, 80), 1e300))
        check_refused(run_cli, tmp_path, [path, *GOOD], "outside 1e+18-1e+26 cm-2")

    def test_unit_applied_twice(self, run_cli, tmp_path, write_map):
        # Data already in cm-2 but BUNIT says 10**21 cm-2: N_H ~ 1e43.
        path = write_map(bunit="10**21 cm-2")
        check_refused(run_cli, tmp_path, [path, *GOOD], "check BUNIT")

    def test_one_inf_pixel_is_blank(self, run_cli, tmp_path, write_map):
        from .conftest import blob_map

        data = blob_map((96, 80))
        data[40, 40] = np.inf
        path = write_map(data=data)
        out = tmp_path / "o.fits"
        status, _, err = run_cli("run", path, *GOOD, "--model", "powerlaw", "--out", out,
                                 "--quiet")
        assert status == 0, err
        mean = fits.getdata(out, "MEAN")
        assert np.isnan(mean[40, 40])
        assert np.isfinite(np.delete(mean.ravel(), 40 * 80 + 40)).all()
        assert np.nanmax(mean) < 6

    def test_missing_pixel_scale(self, run_cli, tmp_path, write_map):
        header = make_header((30, 30))
        for key in ("CDELT1", "CDELT2"):
            del header[key]
        path = tmp_path / "noscale.fits"
        fits.PrimaryHDU(np.full((30, 30), 1e21), header=header).writeto(path)
        check_refused(run_cli, tmp_path, [path, *GOOD], "no pixel scale")

    def test_singular_cd(self, run_cli, tmp_path):
        header = make_header((30, 30))
        for key in ("CDELT1", "CDELT2"):
            del header[key]
        header["CD1_1"], header["CD1_2"], header["CD2_1"], header["CD2_2"] = 1e-3, 1e-3, 1e-3, 1e-3
        path = tmp_path / "singular.fits"
        fits.PrimaryHDU(np.full((30, 30), 1e21), header=header).writeto(path)
        check_refused(run_cli, tmp_path, [path, *GOOD], "singular")


class TestResources:
    def test_memory_estimate_refuses_before_work(self):
        from nhpipe.errors import InputError
        from nhpipe.resources import check_memory

        assert check_memory((1000, 1000), (300, 300), 16, available=8 * 10**9,
                            device_type="cuda") == 8
        # On a CPU the batch holds at most 32 sample images (caches).
        assert check_memory((1000, 1000), (300, 300), 16, available=8 * 10**9) == 2
        # 64 samples of a 128^2 patch at 16 B: 16.8 MB per patch, still a batch of 8.
        assert check_memory((100, 100), (100, 100), 64, available=8 * 10**9,
                            device_type="cuda") == 8
        # A 10000^2 HGBS field fits in 8 GB (README: memory scaling) ...
        check_memory((10000, 10000), (2200, 2200), 16, available=8 * 10**9 / 0.9 + 1)
        # ... a 30000^2 mosaic does not fit in 24 GB.
        with pytest.raises(InputError, match=r"needs about .* GB .*`samples`"):
            check_memory((30000, 30000), (6600, 6600), 16, available=24 * 10**9)
        with pytest.raises(InputError, match="100000 samples"):
            check_memory((100, 100), (100, 100), 100000, available=24 * 10**9)

    def test_cli_huge_samples(self, run_cli, tmp_path, write_map):
        check_refused(run_cli, tmp_path, [write_map(), *GOOD, "--samples", "10000000"],
                      "lower --samples")


class TestMoreDefects:
    def test_directory_and_fifo_inputs(self, run_cli, tmp_path):
        import os

        folder = tmp_path / "maps.fits"
        folder.mkdir()
        check_refused(run_cli, tmp_path, [folder, *GOOD], "is a directory")
        fifo = tmp_path / "pipe.fits"
        os.mkfifo(fifo)
        check_refused(run_cli, tmp_path, [fifo, *GOOD], "not a regular file")

    def test_non_ascii_input_name(self, run_cli, tmp_path, write_map):
        path = write_map(name="Orion_B_\u00e9t\u00e9_\u2605.fits")
        out = tmp_path / "r\u00e9sultat.fits"
        status, _, err = run_cli("run", path, *GOOD, "--model", "powerlaw", "--out", out,
                                 "--quiet")
        assert status == 0, err
        header = fits.getheader(out, "MEAN")
        assert "Orion_B_" in header["INFILE"] and header["INFILE"].isascii()

    def test_missing_catalogue_checked_before_the_map(self, run_cli, tmp_path, write_map):
        path = write_map()
        out = tmp_path / "old.fits"
        out.write_bytes(b"previous result")
        status, _, err = run_cli("run", path, *GOOD, "--model", "powerlaw", "--out", out,
                                 "--overwrite", "--quiet", "--catalog", tmp_path / "nope.ecsv",
                                 "--ld", "10pc")
        assert status == 2 and "no such catalogue" in err
        assert out.read_bytes() == b"previous result"


def test_types_against_a_column_that_is_not_integer(tmp_path):
    from nhpipe.api import correction_options
    from nhpipe.cores import check_columns, column_map

    from .test_catalog import _cores

    cores = _cores([85.5, 85.6], [-1.0, -1.0])
    cores["core_type"] = ["prestellar", "starless"]
    with pytest.raises(InputError, match="`types` needs integer core types, but column "
                                         "'core_type' holds 'prestellar'"):
        check_columns(cores, column_map(), correction_options(400.0, ld="10pc", types="2"))
    cores["core_type"] = [2.5, 1.0]
    with pytest.raises(InputError, match="needs integer core types"):
        check_columns(cores, column_map(), correction_options(400.0, ld="10pc", types="2"))


def test_unwritable_output_folder_refused_before_work(run_cli, write_map, tmp_path,
                                                      monkeypatch):
    """A read-only folder (os.access says no: what a read-only file system answers, and
    what root cannot be made to see) is refused in one line before any work."""
    import os

    from nhpipe import _write

    real_access = os.access
    monkeypatch.setattr(_write.os, "access",
                        lambda path, mode: False if str(path) == str(tmp_path / "ro")
                        else real_access(path, mode))
    (tmp_path / "ro").mkdir()
    status, _, err = run_cli("run", write_map(), "--distance", "400pc", "--species", "H2",
                             "--model", "powerlaw", "--out", tmp_path / "ro" / "x.fits")
    assert status == 2 and err.count("\n") == 1 and "ro" in err
    assert not (tmp_path / "ro" / "x.fits").exists()


def test_every_help_renders_percent_signs_once():
    # argparse %-formats argument help but prints descriptions as written: a "%%" in a
    # description reached users as "%%".
    import argparse

    from nhpipe.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        assert "%%" not in text, name
