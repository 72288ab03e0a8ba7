"""The A.3/A.4 correction of a catalogue's core densities, with its Monte-Carlo."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from .. import correction
from ..correction import LOW_CONTRAST
from ..errors import InputError
from ..grid import PIXEL_PC
from ..load import NhpipeWarning
from ..units import PC_CM, SPECIES_FACTOR
from ._apertures import NEIGHBOUR_SHARE, SURROUNDINGS, MapStats, draw_from_quantiles, \
    measure_apertures
from ._read import CatalogueColumns, _column, _quantity, core_coordinates, core_mass_msun, \
    core_radius_pc, validate_rows

#: ``n_d`` of :class:`CorrectionOptions` that asks for the density of each core's own
#: surroundings (A.4 with a local diffuse medium).
LOCAL = "local"
#: The correlation curve of errors that no two cores share (independent draws).
INDEPENDENT = {"lag_px": [1.0], "rho": [0.0]}
#: Separation of a core's aperture from its surroundings (the annulus' mid-radius), in
#: units of its radius: where the correlation of the two <n_H>_m is read.
SEPARATION = sum(SURROUNDINGS) / 2
#: What the cards' core terms hold for, written with them in every output
#: (``model_term``): measured with ``benchmarks/core_mocks_shipped.py --placement dense``.
TERM_SCOPE = ("held on mock cores placed uniformly in their clouds, not on cores placed on "
              "dense gas, where neighbouring cores and the cloud's own peaks under a core "
              "read as core (README, 'Cores on dense gas')")


@dataclass
class CorrectionOptions:
    """How the cores are corrected.

    ``l_d_pc`` (A.3) or ``n_d`` (A.4, cm-3, or :data:`LOCAL`) must be given.
    ``lc_factor`` times the chosen radius is the core depth L_c (the poster used 2 x the
    observed radius, i.e. the core's diameter, and L_d = 10 pc).  ``radius``: 'observed'
    (default: the aperture then contains the core as it appears in the map at its
    resolution) or 'deconvolved' (closer to the intrinsic size, but the map is not
    deconvolved).

    The two-component model's own parameters are uncertain, so the Monte-Carlo draws them
    too, from priors: L_c / R uniform in ``lc_factor x [1 - lc_spread, 1 + lc_spread]``
    (a core is neither a uniform slab nor exactly its diameter deep: a sphere's mean chord
    is 4R/3, its central one 2R) and L_d (or n_d) log-normal about the given value with
    ``ld_dex`` dex (a diffuse depth of "10 pc" means a few to tens of pc). With ``n_d =
    "local"`` the diffuse medium is the gas around each core: n_d is drawn from the
    <n_H>_m quantiles of the map in the annulus 2R-3R around it (medians over the
    annulus of each quantile plane, :data:`~nhpipe.cores._apertures.SURROUNDINGS`), so
    its prior is the network's own estimate there and ``ld_dex`` is not used. The errors
    of a network's <n_H>_m inside the core and around it are not independent (a cloud
    read too dense is read too dense in both places), so the two are drawn with the
    correlation ``nd_correlation`` (a Gaussian copula on the quantiles); left ``None``, it
    is the one measured for the network at the core's separation from its surroundings
    (the card's ``error_correlation``, :func:`local_correlation`), 0 (independent, the
    widest intervals) when the map's card has none. The n_c
    intervals are percentiles of the draws; with fixed parameters they are the exact
    transforms of the <n_H>_m quantiles.

    A network's errors are also shared between the cores of one map (a region read too
    dense is read too dense everywhere), which matters for what sums over cores, such as
    the core mass function's bands (:func:`joint_draws`), not for any core's interval:
    their correlation is ``between_cores_correlation`` (left ``None``: the card's
    ``error_correlation`` at each pair's separation, :func:`between_cores_correlation`).

    What the priors leave out (core shape and profile, the beam, the network's own error
    on cores) is the empirical model-error term: every draw of log10 n_c is moved by an
    offset and scattered by a normal, both in dex. Given as ``model_offset_dex`` and
    ``model_scatter_dex``, one term holds for every core (unless ``model_profile_term`` is
    given too, in the Python API). Left ``None`` (the default), the
    term comes from the card of the model that made the map (``core_terms``), when the
    map's MODELSHA is that card's and the card holds a term fitted for this method and
    these priors (:func:`term_method`); such a term depends on each core's envelope ratio
    and contrast (``model_profile_term``, :func:`profile_term`: one offset and scatter per
    bin of the two, the pooled term for a core without them; a term may also hold a width
    factor per bin, :func:`profile_width`, that narrows the draws about their median),
    since an extended
    Plummer-like core and a sharp-edged one are read differently, and a faint core on a
    bright background otherwise than a bright one; a blended core (another core's centre
    inside its aperture) has a term of its own, since its neighbour's column makes it read
    too dense whatever its bins. The terms are fitted on mock cores
    (Plummer-like and uniform spheres) in one cloud family and tested in the others
    (``benchmarks/core_mocks.py``; README, "Core densities on mocks"), for each network,
    with the cores placed uniformly; they do not hold for cores on a cloud's structured
    dense gas (:data:`TERM_SCOPE`).
    """

    distance_pc: float
    l_d_pc: float | None = None
    n_d: float | str | None = None
    radius: str = "observed"
    lc_factor: float = 2.0
    lc_spread: float = 0.25
    ld_dex: float = 0.3
    nd_correlation: float | None = None
    between_cores_correlation: float | None = None
    model_offset_dex: float | None = None
    model_scatter_dex: float | None = None
    model_profile_term: dict | None = None
    nh_taper: float | None = None
    types: tuple | None = None
    max_alpha_be: float | None = None
    exclude_comments: tuple = ()
    n_draws: int = 1000
    seed: int = 0


def term_method(options: CorrectionOptions) -> dict:
    """What a model-error term is fitted for: the method and the priors.

    A term stored in a card holds these under ``method`` and ``priors``; it is applied
    only to a correction with the same (:func:`_card_term`).
    """
    if options.l_d_pc is not None:
        method = f"A.3 L_d={options.l_d_pc:g}pc"
    elif options.n_d == LOCAL:
        method = f"A.4 n_d={LOCAL}"
    else:
        method = f"A.4 n_d={options.n_d:g}cm-3"
    return {"method": method, "priors": {
        "radius": options.radius, "lc_factor": options.lc_factor,
        "lc_spread": options.lc_spread,
        "ld_dex": None if options.n_d == LOCAL else options.ld_dex,
        "nd_correlation": _correlation_prior(options)}}


def _correlation_prior(options: CorrectionOptions):
    """The correlation of the aperture's and surroundings' draws, as a term records it:
    None without ``--nd local``, 'card' when it comes from the map's card."""
    if options.n_d != LOCAL:
        return None
    return "card" if options.nd_correlation is None else options.nd_correlation


def correct_catalog(table: Table, nhpipe_file, options: CorrectionOptions,
                    columns: CatalogueColumns = CatalogueColumns()):
    """Measure every core on an nhpipe output and replace its density (A.3 or A.4).

    Every input row is kept.  Added columns (units in the metadata): ``nh_ap`` (N_H in
    the aperture), ``nh_background`` and ``log_nm_around`` (median N_H and <n_H>_m in the
    annulus 2R-3R around it), ``log_nm_q50`` and 68 % bounds (aperture <n_H>_m), ``nc_med`` with
    ``nc_lo68``/``nc_hi68``/``nc_lo95``/``nc_hi95`` (corrected density of H nuclei),
    ``nc_h2_med`` (the same for H2, comparable with HGBS), ``n_cat_h`` (catalogued
    density of H nuclei), ``log_ratio`` = log10(nc_med / n_cat_h), ``mass_new`` (from
    nc_med), ``contrast`` and ``envelope`` (:func:`~nhpipe.cores.core_profile`),
    ``low_contrast`` (contrast below :data:`LOW_CONTRAST`), ``crowding`` (fraction of the
    annulus 2R-3R inside other cores' apertures), ``blended`` (another core's centre inside
    the aperture, :func:`~nhpipe.cores.blended_cores`), ``nh_own`` (the aperture's excess
    over the background that is the core's own, :func:`~nhpipe.cores.own_excess`) and
    ``neighbour_dominated`` (it is below :data:`~nhpipe.cores._apertures.NEIGHBOUR_SHARE`
    of the excess), ``valid_frac``,
    ``status`` (ok, inconsistent, outside, masked, filtered), ``reason`` (a
    :mod:`nhpipe.correction` code, -1 when not computed), ``frac_consistent`` (fraction
    of Monte-Carlo draws with a solution) and ``invalid_reason``.

    Returns
    -------
    table : astropy.table.Table
        The catalogue with those columns (the input table is not changed).
    draws : ndarray, shape (n_draws, N)
        The Monte-Carlo draws of n_c (cm-3), NaN where a draw has no solution; they feed
        the core mass function's bands (:func:`write_outputs`).
    """
    if (options.l_d_pc is None) == (options.n_d is None):
        raise InputError("give exactly one of `ld` (diffuse depth, A.3) or `nd` "
                         "(diffuse density, A.4)")
    if options.radius not in ("observed", "deconvolved"):
        raise InputError(f"`radius` must be observed or deconvolved, got {options.radius!r}")
    made_by = map_card(nhpipe_file)  # read once: the terms and correlations come from it
    options, term_source = _with_model_term(options, made_by)
    out = table.copy()
    n = len(out)
    radius_pc = core_radius_pc(table, options.radius, columns)
    coords = core_coordinates(table, columns) if n else SkyCoord([], [], unit="deg")
    invalid = validate_rows(table, coords, radius_pc)
    usable = invalid == ""
    if not usable.all():
        counts = ", ".join(f"{k}: {int((invalid == k).sum())}"
                           for k in np.unique(invalid[~usable]))
        warnings.warn(f"{int((~usable).sum())} catalogue rows are invalid and kept with status "
                      f"'invalid' ({counts})", NhpipeWarning, stacklevel=2)
    safe_coords = SkyCoord(np.where(usable, np.nan_to_num(coords.ra.deg), 0.0) * u.deg,
                           np.where(usable, np.nan_to_num(coords.dec.deg), 0.0) * u.deg,
                           frame="icrs") if n else coords
    stats = measure_apertures(nhpipe_file, safe_coords, np.where(usable, radius_pc, np.nan),
                              distance_pc=options.distance_pc) \
        if n else MapStats.empty()

    status = np.full(n, "ok", dtype="U12")
    status[stats.valid_fraction < 0.5] = "masked"
    status[~stats.in_map] = "outside"
    status[~_selected(table, options, columns)] = "filtered"
    status[~usable] = "invalid"
    out["invalid_reason"] = invalid
    out["invalid_reason"].description = "why the row could not be used ('' if it could)"
    if n and (status[usable] == "outside").all():
        warnings.warn(f"no core of the catalogue lies inside {Path(nhpipe_file).name}",
                      NhpipeWarning, stacklevel=2)

    with np.errstate(all="ignore"):  # NaN rows (outside, masked) are expected here
        return _correct(out, table, stats, status, radius_pc, options, columns, nhpipe_file,
                        made_by, term_source)


def _correct(out, table, stats, status, radius_pc, options, columns, nhpipe_file, made_by,
             term_source):
    rho, rho_source = local_correlation(options, made_by, radius_pc)
    shared, shared_source = between_cores_correlation(options, made_by)
    measured = status != "filtered"
    pct, n_c, consistent, median_reason = _solve_draws(stats, radius_pc, options, rho)
    # A core is inconsistent when its median <n>_m has no solution.
    bad = (status == "ok") & (median_reason != correction.OK)
    status[bad] = "inconsistent"
    pct[:, status != "ok"] = np.nan
    density = _quantity(_column(table, columns, "density"), columns.density_unit)
    n_cat_h = density.to_value(u.cm**-3) * SPECIES_FACTOR[columns.density_species]
    mass_new = core_mass_msun(pct[0], radius_pc)

    def add(name, values, unit=None, description=""):
        out[name] = values
        if unit is not None:
            out[name].unit = unit
        out[name].description = description

    add("nh_ap", np.where(measured, stats.nh, np.nan), u.cm**-2, "aperture mean N_H")
    add("nh_background", np.where(measured, stats.background, np.nan), u.cm**-2,
        "median N_H around the core (annulus 2R-3R)")
    add("log_nm_q16", stats.log_nm_quantiles[1], u.dex(u.cm**-3), "aperture <n_H>_m 16%")
    add("log_nm_q50", stats.log_nm_quantiles[2], u.dex(u.cm**-3), "aperture <n_H>_m median")
    add("log_nm_q84", stats.log_nm_quantiles[3], u.dex(u.cm**-3), "aperture <n_H>_m 84%")
    add("log_nm_around", stats.log_nm_surroundings[2], u.dex(u.cm**-3),
        "<n_H>_m median around the core (annulus 2R-3R): n_d of --nd local")
    for name, row, text in (("nc_med", 0, "median"), ("nc_lo68", 1, "16%"), ("nc_hi68", 2, "84%"),
                            ("nc_lo95", 3, "2.5%"), ("nc_hi95", 4, "97.5%")):
        add(name, pct[row], u.cm**-3, f"corrected core density n_H, {text}")
    add("nc_h2_med", pct[0] / 2.0, u.cm**-3, "corrected core density n(H2), median")
    add("n_cat_h", n_cat_h, u.cm**-3, "catalogued density as n_H")
    with np.errstate(invalid="ignore", divide="ignore"):
        add("log_ratio", np.log10(pct[0] / n_cat_h), u.dex, "log10(nc_med / n_cat_h)")
    add("mass_new", mass_new, u.M_sun, "1.4 m_H nc_med (4/3) pi R^3")
    add("contrast", np.where(measured, stats.contrast, np.nan), None,
        "background-subtracted mean N_H inside R over the background's (median in 2R-3R)")
    add("envelope", np.where(measured, stats.envelope, np.nan), None,
        "envelope ratio: background-subtracted mean N_H in R-2R over that inside R")
    with np.errstate(invalid="ignore"):
        add("low_contrast", np.isin(status, ["ok", "inconsistent"])
            & ~(stats.contrast >= LOW_CONTRAST), None,
            f"contrast below {LOW_CONTRAST} (or none): n_c read too dense on mocks")
    add("crowding", np.where(measured, stats.crowding, np.nan), None,
        "fraction of the annulus 2R-3R inside other cores' apertures")
    add("blended", measured & stats.blended, None,
        "another catalogued core's centre inside the aperture: n_c read too dense on mocks")
    add("nh_own", np.where(measured, stats.own_excess, np.nan), u.cm**-2,
        "the aperture's N_H excess over the background left to the core once the "
        "catalogued cores' overlaps are solved for (Gaussian cores)")
    with np.errstate(invalid="ignore"):
        add("neighbour_dominated", measured & (stats.nh > stats.background)
            & (stats.own_excess < NEIGHBOUR_SHARE * (stats.nh - stats.background)), None,
            f"the catalogued neighbours account for over {1 - NEIGHBOUR_SHARE:.0%} of the "
            "aperture's excess (nh_own): n_c read too dense on mocks")
    add("valid_frac", stats.valid_fraction, None, "fraction of valid aperture pixels")
    add("frac_consistent", np.where(measured, consistent, np.nan), None,
        "fraction of Monte-Carlo draws with a solution")
    add("status", status, None, "ok, inconsistent, outside, masked or filtered")
    add("reason", np.where(measured & np.isin(status, ["ok", "inconsistent"]), median_reason,
                           -1).astype(np.int8), None,
        "; ".join(f"{k}: {v}" for k, v in correction.REASONS.items()) + "; -1: not computed")
    out.meta.update({
        "nhpipe_map": Path(nhpipe_file).name, "distance_pc": options.distance_pc,
        "method": "A.3 (L_d prescribed)" if options.l_d_pc is not None else
        "A.4 (n_d of each core's surroundings)" if options.n_d == LOCAL else
        "A.4 (n_d prescribed)", "l_d_pc": options.l_d_pc, "n_d_cm3": options.n_d,
        "radius": options.radius, "lc_factor": options.lc_factor,
        "lc_spread": options.lc_spread,
        "ld_dex": None if options.n_d == LOCAL else options.ld_dex,
        "nd_correlation": rho_source, "between_cores_correlation": shared_source,
        # Text (FITS headers): lag_px and rho of the errors' correlation between cores.
        "between_cores_curve": json.dumps(shared),
        "model_offset_dex": options.model_offset_dex,
        "model_scatter_dex": options.model_scatter_dex, "model_term": term_source,
        # Text, not a mapping: FITS headers hold numbers and strings only.
        "model_profile_term": json.dumps(options.model_profile_term),
        "nh_taper_cm2": options.nh_taper, "n_draws": options.n_draws, "seed": options.seed,
    })
    return out, n_c


def _with_model_term(options: CorrectionOptions, made_by: "MapCard"):
    """Options with the model-error term filled in, and where it came from.

    A value left ``None`` comes from the card of the map's MODEL, from its term for this
    correction's method and priors (:func:`term_method`), provided the card is that of
    the weights that made the map (MODELSHA) and the term was fitted on maps recalibrated
    as this one (CALOFFS, CALSPRD, CALSPRk, CALEDGk); otherwise it is 0 and a warning
    says why. When both values come from the card, so does its term by envelope ratio
    and contrast.
    """
    from dataclasses import replace

    fields = ("offset_dex", "scatter_dex")
    given = {f: getattr(options, f"model_{f}") for f in fields}
    if None not in given.values():
        return options, "given"
    term, source = _card_term(made_by, term_method(options))
    if term is None:
        warnings.warn(f"no model-error term for the cores: {source}; the n_c intervals "
                      "hold the network's spread and the priors only (set `model_offset` "
                      "and `model_scatter` to give one)", NhpipeWarning, stacklevel=3)
        term, source = {}, f"none ({source})"
    from_card = {f"model_{f}": float(term.get(f, 0.0)) if value is None else value
                 for f, value in given.items()}
    if all(value is None for value in given.values()):
        from_card["model_profile_term"] = term.get("by_profile")
    return replace(options, **from_card), source


class MapCard(NamedTuple):
    """The installed card of the network that made a map (:func:`map_card`)."""

    card: dict | None  # None: there is none (``why``)
    name: str | None   # the map's MODEL
    header: object     # the map's primary header
    why: str           # why there is no card, or ''


def map_card(nhpipe_file) -> MapCard:
    """The installed card of the network that made a map, if it is that of the weights
    that made it (MODELSHA): no card, an analytic baseline or other weights give none."""
    from astropy.io import fits

    from ..cards import read_card
    from ..models import models_dir

    header = fits.getheader(nhpipe_file, 0)
    name, weights_sha = header.get("MODEL"), header.get("MODELSHA")
    try:
        card = read_card(models_dir() / str(name))
    except InputError:
        return MapCard(None, name, header, f"no card of {name}")
    if "sha256" not in card:  # analytic baselines have no weights and nothing measured
        return MapCard(None, name, header, f"{name} is an analytic baseline")
    if not weights_sha or card.get("sha256") != weights_sha:
        return MapCard(None, name, header,
                       f"the map's {name} weights are not the installed ones")
    return MapCard(card, name, header, "")


def local_correlation(options: CorrectionOptions, made_by: MapCard, radius_pc):
    """Correlation of the <n_H>_m draws inside each core and around it (``--nd local``).

    ``options.nd_correlation`` when given; else the ``error_correlation`` of ``made_by``,
    the card of the network that made the map (:func:`map_card`;
    benchmarks/error_correlation.py: the correlation of its standardised errors between
    pixels a given number of model pixels apart, the least correlated validation
    family's), read at :data:`SEPARATION` radii in model pixels
    (:data:`nhpipe.grid.PIXEL_PC`) and held at the end values beyond the measured
    separations; 0 with a warning when the card has none.

    Returns
    -------
    rho : ndarray, shape (N,)
    source : str or None
        The values and where they came from, e.g. '0.62-0.83 (card of ddpm, at 2.5 R)'
        (None without ``--nd local``).
    """
    radius_pc = np.asarray(radius_pc, dtype=np.float64)
    if options.n_d != LOCAL:
        return np.zeros(radius_pc.shape), None
    if options.nd_correlation is not None:
        return np.full(radius_pc.shape, float(options.nd_correlation)), \
            f"{options.nd_correlation:g} (given)"
    entry, name, why = _card_correlation(made_by)
    if entry is None:
        warnings.warn(f"no error correlation for --nd local: {why}; the <n_H>_m inside and "
                      "around each core are drawn independently (the widest intervals; "
                      "set `nd_correlation` to give one)", NhpipeWarning, stacklevel=4)
        return np.zeros(radius_pc.shape), f"0 ({why})"
    lag_px = SEPARATION * np.nan_to_num(radius_pc, nan=0.0) / PIXEL_PC
    rho = np.interp(lag_px, entry["lag_px"], entry["rho"])
    span = f"{rho.min():.2f}-{rho.max():.2f} " if rho.size else ""
    return rho, f"{span}(card of {name}, at {SEPARATION:g} R)"


def between_cores_correlation(options: CorrectionOptions, made_by: MapCard):
    """Correlation of the network's errors between two cores of a map, by separation.

    ``options.between_cores_correlation`` when given (the same for every pair); else the
    ``error_correlation`` of ``made_by`` (:func:`map_card`): the correlation of the
    network's standardised errors between pixels a given number of model pixels apart
    (benchmarks/error_correlation.py, the least correlated validation family's), held at
    its last value (96 px, 2.5 pc, within one simulated region) for cores farther apart,
    where nothing was measured; 0 (independent draws) when the card has none.

    Returns
    -------
    curve : dict
        ``lag_px`` (ascending, model pixels) and ``rho`` (0-1), read by linear
        interpolation and held at the end values (:func:`shared_error_matrix`).
    source : str
        Where it came from, e.g. '0.95 at 1 px to 0.31 at 96 px and beyond (card of ddpm)'.
    """
    if options.between_cores_correlation is not None:
        value = float(options.between_cores_correlation)
        return {"lag_px": [1.0], "rho": [value]}, f"{value:g} (given)"
    entry, name, why = _card_correlation(made_by)
    if entry is None:
        return dict(INDEPENDENT), f"0 ({why})"
    lags, rho = entry["lag_px"], entry["rho"]
    return {"lag_px": [float(v) for v in lags], "rho": [float(v) for v in rho]}, \
        (f"{rho[0]:.2f} at {lags[0]:g} px to {rho[-1]:.2f} at {lags[-1]:g} px and beyond "
         f"(card of {name})")


def shared_error_matrix(coords: SkyCoord, distance_pc: float, curve: dict) -> np.ndarray:
    """Correlation matrix of the network's errors between cores, from their separations.

    Each pair gets the ``curve`` (:func:`between_cores_correlation`) at its separation in
    model pixels (angle x distance / :data:`nhpipe.grid.PIXEL_PC`). A correlation read
    pair by pair from a measured curve need not be a valid correlation matrix; its
    negative eigenvalues are set to 0 and its diagonal brought back to 1 (the nearest
    matrix of that kind in the sense of Higham 2002, IMA J. Numer. Anal. 22, 329, one
    step of it).

    Parameters
    ----------
    coords : SkyCoord, shape (N,)
    distance_pc : float
    curve : dict
        ``lag_px`` and ``rho`` lists.

    Returns
    -------
    ndarray, shape (N, N)
        Symmetric, positive semi-definite, ones on the diagonal.
    """
    lon, lat = coords.spherical.lon.rad, coords.spherical.lat.rad
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    # |a - b|^2 = 2 - 2 a.b for unit vectors: no (N, N, 3) array; its rounding (~1e-8
    # rad, milliarcseconds) is far below a model pixel.
    chord = np.sqrt(np.clip(2.0 - 2.0 * (xyz @ xyz.T), 0.0, 4.0))
    separation_px = 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0)) * distance_pc / PIXEL_PC
    matrix = np.interp(separation_px, curve["lag_px"], np.clip(curve["rho"], 0.0, 1.0))
    np.fill_diagonal(matrix, 1.0)
    if _cholesky(matrix) is not None:  # already positive definite: nothing to mend
        return matrix
    values, vectors = np.linalg.eigh(matrix)
    matrix = (vectors * np.clip(values, 0.0, None)) @ vectors.T
    scale = 1.0 / np.sqrt(np.diag(matrix))
    return matrix * scale[:, None] * scale[None, :]


def _cholesky(matrix):
    """The lower Cholesky factor of ``matrix``, or None when it is not positive definite.

    A tenth of the cost of an eigendecomposition (about 1 s against 10 s for 3,000
    cores on 2 cores), which is needed only for a matrix to mend or a singular one.
    """
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return None


def _card_correlation(made_by: MapCard):
    """The ``error_correlation`` of a map's card, the network's name, and why there is
    none (entry None)."""
    card, name, _, why = made_by
    entry = card.get("error_correlation") if card is not None else None
    return entry, name, why or (f"the card of {name} has no error_correlation"
                                if entry is None else "")


def _card_term(made_by: MapCard, wanted: dict):
    """The model-error term of a map's card (:func:`map_card`) for the method and priors
    ``wanted`` (:func:`term_method`), and where it came from; or None and why there is
    none."""
    card, name, header, why = made_by
    if card is None:
        return None, why
    terms = card.get("core_terms") or []
    matching = [t for t in terms if t.get("method") == wanted["method"]
                and _same_priors(t.get("priors", {}), wanted["priors"])]
    if not matching:
        fitted = "; ".join(f"{t.get('method')} with {t.get('priors')}" for t in terms)
        return None, (f"{name} has no core term fitted for {wanted['method']} with "
                      f"{wanted['priors']} (its card has: {fitted or 'none'})")
    term = matching[0]
    # The term was fitted on maps drawn with one recalibration of the samples; a map
    # drawn with another (an older nhpipe, or a card recalibrated since) is not covered.
    fitted = term.get("map_calibration")
    if fitted is not None:
        from ..calibrate import describe, from_header, same_calibration

        made = from_header(header)
        if not same_calibration(fitted, made):
            return None, (f"the core term of {name} was fitted on maps recalibrated "
                          f"{describe(fitted)}, this map's samples were {describe(made)}: "
                          "refit it (benchmarks/core_mocks.py --write-card) or remake the map")
    # A term fitted with the card's error correlation (--nd local) holds for that one.
    if wanted["priors"].get("nd_correlation") == "card" \
            and term.get("error_correlation") != card.get("error_correlation", {}).get("rho"):
        return None, (f"the core term of {name} was fitted with another error_correlation "
                      "than its card's: refit it (benchmarks/core_mocks.py --write-card)")
    return term, (f"card of {name}: {term['method']}, {term.get('fitted_on', '')}; "
                  f"{TERM_SCOPE}")


def _same_priors(a: dict, b: dict) -> bool:
    """Whether two :func:`term_method` priors are the same (numbers to 1e-9)."""
    if set(a) != set(b):
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, (int, float)) and isinstance(other, (int, float)):
            if not np.isclose(value, other, rtol=1e-9, atol=0.0):
                return False
        elif value != other:
            return False
    return True


def profile_term(envelope, contrast, term: dict | None, offset: float, scatter: float,
                 blended=None):
    """Each core's model-error offset and scatter (dex) from its envelope ratio, its
    contrast (:func:`~nhpipe.cores.core_profile`) and whether it is blended
    (:func:`~nhpipe.cores.blended_cores`).

    Parameters
    ----------
    envelope, contrast : ndarray, shape (N,)
        The cores' envelope ratios and contrasts, NaN where unknown.
    term : dict or None
        ``envelope_edges`` (inner bin edges, ascending, K values), ``contrast_edges``
        (J values), ``offset_dex`` and ``scatter_dex`` (K + 1 lists of J + 1 values: one
        per envelope bin, then contrast bin), and optionally ``blended``
        (``offset_dex`` and ``scatter_dex``: one term for every blended core, whose
        aperture holds a neighbour's column, whatever its bins; a card without it, older,
        gives blended cores their bins' term), and optionally ``width`` (factors in the
        same layout, :func:`profile_width`); None gives every core the pooled term.
    offset, scatter : float
        The pooled term, for cores without a ratio or a contrast.
    blended : ndarray of bool, shape (N,), optional
        The cores' ``blended`` flags; None: none is.

    Returns
    -------
    offset, scatter : ndarray, shape (N,)
    """
    pick = partial(_bin_values, envelope, contrast, term, blended=blended)
    return pick("offset_dex", offset), pick("scatter_dex", scatter)


def profile_width(envelope, contrast, term: dict | None, blended=None):
    """Each core's width factor from the term of :func:`profile_term`: its draws of log10
    n_c are spread about their median by this factor before the offset and scatter are
    added, so that a term can narrow intervals that the priors make too wide, as well as
    widen them. A term without ``width`` (every shipped card) gives 1.

    Returns
    -------
    width : ndarray, shape (N,)
    """
    return _bin_values(envelope, contrast, term, "width", 1.0, blended=blended)


def _bin_values(envelope, contrast, term, key, pooled, blended=None):
    """The value ``key`` of the term's (envelope, contrast) bin of each core, the blended
    cores' own where the term has one, ``pooled`` for cores without a ratio or a contrast
    or where the term has no such key."""
    envelope = np.asarray(envelope, dtype=np.float64)
    contrast = np.asarray(contrast, dtype=np.float64)
    if term is None or key not in term:
        return np.full(envelope.shape, float(pooled))
    row = np.digitize(np.nan_to_num(envelope, nan=0.0), term["envelope_edges"])
    column = np.digitize(np.nan_to_num(contrast, nan=0.0), term["contrast_edges"])
    known = np.isfinite(envelope) & np.isfinite(contrast)
    values = np.where(known, np.asarray(term[key], float)[row, column], pooled)
    if blended is not None and key in term.get("blended", {}):
        values = np.where(np.asarray(blended, dtype=bool), term["blended"][key], values)
    return values


def _solve_draws(stats, radius_pc, options: CorrectionOptions, rho=None):
    """The corrected density of every core: its percentiles and Monte-Carlo draws.

    ``rho`` (N,): correlation of the <n_H>_m draws inside and around each core
    (:func:`local_correlation`; ``--nd local`` only, 0 when None).

    Returns
    -------
    pct : ndarray, shape (5, n_cores)
        n_c (cm-3) at the median, 16, 84, 2.5 and 97.5 %.
    n_c : ndarray, shape (n_draws, n_cores)
        Draws of n_c (cm-3); NaN where a draw has no solution.
    consistent : ndarray, shape (n_cores,)
        Fraction of the draws with a solution.
    median_reason : ndarray of int8, shape (n_cores,)
        :data:`correction.REASONS` code of the median <n_H>_m's solution.
    """
    n = len(radius_pc)
    rng = np.random.default_rng(options.seed)
    shape = (options.n_draws, n)
    z_core = rng.standard_normal(shape)
    log_nm = draw_from_quantiles(np.nan_to_num(stats.log_nm_quantiles, nan=0.0), z_core)
    l_c = options.lc_factor * radius_pc * PC_CM
    # Draws of the model's parameters from their priors (see CorrectionOptions).
    l_c_draws = l_c * rng.uniform(1 - options.lc_spread, 1 + options.lc_spread, shape)
    local = options.n_d == LOCAL
    if local:
        diffuse = 10.0 ** stats.log_nm_surroundings[2]
        rho = np.zeros(n) if rho is None else np.clip(rho, 0.0, 1.0)
        z_around = rho * z_core + np.sqrt(1.0 - rho**2) * rng.standard_normal(shape)
        diffuse_draws = 10.0 ** draw_from_quantiles(stats.log_nm_surroundings, z_around)
    else:
        diffuse = options.l_d_pc * PC_CM if options.l_d_pc is not None else options.n_d
        diffuse_draws = diffuse * 10 ** (options.ld_dex * rng.standard_normal(shape))

    def solve(log_n_m, l_c=l_c, diffuse=diffuse):
        n_m = 10.0**log_n_m
        if options.l_d_pc is not None:
            n_c, reason = correction.core_density_ld(stats.nh, n_m, l_c, diffuse)
        else:
            n_c, reason = correction.core_density_nd(stats.nh, n_m, l_c, diffuse)
        if options.nh_taper:
            n_c = correction.taper(n_c, n_m, stats.nh, nh_taper=options.nh_taper)
        return n_c, reason

    # n_c rises monotonically with <n>_m (at fixed N_H, L_c and L_d or n_d), so the
    # quantiles of n_c are exactly the corrected quantiles of <n>_m; the Monte-Carlo
    # draws serve the fraction of consistent draws and the CMF bands.
    knots, knot_reason = solve(stats.log_nm_quantiles)   # rows Q02_5, Q16, Q50, Q84, Q97_5
    n_c, reason = solve(log_nm, l_c_draws, diffuse_draws)
    offset, scatter = profile_term(stats.envelope, stats.contrast, options.model_profile_term,
                                   options.model_offset_dex, options.model_scatter_dex,
                                   stats.blended)
    width = profile_width(stats.envelope, stats.contrast, options.model_profile_term,
                          stats.blended)
    narrowed = bool(np.any(width != 1.0))
    term = bool(np.any(offset) or np.any(scatter) or narrowed)
    if narrowed:
        with np.errstate(divide="ignore", invalid="ignore"):
            n_c = 10.0 ** spread_about_median(np.log10(n_c), width)
    if term:
        n_c = n_c * 10 ** (offset + scatter * rng.standard_normal(shape))
    if n and (options.lc_spread or options.ld_dex or term or local):
        # With uncertain parameters the intervals come from the joint draws.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows without any solution
            knots = np.nanpercentile(np.where(reason == correction.OK, n_c, np.nan),
                                     [2.5, 16, 50, 84, 97.5], axis=0)
    consistent = np.mean(reason == correction.OK, axis=0) if n else np.zeros(0)
    median_reason = knot_reason[2] if n else np.zeros(0, np.int8)
    pct = knots[[2, 1, 3, 0, 4]] if n else np.zeros((5, 0))
    return pct, n_c, consistent, median_reason


def spread_about_median(log_draws, width):
    """Draws (n_draws, N) of log10 n_c spread about each column's median by ``width``
    (N,), as a term's width factor applies them (:func:`profile_width`): 1 keeps them,
    below 1 narrows. NaN draws stay NaN."""
    width = np.asarray(width, float)
    if np.all(width == 1.0):  # the draws as they are, not a rounding of them
        return log_draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns without any draw
        median = np.nanmedian(log_draws, axis=0)
    return median + width * (log_draws - median)


def joint_draws(draws, correlation, rng: np.random.Generator) -> np.ndarray:
    """Draws of every core's density together, for what sums over cores (the CMF bands).

    Each core's density is what its draws with a solution say (the table's intervals are
    their percentiles): they are spread over the rows at evenly spaced quantiles, so that
    a draw without a solution does not drop the core from a sum. The rows of each core
    are then put in the order of correlated standard normal target scores (one row of
    scores per draw, with the cores' correlation): the rank-reordering of Iman & Conover
    (1982, Commun. Stat. Simul. Comput. 11, 311), which keeps every core's values and
    gives two cores about the rank correlation of their scores.

    Parameters
    ----------
    draws : ndarray, shape (n_draws, N)
        Monte-Carlo draws (NaN without a solution), as :func:`correct_catalog` returns.
    correlation : float or ndarray, shape (N, N)
        Correlation between cores, 0-1: one for every pair, or a positive semi-definite
        matrix (:func:`shared_error_matrix`).

    Returns
    -------
    ndarray, shape (n_draws, N)
        NaN only for a core without any solution.
    """
    draws = np.asarray(draws, dtype=np.float64)
    levels = (np.arange(draws.shape[0]) + 0.5) / draws.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cores without any solution
        spread = np.nanquantile(draws, levels, axis=0)  # each column ascending
    if np.ndim(correlation) == 0:  # one factor shared by all: no matrix to decompose
        rho = float(correlation)
        target = np.sqrt(rho) * rng.standard_normal((draws.shape[0], 1)) \
            + np.sqrt(1.0 - rho) * rng.standard_normal(draws.shape)
    else:
        correlation = np.asarray(correlation, dtype=np.float64)
        root = _cholesky(correlation)
        if root is None:  # positive semi-definite only (e.g. a mended matrix)
            values, vectors = np.linalg.eigh(correlation)
            root = vectors * np.sqrt(np.clip(values, 0.0, None))
        target = rng.standard_normal(draws.shape) @ root.T
    rank = np.argsort(np.argsort(target, axis=0), axis=0)
    return np.take_along_axis(spread, rank, axis=0)


def _selected(table, options: CorrectionOptions, columns: CatalogueColumns) -> np.ndarray:
    keep = np.ones(len(table), dtype=bool)
    if options.types:
        keep &= np.isin(np.asarray(_column(table, columns, "core_type")), options.types)
    if options.max_alpha_be is not None:
        keep &= np.asarray(_column(table, columns, "alpha_be"), float) \
            <= options.max_alpha_be
    if options.exclude_comments:
        comments = np.asarray(_column(table, columns, "comment")).astype(str)
        for text in options.exclude_comments:
            keep &= np.char.find(np.char.lower(comments), text.lower()) < 0
    return keep


