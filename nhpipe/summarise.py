"""Stage *summarise*: per-pixel statistics of the sampled distribution of log10 <n_H>_m.

All statistics are computed on samples of log10(<n_H>_m / cm-3).
"""

from __future__ import annotations

import numpy as np
import torch

from .metrics import sorted_quantile

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


def summarise(samples) -> np.ndarray:
    """Summarise samples of log10 <n_H>_m per pixel.

    Parameters
    ----------
    samples : ndarray or torch.Tensor, shape (S, ...)
        S samples of log10(<n_H>_m / cm-3) per pixel. A tensor is summarised on its own
        device (the GPU, in the pipeline), in float64 like an array on the CPU.

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
          statistics, numpy's default); Q16-Q84 is the 68 % and Q02_5-Q97_5 the 95 %
          interval.
    """
    ordered, shape = _sorted_rows(samples)
    out = [ordered.mean(dim=1), _half_sample_mode(ordered), ordered.std(dim=1, correction=0),
           _entropy(ordered)]
    out.extend(sorted_quantile(ordered.T, level) for level in QUANTILES.values())
    return torch.stack(out).float().reshape(-1, *shape).cpu().numpy()


def half_sample_mode(samples) -> np.ndarray:
    """Half-sample mode along axis 0 (Bickel & Fruehwirth 2006, CSDA 50, 3500).

    Repeatedly keeps the half of the (sorted) samples that spans the shortest interval,
    down to 3 or fewer, then averages the closest pair.  It is a robust, bin-free mode
    estimator that works with as few as 8 to 64 samples per pixel, where a histogram
    mode would depend on the bin choice.

    Parameters
    ----------
    samples : ndarray or torch.Tensor, shape (S, ...)

    Returns
    -------
    ndarray, shape (...)
    """
    ordered, shape = _sorted_rows(samples)
    return _half_sample_mode(ordered).reshape(shape).cpu().numpy()


def histogram_entropy(samples) -> np.ndarray:
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
    samples : ndarray or torch.Tensor, shape (S, ...)
        Samples of log10 <n_H>_m.

    Returns
    -------
    ndarray, shape (...), dimensionless
    """
    ordered, shape = _sorted_rows(samples)
    return _entropy(ordered).reshape(shape).cpu().numpy()


def _sorted_rows(samples) -> tuple[torch.Tensor, tuple]:
    """float64 samples as one sorted row per pixel, shape (pixels, S), and the pixels'
    shape. Rows make the sort and every reduction run over contiguous memory (on a CPU,
    as fast as numpy's sort along axis 0)."""
    if isinstance(samples, torch.Tensor):
        x = samples.detach().to(torch.float64)
    else:
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float64))
    if x.ndim < 1 or len(x) < 1:
        raise ValueError(f"need at least one sample, got shape {tuple(x.shape)}")
    rows = x.reshape(len(x), -1).T.contiguous()
    return torch.sort(rows, dim=1).values, tuple(x.shape[1:])


def _half_sample_mode(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[1]
    while n > 3:
        h = (n + 1) // 2
        widths = x[:, h - 1:n] - x[:, :n - h + 1]
        start = torch.argmin(widths, dim=1, keepdim=True)
        x = torch.gather(x, 1, start + torch.arange(h, device=x.device))
        n = h
    if n == 3:
        left, right = x[:, 1] - x[:, 0], x[:, 2] - x[:, 1]
        mode = torch.where(left < right, 0.5 * (x[:, 0] + x[:, 1]), 0.5 * (x[:, 1] + x[:, 2]))
        return torch.where(left == right, x[:, 1], mode)
    return x.mean(dim=1)


def _entropy(ordered: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of rows of sorted samples: their bins are sorted too, so each
    occupied bin is a run of equal bin numbers, and H = ln S - sum_k c_k ln c_k / S over
    the runs' lengths c_k."""
    lo, hi = ENTROPY_RANGE
    nbins = int(round((hi - lo) / ENTROPY_BIN_DEX))
    index = torch.clamp(torch.floor((ordered - lo) / ENTROPY_BIN_DEX), 0, nbins - 1)
    n = index.shape[1]
    new = torch.ones_like(index, dtype=torch.bool)  # where a run (an occupied bin) starts
    new[:, 1:] = index[:, 1:] != index[:, :-1]
    last = torch.ones_like(new)
    last[:, :-1] = new[:, 1:]
    position = torch.arange(n, device=index.device).expand_as(index)
    start = torch.cummax(torch.where(new, position, 0), dim=1).values
    length = (position - start + 1).to(torch.float64)
    clog = torch.where(last, length * torch.log(length), 0.0).sum(dim=1)
    return torch.exp(np.log(n) - clog / n)
