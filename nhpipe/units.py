"""Units, species and distances: the one place that knows them.

Internally nhpipe works with the column density of hydrogen nuclei, N_H in cm-2,
and the volume density of hydrogen nuclei, n_H in cm-3.  Herschel Gould Belt Survey
products give N(H2); for fully molecular gas N_H = 2 N(H2), a factor of 0.3 dex, so
the species is always explicit and never guessed.
"""

from __future__ import annotations

import re

import astropy.units as u
import numpy as np

from .errors import InputError

#: Parsec in cm (IAU 2015 value through astropy).
PC_CM = float(u.pc.to(u.cm))

#: Mean mass per hydrogen nucleus, in units of the hydrogen-atom mass (He included).
MU_H = 1.4

#: Hydrogen nuclei per molecule of each accepted species.
SPECIES_FACTOR = {"H": 1.0, "H2": 2.0}

# Species markers that may appear inside BUNIT, BTYPE or similar cards.
_H2_PATTERN = re.compile(r"(?<![A-Za-z])N?_?\(?H_?2\)?(?![0-9A-Za-z])")
_SPECIES_CARDS = ("SPECIES", "BTYPE", "QUANTITY", "QTTY", "BNAME", "OBJECT_TYPE")


def parse_column_unit(bunit: str | None) -> tuple[float, str | None]:
    """Parse a BUNIT string for a column density.

    Parameters
    ----------
    bunit : str or None
        The header value, in any of the spellings found in real products:
        ``cm-2``, ``cm^-2``, ``cm^(-2)``, ``1/cm2``, ``cm**-2``, ``10^21 cm-2``,
        ``1e21 cm-2``; a species marker such as ``cm-2 (H2)`` is recognised and removed.

    Returns
    -------
    scale : float
        Factor that converts the stored values to cm-2.
    species : {'H2', 'H'} or None
        Species named inside BUNIT, if any.

    Raises
    ------
    InputError
        If BUNIT is missing or is not a column density.
    """
    if bunit is None or not str(bunit).strip():
        raise InputError(
            "the map has no BUNIT: give its unit with `bunit` (e.g. `bunit='cm-2'`)"
        )
    text = str(bunit).strip()
    species = "H2" if _H2_PATTERN.search(text) else None
    cleaned = _H2_PATTERN.sub(" ", text)
    cleaned = re.sub(r"\(\s*\)", " ", cleaned).strip()
    # '10^21 cm-2' and '10**21 cm-2' are read by astropy; '10^21cm-2' is not.
    cleaned = re.sub(r"^(10(?:\^|\*\*)\(?[+-]?\d+\)?)(?=[a-zA-Z])", r"\1 ", cleaned)
    try:
        unit = u.Unit(cleaned)
        scale = float(unit.to(u.cm**-2))
    except (ValueError, TypeError, u.UnitsError):
        raise InputError(
            f"BUNIT {text!r} is not a column density in cm-2: fix the header or give "
            "the unit with `bunit` (e.g. `bunit='cm-2'`)"
        ) from None
    return scale, species


def species_from_header(header) -> str | None:
    """Return 'H2' or 'H' if a header card states the species, else None.

    Looks at BUNIT and at the cards SPECIES, BTYPE, QUANTITY, QTTY, BNAME.  A card that
    mentions H2 (``N(H2)``, ``NH2``, ``H_2``) means N(H2); one equal to ``H``, ``HI``,
    ``N_H`` or ``NH`` means hydrogen nuclei.
    """
    for key in ("BUNIT",) + _SPECIES_CARDS:
        value = header.get(key)
        if not isinstance(value, str):
            continue
        if _H2_PATTERN.search(value):
            return "H2"
        if key != "BUNIT" and re.fullmatch(r"\s*N?_?\(?H\)?\s*", value):
            return "H"
    return None


def normalise_species(species: str | None) -> str | None:
    """Check a species name: 'H2' or 'H' (case-insensitive), or None."""
    if species is None:
        return None
    key = str(species).strip().upper()
    if key not in SPECIES_FACTOR:
        raise InputError(f"species must be H2 or H, got {species!r}")
    return key


def parse_positive(value, *, unit: str, what: str, example: str,
                   require_unit: bool = False) -> float:
    """Parse a positive quantity written as ``'400pc'``, ``'0.4 kpc'``, ``'1e3cm-3'`` or a
    bare number (taken in ``unit``, unless ``require_unit``), and return its value in
    ``unit``.

    Raises
    ------
    InputError
        Naming ``what`` and showing ``example`` when the value is missing, unreadable,
        of the wrong dimension, or not positive.
    """
    if value is None:
        raise InputError(f"missing `{what}`: give it, e.g. {example}")
    try:
        if isinstance(value, u.Quantity):
            number = value.to_value(unit)
        elif isinstance(value, (int, float, np.floating, np.integer)):
            number = float(value)
        else:
            match = re.fullmatch(r"([-+0-9.eE]+)\s*(.*)", str(value).strip())
            if not match:
                raise ValueError
            digits, text = match.groups()
            if require_unit and not text:
                raise LookupError
            number = (float(digits) * u.Unit(text or unit)).to_value(unit)
    except LookupError:
        raise InputError(f"`{what}` needs a unit, e.g. {example}, got {value!r}") from None
    except (ValueError, TypeError, u.UnitsError):
        raise InputError(f"`{what}` must look like {example}, got {value!r}") from None
    if not np.isfinite(number) or number <= 0:
        raise InputError(f"`{what}` must be positive, got {value!r}")
    return float(number)


#: Plausible distances of the clouds nhpipe is for (pc): the nearest star-forming clouds
#: lie at ~100 pc, the far side of the Galactic disc at ~20 kpc.
DISTANCE_RANGE_PC = (10.0, 20_000.0)


def parse_distance(value) -> float:
    """Distance in pc from ``'400pc'``, ``'0.4 kpc'``, a Quantity or a number in pc.

    A string must carry its unit (``'0.3'`` might mean kpc), and the distance must lie in
    :data:`DISTANCE_RANGE_PC`.
    """
    pc = parse_positive(value, unit="pc", what="distance",
                        example="`distance='400pc'`", require_unit=True)
    lo, hi = DISTANCE_RANGE_PC
    if not lo <= pc <= hi:
        raise InputError(f"distance {value!r} = {pc:g} pc is outside {lo:g} pc-{hi / 1e3:g} kpc:"
                         " check its unit (e.g. `distance='400pc'`)")
    return pc


def parse_length_pc(value, *, what: str) -> float:
    """A positive length such as ``'10pc'`` or ``'0.1 pc'``, in pc."""
    return parse_positive(value, unit="pc", what=what, example=f"`{what}='10pc'`")


def parse_number_density(value, *, what: str) -> float:
    """A positive density such as ``'1e3cm-3'`` or ``1000`` (cm-3), in cm-3."""
    return parse_positive(value, unit="cm-3", what=what, example=f"`{what}='1e3cm-3'`")


def parse_column_density(value, *, what: str) -> float:
    """A positive column density such as ``'1e23cm-2'`` or ``1e23`` (cm-2), in cm-2."""
    return parse_positive(value, unit="cm-2", what=what, example=f"`{what}='1e23cm-2'`")


def parse_angle_arcsec(value, *, what: str = "beam") -> float:
    """A positive angle with its unit, e.g. ``'18.2arcsec'``, ``'0.6 arcmin'``, in arcsec."""
    return parse_positive(value, unit="arcsec", what=what, example=f"`{what}='18.2arcsec'`",
                          require_unit=True)


def pixel_scale_deg(pixel_pc: float, distance_pc: float) -> float:
    """Angular size in degrees of a physical pixel ``pixel_pc`` at ``distance_pc``."""
    return float(np.degrees(pixel_pc / distance_pc))
