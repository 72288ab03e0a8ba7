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


def combine(columns) -> tuple[np.ndarray, np.ndarray]:
    """N_H and <n_H>_m of a line of sight made of separate components along it.

    Components that do not overlap in space add exactly: N_H = sum N_i and
    <n_H>_m = sum(N_i <n>_m,i) / sum N_i, since each integral of n and of n^2 along the
    line of sight is a sum over the components.

    Parameters
    ----------
    columns : iterable of (nh, n_m)
        Each component's N_H (cm-2) and <n_H>_m (cm-3), arrays of one shape.

    Returns
    -------
    nh : ndarray, cm-2
    n_m : ndarray, cm-3
    """
    nh_total, moment = 0.0, 0.0
    for nh, n_m in columns:
        nh_total = nh_total + np.asarray(nh, dtype=np.float64)
        moment = moment + np.asarray(nh, dtype=np.float64) * np.asarray(n_m, dtype=np.float64)
    return nh_total, moment / nh_total
