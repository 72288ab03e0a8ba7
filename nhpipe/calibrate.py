"""Recalibration of a network's sample spread on the validation split.

A probabilistic network that is too confident (or too cautious) has intervals that hold
the truth less (or more) often than they claim.  One scale factor tau on the deviations
of the samples from their per-pixel mean, fitted on the validation split so that the
68 % and 95 % intervals hold 68 % and 95 % of the true pixels, fixes that (Kuleshov,
Fenner & Ermon 2018, ICML, "Accurate uncertainties for deep learning using calibrated
regression").  The test split is never used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .data import load_split
from .errors import InputError

#: Candidate spread factors.
GRID = np.round(np.arange(0.5, 4.001, 0.01), 3)


def fit_spread(model, log_nh: np.ndarray, log_nm: np.ndarray, *, samples: int = 32,
               seed: int = 0) -> tuple[float, dict]:
    """The spread factor that best calibrates ``model`` on these regions.

    Parameters
    ----------
    model : Network
        With ``config.spread`` at its current value (the fit is relative to it).
    log_nh, log_nm : ndarray, shape (N, 128, 128)
        Validation regions (log10 N_H, log10 <n_H>_m).

    Returns
    -------
    factor : float
        New value of ``config.spread``.
    report : dict
        Coverage before and after, and what was fitted on.
    """
    from .evaluate import sample_regions

    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    draws, _ = sample_regions(model, log_nh, samples, gen, device)
    truth = log_nm.reshape(-1)
    step = max(1, truth.size // 400_000)  # a subsample is enough to fit one number
    draws, truth = draws[:, ::step], truth[::step]
    mean = draws.mean(axis=0)
    # Scaling about the mean moves each quantile q to mean + tau (q - mean), so the
    # quantiles are computed once for the whole grid of tau.
    levels = [0.16, 0.84, 0.025, 0.975]
    q = dict(zip(levels, np.quantile(draws, levels, axis=0) - mean))

    def cov(tau):
        inside = [np.mean((truth >= mean + tau * q[lo]) & (truth <= mean + tau * q[hi]))
                  for lo, hi in ((0.16, 0.84), (0.025, 0.975))]
        return float(inside[0]), float(inside[1])

    losses = [(c68 - 0.68) ** 2 + (c95 - 0.95) ** 2 for c68, c95 in map(cov, GRID)]
    tau = float(GRID[int(np.argmin(losses))])
    before, after = cov(1.0), cov(tau)
    return tau * model.config.spread, {
        "regions": int(len(log_nh)), "samples": samples, "split": "val",
        "coverage_68_before": before[0], "coverage_95_before": before[1],
        "coverage_68_after": after[0], "coverage_95_after": after[1]}


def calibrate_card(model_name: str, data, *, stem=None, regions: int = 24, samples: int = 32,
                   device: str = "auto") -> dict:
    """Fit the spread of a shipped network on the val split and store it in its card."""
    from .models import NETWORKS, load_model, models_dir, resolve_device
    from .write import atomic_path

    if model_name not in NETWORKS:
        raise InputError(f"--model must be one of {', '.join(NETWORKS)}, got {model_name!r}")
    stem = Path(stem) if stem is not None else models_dir() / model_name
    model = load_model(model_name, device=resolve_device(device), path=stem)
    log_nh, log_nm, _ = load_split(data, "val")
    factor, report = fit_spread(model, log_nh[:regions], log_nm[:regions], samples=samples)
    path = stem.with_suffix(".json")
    card = json.loads(path.read_text())
    card["config"]["spread"] = factor
    card["calibration"] = {**report, "spread": factor, "data": Path(data).name}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=2) + "\n")
    return card["calibration"]
