"""What every trained network shares: normalisation, checkpoints and model cards.

A network's file pair is ``NAME.safetensors`` (weights, no pickle) and ``NAME.json`` (the
model card, :mod:`nhpipe.cards`: architecture config, normalisation, physical pixel size,
training recipe, metrics and the sha256 of the weights file).  The model is rebuilt from
these two files alone; the card is validated and the weights' sha256 checked before the
weights are read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..cards import write_card
from ..errors import InputError
from .._write import sha256_file


@dataclass
class Normaliser:
    """Maps log10 N_H and log10 <n_H>_m to the network's unit-scale variables.

    Input  x = (log10 N_H - nh_mean) / nh_std.
    Target r = (log10 <n_H>_m - a - b log10 N_H) / r_std: the residual from the power law
    fitted on the training split, so a network only learns what the power law misses.
    All five numbers are fitted on the training data and stored in the model card.
    """

    nh_mean: float
    nh_std: float
    a: float
    b: float
    r_std: float

    @classmethod
    def fit(cls, log_nh: np.ndarray, log_nm: np.ndarray) -> "Normaliser":
        from .analytic import fit_powerlaw

        x = np.asarray(log_nh, np.float64).ravel()
        line = fit_powerlaw(x, log_nm)
        return cls(float(x.mean()), float(x.std()), line.a, line.b, line.sigma)

    def inputs(self, log_nh: torch.Tensor) -> torch.Tensor:
        return (log_nh - self.nh_mean) / self.nh_std

    def targets(self, log_nm: torch.Tensor, log_nh: torch.Tensor) -> torch.Tensor:
        return (log_nm - self.a - self.b * log_nh) / self.r_std

    def log_density(self, r: torch.Tensor, log_nh: torch.Tensor) -> torch.Tensor:
        """Invert :meth:`targets`: r and log10 N_H (broadcastable) -> log10 <n_H>_m."""
        return self.a + self.b * log_nh + self.r_std * r


def save_network(model: torch.nn.Module, stem, card: dict) -> dict:
    """Write ``stem.safetensors`` and ``stem.json``; returns the card with its sha256."""
    from .._write import atomic_path

    stem = Path(stem)
    weights = stem.with_suffix(".safetensors")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, tmp)
    card = dict(card, weights=weights.name, sha256=sha256_file(weights),
                parameters=int(sum(p.numel() for p in model.parameters())))
    return write_card(stem, card)


def load_weights(stem, card: dict) -> dict:
    """Read the weights after checking their sha256 against the card."""
    weights = Path(stem).with_name(card["weights"])
    if not weights.is_file():
        raise InputError(f"weights {weights} are missing: reinstall nhpipe or retrain")
    actual = sha256_file(weights)
    if actual != card["sha256"]:
        raise InputError(
            f"weights {weights} do not match their model card (sha256 {actual[:12]}... "
            f"expected {card['sha256'][:12]}...): the file is truncated or altered; "
            "reinstall nhpipe or retrain the model"
        )
    try:
        return load_file(weights)
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"weights {weights} cannot be read ({exc})") from None


def beam_feature(beam_px: torch.Tensor) -> torch.Tensor:
    """The beam as a network input: log2 of its FWHM in model pixels, centred on 2.8 px
    (the log-centre of the trained 0.5-16 px) and scaled to about unit range."""
    return (torch.log2(beam_px) - 1.5) / 2.5


class Network(torch.nn.Module):
    """Base of the trained networks: physical units in, physical units out.

    Subclasses define ``loss(x, r, generator)`` on normalised tensors (x the input of
    :meth:`inputs`, (B, C, H, W); r the target residual, (B, 1, H, W)) and
    ``sample_normalised(x, n_samples, generator) -> (B, S, 1, H, W)``.

    A network whose config has a ``beam_range`` (min, max FWHM in model pixels) is
    conditioned on the beam: its input has a second channel, :func:`beam_feature` of the
    map's beam, so one set of weights serves maps of any resolution in that range.
    """

    name = "network"
    probabilistic = True

    def __init__(self, config, normaliser: Normaliser):
        super().__init__()
        self.config = config
        self.normaliser = normaliser
        self.pixel_pc = config.pixel_pc

    @property
    def beam_range(self):
        """(min, max) beam FWHM in model pixels the network was trained on, or None."""
        beam_range = getattr(self.config, "beam_range", None)
        return tuple(beam_range) if beam_range else None

    @property
    def in_channels(self) -> int:
        return 2 if self.beam_range else 1

    def inputs(self, log_nh: torch.Tensor, beam_px=None) -> torch.Tensor:
        """Network input (B, C, H, W) from log10 N_H (B, 1, H, W) and the beam (B,) in px."""
        x = self.normaliser.inputs(log_nh)
        if not self.beam_range:
            return x
        if beam_px is None:
            raise ValueError(f"{self.name} is conditioned on the beam: give beam_px")
        beam = torch.as_tensor(beam_px, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        return torch.cat([x, beam_feature(beam).expand(len(x), 1, *x.shape[-2:])], dim=1)

    def sample(self, log_nh: torch.Tensor, n_samples: int, generator: torch.Generator,
               beam_px=None, **options):
        """Samples of log10 <n_H>_m (cm-3): (B, 1, H, W) log10 N_H -> (B, S, 1, H, W).

        ``beam_px`` (a number or (B,) tensor, FWHM in model pixels) is needed by
        beam-conditioned networks and ignored by the others. The samples are then
        recalibrated (:func:`recalibrate`) with the config's offset and spread factors,
        fitted on validation data (:func:`nhpipe.calibrate.fit_calibration`; Kuleshov et
        al. 2018 recalibrate the same way); with one sample only the offset applies.
        ``options`` go to :meth:`sample_normalised` (the diffusion model's ``steps``).
        """
        x = self.inputs(log_nh, beam_px)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        r = self.sample_normalised(x, n_samples, generator, **options).float()
        return recalibrate(self.normaliser.log_density(r, log_nh.unsqueeze(1)),
                           **calibration_of(self.config))

    def card(self) -> dict:
        return {"name": self.name, "config": asdict(self.config),
                "normaliser": asdict(self.normaliser)}


def randn(shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal draws from ``generator`` on the device and dtype of ``like``."""
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


#: The config fields of a network's recalibration, and their values when there is none.
RAW_CALIBRATION = {"offset": 0.0, "spread": 1.0, "spread_edges": None, "spread_factors": None}


def calibration_of(config) -> dict:
    """The recalibration fields of a network's config (:data:`RAW_CALIBRATION` keys); {}
    for a model that has none (the analytic baselines)."""
    if not hasattr(config, "offset"):
        return {}
    return {k: getattr(config, k) for k in RAW_CALIBRATION}


def recalibrate(samples, spread: float = 1.0, offset: float = 0.0, axis: int = 1,
                spread_edges=None, spread_factors=None):
    """Scale the deviations from the per-pixel sample mean, then add ``offset``.

    Parameters
    ----------
    samples : torch.Tensor or numpy.ndarray
        Samples of log10 <n_H>_m (cm-3) along ``axis``: (B, S, ...) in the models
        (axis 1), (S, N) in evaluation (axis 0).
    spread : float
        Factor on the deviations (the model card's ``spread``); ignored with one sample.
    offset : float
        Shift in dex (the model card's ``offset``).
    spread_edges, spread_factors : list of float, optional
        Factors that depend on the samples' own spread: a pixel whose sample standard
        deviation has a log10 (dex) between ``spread_edges[k-1]`` and
        ``spread_edges[k]`` has its deviations scaled by ``spread_factors[k]`` (times
        ``spread``); ``len(spread_factors) == len(spread_edges) + 1``.
    """
    if samples.shape[axis] > 1 and (spread != 1.0 or spread_factors):
        mean = samples.mean(axis, keepdims=True)
        dev = samples - mean
        factor = spread
        if spread_factors:
            factor = spread * _factor_by_spread(dev, axis, spread_edges, spread_factors)
        samples = mean + factor * dev
    return samples + offset if offset else samples


def _factor_by_spread(dev, axis, edges, factors):
    """Per pixel, the factor of the bin its sample standard deviation falls in."""
    if isinstance(dev, torch.Tensor):
        log_std = torch.log10(dev.square().mean(axis, keepdim=True).sqrt().clamp_min(1e-12))
        index = torch.bucketize(log_std, torch.as_tensor(edges, dtype=log_std.dtype,
                                                         device=log_std.device))
        return torch.as_tensor(factors, dtype=dev.dtype, device=dev.device)[index]
    log_std = np.log10(np.maximum(np.sqrt(np.mean(dev ** 2, axis=axis, keepdims=True)), 1e-12))
    return np.asarray(factors, dtype=dev.dtype)[np.searchsorted(edges, log_std)]
