"""Aperture measurements of the cores on an nhpipe output, and draws from quantiles."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from scipy.special import ndtri

from ..errors import InputError
from ..summarise import QUANTILES

#: The quantile planes of an nhpipe output (names and levels owned by summarise).
_QUANTILE_HDUS = QUANTILES
#: Inner and outer radii of a core's surroundings, in units of its radius R: the annulus
#: where its background N_H (:func:`core_profile`) and the <n_H>_m of the gas around it
#: (``--nd local``) are measured, beyond the reach of a Plummer-like envelope truncated
#: at 2R.
SURROUNDINGS = (2.0, 3.0)
#: A core whose own excess (:func:`own_excess`) is below this fraction of its aperture's
#: excess has an excess its catalogued neighbours account for (``neighbour_dominated``).
NEIGHBOUR_SHARE = 0.1
#: sigma of a Gaussian whose half maximum lies at radius 1 (:func:`own_excess`).
_HALF_MAX_SIGMA = 1.0 / np.sqrt(2.0 * np.log(2.0))


def _sunflower(n: int = 400):
    """Points evenly spread over the unit disk (a Fibonacci lattice), x and y."""
    k = np.arange(n) + 0.5
    radius, angle = np.sqrt(k / n), np.pi * (3.0 - np.sqrt(5.0)) * k
    return radius * np.cos(angle), radius * np.sin(angle)


#: Quadrature points of :func:`own_excess` over an aperture of radius 1.
_APERTURE_POINTS = _sunflower()


@dataclass
class MapStats:
    """Aperture averages of one nhpipe output file for each core (arrays of length N)."""

    nh: np.ndarray                # mean N_H in cm-2
    log_nm_quantiles: np.ndarray  # (5, N) mean log10 <n>_m quantiles (Q02_5 ... Q97_5)
    valid_fraction: np.ndarray    # fraction of aperture pixels with valid data
    in_map: np.ndarray            # the aperture overlaps the map
    contrast: np.ndarray          # core over background N_H (:func:`core_profile`), or NaN
    envelope: np.ndarray          # envelope ratio (:func:`core_profile`), or NaN
    background: np.ndarray        # median N_H (cm-2) in the SURROUNDINGS annulus, or NaN
    log_nm_surroundings: np.ndarray  # (5, N) median log10 <n>_m quantiles there, or NaN
    crowding: np.ndarray          # fraction of that annulus inside other cores, or NaN
    blended: np.ndarray           # another core's centre inside the aperture (bool)
    own_excess: np.ndarray        # nh - background left once neighbours are taken out, or NaN

    @classmethod
    def empty(cls) -> "MapStats":
        """The statistics of no core."""
        return cls(np.zeros(0), np.zeros((5, 0)), np.zeros(0), np.zeros(0, bool),
                   np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((5, 0)), np.zeros(0),
                   np.zeros(0, bool), np.zeros(0))


def measure_apertures(nhpipe_file, coords: SkyCoord, radius_pc, *, distance_pc: float) -> MapStats:
    """Blank-aware aperture averages of an nhpipe output file around each core.

    The aperture of a core is a sky circle of its catalogue radius (in pc, turned into an
    angle with ``distance_pc``); photutils sums the pixels whose centres fall inside.
    log10 <n>_m quantiles are averaged in log space; N_H linearly (it is additive).
    A core outside the map gets in_map False, valid_fraction 0 and NaN values.
    Each core's contrast and envelope ratio are measured on the NH plane
    (:func:`core_profile`); its surroundings (the annulus :data:`SURROUNDINGS`) give the
    median N_H of its background and the median of each log10 <n>_m quantile plane there,
    the density of the gas the core sits in (A.4 with ``n_d`` local). ``crowding`` is the
    fraction of that annulus inside the other cores' apertures (their catalogued radii):
    they are not left out of it (README, "Crowded cores": tried, not adopted). ``blended``
    marks a core whose aperture holds another core's centre (:func:`blended_cores`);
    ``own_excess`` is its excess over the background once the catalogued cores' overlaps
    are solved for (:func:`own_excess`).
    """
    from photutils.aperture import ApertureStats, SkyCircularAnnulus, SkyCircularAperture

    with fits.open(nhpipe_file) as hdul:
        names = [h.name for h in hdul]
        missing = [n for n in ["NH", *_QUANTILE_HDUS] if n not in names]
        if missing:
            raise InputError(f"{nhpipe_file}: not an nhpipe output (no HDU {missing[0]})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(hdul["NH"].header)
        maps = {n: np.asarray(hdul[n].data, dtype=np.float64) for n in ["NH", *_QUANTILE_HDUS]}
    blank = ~np.all([np.isfinite(m) for m in maps.values()], axis=0)
    radius_arcsec = np.asarray(radius_pc, float) / distance_pc * 206264.80624709636
    n = len(coords)
    nh = np.full(n, np.nan)
    quant = np.full((len(_QUANTILE_HDUS), n), np.nan)
    valid = np.zeros(n)
    in_map = np.zeros(n, dtype=bool)
    contrast, envelope, background = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    surroundings = np.full((len(_QUANTILE_HDUS), n), np.nan)
    ny, nx = blank.shape
    ones, unblank = np.ones(blank.shape), (~blank).astype(np.float64)  # once, not per core
    xs, ys = wcs.world_to_pixel(coords)
    scale_arcsec = np.abs(wcs.proj_plane_pixel_scales()[0].to_value(u.arcsec))
    others = _aperture_mask(blank.shape, xs, ys, radius_arcsec / scale_arcsec)
    crowding = np.full(n, np.nan)
    for i in range(n):
        r = radius_arcsec[i]
        if not (np.isfinite(r) and r > 0):
            continue
        margin = r / 3600.0 / np.abs(wcs.proj_plane_pixel_scales()[0].to_value(u.deg))
        if not (-margin < xs[i] < nx - 1 + margin and -margin < ys[i] < ny - 1 + margin):
            continue
        aperture = SkyCircularAperture(coords[i], r * u.arcsec).to_pixel(wcs)
        inside = ApertureStats(ones, aperture).sum
        if not inside > 0:
            continue
        in_map[i] = True
        valid[i] = min(1.0, float(ApertureStats(unblank, aperture).sum / inside))
        if valid[i] > 0:
            stats = {k: ApertureStats(m, aperture, mask=blank) for k, m in maps.items()}
            nh[i] = stats["NH"].mean
            quant[:, i] = [stats[k].mean for k in _QUANTILE_HDUS]
            inner, outer = (f * r * u.arcsec for f in SURROUNDINGS)
            annulus = SkyCircularAnnulus(coords[i], inner, outer).to_pixel(wcs)
            area = ApertureStats(ones, annulus).sum
            free = ApertureStats(ones, annulus, mask=others).sum
            crowding[i] = 1.0 - free / area if area > 0 else np.nan
            around = [ApertureStats(maps[k], annulus, mask=blank).median
                      for k in ["NH", *_QUANTILE_HDUS]]
            background[i], surroundings[:, i] = around[0], around[1:]
            contrast[i], envelope[i] = core_profile(maps["NH"], blank, coords[i],
                                                    r * u.arcsec, wcs,
                                                    background=background[i])
    return MapStats(nh, quant, valid, in_map, contrast, envelope, background, surroundings,
                    crowding, blended_cores(coords, radius_arcsec),
                    own_excess(coords, radius_arcsec, nh - background))


def own_excess(coords: SkyCoord, radius_arcsec, excess) -> np.ndarray:
    """Each core's own share of its aperture's excess over the background, the catalogued
    cores' overlaps solved for together, as a source extraction deblends overlapping
    cores (getsources: Men'shchikov et al. 2012, A&A 542, A81).

    Every core is taken as a circular Gaussian on the sky whose half maximum lies at its
    aperture radius; then the excess of aperture i (its mean N_H minus its background)
    is sum_j A[i, j] x_j, where x_j is core j's excess in its own aperture and A[i, j] the
    mean of core j's profile over aperture i relative to its mean over its own (A[j, j] =
    1; a quadrature over the disk). The x are the non-negative least-squares solution
    (Lawson & Hanson 1974), for each group of cores that overlap; NaN for a group whose
    solution does not converge. A core whose x is below :data:`NEIGHBOUR_SHARE`
    of its excess has an excess its neighbours account for (README, "Cores on dense
    gas": on mock cores, those read far too dense are mostly these). The model is rough
    (real cores are not Gaussians, and a neighbour's wing in the background annulus is
    left out): a core squeezed between brighter ones can lose part of its own excess.

    Parameters
    ----------
    coords : SkyCoord, shape (N,)
    radius_arcsec : ndarray, shape (N,)
        Aperture radii (arcsec).
    excess : ndarray, shape (N,)
        Mean N_H in each aperture minus its background (cm-2); NaN where unmeasured.

    Returns
    -------
    ndarray, shape (N,)
        The cores' own excess (cm-2); NaN where the excess or the radius is not finite.
    """
    from scipy.optimize import nnls
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    radius = np.asarray(radius_arcsec, dtype=np.float64)
    excess = np.asarray(excess, dtype=np.float64)
    out = np.full(radius.shape, np.nan)
    use = np.flatnonzero(np.isfinite(excess) & np.isfinite(radius) & (radius > 0))
    if not use.size:
        return out
    # A Gaussian reaches < 1e-4 of its peak beyond 3.7 half-maximum radii.
    reach = (1.0 + 3.7) * float(radius[use].max()) * u.arcsec
    first, second, _, _ = coords[use].search_around_sky(coords[use], reach)
    dx, dy = (d.arcsec for d in coords[use][first].spherical_offsets_to(coords[use][second]))

    ux, uy = _APERTURE_POINTS
    # The background annulus is left out of the model: a neighbour's wing covers one side
    # of it, which its median hardly sees (tried: subtracting its mean there did worse).
    own = np.exp(-0.5 * (ux**2 + uy**2) / _HALF_MAX_SIGMA**2).mean()  # A[j, j] before scaling
    values = np.empty(first.size)
    for start in range(0, first.size, 4096):  # pairs x points in bounded memory
        pair = slice(start, start + 4096)
        r_i, r_j = radius[use][first[pair], None], radius[use][second[pair], None]
        d2 = (r_i * ux - dx[pair, None]) ** 2 + (r_i * uy - dy[pair, None]) ** 2
        values[pair] = np.exp(-0.5 * d2 / (r_j * _HALF_MAX_SIGMA) ** 2).mean(axis=1) / own
    matrix = coo_matrix((values, (first, second)), shape=(use.size, use.size)).tocsr()
    _, group = connected_components(matrix, directed=False)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        block = matrix[members][:, members].toarray()
        try:
            out[use[members]], _ = nnls(block, excess[use[members]],
                                        maxiter=50 * members.size)
        except RuntimeError:  # no convergence: those cores stay unknown, not wrong
            pass
    return out


def blended_cores(coords: SkyCoord, radius_arcsec) -> np.ndarray:
    """Whether another core's centre lies inside each core's aperture.

    The aperture then holds a share of that neighbour's column, which no background
    annulus removes: on mock cores such blended ones read too dense (README, "Cores on
    dense gas"). Cores without a finite radius neither count nor are counted.

    Parameters
    ----------
    coords : SkyCoord, shape (N,)
    radius_arcsec : ndarray, shape (N,)
        Aperture radii (arcsec).

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    radius_arcsec = np.asarray(radius_arcsec, dtype=np.float64)
    out = np.zeros(len(radius_arcsec), dtype=bool)
    usable = np.flatnonzero(np.isfinite(radius_arcsec) & (radius_arcsec > 0))
    if usable.size < 2:
        return out
    reach = float(radius_arcsec[usable].max()) * u.arcsec
    first, second, separation, _ = coords[usable].search_around_sky(coords[usable], reach)
    pair = (first != second) & (separation.to_value(u.arcsec)
                                < radius_arcsec[usable][first])
    out[usable[first[pair]]] = True
    return out


def _aperture_mask(shape, xs, ys, radius_px) -> np.ndarray:
    """Pixels whose centres lie inside any of the circles (pixel coordinates), shape
    ``shape``; circles with a NaN centre or radius are left out."""
    mask = np.zeros(shape, dtype=bool)
    for x, y, r in zip(xs, ys, radius_px):
        if not (np.isfinite(x) and np.isfinite(y) and np.isfinite(r) and r > 0):
            continue
        x0, x1 = max(int(np.floor(x - r)), 0), min(int(np.ceil(x + r)) + 1, shape[1])
        y0, y1 = max(int(np.floor(y - r)), 0), min(int(np.ceil(y + r)) + 1, shape[0])
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] |= np.hypot(xx - x, yy - y) <= r
    return mask


def core_profile(nh, blank, coord: SkyCoord, radius, wcs, *,
                 background: float | None = None) -> tuple[float, float]:
    """How a core stands above its background, and how far its column reaches beyond its
    radius R: its contrast and its envelope ratio.

    With B the median N_H in the annulus 2R-3R (the background, :data:`SURROUNDINGS`),
    C the mean N_H inside R and W that in the annulus R-2R: contrast = (C - B) / B,
    envelope ratio = (W - B) / (C - B). A faint core on a bright background (low
    contrast) holds little of its aperture's column; A.3/A.4 then give it the diffuse
    gas's own clumping and read it too dense (README, "Core densities on mocks"). A core
    with a sharp edge (a uniform sphere seen through the beam) has a small envelope
    ratio, one with an extended envelope (a Plummer-like or Bonnor-Ebert profile) a
    larger one. Means use exact pixel overlaps (apertures are a few pixels wide on the
    model grid).

    Parameters
    ----------
    nh : ndarray, shape (ny, nx)
        N_H (cm-2).
    blank : ndarray of bool, shape (ny, nx)
        Pixels without valid data (left out).
    coord : SkyCoord
        The core's position.
    radius : astropy.units.Quantity
        Its aperture radius R (angle).
    wcs : astropy.wcs.WCS
        Celestial WCS of ``nh``.
    background : float, optional
        B (cm-2) when already measured (:func:`measure_apertures`).

    Returns
    -------
    contrast, envelope : float
        Dimensionless; NaN when the core is not above a positive background, or an
        annulus has no valid pixel.
    """
    from photutils.aperture import ApertureStats, SkyCircularAnnulus, SkyCircularAperture

    def exact_mean(aperture):
        stats = ApertureStats(nh, aperture.to_pixel(wcs), mask=blank)
        area = stats.sum_aper_area.value  # of the unmasked pixels, exact overlaps
        return stats.sum / area if area > 0 else np.nan

    core = exact_mean(SkyCircularAperture(coord, radius))
    wing = exact_mean(SkyCircularAnnulus(coord, radius, 2 * radius))
    if background is None:
        outer = SkyCircularAnnulus(coord, *(f * radius for f in SURROUNDINGS)).to_pixel(wcs)
        background = ApertureStats(nh, outer, mask=blank).median
    # A relative floor: on a flat map, rounding alone must not make a core.
    if not (background > 0 and np.isfinite(wing)
            and core - background > 1e-6 * background):
        return np.nan, np.nan
    return float((core - background) / background), \
        float((wing - background) / (core - background))


def draw_from_quantiles(quantiles: np.ndarray, z: np.ndarray):
    """Samples of a distribution known by its 2.5, 16, 50, 84, 97.5 % quantiles.

    The quantile function is interpolated linearly in the normal score z = Phi^-1(p)
    and extrapolated linearly beyond the end quantiles, so a Gaussian is reproduced
    exactly and skewed distributions keep their asymmetry. The normal scores are given,
    so that draws of two quantities can share them (a Gaussian copula).

    Parameters
    ----------
    quantiles : ndarray, shape (5, N)
    z : ndarray, shape (n_draws, N)
        Standard normal scores, one per draw.

    Returns
    -------
    ndarray, shape (n_draws, N)
    """
    z_knots = ndtri(np.array(list(_QUANTILE_HDUS.values())))
    q = np.sort(quantiles, axis=0)
    out = np.empty_like(z)
    for j in range(len(z_knots) - 1):
        lo, hi = z_knots[j], z_knots[j + 1]
        sel = (z >= lo) & (z < hi)
        if j == 0:
            sel |= z < lo
        if j == len(z_knots) - 2:
            sel |= z >= hi
        slope = (q[j + 1] - q[j]) / (hi - lo)
        value = q[j] + slope * (z - lo)
        out[sel] = value[sel]
    return out


