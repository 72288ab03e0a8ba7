"""Exact projections of density cubes: N_H and the mass-weighted mean density <n_H>_m."""

from __future__ import annotations

import numpy as np

from ..units import PC_CM


def project(cube: np.ndarray, *, axis: int, cell_pc) -> tuple[np.ndarray, np.ndarray]:
    """Column density and mass-weighted mean density along one axis.

    N_H = sum(n dz) and <n_H>_m = sum(n^2 dz) / sum(n dz)  (Ribeiro & Hily-Blant, the
    poster's definitions), summed in float64.

    Parameters
    ----------
    cube : ndarray, shape (n0, n1, n2)
        n_H in cm-3.
    axis : int
        Line-of-sight axis.
    cell_pc : float or array_like
        Cell depth along ``axis`` in pc: one number, or one per cell along the axis
        (for non-uniform grids).

    Returns
    -------
    nh : ndarray, cm-2
    n_m : ndarray, cm-3
        Both of the cube's shape without ``axis``.
    """
    n = np.asarray(cube, dtype=np.float64)
    dz = np.asarray(cell_pc, dtype=np.float64) * PC_CM
    if dz.ndim == 1:
        shape = [1, 1, 1]
        shape[axis] = len(dz)
        dz = dz.reshape(shape)
    nh = np.sum(n * dz, axis=axis)
    n_m = np.sum(n * n * dz, axis=axis) / nh
    return nh, n_m
