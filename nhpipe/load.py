"""Stage *load*: read a column-density map into N_H (cm-2) with its celestial WCS."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import wcs_to_celestial_frame

from .errors import InputError, one_line
from ._write import sha256_file
from .units import SPECIES_FACTOR, normalise_species, parse_column_unit, species_from_header

#: Largest fraction of non-positive pixels that is masked with a warning; more is an error.
MAX_NONPOSITIVE_FRACTION = 0.5


class NhpipeWarning(UserWarning):
    """Something the user should know about the data; the run goes on."""


@dataclass
class ColumnMap:
    """A column-density map ready for the pipeline.

    Attributes
    ----------
    nh : ndarray, shape (ny, nx), float64
        Column density of hydrogen nuclei N_H in cm-2; blank pixels are NaN.
    wcs : astropy.wcs.WCS
        Two-dimensional celestial WCS of ``nh``.
    species : {'H2', 'H'}
        What the input map counted: N(H2) (converted here with N_H = 2 N(H2)) or N_H.
    header : astropy.io.fits.Header
        The header of the HDU that was read (for provenance; not used for computation).
    name : str
        File name or a description of the in-memory input.
    sha256 : str or None
        Checksum of the input file, None for in-memory input.
    """

    nh: np.ndarray
    wcs: WCS
    species: str
    header: fits.Header = field(repr=False)
    name: str = "<memory>"
    sha256: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.nh.shape


def load_map(source, *, hdu=None, species=None, bunit=None) -> ColumnMap:
    """Read a column-density map and convert it to N_H in cm-2.

    Parameters
    ----------
    source : path, HDU, HDUList, (array, WCS or Header) or NDData
        The accepted forms of input.  A path is read with astropy; the first HDU with
        2-D celestial image data is used unless ``hdu`` says otherwise.  Degenerate
        extra axes (NAXIS3 = 1, common in Herschel products) are dropped.
    hdu : int or str, optional
        HDU index or EXTNAME to read.
    species : {'H2', 'H'}, optional
        Whether the map gives N(H2) or N_H.  Overrides the header.  When neither says,
        an :class:`InputError` asks for it: a silent factor 2 would be 0.3 dex.
    bunit : str, optional
        Unit of the stored values, overriding the header's BUNIT.

    Returns
    -------
    ColumnMap
        N_H in cm-2 (float64, NaN where blank or non-positive) and its 2-D celestial WCS.

    Raises
    ------
    InputError
        For anything the user must fix; the message names the problem and the remedy.
    """
    species = normalise_species(species)
    data, header, wcs, name, sha = _normalise_input(source, hdu=hdu)

    scale, unit_species = parse_column_unit(bunit if bunit is not None else header.get("BUNIT"))
    found = species or unit_species or species_from_header(header)
    if found is None:
        raise InputError(
            f"{name}: the header does not say whether the map is N(H2) or N_H: "
            "give `species='H2'` (Herschel HGBS/Hi-GAL maps) or `species='H'`"
        )
    if species and (unit_species or species_from_header(header)) not in (None, species):
        warnings.warn(
            f"{name}: header suggests {unit_species or species_from_header(header)}, "
            f"using `species='{species}'` as asked",
            NhpipeWarning,
            stacklevel=2,
        )

    nh = np.array(data, dtype=np.float64) * (scale * SPECIES_FACTOR[found])
    nh[~np.isfinite(nh)] = np.nan
    finite = np.isfinite(nh)
    if not finite.any():
        raise InputError(f"{name}: every pixel is blank (NaN): nothing to process")
    nonpositive = finite & (nh <= 0)
    fraction = nonpositive.sum() / finite.sum()
    if fraction > MAX_NONPOSITIVE_FRACTION:
        raise InputError(
            f"{name}: {fraction:.0%} of the pixels are zero or negative: this is not a "
            "column-density map (check the HDU with `hdu`, or the background subtraction)"
        )
    if fraction > 0:
        warnings.warn(
            f"{name}: {int(nonpositive.sum())} zero or negative pixels "
            f"({fraction:.1%}) are masked as blank",
            NhpipeWarning,
            stacklevel=2,
        )
        nh[nonpositive] = np.nan
    _check_plausible(nh, name)
    return ColumnMap(nh=nh, wcs=wcs, species=found, header=header, name=name, sha256=sha)


#: N_H (cm-2) of any real map lies in this range; far outside it, the unit is wrong.
PLAUSIBLE_NH = (1e18, 1e26)
#: Implausible pixels up to this fraction of the valid ones are masked with a warning
#: (saturated or bad pixels); more means the map's unit or content is wrong.
MAX_IMPLAUSIBLE_FRACTION = 0.001


def _check_plausible(nh: np.ndarray, name: str) -> None:
    """Mask a few pixels outside :data:`PLAUSIBLE_NH`, refuse a map with many (in place)."""
    valid = np.isfinite(nh)
    lo, hi = PLAUSIBLE_NH
    bad = valid & ((nh < lo) | (nh > hi))
    if not bad.any():
        return
    fraction = bad.sum() / valid.sum()
    if fraction > MAX_IMPLAUSIBLE_FRACTION:
        raise InputError(
            f"{name}: {int(bad.sum())} pixels ({fraction:.1%}) have N_H outside {lo:.0e}-"
            f"{hi:.0e} cm-2 (median {np.median(nh[valid]):.2g} cm-2): check BUNIT, or give "
            "the right unit with `bunit` (e.g. `bunit='cm-2'`)")
    warnings.warn(f"{name}: {int(bad.sum())} pixels with N_H outside {lo:.0e}-{hi:.0e} "
                  "cm-2 are masked as blank", NhpipeWarning, stacklevel=3)
    nh[bad] = np.nan


def _normalise_input(source, *, hdu):
    """Turn any accepted input form into (data, header, celestial WCS, name, sha256)."""
    if isinstance(source, (str, os.PathLike)):
        return _read_path(Path(source), hdu=hdu)
    if isinstance(source, fits.HDUList):
        picked = _pick_hdu(source, hdu=hdu, name="<HDUList>")
        return (*_image_and_wcs(picked, "<HDUList>"), "<HDUList>", None)
    if isinstance(source, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        return (*_image_and_wcs(source, "<HDU>"), "<HDU>", None)
    if isinstance(source, NDData):
        header = source.wcs.to_header() if source.wcs is not None else fits.Header()
        if source.unit is not None:
            header["BUNIT"] = source.unit.to_string("fits")
        hdu_obj = fits.ImageHDU(np.asarray(source.data), header=header)
        return (*_image_and_wcs(hdu_obj, "<NDData>"), "<NDData>", None)
    if isinstance(source, tuple) and len(source) == 2:
        array, meta = source
        header = meta.to_header() if isinstance(meta, WCS) else fits.Header(meta)
        hdu_obj = fits.ImageHDU(np.asarray(array), header=header)
        return (*_image_and_wcs(hdu_obj, "<array>"), "<array>", None)
    raise InputError(
        "input must be a FITS path, an HDU, an HDUList, an (array, WCS) or (array, Header) "
        f"tuple, or NDData, got {type(source).__name__}"
    )


def _read_path(path: Path, *, hdu):
    name = path.name
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a FITS file")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: is not a regular file (a FIFO or device?)")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{name}: the file is empty, not a FITS file")
    try:
        with warnings.catch_warnings():
            # A truncated file only warns in astropy; here it must stop the run.
            warnings.simplefilter("error", fits.verify.VerifyWarning)
            warnings.filterwarnings("error", message=".*truncated.*")
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                picked = _pick_hdu(hdul, hdu=hdu, name=name)
                data, header, wcs = _image_and_wcs(picked, name)
    except InputError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError, UserWarning) as exc:
        reason = one_line(exc, "header cards fail FITS verification")
        raise InputError(f"{name}: not a readable FITS file ({reason})") from None
    return data, header, wcs, name, sha256_file(path)


def _pick_hdu(hdul, *, hdu, name):
    if hdu is not None:
        key = int(hdu) if str(hdu).lstrip("-").isdigit() else str(hdu)
        try:
            return hdul[key]
        except (KeyError, IndexError):
            names = ", ".join(f"{i}:{h.name}" for i, h in enumerate(hdul))
            raise InputError(f"{name}: no HDU {hdu!r}; it has {names}") from None
    cube = None
    for candidate in hdul:
        if not _is_image(candidate) or candidate.data is None:
            continue
        shape = _significant_shape(candidate.data.shape)
        if len(shape) == 2:
            return candidate
        if len(shape) > 2 and cube is None:
            cube = (candidate, candidate.data.shape)
    if cube is not None:
        raise InputError(
            f"{name}: HDU {cube[0].name} is a cube of shape {cube[1]} with a real third "
            "axis: extract one 2-D column-density plane first"
        )
    raise InputError(f"{name}: no 2-D image HDU found (a table or empty file?)")


def _is_image(hdu) -> bool:
    return isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))


def _significant_shape(shape):
    """The shape without leading length-1 axes (the FITS NAXIS3 = 1 case)."""
    shape = tuple(shape)
    while len(shape) > 2 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _image_and_wcs(hdu, name):
    if not _is_image(hdu) or hdu.data is None:
        raise InputError(f"{name}: HDU {hdu.name or '?'} holds no image data")
    raw = hdu.data
    shape = _significant_shape(raw.shape)
    if len(shape) != 2:
        if len(shape) > 2:
            raise InputError(
                f"{name}: HDU {hdu.name} is a cube of shape {raw.shape} with a real third "
                "axis: extract one 2-D column-density plane first"
            )
        raise InputError(f"{name}: HDU {hdu.name} is not a 2-D image (shape {raw.shape})")
    data = np.asarray(raw).reshape(shape)
    header = hdu.header.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception as exc:  # astropy raises many types for broken WCS cards
            reason = one_line(exc, "header cards fail FITS verification")
            raise InputError(f"{name}: invalid WCS in the header ({reason})") from None
    if not wcs.has_celestial or wcs.celestial.naxis != 2:
        raise InputError(
            f"{name}: no celestial WCS (RA/Dec or GLON/GLAT axes) in the header: "
            "nhpipe needs sky coordinates to find the physical pixel size"
        )
    has_cd = any(f"CD{i}_{j}" in header for i in "12" for j in "12")
    if not has_cd and not all(f"CDELT{i}" in header for i in "12"):
        raise InputError(f"{name}: no pixel scale (CDELT1 and CDELT2, or CD1_1...) in the "
                         "header: nhpipe needs it to find the physical pixel size")
    celestial = wcs.celestial
    if {wcs.wcs.lng, wcs.wcs.lat} != {0, 1}:
        raise InputError(f"{name}: the celestial axes are not the first two image axes")
    matrix = celestial.pixel_scale_matrix
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) == 0:
        raise InputError(f"{name}: the pixel scale of the WCS is zero, infinite or singular "
                         "(CDELT/CD cards): fix the header")
    try:
        wcs_to_celestial_frame(celestial)
    except ValueError:
        raise InputError(f"{name}: the WCS names no celestial frame astropy knows (RADESYS "
                         f"{header.get('RADESYS')!r}, EQUINOX {header.get('EQUINOX')!r}): "
                         "fix the header") from None
    sides = np.sqrt((matrix**2).sum(axis=0))
    if sides.max() > 10 * sides.min() or sides.max() > 1.0:
        raise InputError(f"{name}: implausible pixels of {sides[0] * 3600:.3g}\" x "
                         f"{sides[1] * 3600:.3g}\" (CDELT/CD cards): fix the header")
    return data, header, celestial
