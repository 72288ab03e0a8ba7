"""Fixtures: small synthetic column-density maps with TAN WCS (plain, rotated, flipped...)."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PERSEUS = SHARED / "herschel_perB5_nh2" / "image_PerB5.fits"
HIGAL8 = SHARED / "higal_fil8_nh2" / "HIGAL_L_Fil8_N.fits"


def make_header(shape, *, kind="plain", pixel_arcsec=6.0, bunit="cm-2"):
    """A header with a 2-D celestial WCS of the given kind: plain, rotated, flipped,
    galactic or sip."""
    ny, nx = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [85.5, -1.0]
    wcs.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    scale = pixel_arcsec / 3600
    wcs.wcs.cdelt = [-scale, scale]
    if kind == "rotated":
        angle = np.radians(30.0)
        wcs.wcs.pc = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    elif kind == "flipped":
        wcs.wcs.cdelt = [scale, scale]
    elif kind == "galactic":
        wcs.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
        wcs.wcs.crval = [205.0, -14.0]
    elif kind == "sip":
        wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    header = wcs.to_header(relax=True)
    if kind == "sip":
        header["A_ORDER"] = 2
        header["B_ORDER"] = 2
        header["A_2_0"] = 2e-6
        header["B_0_2"] = -2e-6
    if bunit is not None:
        header["BUNIT"] = bunit
    return header


def blob_map(shape, *, peak=1e22, floor=1e21, seed=0):
    """A smooth positive N(H2) map: a Gaussian ridge on a floor, with mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    ridge = np.exp(-(((x - shape[1] / 2) * 0.7 + (y - shape[0] / 2) * 0.7) ** 2) / 50.0)
    return floor + peak * ridge + 0.01 * floor * rng.standard_normal(shape)


def beam_hdu(shape=(48, 40), **blob):
    """:func:`blob_map` as an N(H2) HDU with 6" pixels and an HGBS-like 18.2" beam in
    BMAJ/BMIN (``blob``: its ``peak``, ``floor``, ``seed``)."""
    header = make_header(shape, pixel_arcsec=6.0)
    header["BMAJ"] = header["BMIN"] = 18.2 / 3600
    return fits.PrimaryHDU(blob_map(shape, **blob), header=header)


@pytest.fixture
def write_map(tmp_path):
    """Write a synthetic map to a FITS file and return its path."""

    def _write(shape=(96, 80), *, kind="plain", data=None, bunit="cm-2", name="map.fits",
               pixel_arcsec=6.0, extra=None):
        header = make_header(shape, kind=kind, pixel_arcsec=pixel_arcsec, bunit=bunit)
        # An HGBS-like 18.2" beam unless ``extra`` says otherwise (None deletes a card).
        header["BMAJ"] = header["BMIN"] = 18.2 / 3600
        for key, value in (extra or {}).items():
            if value is None:
                header.remove(key, ignore_missing=True)
            else:
                header[key] = value
        data = blob_map(shape) if data is None else data
        path = tmp_path / name
        fits.PrimaryHDU(data, header=header).writeto(path)
        return path

    return _write


@pytest.fixture
def run_cli(capsys):
    """Run ``nhpipe`` in-process; return (status, stdout, stderr)."""
    from nhpipe.cli import main

    def _run(*argv):
        status = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return _run
