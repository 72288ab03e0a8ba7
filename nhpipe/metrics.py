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
#: clouds', and a network can mistake smooth for deep (the README's accuracy section).
CONTRAST_BINS = {"contrast <0.1 dex": (0.0, 0.1), "contrast 0.1-0.3 dex": (0.1, 0.3),
                 "contrast >0.3 dex": (0.3, np.inf)}


def mse(pred, truth) -> float:
    """Mean squared error of log10: E[(log10 Y_pred - log10 Y_true)^2]."""
    return float(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2))


def error_at_accuracy(pred, truth, accuracy: float = 0.8) -> float:
    """The sigma (dex) at which Acc(sigma) = accuracy: the quantile of |delta|."""
    return float(np.quantile(np.abs(np.asarray(pred) - np.asarray(truth)), accuracy))


def coverage(samples, truth, level: float) -> float:
    """Fraction of truths inside the central ``level`` interval of the samples."""
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return float(np.mean((truth >= lo) & (truth <= hi)))


def crps(samples, truth) -> float:
    """Continuous ranked probability score, E|X - y| - E|X - X'|/2, from samples (dex)."""
    x = np.sort(np.asarray(samples, dtype=np.float64), axis=0)
    s = len(x)
    term1 = np.mean(np.abs(x - truth[None]), axis=0)
    # E|X - X'| from sorted samples: (2 / S^2) sum_i (2i - S - 1) x_(i)
    weights = (2 * np.arange(1, s + 1) - s - 1)[:, None]
    term2 = (2.0 / s**2) * np.sum(weights * x, axis=0)
    return float(np.mean(term1 - 0.5 * term2))


def all_metrics(samples, truth) -> dict:
    """The metric set for one model on some pixels: samples (S, N), truth (N,)."""
    pred = np.mean(samples, axis=0)
    out = {"pixels": int(truth.size), "mse_log10": mse(pred, truth),
           "mean_error_dex": float(np.mean(pred - truth)),
           "error_at_80pct_dex": error_at_accuracy(pred, truth)}
    if len(samples) > 1:
        out.update(coverage_68=coverage(samples, truth, 0.68),
                   coverage_95=coverage(samples, truth, 0.95), crps_dex=crps(samples, truth))
    return out


def binned_metrics(samples, truth, *, depth=None, beam=None, contrast=None) -> dict:
    """:func:`all_metrics` overall and in bins: of the true density (always), and of the
    line-of-sight depth (pc), the beam (model px) and the region's contrast (dex) when
    ``depth`` / ``beam`` / ``contrast`` (per pixel, (N,)) are given.
    """
    result = {"all": all_metrics(samples, truth)}
    for values, bins in ((truth, DENSITY_BINS), (depth, DEPTH_BINS), (beam, BEAM_BINS),
                         (contrast, CONTRAST_BINS)):
        if values is None:
            continue
        for name, (lo, hi) in bins.items():
            keep = (values >= lo) & (values < hi)
            if keep.any():
                result[name] = all_metrics(samples[:, keep], truth[keep])
    return result
