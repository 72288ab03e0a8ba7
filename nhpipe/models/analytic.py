"""Analytic estimators of <n_H>_m from N_H: the baselines every network must beat."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..grid import PIXEL_PC
from ..units import PC_CM

#: The training regions' physical pixel: 3.33 pc over 128 px (Ribeiro & Hily-Blant).


@dataclass
class PowerLawConfig:
    """log10 <n_H>_m = a + b log10 N_H, with Gaussian scatter ``sigma`` in dex.

    The defaults are a placeholder, not a fit: they put <n_H>_m = 100 cm-3 at
    N_H = 1e21 cm-2 and 1e5 cm-3 at 1e23 cm-2 (b = 1.5, between the constant-depth
    slope 1 and the steeper rise of cores), with 0.3 dex scatter.  Refit them on
    training data with :func:`fit_powerlaw`.
    """

    a: float = -29.5
    b: float = 1.5
    sigma: float = 0.3
    pixel_pc: float = PIXEL_PC


class PowerLaw(nn.Module):
    """Power law of <n_H>_m against N_H with log-normal scatter (the poster's non-ML baseline)."""

    name = "powerlaw"
    probabilistic = True

    def __init__(self, config: PowerLawConfig | None = None):
        super().__init__()
        self.config = config or PowerLawConfig()
        self.pixel_pc = self.config.pixel_pc

    def sample(self, log_nh: torch.Tensor, n_samples: int, generator: torch.Generator,
               beam_px=None):
        """Draw samples of log10 <n_H>_m (cm-3).

        Parameters
        ----------
        log_nh : Tensor, shape (B, 1, H, W)
            log10 of N_H in cm-2.
        n_samples : int
            Samples per region, S.
        generator : torch.Generator
            Source of all random draws (on the tensor's device).

        Returns
        -------
        Tensor, shape (B, S, 1, H, W)
        """
        c = self.config
        mean = (c.a + c.b * log_nh).unsqueeze(1)
        noise = torch.randn(
            (log_nh.shape[0], n_samples) + tuple(log_nh.shape[1:]),
            generator=generator,
            device=log_nh.device,
            dtype=log_nh.dtype,
        )
        return mean + c.sigma * noise

    def card(self) -> dict:
        return {"name": self.name, "config": asdict(self.config)}


def fit_powerlaw(log_nh: np.ndarray, log_n: np.ndarray) -> PowerLawConfig:
    """Least-squares fit of log10 <n_H>_m = a + b log10 N_H.

    Parameters
    ----------
    log_nh, log_n : array_like, same shape
        log10 N_H (cm-2) and log10 <n_H>_m (cm-3) of the training pixels.

    Returns
    -------
    PowerLawConfig
        ``sigma`` is the rms residual, in dex.
    """
    x = np.asarray(log_nh, dtype=np.float64).ravel()
    y = np.asarray(log_n, dtype=np.float64).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        raise ValueError(f"need at least 2 finite pixels to fit, got {int(ok.sum())}")
    b, a = np.polyfit(x[ok], y[ok], 1)
    sigma = float(np.std(y[ok] - (a + b * x[ok])))
    return PowerLawConfig(a=float(a), b=float(b), sigma=sigma)


@dataclass
class WidthConfig:
    """<n_H>_m = N_H / W for a fixed line-of-sight depth W (pc); 0.1 pc by default.

    0.1 pc is the characteristic inner width of Herschel filaments (Arzoumanian et al.
    2011, A&A 529, L6), the usual assumption when a core density is derived from its
    column density alone.
    """

    width_pc: float = 0.1
    pixel_pc: float = PIXEL_PC


class ConstantWidth(nn.Module):
    """Deterministic estimator N_H / W: all samples are equal, the spread is zero."""

    name = "width"
    probabilistic = False

    def __init__(self, config: WidthConfig | None = None):
        super().__init__()
        self.config = config or WidthConfig()
        self.pixel_pc = self.config.pixel_pc

    def sample(self, log_nh: torch.Tensor, n_samples: int, generator: torch.Generator,
               beam_px=None):
        """log10(N_H / W) repeated ``n_samples`` times: (B, 1, H, W) -> (B, S, 1, H, W)."""
        offset = float(np.log10(self.config.width_pc * PC_CM))
        value = (log_nh - offset).unsqueeze(1)
        return value.expand(-1, n_samples, -1, -1, -1).clone()

    def card(self) -> dict:
        return {"name": self.name, "config": asdict(self.config)}
