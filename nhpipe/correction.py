"""The two-component core correction of Ribeiro & Hily-Blant (appendix, eqs. A.3, A.4).

A core of density n_c and depth L_c sits in a diffuse medium n_d of depth L_d:

    N_H = n_c L_c + n_d L_d,     <n>_m = (n_c^2 L_c + n_d^2 L_d) / N_H,

so that <n>_m / n_c = n_d / n_c + (n_c L_c / N_H)(1 - n_d / n_c).  Given N_H, <n>_m and
L_c, one more quantity fixes n_c: the diffuse depth L_d (A.3) or density n_d (A.4).
Both tend to sqrt(<n>_m N_H / L_c) as L_d -> infinity or n_d -> 0.

All functions are vectorised over numpy arrays (broadcasting) and work in cgs: densities
in cm-3, columns in cm-2, lengths in cm.  Inconsistent inputs give NaN *and* a reason
code, never a silent NaN.
"""

from __future__ import annotations

import numpy as np

#: Reason codes of :func:`core_density_ld` and :func:`core_density_nd`.
OK = 0
NEGATIVE_DISCRIMINANT = 1   # no real solution: <n>_m too low for this N_H, L_c and L_d/n_d
CORE_EXCEEDS_COLUMN = 2     # n_c L_c > N_H: the diffuse column would be negative
INVALID_INPUT = 3           # N_H, <n>_m or L_c not finite and positive, or no L_d / n_d

REASONS = {OK: "ok", NEGATIVE_DISCRIMINANT: "negative discriminant",
           CORE_EXCEEDS_COLUMN: "N_H < n_c L_c", INVALID_INPUT: "invalid input"}

#: Below this contrast (background-subtracted over background N_H inside the core's
#: radius, :func:`nhpipe.cores.core_profile`) a core holds less than a sixth of its
#: aperture's column; on mocks in bright clouds A.3 read such cores 0.3 dex too dense
#: (README, "Core densities on mocks"). ``nhpipe catalog`` flags them ``low_contrast``.
LOW_CONTRAST = 0.2


def _finish(n_c, discriminant, nh, n_m, l_c, diffuse_valid):
    valid = np.isfinite(nh) & np.isfinite(n_m) & np.isfinite(l_c) & (nh > 0) & (n_m > 0) \
        & (l_c > 0) & diffuse_valid
    reason = np.full(np.broadcast(n_c, nh, n_m, l_c, diffuse_valid).shape, OK, dtype=np.int8)
    reason[~(discriminant >= 0)] = NEGATIVE_DISCRIMINANT
    too_big = (discriminant >= 0) & (n_c * l_c > nh * (1 + 1e-12))
    reason[too_big] = CORE_EXCEEDS_COLUMN
    reason[~valid] = INVALID_INPUT
    return np.where(reason == OK, n_c, np.nan), reason


def core_density_ld(nh, n_m, l_c, l_d):
    """Eq. A.3: n_c for a prescribed diffuse depth L_d.

    n_c = N_H / (L_c + L_d) * {1 + [1 - (L_d/L_c + 1)(1 - <n>_m L_d / N_H)]^(1/2)}

    Parameters
    ----------
    nh : array_like
        N_H in cm-2.
    n_m : array_like
        <n_H>_m in cm-3.
    l_c, l_d : array_like
        Core and diffuse depths in cm (``l_d = np.inf`` gives the limit).

    Returns
    -------
    n_c : ndarray
        Core density in cm-3, NaN where ``reason`` is not 0.
    reason : ndarray of int8
        :data:`OK`, :data:`NEGATIVE_DISCRIMINANT`, :data:`CORE_EXCEEDS_COLUMN` or
        :data:`INVALID_INPUT`.
    """
    nh, n_m, l_c, l_d = (np.asarray(v, dtype=np.float64) for v in (nh, n_m, l_c, l_d))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        finite = np.isfinite(l_d)
        disc = np.where(finite, 1.0 - (l_d / l_c + 1.0) * (1.0 - n_m * l_d / nh), 1.0)
        root = np.sqrt(np.where(disc >= 0, disc, np.nan))
        n_c = np.where(finite, nh / (l_c + l_d) * (1.0 + root), np.sqrt(n_m * nh / l_c))
    # L_d = inf is the limit; NaN (e.g. no measured surroundings) or L_d <= 0 is no L_d.
    return _finish(n_c, disc, nh, n_m, l_c, l_d > 0)


def core_density_nd(nh, n_m, l_c, n_d):
    """Eq. A.4: n_c for a prescribed diffuse density n_d.

    n_c = (n_d / 2) (1 + [1 - 4 N_H / (L_c n_d) (1 - <n>_m / n_d)]^(1/2))

    Same parameters and returns as :func:`core_density_ld`, with ``n_d`` in cm-3
    (``n_d = 0`` gives the limit).
    """
    nh, n_m, l_c, n_d = (np.asarray(v, dtype=np.float64) for v in (nh, n_m, l_c, n_d))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # (n_d / 2)^2 times the discriminant of A.4; written this way it also holds at
        # n_d = 0, where n_c becomes the limit sqrt(<n>_m N_H / L_c).
        inner = 0.25 * n_d**2 - nh * n_d / l_c + n_m * nh / l_c
        n_c = 0.5 * n_d + np.sqrt(np.where(inner >= 0, inner, np.nan))
    # n_d = 0 is the limit; NaN (e.g. no measured surroundings), inf or n_d < 0 is no n_d.
    return _finish(n_c, inner, nh, n_m, l_c, np.isfinite(n_d) & (n_d >= 0))


def taper(n_c, n_m, nh, *, nh_taper):
    """Taper the correction at high column density.

    Returns <n>_m (n_c / <n>_m)^w with w = 1 / (1 + (N_H / nh_taper)^2): the full
    correction where N_H << nh_taper, none where N_H >> nh_taper, where the core makes
    the whole column and <n>_m already measures it (the poster's research code damps
    the correction there for the same reason).
    """
    w = 1.0 / (1.0 + (np.asarray(nh, dtype=np.float64) / nh_taper) ** 2)
    return np.asarray(n_m) * (np.asarray(n_c) / np.asarray(n_m)) ** w
