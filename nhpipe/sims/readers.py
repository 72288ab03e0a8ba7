"""Readers of real simulation density cubes, resampled to uniform cells for projection.

Every reader returns a :class:`DensityCube`: n_H in cm-3 on cells whose size (in pc) is
given per axis, because simulation cells need not be cubic (the IDEFIX test snapshot has
dx = dz = 1/32, dy = 1/64 of its box).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.constants import m_p
from astropy.io import fits
from scipy import ndimage

from ..errors import InputError
from ..units import MU_H
from .cloud import CELL_PC


@dataclass
class DensityCube:
    """n_H (cm-3) on a regular grid.

    Attributes
    ----------
    n : ndarray, shape (n0, n1, n2), float32
        Density of hydrogen nuclei in cm-3.
    cell_pc : tuple of 3 floats
        Cell size along each array axis, in pc.
    source : str
        Where the cube came from.
    """

    n: np.ndarray
    cell_pc: tuple
    source: str = ""

    def resampled(self, cell_pc: float = CELL_PC) -> "DensityCube":
        """The cube on cubic cells of ``cell_pc`` (linear interpolation, periodic edges).

        Density is interpolated, not summed, so mean density is kept and N_H along an
        axis changes only by the interpolation error.
        """
        factors = [c / cell_pc for c in self.cell_pc]
        n = ndimage.zoom(self.n.astype(np.float64), factors, order=1, mode="grid-wrap",
                         grid_mode=True)
        return DensityCube(np.clip(n, 0, None).astype(np.float32), (cell_pc,) * 3,
                           self.source)


def read_fits_cube(path, *, cell_pc: float | None = None, hdu=0) -> DensityCube:
    """Read a 3-D FITS density cube.

    Parameters
    ----------
    path : path
        FITS file whose HDU ``hdu`` holds a 3-D array of density.
    cell_pc : float, optional
        Cell size in pc; by default from CDELT1..3 with CUNITn (a length unit; pc if
        CUNITn is absent).
    hdu : int or str

    Notes
    -----
    BUNIT must be a number density (``cm-3``, ``m-3``) or a mass density (``g/cm3``,
    ``kg/m3``), converted with n_H = rho / (1.4 m_H).
    """
    try:
        with fits.open(path) as hdul:
            data = np.asarray(hdul[hdu].data, dtype=np.float32)
            header = hdul[hdu].header
    except (OSError, KeyError, IndexError, TypeError) as exc:
        raise InputError(f"{path}: cannot read a FITS cube ({exc})") from None
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3-D cube, got shape {data.shape}")
    n = data * _density_scale(header.get("BUNIT"), str(path))
    if cell_pc is None:
        sizes = []
        for axis in (3, 2, 1):  # FITS axis order is the reverse of numpy's
            step = header.get(f"CDELT{axis}")
            if step is None:
                raise InputError(f"{path}: no CDELT{axis}: give the cell size with cell_pc")
            unit = u.Unit(header.get(f"CUNIT{axis}", "pc"))
            sizes.append(abs(float((step * unit).to_value(u.pc))))
        cell = tuple(sizes)
    else:
        cell = (float(cell_pc),) * 3
    return DensityCube(n, cell, str(path))


def _density_scale(bunit, name) -> float:
    """Factor converting the cube's BUNIT to n_H in cm-3."""
    if not bunit:
        raise InputError(f"{name}: no BUNIT: a density cube needs cm-3 or g/cm3")
    try:
        unit = u.Unit(bunit)
        if unit.is_equivalent(u.cm**-3):
            return float(unit.to(u.cm**-3))
        if unit.is_equivalent(u.g / u.cm**3):
            return float(unit.to(u.g / u.cm**3) / (MU_H * m_p.cgs.value))
    except ValueError:
        pass
    raise InputError(f"{name}: BUNIT {bunit!r} is not a number or mass density")


def _quietly(func, *args):
    """Call ``func`` with yt's logger at ERROR, then put its level back (yt logs every
    field it finds at INFO; a library must not change the caller's logging for good)."""
    import logging

    logger = logging.getLogger("yt")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return func(*args)
    finally:
        logger.setLevel(level)


def read_yt(path, *, box_pc: float | None = None, density_cm3: float | None = None,
            field=None) -> DensityCube:
    """Read a RAMSES, IDEFIX or other simulation output through yt (``nhpipe[sims]``).

    The whole domain is read at the base level as a uniform covering grid (AMR levels
    are averaged onto it by yt).

    Parameters
    ----------
    path : path
        Anything ``yt.load`` opens: a RAMSES ``output_XXXXX`` folder, an IDEFIX ``.vtk``
        or ``.dmp`` file (with ``yt_idefix``), ...
    box_pc : float, optional
        Size of the domain along its first axis in pc, for outputs in code units.
    density_cm3 : float, optional
        n_H in cm-3 of one code unit of density, for outputs in code units.  Physical
        mass densities are converted with n_H = rho / (1.4 m_H) instead.
    field : tuple, optional
        yt field; by default ('gas', 'density') or the frontend's density field.
    """
    try:
        import yt
    except ImportError:
        raise InputError("reading simulation outputs needs yt: pip install 'nhpipe[sims]'") \
            from None
    try:
        import yt_idefix  # noqa: F401  (registers the IDEFIX frontend)
    except ImportError:
        pass
    ds = _quietly(yt.load, str(path))
    if field is None:
        names = {f for f in ds.field_list} | {f for f in ds.derived_field_list}
        field = next((f for f in [("gas", "density"), ("idefix-vtk", "RHO"), ("ramses", "Density")]
                      if f in names), None)
        if field is None:
            raise InputError(f"{path}: no density field found; pass field=")
    grid = ds.covering_grid(level=0, left_edge=ds.domain_left_edge, dims=ds.domain_dimensions)
    rho = grid[field]
    width = (ds.domain_right_edge - ds.domain_left_edge) / ds.domain_dimensions
    if str(rho.units) in ("dimensionless", "code_density", "code_mass/code_length**3") \
            or density_cm3 is not None:
        if density_cm3 is None:
            raise InputError(f"{path}: density is in code units: give density_cm3")
        n = np.asarray(rho.d) * density_cm3
    else:
        n = np.asarray(rho.in_units("g/cm**3").d) / (MU_H * m_p.cgs.value)
    if box_pc is not None:
        box = float(ds.domain_right_edge[0] - ds.domain_left_edge[0])
        cell = tuple(float(w) / box * box_pc for w in width.d)
    else:
        try:
            cell = tuple(float(w) for w in width.in_units("pc").d)
        except Exception:  # yt raises its own unit errors for code_length
            raise InputError(f"{path}: lengths are in code units: give box_pc") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DensityCube(n.astype(np.float32), cell, str(Path(path)))
