"""Mock observations: beam smoothing, noise, zero-level offsets and Herschel-like FITS maps."""

from __future__ import annotations

from dataclasses import dataclass

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
    sigma = 0.0
    if beam_arcsec:
        sigma = beam_sigma_pixels(beam_arcsec, pixel_pc=pixel_pc, distance_pc=distance_pc)
    return _smooth_and_noise(nh, sigma, noise, rng, periodic)


def _smooth_and_noise(nh, sigma: float, noise: float, rng, periodic: bool) -> np.ndarray:
    out = np.asarray(nh, dtype=np.float64)
    if sigma:
        out = ndimage.gaussian_filter(out, sigma, mode="wrap" if periodic else "reflect")
    if noise:
        if rng is None:
            raise ValueError("noise needs a random generator, got rng=None")
        out = out * (1.0 + noise * rng.standard_normal(out.shape))
    return out


def observe_pixels(nh: np.ndarray, *, beam_px: float, noise: float,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """A periodic simulated N_H map seen through a beam given in pixels, with noise.

    The Gaussian beam of FWHM ``beam_px`` pixels wraps at the edges, so the total column
    is conserved exactly; the noise is relative and Gaussian.

    Parameters
    ----------
    nh : ndarray, shape (ny, nx)
        N_H in cm-2, periodic.
    beam_px : float
        Beam FWHM in pixels (0 for none).
    noise : float
        Relative rms noise (0.05 = 5 %).
    rng : numpy.random.Generator
        Needed when ``noise`` > 0.

    Returns
    -------
    ndarray, float64, same shape, cm-2.
    """
    return _smooth_and_noise(nh, beam_px / FWHM_PER_SIGMA, noise, rng, True)


def loguniform(rng: np.random.Generator, bounds) -> float:
    """A draw log-uniform between ``bounds`` (lo, hi)."""
    lo, hi = bounds
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


@dataclass(frozen=True)
class ObservationRanges:
    """How a simulated N_H map is observed; shared by every family, so that all are seen
    through the same telescopes.

    beam_px : FWHM of the Gaussian beam in model pixels (0.026 pc), log-uniform. HGBS maps
        at 18.2" (high-resolution N_H) and 36.3" (500 um) at 140-500 pc span 0.5-4 px,
        Hi-GAL 36" maps at 1-2 kpc span 7-14 px (Andre et al. 2010, A&A 518, L102;
        Molinari et al. 2010, A&A 518, L100).
    noise : relative rms noise per pixel, log-uniform (Herschel N_H maps: a few %).
    offset_fraction, offset_cm2 : the fraction of maps that get a constant offset, drawn
        uniform in +-offset_cm2 (cm-2 of H nuclei) and at most half the map's smallest
        value, so that N_H stays positive: the zero level of Herschel maps comes from
        Planck and is uncertain by a few 1e20 cm-2 (Bernard et al. 2010, A&A 518, L88).
    """

    beam_px: tuple = (0.5, 16.0)
    noise: tuple = (0.01, 0.10)
    offset_fraction: float = 0.3
    offset_cm2: float = 3.0e20


def draw_observation(rng: np.random.Generator, ranges: ObservationRanges) -> dict:
    """Beam (px), noise (relative) and whether an offset is applied, from ``ranges``."""
    return {"beam_px": loguniform(rng, ranges.beam_px), "noise": loguniform(rng, ranges.noise),
            "offset_u": float(rng.uniform(-1, 1)) if rng.random() < ranges.offset_fraction
            else 0.0}


def observe_region(nh: np.ndarray, obs: dict, rng: np.random.Generator,
                   ranges: ObservationRanges) -> tuple[np.ndarray, float]:
    """The observed N_H of a region: :func:`observe_pixels`, then the zero-level offset.

    Parameters
    ----------
    nh : ndarray, shape (128, 128)
        True N_H in cm-2 (periodic).
    obs : dict
        From :func:`draw_observation`.
    """
    smoothed = observe_pixels(nh, beam_px=obs["beam_px"], noise=obs["noise"], rng=rng)
    offset = obs["offset_u"] * min(ranges.offset_cm2, 0.5 * float(smoothed.min()))
    return smoothed + offset, offset


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
