"""Self-gravity in the density PDF: a log-normal with a power-law high-density tail.

Supersonic isothermal turbulence gives a log-normal PDF of s = ln(n / n_0); once gravity
takes over in the densest gas, the PDF grows a power-law tail p(s) ~ exp(-alpha s) above
a transition density (Kritsuk, Norman & Wagner 2011, ApJ 727, L20; Federrath & Klessen
2013, ApJ 763, 51, who measure alpha ~ 1.5-2.5 as star formation proceeds; alpha = 3/k
for collapsing cores with n ~ r^-k, k = 1.5-2).

The tail is imposed by rank: each cell's Gaussian deviate g keeps its rank and gets the
s of the same quantile of the composite PDF. The spatial structure of the turbulent
field (where the dense gas is) is kept; only the densest cells get denser.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr


def tail_quantiles(sigma: float, *, slope: float, start: float, size: int = 4096):
    """The composite PDF of s = ln(n / n_0) as a table of (cumulative probability, s).

    Parameters
    ----------
    sigma : float
        Width of the log-normal part (dex in natural log).
    slope : float
        alpha of the tail p(s) ~ exp(-alpha s); must be > 1 so the mean density is finite.
    start : float
        The tail starts ``start`` sigma above the log-normal peak s_0 = -sigma^2 / 2; the
        PDF is continuous there.
    size : int
        Table length.

    Returns
    -------
    cdf, s : ndarray, shape (size,)
    """
    if slope <= 1:
        raise ValueError(f"the tail slope must be > 1 (finite mean density), got {slope!r}")
    s0 = -0.5 * sigma**2
    s_t = s0 + start * sigma
    s = np.linspace(s0 - 8.0 * sigma, s_t + 40.0 / slope, size)
    pdf = np.exp(-0.5 * ((s - s0) / sigma) ** 2)
    above = s > s_t
    pdf[above] = np.exp(-0.5 * start**2) * np.exp(-slope * (s[above] - s_t))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(s))])
    return cdf / cdf[-1], s


def with_tail(g: np.ndarray, sigma: float, *, slope: float, start: float) -> np.ndarray:
    """n / <n> of a log-normal field with a power-law tail, from standard normal deviates.

    Parameters
    ----------
    g : ndarray
        Standard normal field (zero mean, unit variance), e.g. from
        :func:`nhpipe.sims.cloud.gaussian_field`.
    sigma, slope, start : float
        See :func:`tail_quantiles`.

    Returns
    -------
    ndarray, float32, same shape, mean 1.
    """
    cdf, s = tail_quantiles(sigma, slope=slope, start=start)
    n = np.exp(np.interp(ndtr(np.asarray(g, dtype=np.float64)), cdf, s))
    return (n / n.mean()).astype(np.float32)
