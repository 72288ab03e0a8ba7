"""Accuracy and calibration metrics in log10 units (the poster's, plus calibration).

All functions take log10 values: ``pred`` (N,) point estimates, ``samples`` (S, N) draws,
``truth`` (N,) true log10 <n_H>_m.
"""

from __future__ import annotations

import numpy as np

#: Density bins of true <n_H>_m (cm-3): diffuse medium, clumps, cores (Ribeiro & Hily-Blant).
DENSITY_BINS = {"diffuse (<200)": (-np.inf, np.log10(200.0)),
                "clumps (200-1e4)": (np.log10(200.0), 4.0),
                "cores (>1e4)": (4.0, np.inf)}


#: Bins of the depth of gas along the line of sight (pc) and of the beam FWHM (model px):
#: HGBS-like maps have beams of 0.5-4 px, Hi-GAL-like ones 7-14 px.
DEPTH_BINS = {"depth <3 pc": (0.0, 3.0), "depth 3-10 pc": (3.0, 10.0),
              "depth >10 pc": (10.0, np.inf)}
BEAM_BINS = {"beam <2 px": (0.0, 2.0), "beam 2-6 px": (2.0, 6.0), "beam >6 px": (6.0, np.inf)}
#: What calibrated means, per bin of pixels: the mean error (dex) and the fractions of
#: true values inside the 68 % and 95 % intervals must lie in these ranges (the targets of
#: the honest-networks issue; :func:`nhpipe.evaluate.target_summary` checks them).
CALIBRATION_TARGETS = {"mean_error_dex": (-0.05, 0.05), "coverage_68": (0.60, 0.76),
                       "coverage_95": (0.90, 0.98)}

#: Bins of a region's contrast: the standard deviation of its observed log10 N_H (dex).
#: Smooth maps (< 0.1 dex) are 81 % of the ``mhd`` regions and a tenth of the training
#: clouds', and a network can mistake smooth for deep (docs/accuracy.md).
CONTRAST_BINS = {"contrast <0.1 dex": (0.0, 0.1), "contrast 0.1-0.3 dex": (0.1, 0.3),
                 "contrast >0.3 dex": (0.3, np.inf)}


def mse(pred, truth) -> float:
    """Mean squared error of log10: E[(log10 Y_pred - log10 Y_true)^2]."""
    return float(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2))


def error_at_accuracy(pred, truth, accuracy: float = 0.8) -> float:
    """The sigma (dex) at which Acc(sigma) = accuracy: the quantile of |delta|."""
    return float(np.quantile(np.abs(np.asarray(pred) - np.asarray(truth)), accuracy))


def sorted_quantile(x, q: float):
    """The q-quantile of each column of samples already sorted along axis 0 (numpy's
    default, linear interpolation between order statistics), for a numpy array or a
    torch tensor (on its device)."""
    h = (len(x) - 1) * q
    lo = int(np.floor(h))
    hi = min(lo + 1, len(x) - 1)
    t = h - lo
    # numpy's lerp: from the nearer order statistic, so the result is numpy's to the bit.
    return x[lo] + t * (x[hi] - x[lo]) if t < 0.5 else x[hi] - (1 - t) * (x[hi] - x[lo])


def inside(samples, truth, level: float) -> np.ndarray:
    """(N,) whether each truth lies inside the central ``level`` interval of its samples."""
    x = np.sort(np.asarray(samples), axis=0)
    return _inside_sorted(x, truth, level)


def _inside_sorted(x, truth, level: float) -> np.ndarray:
    return ((truth >= sorted_quantile(x, (1 - level) / 2))
            & (truth <= sorted_quantile(x, (1 + level) / 2)))


def coverage(samples, truth, level: float) -> float:
    """Fraction of truths inside the central ``level`` interval of the samples."""
    return float(np.mean(inside(samples, truth, level)))


def _crps_sorted(x, truth, chunk: int = 1 << 18) -> np.ndarray:
    """(N,) CRPS of each pixel from its sorted samples, E|X - y| - E|X - X'|/2 (dex).

    E|X - X'| from sorted samples is (2 / S^2) sum_i (2i - S - 1) x_(i); computed in
    float64, a chunk of pixels at a time so that maps of millions of pixels stay small.
    """
    s = len(x)
    weights = (2.0 * np.arange(1, s + 1) - s - 1)[:, None]
    out = np.empty(x.shape[1])
    for start in range(0, x.shape[1], chunk):
        part = x[:, start:start + chunk].astype(np.float64)
        y = np.asarray(truth[start:start + chunk], dtype=np.float64)
        out[start:start + chunk] = (np.mean(np.abs(part - y[None]), axis=0)
                                    - np.sum(weights * part, axis=0) / s**2)
    return out


def crps(samples, truth) -> float:
    """Continuous ranked probability score, E|X - y| - E|X - X'|/2, from samples (dex)."""
    return float(np.mean(_crps_sorted(np.sort(np.asarray(samples), axis=0),
                                      np.asarray(truth))))


def clustered_se(values, groups) -> float:
    """Standard error of ``mean(values)`` when values of one group are correlated.

    The pixels of one region share its depth, beam and cloud, so their errors are far from
    independent and a per-pixel standard error would be orders of magnitude too small.
    This is the cluster-robust (sandwich) estimate of Liang & Zeger (1986, Biometrika 73,
    13), sqrt(G / (G - 1) * sum_g r_g^2) / N with r_g the summed residuals of group g, G
    groups and N values: the spread expected from evaluating other regions of the same
    family. NaN with fewer than two groups.

    Parameters
    ----------
    values : (N,) array
    groups : (N,) array of int
        The region each value comes from.
    """
    values = np.asarray(values, dtype=np.float64)
    labels, index = np.unique(groups, return_inverse=True)
    if len(labels) < 2:
        return float("nan")
    sums = np.bincount(index, weights=values - values.mean())
    return float(np.sqrt(len(labels) / (len(labels) - 1) * np.sum(sums**2)) / values.size)


#: Separations (model pixels) at which :func:`error_correlation` is measured: from a
#: neighbour past a core's surroundings (2.5 R is 2-10 px for HGBS cores at 400 pc) to
#: 96 px (2.5 pc, three quarters of a 128-px region): what the errors of two cores of one
#: map share at their separation (:mod:`nhpipe.cores`).
CORRELATION_LAGS_PX = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)


def error_correlation(samples, truth, lags_px=CORRELATION_LAGS_PX) -> np.ndarray:
    """Correlation of a network's standardised errors between pixels ``lag`` apart.

    The standardised error of a pixel is z = (truth - mean of its samples) / their standard
    deviation; its Pearson correlation with the z of the pixel ``lag`` to the right and
    ``lag`` below, pooled over both directions and all regions. A region-wide error gives
    correlations near 1 at every lag; pixel noise, near 0. It is what ties the <n_H>_m
    read in a core's aperture to the one read around it (A.4 with ``n_d`` local,
    :mod:`nhpipe.cores`).

    Parameters
    ----------
    samples : ndarray, shape (S, N, H, W)
        Draws of log10 <n_H>_m of N regions.
    truth : ndarray, shape (N, H, W)
    lags_px : sequence of int
        Separations in pixels, each smaller than H and W.

    Returns
    -------
    ndarray, shape (len(lags_px),)
    """
    samples = np.asarray(samples, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (np.asarray(truth, dtype=np.float64) - samples.mean(axis=0)) / samples.std(axis=0)
    out = []
    for lag in lags_px:
        a = np.concatenate([z[:, :, :-lag].ravel(), z[:, :-lag, :].ravel()])
        b = np.concatenate([z[:, :, lag:].ravel(), z[:, lag:, :].ravel()])
        good = np.isfinite(a) & np.isfinite(b)
        out.append(np.corrcoef(a[good], b[good])[0, 1] if good.sum() > 2 else np.nan)
    return np.asarray(out)


def pixel_scores(samples, truth) -> dict:
    """Per-pixel ingredients of :func:`all_metrics`, computed once for all bins.

    Parameters
    ----------
    samples : (S, N) array
        Draws of log10 <n_H>_m.
    truth : (N,) array

    Returns
    -------
    dict of (N,) arrays
        ``error`` (sample mean minus truth, dex) and, with more than one sample,
        ``inside_68``, ``inside_95`` (bool) and ``crps`` (dex). The samples are sorted once.
    """
    samples = np.asarray(samples)
    truth = np.asarray(truth)
    scores = {"error": np.mean(samples, axis=0) - truth}
    if len(samples) > 1:
        x = np.sort(samples, axis=0)
        scores.update(inside_68=_inside_sorted(x, truth, 0.68),
                      inside_95=_inside_sorted(x, truth, 0.95), crps=_crps_sorted(x, truth))
    return scores


def _aggregate(scores: dict, groups=None) -> dict:
    """The metric set of some pixels from their :func:`pixel_scores`."""
    error = scores["error"]
    out = {"pixels": int(error.size), "mse_log10": mse(error, 0.0),
           "mean_error_dex": float(np.mean(error)),
           "error_at_80pct_dex": error_at_accuracy(error, 0.0)}
    if groups is not None:
        out.update(regions=int(len(np.unique(groups))),
                   mse_log10_se=clustered_se(error**2, groups),
                   mean_error_dex_se=clustered_se(error, groups))
    for level in ("68", "95"):
        if f"inside_{level}" in scores:
            hit = scores[f"inside_{level}"]
            out[f"coverage_{level}"] = float(np.mean(hit))
            if groups is not None:
                out[f"coverage_{level}_se"] = clustered_se(hit, groups)
    if "crps" in scores:
        out["crps_dex"] = float(np.mean(scores["crps"]))
    return out


def all_metrics(samples, truth, groups=None) -> dict:
    """The metric set for one model on some pixels: samples (S, N), truth (N,).

    MSE, mean error and error at 80 % accuracy of the samples' mean; with more than one
    sample, 68 % / 95 % coverage and CRPS. With ``groups`` (N,), the region of each pixel,
    the MSE, the mean error and the coverages also get their standard errors over regions
    (:func:`clustered_se`, keys ``*_se``) and the number of regions (``regions``).
    """
    return _aggregate(pixel_scores(samples, truth), groups)


def binned_metrics(samples, truth, *, depth=None, beam=None, contrast=None,
                   groups=None) -> dict:
    """:func:`all_metrics` overall and in bins: of the true density (always), and of the
    line-of-sight depth (pc), the beam (model px) and the region's contrast (dex) when
    ``depth`` / ``beam`` / ``contrast`` (per pixel, (N,)) are given; ``groups`` (N,), the
    region of each pixel, adds standard errors over regions.
    """
    scores = pixel_scores(samples, truth)
    result = {"all": _aggregate(scores, groups)}
    for values, bins in ((truth, DENSITY_BINS), (depth, DEPTH_BINS), (beam, BEAM_BINS),
                         (contrast, CONTRAST_BINS)):
        if values is None:
            continue
        for name, (lo, hi) in bins.items():
            keep = (values >= lo) & (values < hi)
            if keep.any():
                result[name] = _aggregate({k: v[keep] for k, v in scores.items()},
                                          None if groups is None else groups[keep])
    return result
