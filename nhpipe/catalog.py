"""Dense-core catalogues: readers, aperture measurements on nhpipe maps, and the A.3/A.4
correction of the core densities (Ribeiro & Hily-Blant; Konyves et al. 2020, A&A 635, A34).

The catalogue stage reads nhpipe output files and catalogues; it never imports a model.
Radii and positions are kept; densities are replaced by the corrected ones.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.constants import M_sun, m_p
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning
from scipy.special import ndtri

from . import correction
from .errors import InputError
from .load import NhpipeWarning
from .units import MU_H, PC_CM, SPECIES_FACTOR

#: HGBS derived-core tables (Konyves et al. 2020 Table A.2; same layout for other clouds).
HGBS_COLUMNS = [
    ("no", int, None), ("name", str, None), ("ra", str, None), ("dec", str, None),
    ("r_deconv", float, u.pc), ("r_obs", float, u.pc), ("mass", float, u.M_sun),
    ("mass_err", float, u.M_sun), ("t_dust", float, u.K), ("t_dust_err", float, u.K),
    ("nh2_peak", float, u.Unit("1e21 cm-2")), ("nh2_ave_obs", float, u.Unit("1e21 cm-2")),
    ("nh2_ave_deconv", float, u.Unit("1e21 cm-2")), ("n_h2_peak", float, u.Unit("1e4 cm-3")),
    ("n_h2_ave_obs", float, u.Unit("1e4 cm-3")), ("n_h2_ave_deconv", float, u.Unit("1e4 cm-3")),
    ("alpha_be", float, None), ("core_type", int, None),
]
_QUANTILE_HDUS = {"Q02_5": 0.025, "Q16": 0.16, "Q50": 0.50, "Q84": 0.84, "Q97_5": 0.975}


@dataclass
class ColumnMap:
    """Which catalogue columns hold what; the defaults are those of HGBS tables.

    ``density`` is the catalogued mean density of ``density_species`` (H2 in HGBS) with
    the radius ``radius_observed``; ``density_unit`` applies when the column has no unit.
    """

    name: str = "name"
    ra: str = "ra"
    dec: str = "dec"
    radius_observed: str = "r_obs"
    radius_deconvolved: str = "r_deconv"
    radius_unit: str = "pc"
    density: str = "n_h2_ave_obs"
    density_unit: str = "1e4 cm-3"
    density_species: str = "H2"
    mass: str = "mass"
    core_type: str = "core_type"
    alpha_be: str = "alpha_be"
    comment: str = "comment"


def read_hgbs(path) -> Table:
    """Read an HGBS archive core table (header lines start with ``|``).

    Four column-title lines follow the header; each data line holds 18 whitespace-
    separated values (sexagesimal RA/Dec) and a free-text comment (column 19).

    Raises
    ------
    InputError
        Naming the line number of the first malformed data line.
    """
    rows = []
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    body = [i for i, line in enumerate(lines) if not line.startswith("|")]
    if len(body) < 5:
        raise InputError(f"{path}: no data rows after the HGBS header")
    for number in body[4:]:
        line = lines[number]
        if not line.strip():
            continue
        tokens = line.split()
        try:
            if len(tokens) < len(HGBS_COLUMNS):
                raise ValueError(f"{len(tokens)} values, expected {len(HGBS_COLUMNS)}")
            values = [kind(token) for (_, kind, _), token in zip(HGBS_COLUMNS, tokens)]
            _sexagesimal(values[2], values[3])
        except ValueError as exc:
            raise InputError(f"{path}: line {number + 1} is malformed ({exc})") from None
        values[1] = "HGBS_J" + values[1]
        rows.append(values + [" ".join(tokens[len(HGBS_COLUMNS):])])
    names = [c[0] for c in HGBS_COLUMNS] + ["comment"]
    table = Table(rows=rows, names=names) if rows else Table(names=names)
    for name, _, unit in HGBS_COLUMNS:
        if unit is not None:
            table[name].unit = unit
    table.meta["source"] = str(path)
    table.meta["format"] = "HGBS archive"
    return table


def _sexagesimal(ra, dec):
    pattern = r"[+-]?\d{1,3}:\d{1,2}:\d{1,2}(\.\d*)?"
    if not (re.fullmatch(pattern, ra) and re.fullmatch(pattern, dec)):
        raise ValueError(f"RA/Dec {ra!r} {dec!r} are not sexagesimal h:m:s d:m:s")


def read_catalog(path, *, readme=None) -> Table:
    """Read a core catalogue: HGBS archive text, VizieR/CDS (``readme``), FITS, VOTable or
    ECSV.  The format is recognised from the content and the extension."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such catalogue")
    with open(path, "rb") as handle:
        head = handle.read(2048)
    if head.lstrip().startswith(b"|"):
        return read_hgbs(path)
    try:
        if readme is not None:
            return Table.read(path, format="ascii.cds", readme=str(readme))
        if head.startswith(b"Title:"):  # CDS/AAS machine-readable table with its ReadMe
            return Table.read(path, format="ascii.cds")
        suffix = path.suffix.lower()
        if suffix in (".fits", ".fit", ".fits.gz"):
            return Table.read(path, format="fits")
        if suffix in (".xml", ".vot", ".votable"):
            return Table.read(path, format="votable")
        if suffix == ".ecsv":
            return Table.read(path, format="ascii.ecsv")
        return Table.read(path, format="ascii")
    except Exception as exc:  # astropy's readers raise many types
        raise InputError(f"{path}: cannot read the catalogue ({exc})") from None


def _column(table, columns: ColumnMap, field: str):
    """The catalogue column that ``columns.<field>`` names; the error names the option
    that sets it (``--col-<field>``, the CLI's options are made from the same fields)."""
    name = getattr(columns, field)
    if name not in table.colnames:
        raise InputError(f"catalogue has no column {name!r} for the {field.replace('_', ' ')};"
                         f" it has {', '.join(table.colnames[:12])}... (set it with "
                         f"--col-{field.replace('_', '-')})")
    return table[name]


def core_coordinates(table, columns: ColumnMap) -> SkyCoord:
    """Positions of the cores (sexagesimal strings or degrees).

    A row whose position is blank, unreadable or off the sphere gets NaN coordinates
    (see :func:`validate_rows`), never an exception for the whole catalogue.
    """
    ra, dec = _column(table, columns, "ra"), _column(table, columns, "dec")
    if ra.dtype.kind in "US":
        try:
            return SkyCoord(list(ra), list(dec), unit=(u.hourangle, u.deg), frame="icrs")
        except (ValueError, TypeError):
            lon, lat = np.full(len(ra), np.nan), np.full(len(ra), np.nan)
            for i, (a, d) in enumerate(zip(ra, dec)):
                try:
                    one = SkyCoord(str(a), str(d), unit=(u.hourangle, u.deg), frame="icrs")
                    lon[i], lat[i] = one.ra.deg, one.dec.deg
                except (ValueError, TypeError):
                    pass
            return SkyCoord(lon * u.deg, lat * u.deg, frame="icrs")
    lon, lat = _floats(ra), _floats(dec)
    lat[np.abs(lat) > 90] = np.nan
    return SkyCoord(lon * u.deg, lat * u.deg, frame="icrs")


def _floats(column) -> np.ndarray:
    """A column as float64, blanks (masked) and unreadable values as NaN, never 0."""
    values = column.filled(np.nan) if hasattr(column, "filled") and column.dtype.kind in "fiu" \
        else column
    out = np.full(len(values), np.nan)
    for i, value in enumerate(np.asarray(values).tolist()):
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            pass
    return out


def _quantity(column, default_unit):
    unit = column.unit if getattr(column, "unit", None) is not None else u.Unit(default_unit)
    return _floats(column) * unit


def check_columns(table, columns: ColumnMap, options) -> None:
    """Refuse, before any work, a catalogue without the columns the correction needs or
    whose density column is not a density (one line naming the --col-* option)."""
    _column(table, columns, "ra")
    _column(table, columns, "dec")
    _column(table, columns, f"radius_{options.radius}")
    density = _column(table, columns, "density")
    unit = density.unit if getattr(density, "unit", None) is not None \
        else columns.density_unit
    try:
        u.Unit(unit).to(u.cm**-3)
    except (ValueError, TypeError, u.UnitsError):
        raise InputError(f"catalogue column {columns.density!r} has unit {str(unit)!r}, not a "
                         "number density: set the right column with --col-density") from None


#: Largest core radius taken as a core (pc); dense cores are 0.01-0.1 pc, clumps ~1 pc.
MAX_RADIUS_PC = 2.0


def validate_rows(table, coords: SkyCoord, radius_pc: np.ndarray) -> np.ndarray:
    """Why each row cannot be measured: '' when fine, else a reason code.

    ``position`` (blank, unreadable or |Dec| > 90), ``radius`` (blank, not a number,
    <= 0 or above :data:`MAX_RADIUS_PC`).
    """
    reason = np.full(len(table), "", dtype="U12")
    with np.errstate(invalid="ignore"):
        bad_radius = ~(np.isfinite(radius_pc) & (radius_pc > 0) & (radius_pc <= MAX_RADIUS_PC))
    reason[bad_radius] = "radius"
    if len(table):
        bad_position = ~(np.isfinite(coords.ra.deg) & np.isfinite(coords.dec.deg))
        reason[bad_position] = "position"
    return reason


def core_radius_pc(table, radius: str, columns: ColumnMap) -> np.ndarray:
    """The cores' ``radius`` ('observed' or 'deconvolved') in pc."""
    return _quantity(_column(table, columns, f"radius_{radius}"),
                     columns.radius_unit).to_value(u.pc)


def core_mass_msun(n_h, radius_pc):
    """Mass (Msun) of a sphere of radius ``radius_pc`` and density n_H: 1.4 m_H n V."""
    volume = 4.0 / 3.0 * np.pi * (np.asarray(radius_pc) * PC_CM) ** 3
    return np.asarray(n_h) * volume * MU_H * m_p.cgs.value / M_sun.cgs.value


@dataclass
class MapStats:
    """Aperture averages of one nhpipe output file for each core (arrays of length N)."""

    nh: np.ndarray                # mean N_H in cm-2
    log_nm_quantiles: np.ndarray  # (5, N) mean log10 <n>_m quantiles (Q02_5 ... Q97_5)
    valid_fraction: np.ndarray    # fraction of aperture pixels with valid data
    in_map: np.ndarray            # the aperture overlaps the map


def measure_apertures(nhpipe_file, coords: SkyCoord, radius_pc, *, distance_pc: float) -> MapStats:
    """Blank-aware aperture averages of an nhpipe output file around each core.

    The aperture of a core is a sky circle of its catalogue radius (in pc, turned into an
    angle with ``distance_pc``); photutils sums the pixels whose centres fall inside.
    log10 <n>_m quantiles are averaged in log space; N_H linearly (it is additive).
    A core outside the map gets in_map False, valid_fraction 0 and NaN values.
    """
    from photutils.aperture import ApertureStats, SkyCircularAperture

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
    ny, nx = blank.shape
    xs, ys = wcs.world_to_pixel(coords)
    for i in range(n):
        r = radius_arcsec[i]
        if not (np.isfinite(r) and r > 0):
            continue
        margin = r / 3600.0 / np.abs(wcs.proj_plane_pixel_scales()[0].to_value(u.deg))
        if not (-margin < xs[i] < nx - 1 + margin and -margin < ys[i] < ny - 1 + margin):
            continue
        aperture = SkyCircularAperture(coords[i], r * u.arcsec).to_pixel(wcs)
        inside = ApertureStats(np.ones(blank.shape), aperture).sum
        if not inside > 0:
            continue
        in_map[i] = True
        valid[i] = min(1.0, float(ApertureStats(~blank * 1.0, aperture).sum / inside))
        if valid[i] > 0:
            stats = {k: ApertureStats(m, aperture, mask=blank) for k, m in maps.items()}
            nh[i] = stats["NH"].mean
            quant[:, i] = [stats[k].mean for k in _QUANTILE_HDUS]
    return MapStats(nh, quant, valid, in_map)


def draw_from_quantiles(quantiles: np.ndarray, n_draws: int, rng: np.random.Generator):
    """Samples of a distribution known by its 2.5, 16, 50, 84, 97.5 % quantiles.

    The quantile function is interpolated linearly in the normal score z = Phi^-1(p)
    and extrapolated linearly beyond the end quantiles, so a Gaussian is reproduced
    exactly and skewed distributions keep their asymmetry.

    Parameters
    ----------
    quantiles : ndarray, shape (5, N)
    Returns
    -------
    ndarray, shape (n_draws, N)
    """
    z_knots = ndtri(np.array(list(_QUANTILE_HDUS.values())))
    z = rng.standard_normal((n_draws, quantiles.shape[1]))
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


@dataclass
class CorrectionOptions:
    """How the cores are corrected.

    ``l_d_pc`` (A.3) or ``n_d`` (A.4, cm-3) must be given.  ``lc_factor`` times the
    chosen radius is the core depth L_c (the poster used 2 x the observed radius, i.e.
    the core's diameter, and L_d = 10 pc).  ``radius``: 'observed' (default: the
    aperture then contains the core as it appears in the map at its resolution) or
    'deconvolved' (closer to the intrinsic size, but the map is not deconvolved).

    The two-component model's own parameters are uncertain, so the Monte-Carlo draws them
    too, from priors: L_c / R uniform in ``lc_factor x [1 - lc_spread, 1 + lc_spread]``
    (a core is neither a uniform slab nor exactly its diameter deep: a sphere's mean chord
    is 4R/3, its central one 2R) and L_d (or n_d) log-normal about the given value with
    ``ld_dex`` dex (a diffuse depth of "10 pc" means a few to tens of pc). The n_c
    intervals are then percentiles of the draws; with both set to 0 they are the exact
    transforms of the <n_H>_m quantiles.
    """

    distance_pc: float
    l_d_pc: float | None = None
    n_d: float | None = None
    radius: str = "observed"
    lc_factor: float = 2.0
    lc_spread: float = 0.25
    ld_dex: float = 0.3
    nh_taper: float | None = None
    types: tuple | None = None
    max_alpha_be: float | None = None
    exclude_comments: tuple = ()
    n_draws: int = 1000
    seed: int = 0


STATUS_COLORS = {"ok": "green", "inconsistent": "red", "outside": "yellow", "masked": "yellow",
                 "filtered": "gray", "invalid": "magenta"}


def correct_catalog(table: Table, nhpipe_file, options: CorrectionOptions,
                    columns: ColumnMap = ColumnMap()) -> Table:
    """Measure every core on an nhpipe output and replace its density (A.3 or A.4).

    Every input row is kept.  Added columns (units in the metadata): ``nh_ap`` (N_H in
    the aperture), ``log_nm_q50`` and 68 % bounds (aperture <n_H>_m), ``nc_med`` with
    ``nc_lo68``/``nc_hi68``/``nc_lo95``/``nc_hi95`` (corrected density of H nuclei),
    ``nc_h2_med`` (the same for H2, comparable with HGBS), ``n_cat_h`` (catalogued
    density of H nuclei), ``log_ratio`` = log10(nc_med / n_cat_h), ``mass_new`` (from
    nc_med), ``valid_frac``, ``status`` (ok, inconsistent, outside, masked, filtered),
    ``reason`` (a :mod:`nhpipe.correction` code, -1 when not computed) and
    ``frac_consistent`` (fraction of Monte-Carlo draws with a solution).
    """
    if (options.l_d_pc is None) == (options.n_d is None):
        raise InputError("give exactly one of --ld (diffuse depth, A.3) or --nd "
                         "(diffuse density, A.4)")
    if options.radius not in ("observed", "deconvolved"):
        raise InputError(f"--radius must be observed or deconvolved, got {options.radius!r}")
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
        if n else MapStats(np.zeros(0), np.zeros((5, 0)), np.zeros(0), np.zeros(0, bool))

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
        return _correct(out, table, stats, status, radius_pc, options, columns, nhpipe_file)


def _correct(out, table, stats, status, radius_pc, options, columns, nhpipe_file):
    n = len(out)
    measured = status != "filtered"
    rng = np.random.default_rng(options.seed)
    log_nm = draw_from_quantiles(np.nan_to_num(stats.log_nm_quantiles, nan=0.0),
                                 options.n_draws, rng) if n else np.zeros((options.n_draws, 0))
    l_c = options.lc_factor * radius_pc * PC_CM
    diffuse = options.l_d_pc * PC_CM if options.l_d_pc is not None else options.n_d
    # Draws of the model's parameters from their priors (see CorrectionOptions).
    shape = (options.n_draws, n)
    l_c_draws = l_c * rng.uniform(1 - options.lc_spread, 1 + options.lc_spread, shape)
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
    if n and (options.lc_spread or options.ld_dex):
        # With uncertain parameters the intervals come from the joint draws.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows without any solution
            knots = np.nanpercentile(np.where(reason == correction.OK, n_c, np.nan),
                                     [2.5, 16, 50, 84, 97.5], axis=0)
    consistent = np.mean(reason == correction.OK, axis=0) if n else np.zeros(0)
    median_reason = knot_reason[2] if n else np.zeros(0, np.int8)
    # A core is inconsistent when its median <n>_m has no solution.
    bad = (status == "ok") & (median_reason != correction.OK)
    status[bad] = "inconsistent"
    pct = knots[[2, 1, 3, 0, 4]] if n else np.zeros((5, 0))
    keep = status == "ok"
    pct[:, ~keep] = np.nan

    density = _quantity(_column(table, columns, "density"), columns.density_unit)
    n_cat_h = density.to_value(u.cm**-3) * SPECIES_FACTOR[columns.density_species]
    mass_new = core_mass_msun(pct[0], radius_pc)

    def add(name, values, unit=None, description=""):
        out[name] = values
        if unit is not None:
            out[name].unit = unit
        out[name].description = description

    add("nh_ap", np.where(measured, stats.nh, np.nan), u.cm**-2, "aperture mean N_H")
    add("log_nm_q16", stats.log_nm_quantiles[1], u.dex(u.cm**-3), "aperture <n_H>_m 16%")
    add("log_nm_q50", stats.log_nm_quantiles[2], u.dex(u.cm**-3), "aperture <n_H>_m median")
    add("log_nm_q84", stats.log_nm_quantiles[3], u.dex(u.cm**-3), "aperture <n_H>_m 84%")
    for name, row, text in (("nc_med", 0, "median"), ("nc_lo68", 1, "16%"), ("nc_hi68", 2, "84%"),
                            ("nc_lo95", 3, "2.5%"), ("nc_hi95", 4, "97.5%")):
        add(name, pct[row], u.cm**-3, f"corrected core density n_H, {text}")
    add("nc_h2_med", pct[0] / 2.0, u.cm**-3, "corrected core density n(H2), median")
    add("n_cat_h", n_cat_h, u.cm**-3, "catalogued density as n_H")
    with np.errstate(invalid="ignore", divide="ignore"):
        add("log_ratio", np.log10(pct[0] / n_cat_h), u.dex, "log10(nc_med / n_cat_h)")
    add("mass_new", mass_new, u.M_sun, "1.4 m_H nc_med (4/3) pi R^3")
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
        "A.4 (n_d prescribed)", "l_d_pc": options.l_d_pc, "n_d_cm3": options.n_d,
        "radius": options.radius, "lc_factor": options.lc_factor,
        "lc_spread": options.lc_spread, "ld_dex": options.ld_dex,
        "nh_taper_cm2": options.nh_taper, "n_draws": options.n_draws, "seed": options.seed,
    })
    out.meta["_nc_draws"] = n_c  # kept for the CMF plot, removed before writing
    return out


def _selected(table, options: CorrectionOptions, columns: ColumnMap) -> np.ndarray:
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


def write_outputs(result: Table, prefix, *, columns: ColumnMap = ColumnMap(), overwrite=False,
                  inputs=()):
    """Write PREFIX.ecsv, PREFIX.fits, PREFIX.reg (DS9), PREFIX_fig10.png, PREFIX_cmf.png.

    All five or none: they are written to temporaries and renamed only when all are
    complete. None of them may be one of the ``inputs`` (the map, the catalogue).
    """
    from ._write import ascii_text, atomic_group, check_output_path

    prefix = Path(prefix)
    paths = {k: Path(f"{prefix}{k}") for k in (".ecsv", ".fits", ".reg", "_fig10.png",
                                                "_cmf.png")}
    for path in paths.values():
        check_output_path(path, overwrite=overwrite, inputs=inputs)
    draws = result.meta.pop("_nc_draws", None)
    table = result.copy()
    for key, value in list(table.meta.items()):
        if value is None:
            table.meta[key] = "none"
    with atomic_group(paths.values()) as tmp:
        table.write(tmp[paths[".ecsv"]], format="ascii.ecsv", overwrite=True)
        ascii_table = table.copy()
        for name in ascii_table.colnames:  # FITS tables hold ASCII text only
            if ascii_table[name].dtype.kind == "U":
                ascii_table[name] = [ascii_text(str(v)) for v in ascii_table[name]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # long meta keys become HIERARCH cards
            ascii_table.write(tmp[paths[".fits"]], format="fits", overwrite=True)
        _write_regions(table, tmp[paths[".reg"]], columns)
        _plot_fig10(table, tmp[paths["_fig10.png"]])
        _plot_cmf(table, draws, tmp[paths["_cmf.png"]], columns)
    return paths


def _write_regions(table, path, columns):
    from regions import CircleSkyRegion, Regions

    coords = core_coordinates(table, columns) if len(table) else []
    radius_pc = core_radius_pc(table, table.meta["radius"], columns)
    distance = table.meta["distance_pc"]
    shapes = []
    for i in range(len(table)):
        if table["status"][i] == "invalid":
            continue  # no usable position or radius to draw
        region = CircleSkyRegion(coords[i], radius_pc[i] / distance * 206264.806 * u.arcsec)
        status = str(table["status"][i])
        region.visual["color"] = STATUS_COLORS.get(status, "white")
        # The status as a DS9 tag (select or hide a group in DS9's region list); no text
        # labels, which would cover the map under 1,844 cores.
        region.meta["tag"] = [status]
        shapes.append(region)
    Regions(shapes).write(path, format="ds9", overwrite=True)


def _plot_fig10(table, path):
    """Like the poster's Fig. 10: log-binned mean differences with 95 % bands."""
    from matplotlib.figure import Figure

    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log10(np.asarray(table["n_cat_h"], float) / 2.0)  # n(H2), as catalogued
    y = np.asarray(table["log_ratio"], float)
    ok = (np.asarray(table["status"]) == "ok") & np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    ax.scatter(x, y, s=4, alpha=0.3, color="0.5", label=f"cores ({ok.sum()})")
    if ok.sum() >= 2:
        edges = np.linspace(np.floor(x.min() * 4) / 4, np.ceil(x.max() * 4) / 4, 9)
        centres, means, errs = [], [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (x >= lo) & (x < hi)
            if sel.sum() >= 3:
                centres.append(0.5 * (lo + hi))
                means.append(y[sel].mean())
                errs.append(1.96 * y[sel].std(ddof=1) / np.sqrt(sel.sum()))
        ax.errorbar(centres, means, yerr=errs, fmt="o", color="C3", capsize=3,
                    label="bin mean, 95 % confidence")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel(r"catalogued $\log_{10} n(\mathrm{H_2})$ [cm$^{-3}$]")
    ax.set_ylabel(r"$\log_{10}(n_{c,\mathrm{new}} / n_{c,\mathrm{cat}})$")
    ax.set_title(f"{table.meta.get('method')}, {table.meta.get('nhpipe_map')}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)


def _plot_cmf(table, draws, path, columns):
    """Core mass function of the prestellar cores, with Monte-Carlo 95 % bands."""
    from matplotlib.figure import Figure

    ok = np.asarray(table["status"] == "ok")
    if columns.core_type in table.colnames:
        ok &= np.asarray(table[columns.core_type]) == 2
    edges = np.linspace(-2.0, 2.0, 21)
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    if columns.mass in table.colnames:
        cat = np.log10(np.asarray(table[columns.mass], float)[ok])
        ax.stairs(np.histogram(cat, edges)[0], edges, color="k", label="catalogue masses")
    if draws is not None and ok.any():
        r_pc = core_radius_pc(table, table.meta["radius"], columns)[ok]
        masses = core_mass_msun(draws[:, ok], r_pc)
        with np.errstate(invalid="ignore", divide="ignore"):
            hists = np.array([np.histogram(np.log10(m[np.isfinite(m)]), edges)[0]
                              for m in masses])
        lo, med, hi = np.percentile(hists, [2.5, 50, 97.5], axis=0)
        ax.stairs(med, edges, color="C0", label="corrected densities (median)")
        ax.fill_between(edges[:-1], lo, hi, step="post", color="C0", alpha=0.3,
                        label="95 % Monte-Carlo band")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\log_{10} M$ [M$_\odot$]")
    ax.set_ylabel("prestellar cores per bin")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)


def column_map(**overrides) -> ColumnMap:
    """:class:`ColumnMap` with the non-None ``overrides`` (from the CLI)."""
    names = {f.name for f in fields(ColumnMap)}
    return ColumnMap(**{k: v for k, v in overrides.items() if v is not None and k in names})
