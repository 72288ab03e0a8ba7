"""U-Net with a heteroscedastic Gaussian head: a point estimate and its uncertainty."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..grid import PIXEL_PC as CELL_PC
from ._blocks import UNet
from ._common import Network, randn


@dataclass
class UNetConfig:
    base: int = 24
    depth: int = 5
    beta: float = 0.5         # beta-NLL exponent (Seitzer et al. 2022)
    pixel_pc: float = CELL_PC
    # Recalibration of the samples, fitted on validation data (nhpipe calibrate):
    spread: float = 1.0       # factor on the samples' deviations from their mean
    offset: float = 0.0       # dex added to every sample
    spread_edges: list | None = None    # log10 sample std (dex) bounding the bins of
    spread_factors: list | None = None  # these further factors on the deviations
    beam_range: list | None = None  # [min, max] beam FWHM (model px) conditioned on


class HeteroUNet(Network):
    """U-Net (Ronneberger et al. 2015) predicting a mean and a log-variance per pixel.

    Trained with the beta-NLL loss of Seitzer et al. (2022, ICLR, "On the pitfalls of
    heteroscedastic uncertainty estimation"): the Gaussian NLL weighted per pixel by the
    detached variance to the power beta, which keeps the mean as accurate as an MSE fit
    while the variance stays calibrated.  Samples are drawn from the predicted Gaussian,
    so even the fast model reports an uncertainty.
    """

    name = "unet"

    def __init__(self, config: UNetConfig, normaliser):
        super().__init__(config, normaliser)
        self.net = UNet(self.in_channels, 2, base=config.base, depth=config.depth)

    def forward(self, x):
        out = self.net(x)
        return out[:, :1], out[:, 1:].clamp(-12.0, 6.0)

    def loss(self, x, r, generator):
        mean, log_var = self(x)
        nll = 0.5 * (log_var + (r - mean) ** 2 * torch.exp(-log_var))
        weight = torch.exp(self.config.beta * log_var).detach()
        return (weight * nll).mean()

    def sample_normalised(self, x, n_samples, generator):
        mean, log_var = self(x)
        eps = randn((x.shape[0], n_samples) + tuple(x.shape[1:]), generator, x)
        return mean.unsqueeze(1) + torch.exp(0.5 * log_var).unsqueeze(1) * eps
