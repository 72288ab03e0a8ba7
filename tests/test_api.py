"""The Python API: what a notebook user calls; the same code as the CLI."""

import numpy as np
import pytest
from astropy.io import fits

import nhpipe
from nhpipe.errors import InputError

from .test_catalog import _cores


def test_estimate_equals_what_run_writes(run_cli, write_map, tmp_path):
    path = write_map()
    hdul = nhpipe.estimate(str(path), distance="400pc", species="H2", model="powerlaw",
                           samples=4, seed=5)
    assert [h.name for h in hdul[1:]][:2] == ["MEAN", "MODE"]
    out = tmp_path / "cli.fits"
    status, _, err = run_cli("run", path, "--distance", "400pc", "--species", "H2", "--model",
                             "powerlaw", "--samples", "4", "--seed", "5", "--out", out,
                             "--quiet")
    assert status == 0, err
    with fits.open(out) as written:
        for mine, theirs in zip(hdul[1:], written[1:]):
            np.testing.assert_array_equal(mine.data, theirs.data)
    saved = nhpipe.write(hdul, tmp_path / "api.fits")
    with pytest.raises(InputError, match="exists"):
        nhpipe.write(hdul, saved)


def test_correct_catalog_takes_the_distance_from_the_map(write_map, tmp_path):
    path = write_map()
    hdul = nhpipe.estimate(path, distance="400pc", species="H2", model="powerlaw", samples=4)
    assert hdul[0].header["DISTPC"] == 400
    cores = _cores([85.5, 85.5003], [-1.0, -1.0])
    table = nhpipe.correct_catalog(hdul, cores, ld="10pc")
    assert table.meta["distance_pc"] == 400 and "nc_med" in table.colnames
    with pytest.raises(InputError, match="contradicts the map's DISTPC"):
        nhpipe.correct_catalog(hdul, cores, ld="10pc", distance="0.5kpc")
    with pytest.raises(InputError, match="exactly one of `ld`"):
        nhpipe.correct_catalog(hdul, cores)


def test_quicklook_png(run_cli, write_map, tmp_path):
    out = tmp_path / "res.fits"
    status, _, err = run_cli("run", write_map(kind="galactic"), "--distance", "400pc",
                             "--species", "H2", "--model", "powerlaw", "--samples", "2",
                             "--out", out, "--quiet", "--quicklook")
    assert status == 0, err
    assert (tmp_path / "res.png").read_bytes()[:4] == b"\x89PNG"


def test_errors_name_python_parameters_and_the_cli_its_flags(run_cli, write_map, tmp_path):
    """One message, two readers: the API names ``samples``/``distance='400pc'``, the CLI
    shows the same message with its flags."""
    path = write_map()
    with pytest.raises(InputError, match=r"`distance` needs a unit, e.g. `distance='400pc'`"):
        nhpipe.estimate(path, distance="0.3", species="H2", model="powerlaw")
    with pytest.raises(InputError, match="`samples` must be a positive integer"):
        nhpipe.estimate(path, distance="400pc", species="H2", samples=0)
    status, _, err = run_cli("run", path, "--distance", "0.3", "--species", "H2")
    assert status == 2
    assert "--distance needs a unit, e.g. --distance 400pc, got '0.3'" in err
    assert "`" not in err
    (tmp_path / "taken.fits").write_bytes(b"")
    status, _, err = run_cli("run", path, "--distance", "400pc", "--species", "H2",
                             "--model", "powerlaw", "--out", str(tmp_path / "taken.fits"))
    assert status == 2 and "pass --overwrite to replace it" in err


def test_as_flags_rewrites_only_known_flags():
    from nhpipe.cli import as_flags, build_parser

    parser = build_parser()
    text = as_flags("set `columns['density']`, `ld='10pc'`, `mdr=False`, `model_name`, "
                    "`overwrite=True` or `not_a_flag`", parser)
    assert text == "set --col-density, --ld 10pc, --no-mdr, --model, --overwrite or not_a_flag"
