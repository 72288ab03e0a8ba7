"""Mock observations: beam smoothing, noise and a Herschel-like FITS map of a simulated N_H."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

from .. import __version__

#: Gaussian FWHM / sigma.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
ARCSEC_PER_RAD = 180.0 * 3600.0 / np.pi


def beam_sigma_pixels(beam_arcsec: float, *, pixel_pc: float, distance_pc: float) -> float:
    """Gaussian sigma, in pixels of ``pixel_pc``, of a beam of FWHM ``beam_arcsec``."""
    fwhm_pc = beam_arcsec / ARCSEC_PER_RAD * distance_pc
    return fwhm_pc / FWHM_PER_SIGMA / pixel_pc


def observe(nh: np.ndarray, *, pixel_pc: float, distance_pc: float, beam_arcsec: float | None,
            noise: float = 0.0, rng: np.random.Generator | None = None,
            periodic: bool = True) -> np.ndarray:
    """Smooth an N_H map by a Gaussian beam and add multiplicative Gaussian noise.

    Parameters
    ----------
    nh : ndarray, shape (ny, nx)
        N_H in cm-2.
    pixel_pc, distance_pc : float
        Pixel size and distance, in pc.
    beam_arcsec : float or None
        Beam FWHM in arcsec (Herschel SPIRE 500 um: 36.3"; HGBS high-resolution maps:
        18.2"); None for no smoothing.
    noise : float
        Relative rms noise (0.05 = 5 %), drawn from ``rng``.
    periodic : bool
        Wrap at the edges (simulated periodic cubes) or reflect (maps).

    Returns
    -------
    ndarray, same shape, cm-2.
    """
    out = np.asarray(nh, dtype=np.float64)
    if beam_arcsec:
        sigma = beam_sigma_pixels(beam_arcsec, pixel_pc=pixel_pc, distance_pc=distance_pc)
        out = ndimage.gaussian_filter(out, sigma, mode="wrap" if periodic else "reflect")
    if noise:
        if rng is None:
            raise ValueError("noise needs a random generator, got rng=None")
        out = out * (1.0 + noise * rng.standard_normal(out.shape))
    return out


def tan_wcs(shape, *, pixel_arcsec: float, centre=(85.5, -1.0)) -> WCS:
    """North-up ICRS TAN WCS of square ``pixel_arcsec`` pixels centred on (RA, Dec) in deg."""
    ny, nx = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-pixel_arcsec / 3600.0, pixel_arcsec / 3600.0]
    wcs.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    wcs.wcs.crval = list(centre)
    wcs.wcs.radesys = "ICRS"
    return wcs


def upsample(nh: np.ndarray, *, cell_pc: float, pixel_pc: float) -> np.ndarray:
    """Resample a periodic simulated map from cells of ``cell_pc`` to pixels of ``pixel_pc``
    (cubic spline, clipped at the map's minimum so that N_H stays positive)."""
    out = ndimage.zoom(np.asarray(nh, dtype=np.float64), cell_pc / pixel_pc, order=3,
                       mode="grid-wrap", grid_mode=True)
    return np.clip(out, np.min(nh), None)


def herschel_like_hdu(nh: np.ndarray, *, distance_pc: float, pixel_arcsec: float = 3.0,
                      beam_arcsec: float = 18.2, centre=(85.5, -1.0), noise: float = 0.02,
                      rng: np.random.Generator | None = None) -> fits.PrimaryHDU:
    """A Herschel-like N(H2) map with a TAN WCS from an N_H map on ``pixel_arcsec`` pixels.

    The map is smoothed by the beam, given relative noise, and converted to
    N(H2) = N_H / 2 as the HGBS products give it.

    Parameters
    ----------
    nh : ndarray, shape (ny, nx)
        N_H in cm-2 on pixels of ``pixel_arcsec`` at ``distance_pc`` (see :func:`upsample`).
    centre : (RA, Dec) in degrees (ICRS)
        Map centre; the default lies in Orion B.

    Returns
    -------
    astropy.io.fits.PrimaryHDU
        float32 N(H2) in cm-2 with BUNIT, BTYPE, beam and provenance cards.
    """
    pixel_pc = pixel_arcsec / ARCSEC_PER_RAD * distance_pc
    nh_obs = observe(nh, pixel_pc=pixel_pc, distance_pc=distance_pc,
                     beam_arcsec=beam_arcsec, noise=noise, rng=rng, periodic=False)
    header = tan_wcs(nh_obs.shape, pixel_arcsec=pixel_arcsec, centre=centre).to_header()
    header["BUNIT"] = ("cm-2", "column density of H2 molecules")
    header["BTYPE"] = ("N(H2)", "N_H = 2 N(H2)")
    header["BMAJ"] = (beam_arcsec / 3600.0, "[deg] beam FWHM")
    header["BMIN"] = (beam_arcsec / 3600.0, "[deg] beam FWHM")
    header["BPA"] = 0.0
    header["DISTPC"] = (distance_pc, "[pc] distance used for the mock")
    header["ORIGIN"] = ("nhpipe", f"simulated map, nhpipe {__version__}")
    return fits.PrimaryHDU((nh_obs / 2.0).astype(np.float32), header=header)
