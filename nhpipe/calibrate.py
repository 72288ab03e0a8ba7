"""Recalibration of a network's samples on validation data.

A probabilistic network that is too confident (or too cautious) has intervals that hold
the truth less (or more) often than they claim; one that learned its training clouds
too well is also off-centre on clouds made otherwise. Two numbers, fitted on validation
data, fix both to first order: an offset (dex) that zeroes the mean error, then one scale
factor tau on the deviations of the samples from their per-pixel mean, so that the 68 %
and 95 % intervals hold 68 % and 95 % of the true pixels (the location-and-scale case of
the recalibration of Kuleshov, Fenner & Ermon 2018, ICML, "Accurate uncertainties for
deep learning using calibrated regression"). The test split is never used. Both are
fitted on the validation data of several families together (``nhpipe calibrate --data A
--data B``), and ``nhpipe evaluate`` refits them leaving out the family it tests (leave
one family out), so that no reported bias or coverage was fitted on the pixels it is
measured on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import load_meta, load_split
from .errors import InputError

#: Candidate spread factors.
GRID = np.round(np.arange(0.3, 6.001, 0.01), 3)
_LEVELS = (0.16, 0.84, 0.025, 0.975)


def fit_recalibration(draws: np.ndarray, truth: np.ndarray, *, max_pixels: int = 400_000):
    """The offset and spread factor that best calibrate these draws.

    Parameters
    ----------
    draws : ndarray, shape (S, N)
        Samples of log10 <n_H>_m at N pixels.
    truth : ndarray, shape (N,)

    Returns
    -------
    offset : float
        Add this (dex) to every sample: minus the mean error of the sample means.
    tau : float
        Then multiply the deviations from the per-pixel sample mean by this.
    before, after : (float, float)
        68 % and 95 % coverage as given and after the recalibration.
    """
    good = np.isfinite(draws).all(axis=0) & np.isfinite(truth)
    step = max(1, int(good.sum()) // max_pixels)  # a subsample is enough to fit two numbers
    draws, truth = draws[:, good][:, ::step], truth[good][::step]
    mean = draws.mean(axis=0)
    offset = float(np.mean(truth - mean))
    # Scaling about the mean moves each quantile q to mean + tau (q - mean), so the
    # quantiles are computed once for the whole grid of tau.
    q = dict(zip(_LEVELS, np.quantile(draws, _LEVELS, axis=0) - mean))
    dev = truth - mean

    def cov(tau, shift):
        return tuple(float(np.mean((dev - shift >= tau * q[lo]) & (dev - shift <= tau * q[hi])))
                     for lo, hi in ((0.16, 0.84), (0.025, 0.975)))

    losses = [(c68 - 0.68) ** 2 + (c95 - 0.95) ** 2
              for c68, c95 in (cov(tau, offset) for tau in GRID)]
    tau = float(GRID[int(np.argmin(losses))])
    return offset, tau, cov(1.0, 0.0), cov(tau, offset)


def fit_calibration(model, log_nh: np.ndarray, log_nm: np.ndarray, *, beam_px=None,
                    samples: int = 32, seed: int = 0) -> tuple[dict, dict]:
    """The offset and spread that best calibrate ``model`` on these regions.

    Parameters
    ----------
    model : Network
        With ``config.spread`` and ``config.offset`` at their current values (the fit
        is relative to them).
    log_nh, log_nm : ndarray, shape (N, 128, 128)
        Validation regions (log10 N_H, log10 <n_H>_m).
    beam_px : ndarray, shape (N,), optional
        Beam of each region in model pixels (beam-conditioned networks).

    Returns
    -------
    config : dict
        New values of ``config.spread`` and ``config.offset`` (dex).
    report : dict
        Mean error and coverage before and after, and what was fitted on.
    """
    from .evaluate import sample_regions

    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    draws, _ = sample_regions(model, log_nh, samples, gen, beam_px=beam_px)
    offset, tau, before, after = fit_recalibration(draws, log_nm.reshape(-1))
    config = {"spread": tau * model.config.spread, "offset": model.config.offset + offset}
    return config, {
        "regions": int(len(log_nh)), "samples": samples, "split": "val",
        "mean_error_before_dex": -offset,
        "coverage_68_before": before[0], "coverage_95_before": before[1],
        "coverage_68_after": after[0], "coverage_95_after": after[1]}


def calibrate_card(model_name: str, data, *, stem=None, regions: int = 24, samples: int = 32,
                   device: str = "auto") -> dict:
    """Fit the offset and spread of a network on the val splits of ``data``; store them in
    its card.

    ``data`` is one path or a list (e.g. the training family and the validation
    families); the first ``regions`` regions of each val split are pooled.
    """
    from .cards import update_card
    from .models import NETWORKS, load_model, models_dir, resolve_device

    if model_name not in NETWORKS:
        raise InputError(f"`model_name` must be one of {', '.join(NETWORKS)}, got {model_name!r}")
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    stem = Path(stem) if stem is not None else models_dir() / model_name
    model = load_model(model_name, device=resolve_device(device), path=stem)
    arrays = []
    for path in paths:
        log_nh, log_nm, _ = load_split(path, "val")
        beams = load_meta(path, "val")["beam_px"]
        arrays.append((log_nh[:regions], log_nm[:regions], beams[:regions]))
    log_nh, log_nm, beams = (np.concatenate(a) for a in zip(*arrays))
    config, report = fit_calibration(model, log_nh, log_nm, beam_px=beams, samples=samples)
    calibration = {**report, **config, "data": [Path(p).name for p in paths]}
    update_card(stem, config=config, calibration=calibration)
    return calibration
