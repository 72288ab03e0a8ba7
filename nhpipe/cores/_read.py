"""Core catalogues: readers, the column map, positions, radii and row validation."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.constants import M_sun, m_p
from astropy.coordinates import SkyCoord
from astropy.table import Table

from ..errors import InputError
from ..units import MU_H, PC_CM

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



@dataclass
class CatalogueColumns:
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


def _column(table, columns: CatalogueColumns, field: str):
    """The catalogue column that ``columns.<field>`` names; the error names the entry
    that sets it (``columns['<field>']``; the CLI's ``--col-<field>`` options are made from
    the same fields)."""
    name = getattr(columns, field)
    if name not in table.colnames:
        raise InputError(f"catalogue has no column {name!r} for the {field.replace('_', ' ')};"
                         f" it has {', '.join(table.colnames[:12])}... (set it with "
                         f"`columns['{field}']`)")
    return table[name]


def core_coordinates(table, columns: CatalogueColumns) -> SkyCoord:
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


def check_columns(table, columns: CatalogueColumns, options) -> None:
    """Refuse, before any work, a catalogue without the columns the correction needs or
    whose density column is not a density (one line naming the --col-* option)."""
    _column(table, columns, "ra")
    _column(table, columns, "dec")
    _column(table, columns, f"radius_{options.radius}")
    if getattr(options, "types", None):
        column = _column(table, columns, "core_type")
        values = _floats(column)
        present = sorted({int(v) for v in values if np.isfinite(v)})
        if not present or np.any(np.isfinite(values) & (values != np.round(values))):
            sample = ", ".join(repr(str(v)) for v in list(column[:3]))
            raise InputError(f"`types` needs integer core types, but column "
                             f"{columns.core_type!r} holds {sample}...: set the column with "
                             "`columns['core_type']` or leave out `types`")
        if not set(options.types) & set(present):
            raise InputError(f"`types` {','.join(map(str, options.types))}: no core has these "
                             f"types; column {columns.core_type!r} holds {present[:10]}")
    density = _column(table, columns, "density")
    unit = density.unit if getattr(density, "unit", None) is not None \
        else columns.density_unit
    try:
        u.Unit(unit).to(u.cm**-3)
    except (ValueError, TypeError, u.UnitsError):
        raise InputError(f"catalogue column {columns.density!r} has unit {str(unit)!r}, not a "
                         "number density: set the right column with `columns['density']`") from None


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


def core_radius_pc(table, radius: str, columns: CatalogueColumns) -> np.ndarray:
    """The cores' ``radius`` ('observed' or 'deconvolved') in pc."""
    return _quantity(_column(table, columns, f"radius_{radius}"),
                     columns.radius_unit).to_value(u.pc)


def core_mass_msun(n_h, radius_pc):
    """Mass (Msun) of a sphere of radius ``radius_pc`` and density n_H: 1.4 m_H n V."""
    volume = 4.0 / 3.0 * np.pi * (np.asarray(radius_pc) * PC_CM) ** 3
    return np.asarray(n_h) * volume * MU_H * m_p.cgs.value / M_sun.cgs.value



def column_map(**overrides) -> CatalogueColumns:
    """:class:`CatalogueColumns` with the non-None ``overrides`` (from the CLI)."""
    names = {f.name for f in fields(CatalogueColumns)}
    return CatalogueColumns(**{k: v for k, v in overrides.items() if v is not None and k in names})
