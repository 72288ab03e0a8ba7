"""Fuzz: mutated FITS inputs through the CLI give a sane output or one line, never a trace.

Each case mutates a valid small map (header cards deleted or altered, odd BUNIT, CTYPE,
CDELT, NAXIS, CRVAL, EQUINOX, RADESYS values, byte flips in the header and the data,
non-finite or absurd data) and runs ``nhpipe.cli.main`` in-process. It must either exit
0 with an output whose MEAN is finite wherever NH is, or exit 2 with exactly one line on
stderr; nothing may raise, and no file but a complete output may be left behind.
``NHPIPE_FUZZ_CASES`` sets the number of cases (default 200; ``pytest -m slow`` runs
``benchmarks``-sized campaigns with a larger number).
"""

import os
import warnings

import numpy as np
import pytest
from astropy.io import fits

from .conftest import blob_map, make_header

CASES = int(os.environ.get("NHPIPE_FUZZ_CASES", "200"))

CARD_VALUES = {
    "BUNIT": ["", "Jy/beam", "cm-3", "10**21 cm-2", "nonsense", "cm-2 (H2)", "1/cm2", 42],
    "CTYPE1": ["RA---XXX", "GLON-CAR", "", "LINEAR", "RA---TAN-SIP", 3.0],
    "CTYPE2": ["DEC--XXX", "GLAT-CAR", "", "LINEAR", "DEC--SIN"],
    "CDELT1": [0.0, 1e30, -1e-3, 10.0, 1e-12, "abc"],
    "CDELT2": [0.0, 1e30, 1e-3, -10.0, 1e-12],
    "CRVAL1": [1e300, 400.0, -1e5, 0.0],
    "CRVAL2": [1e300, 95.0, -90.0, 89.999],
    "CRPIX1": [1e300, -1e9, 0.0],
    "EQUINOX": [1e300, -1.0, "J2000"],
    "RADESYS": ["garbage", "FK4", "GALACTIC"],
    "NAXIS": [0, 1, 3, 7],
    "NAXIS1": [0, 1, 10**6],
    "BMAJ": [0.0, -1.0, 1e30, "wide"],
    "BTYPE": ["N(H2)", "N_H", "flux"],
}
DELETABLE = ["BUNIT", "CTYPE1", "CTYPE2", "CDELT1", "CDELT2", "CRPIX1", "CRVAL1", "NAXIS1",
             "NAXIS2", "BMAJ", "RADESYS", "SIMPLE", "BITPIX"]


def _mutate(rng, path):
    header = make_header((40, 48), pixel_arcsec=6.0)
    header["BMAJ"] = 18.2 / 3600
    data = blob_map((40, 48)).astype(np.float32)
    kind = rng.integers(5)
    if kind == 0:
        for key in rng.choice(DELETABLE, size=rng.integers(1, 3), replace=False):
            header.remove(key, ignore_missing=True)
    elif kind == 1:
        key = rng.choice(list(CARD_VALUES))
        values = CARD_VALUES[key]
        header[key] = values[rng.integers(len(values))]
    elif kind == 2:
        choice = rng.integers(5)
        flat = data.ravel()
        picks = rng.integers(flat.size, size=rng.integers(1, flat.size))
        flat[picks] = [np.nan, np.inf, 0.0, -1e21, 1e30][choice]
    hdu = fits.PrimaryHDU(data, header=header)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            hdu.writeto(path, overwrite=True, output_verify="silentfix")
        except Exception:
            # The mutation itself is unwritable by astropy: write the valid map instead.
            fits.PrimaryHDU(blob_map((40, 48)), header=make_header((40, 48))).writeto(
                path, overwrite=True)
    if kind >= 3:
        raw = bytearray(path.read_bytes())
        start, stop = (0, 2880) if kind == 3 else (2880, len(raw))
        for offset in rng.integers(start, stop, size=rng.integers(1, 6)):
            raw[offset] = rng.integers(256)
        path.write_bytes(bytes(raw))


@pytest.mark.parametrize("seed", range(CASES))
def test_fuzz_case(seed, run_cli, tmp_path):
    rng = np.random.default_rng([2026, seed])
    source = tmp_path / "in.fits"
    _mutate(rng, source)
    out = tmp_path / "out.fits"
    species = ["--species", "H2"] if rng.random() < 0.8 else []
    status, _, err = run_cli("run", source, "--distance", "400pc", *species, "--model",
                             "powerlaw", "--samples", "2", "--out", out, "--quiet")
    left = sorted(p.name for p in tmp_path.iterdir())
    if status == 0:
        with fits.open(out) as hdul:
            hdul.verify("exception")
            mean, nh = hdul["MEAN"].data, hdul["NH"].data
            assert np.all(np.isfinite(mean) == np.isfinite(nh))
            assert np.nanmax(np.abs(mean), initial=0) < 12
        assert left == ["in.fits", "out.fits"]
    else:
        assert status == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nhpipe: error:"), err
        assert left == ["in.fits"]
