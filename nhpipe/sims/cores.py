"""Dense cores with Plummer-like profiles, for mock maps with known core densities.

n(r) = n_0 / (1 + (r / a)^2) inside r_out: a flat inner part and an r^-2 envelope, like a
Bonnor-Ebert sphere (Whitworth & Ward-Thompson 2001, ApJ 547, 317).
"""

from __future__ import annotations

import numpy as np
from astropy.constants import M_sun, m_p

from ..units import MU_H


def plummer_column(b_cm, *, n0, a_cm, r_out_cm):
    """Column density N_H (cm-2) at impact parameter ``b_cm`` through the truncated profile.

    N(b) = 2 n_0 a^2 / s * atan(sqrt(r_out^2 - b^2) / s), s = sqrt(a^2 + b^2), zero
    beyond r_out (exact integral along the line of sight).
    """
    b = np.asarray(b_cm, dtype=np.float64)
    s = np.sqrt(a_cm**2 + b**2)
    half = np.sqrt(np.clip(r_out_cm**2 - b**2, 0.0, None))
    return 2.0 * n0 * a_cm**2 / s * np.arctan(half / s)


def plummer_square_column(b_cm, *, n0, a_cm, r_out_cm):
    """int n_H^2 dz (cm-5) at impact parameter ``b_cm`` through the truncated profile, the
    numerator of the line of sight's <n_H>_m (:func:`nhpipe.sims.project.project`).

    With s^2 = a^2 + b^2 and h = sqrt(r_out^2 - b^2): n_0^2 a^4 int_-h^h dz / (s^2 + z^2)^2
    = n_0^2 a^4 [h / (s^2 (s^2 + h^2)) + atan(h / s) / s^3] (exact), zero beyond r_out.
    """
    b = np.asarray(b_cm, dtype=np.float64)
    s2 = a_cm**2 + b**2
    half = np.sqrt(np.clip(r_out_cm**2 - b**2, 0.0, None))
    return n0**2 * a_cm**4 * (half / (s2 * (s2 + half**2)) + np.arctan(half / np.sqrt(s2))
                              / s2**1.5)


def plummer_n0(mass_msun, r_cm, a_cm):
    """Central n_H (cm-3) that puts ``mass_msun`` inside radius ``r_cm``.

    M(<r) = 4 pi mu_H m_H n_0 a^2 (r - a atan(r / a)), with mu_H = 1.4.
    """
    shell = 4.0 * np.pi * a_cm**2 * (r_cm - a_cm * np.arctan(r_cm / a_cm))
    return mass_msun * M_sun.cgs.value / (MU_H * m_p.cgs.value * shell)


def mean_density(mass_msun, r_cm):
    """Mean n_H (cm-3) of ``mass_msun`` inside a sphere of radius ``r_cm``."""
    return mass_msun * M_sun.cgs.value / (MU_H * m_p.cgs.value * 4.0 / 3.0 * np.pi * r_cm**3)
