"""Stage *summarise*: per-pixel statistics of the sampled distribution of log10 <n_H>_m.

All statistics are computed on samples of log10(<n_H>_m / cm-3).
"""

from __future__ import annotations

import numpy as np

#: Quantile levels (fractions) and the HDU names that carry them.
QUANTILES = {"Q02_5": 0.025, "Q16": 0.16, "Q50": 0.50, "Q84": 0.84, "Q97_5": 0.975}

#: Order of the summary statistics along the channel axis.
STATISTICS = ("MEAN", "MODE", "STD", "ENTROPY") + tuple(QUANTILES)

#: Unit (FITS BUNIT, parsed by astropy.units) and one-line description of each statistic.
PLANE_DOC = {
    "MEAN": ("dex(cm-3)", "mean of log10 <n_H>_m samples"),
    "MODE": ("dex(cm-3)", "half-sample mode of log10 <n_H>_m samples"),
    "STD": ("dex", "standard deviation of log10 <n_H>_m samples"),
    "ENTROPY": ("", "exp(Shannon entropy) of 0.1-dex histogram, in bins"),
    **{name: ("dex(cm-3)", f"{100 * level:g}% quantile of log10 <n_H>_m")
       for name, level in QUANTILES.items()},
}

#: Histogram bins for the entropy: 0.1 dex wide from log10 n = -2 to 9 (cm-3).
ENTROPY_BIN_DEX = 0.1
ENTROPY_RANGE = (-2.0, 9.0)


def summarise(samples: np.ndarray) -> np.ndarray:
    """Summarise samples of log10 <n_H>_m per pixel.

    Parameters
    ----------
    samples : ndarray, shape (S, ...)
        S samples of log10(<n_H>_m / cm-3) per pixel.

    Returns
    -------
    ndarray, shape (len(STATISTICS), ...), float32
        In the order of :data:`STATISTICS`:

        - MEAN: sample mean of log10 <n_H>_m (the mean in log space, i.e. the log of the
          geometric mean density);
        - MODE: half-sample mode (:func:`half_sample_mode`), the most likely value;
        - STD: sample standard deviation (ddof = 0), in dex;
        - ENTROPY: :func:`histogram_entropy`, the poster's exp(Shannon entropy);
        - Q02_5 ... Q97_5: empirical quantiles (linear interpolation between order
          statistics); Q16-Q84 is the 68 % and Q02_5-Q97_5 the 95 % interval.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim < 1 or len(x) < 1:
        raise ValueError(f"need at least one sample, got shape {x.shape}")
    ordered = np.sort(x, axis=0)
    out = [
        ordered.mean(axis=0),
        half_sample_mode(ordered, is_sorted=True),
        ordered.std(axis=0),
        histogram_entropy(ordered),
    ]
    out.extend(np.quantile(ordered, list(QUANTILES.values()), axis=0))
    return np.stack(out).astype(np.float32)


def half_sample_mode(samples: np.ndarray, *, is_sorted: bool = False) -> np.ndarray:
    """Half-sample mode along axis 0 (Bickel & Fruehwirth 2006, CSDA 50, 3500).

    Repeatedly keeps the half of the (sorted) samples that spans the shortest interval,
    down to 3 or fewer, then averages the closest pair.  It is a robust, bin-free mode
    estimator that works with as few as 8 to 64 samples per pixel, where a histogram
    mode would depend on the bin choice.

    Parameters
    ----------
    samples : ndarray, shape (S, ...)

    Returns
    -------
    ndarray, shape (...)
    """
    x = np.asarray(samples, dtype=np.float64)
    if not is_sorted:
        x = np.sort(x, axis=0)
    rest = x.shape[1:]
    x = x.reshape(len(x), -1)
    n = len(x)
    cols = np.arange(x.shape[1])
    while n > 3:
        h = (n + 1) // 2
        widths = x[h - 1 : n] - x[: n - h + 1]
        start = np.argmin(widths, axis=0)
        x = x[start[None, :] + np.arange(h)[:, None], cols[None, :]]
        n = h
    if n == 3:
        left, right = x[1] - x[0], x[2] - x[1]
        mode = np.where(left < right, 0.5 * (x[0] + x[1]), 0.5 * (x[1] + x[2]))
        mode = np.where(left == right, x[1], mode)
    else:
        mode = x.mean(axis=0)
    return mode.reshape(rest)


def histogram_entropy(samples: np.ndarray) -> np.ndarray:
    """Exponential of the Shannon entropy of the per-pixel histogram of the samples.

    The poster's entropy map, H = exp(-sum_k p_k ln p_k), with p_k the fraction of a
    pixel's samples in bin k.  The bins are fixed, 0.1 dex wide from log10 n = -2 to 9
    (cm-3; values outside are put in the end bins), so that maps made with different
    models are comparable.  H is the effective number of occupied bins: 1 when all
    samples fall in one bin, at most min(S, 110).  Multiplied by 0.1 dex it approximates
    the width of the distribution (for a Gaussian of width sigma it tends to
    4.13 sigma when S is large).

    Parameters
    ----------
    samples : ndarray, shape (S, ...)
        Samples of log10 <n_H>_m.

    Returns
    -------
    ndarray, shape (...), dimensionless
    """
    x = np.asarray(samples, dtype=np.float64)
    lo, hi = ENTROPY_RANGE
    nbins = int(round((hi - lo) / ENTROPY_BIN_DEX))
    index = np.clip(np.floor((x - lo) / ENTROPY_BIN_DEX), 0, nbins - 1).astype(np.int64)
    flat = index.reshape(len(x), -1)
    npix = flat.shape[1]
    keys = flat * npix + np.arange(npix)[None, :]
    counts = np.bincount(keys.ravel(), minlength=nbins * npix).reshape(nbins, npix)
    p = counts / len(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return np.exp(-terms.sum(axis=0)).reshape(x.shape[1:])
