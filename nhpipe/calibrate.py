"""Recalibration of a network's samples on validation data.

A probabilistic network that is too confident (or too cautious) has intervals that hold
the truth less (or more) often than they claim; one that learned its training clouds
too well is also off-centre on clouds made otherwise. A few numbers, fitted on validation
data, fix both to first order (Kuleshov, Fenner & Ermon 2018, ICML, "Accurate
uncertainties for deep learning using calibrated regression", recalibrate a regressor's
predictive distribution on held-out data): an offset (dex) that zeroes the mean error,
then factors on the deviations of the samples from their per-pixel mean, one for each
quarter of the pixels ranked by the samples' own spread, so that the 68 % and 95 %
intervals hold 68 % and 95 % of the true pixels in each (a network can be too sure where
it is sure and about right where it is not). The test split is never used. The numbers
are always fitted on the raw network (the card's own calibration set aside), on the
validation data of several families together (``nhpipe calibrate --data A --data B``),
and ``nhpipe evaluate`` refits them leaving out the family it tests (leave one family
out), so that no reported bias or coverage was fitted on the pixels it is measured on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .data import load_meta, load_split
from .errors import InputError
from .models._common import RAW_CALIBRATION

#: Candidate spread factors.
GRID = np.round(np.arange(0.3, 12.001, 0.01), 3)
#: Bins of the samples' own spread, each with its factor (equal numbers of pixels).
SPREAD_BINS = 4
_LEVELS = (0.16, 0.84, 0.025, 0.975)


def fit_recalibration(draws: np.ndarray, truth: np.ndarray, *, bins: int = SPREAD_BINS,
                      max_pixels: int = 400_000):
    """The offset and spread factors that best calibrate these draws.

    Parameters
    ----------
    draws : ndarray, shape (S, N)
        Samples of log10 <n_H>_m at N pixels, as the raw network draws them.
    truth : ndarray, shape (N,)
    bins : int
        Number of bins of the samples' standard deviation, each with its own factor.

    Returns
    -------
    calibration : dict
        ``offset`` (dex), ``spread`` (1), ``spread_edges`` (bins - 1 edges in log10 dex)
        and ``spread_factors`` (bins factors): the keyword arguments of
        :func:`nhpipe.models._common.recalibrate`, and the config fields of a network.
    before, after : (float, float)
        68 % and 95 % coverage as given and after the recalibration.
    """
    good = np.isfinite(draws).all(axis=0) & np.isfinite(truth)
    step = max(1, int(good.sum()) // max_pixels)  # a subsample is enough for a few numbers
    draws, truth = draws[:, good][:, ::step], truth[good][::step]
    mean = draws.mean(axis=0)
    offset = float(np.mean(truth - mean))
    log_std = np.log10(np.maximum(draws.std(axis=0), 1e-12))
    edges = np.quantile(log_std, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    which = np.searchsorted(edges, log_std)
    # Scaling about the mean moves each quantile q to mean + tau (q - mean), so the
    # quantiles are computed once for the whole grid of tau.
    q = np.quantile(draws, _LEVELS, axis=0) - mean
    dev = truth - mean - offset
    factors = []
    for k in range(bins):
        sel = which == k
        c68, c95 = _coverages(dev[sel], q[:, sel], GRID)
        factors.append(float(GRID[int(np.argmin((c68 - 0.68) ** 2 + (c95 - 0.95) ** 2))]))
    calibration = {"offset": offset, "spread": 1.0, "spread_edges": edges.tolist(),
                   "spread_factors": factors}
    before = _coverages(dev + offset, q, np.ones(1))
    after = _coverages(dev, q * np.asarray(factors)[which], np.ones(1))
    return calibration, tuple(float(c[0]) for c in before), tuple(float(c[0]) for c in after)


def _coverages(dev, q, taus, chunk: int = 64):
    """68 % and 95 % coverage of deviations ``dev`` (..., N) by the intervals ``q``
    ((4, ..., N): the 16, 84, 2.5 and 97.5 % quantiles less the mean) scaled by each of
    ``taus``: two arrays of len(taus)."""
    out = np.empty((2, len(taus)))
    for start in range(0, len(taus), chunk):
        t = taus[start:start + chunk].reshape(-1, *([1] * q[0].ndim))
        for row, (lo, hi) in enumerate(((0, 1), (2, 3))):
            inside = (dev >= t * q[lo]) & (dev <= t * q[hi])
            out[row, start:start + chunk] = inside.reshape(len(t), -1).mean(axis=1)
    return out[0], out[1]


def fit_calibration(model, log_nh: np.ndarray, log_nm: np.ndarray, *, beam_px=None,
                    samples: int = 32, seed: int = 0) -> tuple[dict, dict]:
    """The recalibration that best calibrates ``model`` on these regions.

    Parameters
    ----------
    model : Network
        Its config's calibration is set aside while it draws (the fit is absolute).
    log_nh, log_nm : ndarray, shape (N, 128, 128)
        Validation regions (log10 N_H, log10 <n_H>_m).
    beam_px : ndarray, shape (N,), optional
        Beam of each region in model pixels (beam-conditioned networks).

    Returns
    -------
    calibration : dict
        New values of the config's ``offset``, ``spread``, ``spread_edges`` and
        ``spread_factors`` (:func:`fit_recalibration`).
    report : dict
        Mean error and coverage of the raw network and after, and what was fitted on.
    """
    from .evaluate import sample_regions

    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    config = model.config
    model.config = replace(config, **RAW_CALIBRATION)
    try:
        draws, _ = sample_regions(model, log_nh, samples, gen, beam_px=beam_px)
    finally:
        model.config = config
    calibration, before, after = fit_recalibration(draws, log_nm.reshape(-1))
    return calibration, {
        "regions": int(len(log_nh)), "samples": samples, "split": "val",
        "mean_error_before_dex": -calibration["offset"],
        "coverage_68_before": before[0], "coverage_95_before": before[1],
        "coverage_68_after": after[0], "coverage_95_after": after[1]}


def header_cards(c: dict) -> dict:
    """FITS cards that record a recalibration (``models._common.calibration_of`` of a
    network's config) in an output's header; :func:`from_header` reads them back."""
    cards = {"CALOFFS": (float(c["offset"]), "[dex] calibration offset added to samples"),
             "CALSPRD": (float(c["spread"]), "calibration factor on the sample spread")}
    for k, factor in enumerate(c["spread_factors"] or [], start=1):
        cards[f"CALSPR{k}"] = (float(factor), f"and in spread bin {k}")
    for k, edge in enumerate(c["spread_edges"] or [], start=1):
        cards[f"CALEDG{k}"] = (float(edge), f"[dex] log10 sample std: top of bin {k}")
    return cards


def from_header(header) -> dict:
    """The recalibration recorded by :func:`header_cards` (missing values as None)."""
    factors = [header[f"CALSPR{k}"] for k in range(1, 65) if f"CALSPR{k}" in header]
    edges = [header[f"CALEDG{k}"] for k in range(1, 65) if f"CALEDG{k}" in header]
    return {"offset": header.get("CALOFFS"), "spread": header.get("CALSPRD"),
            "spread_edges": edges or None, "spread_factors": factors or None}


def describe(calibration: dict) -> str:
    """One line for a recalibration: its offset and spread factors, or 'unrecorded'."""
    if calibration.get("offset") is None:
        return "unrecorded"
    factors = calibration.get("spread_factors")
    spread = "/".join(f"{f * calibration['spread']:.2f}" for f in factors or [1.0])
    return (f"{calibration['offset']:+.3f} dex, spread x{spread}"
            + (" by quarter of the samples' own spread" if factors and len(factors) == 4
               else f" in {len(factors)} bins of the samples' spread" if factors else ""))


def same_calibration(a: dict, b: dict, tol: float = 1e-6) -> bool:
    """Whether two recalibrations (dicts of :data:`RAW_CALIBRATION` keys) are the same."""
    def flat(c):
        edges, factors = c.get("spread_edges") or [], c.get("spread_factors") or []
        return [c.get("offset"), c.get("spread"), *edges, *factors], len(edges)

    (fa, na), (fb, nb) = flat(a), flat(b)
    return (na == nb and len(fa) == len(fb) and None not in fa + fb
            and bool(np.allclose(fa, fb, rtol=0.0, atol=tol)))


def calibrate_card(model_name: str, data, *, stem=None, regions: int = 24, samples: int = 32,
                   device: str = "auto") -> dict:
    """Fit the recalibration of a network on the val splits of ``data``; store it in its
    card.

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
