"""Conditional invertible neural network (FrEIA) of the density residual given log N_H."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn
from torch.nn import functional as F

from ..grid import PATCH, PIXEL_PC as CELL_PC
from ._blocks import UNet
from ._common import Network, randn


@dataclass
class CINNConfig:
    cond_base: int = 16
    cond_depth: int = 5
    cond_channels: int = 16
    blocks: list = field(default_factory=lambda: [4, 6])  # coupling blocks at 64 and 32 px
    hidden: int = 32
    clamp: float = 1.5
    noise: float = 0.02       # input noise on the residual during training (normalised units)
    region_px: int = PATCH
    pixel_pc: float = CELL_PC
    # Recalibration of the samples, fitted on validation data (nhpipe calibrate):
    spread: float = 1.0       # factor on the samples' deviations from their mean
    offset: float = 0.0       # dex added to every sample
    spread_edges: list | None = None    # log10 sample std (dex) bounding the bins of
    spread_factors: list | None = None  # these further factors on the deviations
    beam_range: list | None = None  # [min, max] beam FWHM (model px) conditioned on


def _subnet(hidden):
    def build(c_in, c_out):
        net = nn.Sequential(nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                            nn.Conv2d(hidden, c_out, 3, padding=1))
        # Zero-initialised last layer: every block starts as the identity.
        nn.init.zeros_(net[-1].weight)
        nn.init.zeros_(net[-1].bias)
        return net

    return build


class CINN(Network):
    """Conditional INN (Ardizzone et al. 2019, arXiv:1907.02392; 2021) built with FrEIA.

    Two scales: an invertible 2x2 squeeze (i-RevNet downsampling) to 4 x 64 x 64, then
    GLOW affine coupling blocks conditioned on features of log N_H at 64 px, a second
    squeeze to 16 x 32 x 32 and more blocks conditioned at 32 px.  The conditioning U-Net
    is trained jointly.  The stabilisers used:

    - soft clamping of the coupling scales (FrEIA's atan clamp, ``clamp``), which bounds
      each block's log-determinant;
    - fixed random channel permutations between blocks, so every channel is transformed;
    - zero-initialised last layers of the subnetworks (each block starts as identity);
    - small Gaussian noise on the target during training, which removes the degenerate
      directions of the float16-quantised data;
    - gradient clipping and Adam with EMA of the weights (in the training loop).

    All were on from the first run, which trained 4,354 steps (55 min on one CPU thread)
    without a divergence or a loss spike; no ablation was run, so which of them is
    necessary here is not established.
    """

    name = "cinn"

    def __init__(self, config: CINNConfig, normaliser):
        import warnings

        # FrEIA 0.2 has a docstring with an invalid escape: Python >= 3.12 warns when it
        # compiles it (the first run after a --no-compile install), which nhpipe's CLI
        # would print as its own warning.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=SyntaxWarning)
            import FrEIA.framework as Ff
            import FrEIA.modules as Fm

        super().__init__(config, normaliser)
        self.cond = UNet(self.in_channels, config.cond_channels, base=config.cond_base,
                         depth=config.cond_depth)
        n = config.region_px
        # FrEIA's PermuteRandom seeds numpy's global generator: keep the caller's state.
        numpy_state = np.random.get_state()
        try:
            self.flow = self._build_flow(Ff, Fm, config, n)
        finally:
            np.random.set_state(numpy_state)
        self.latent_shape = (4 ** len(config.blocks), n // 2 ** len(config.blocks),
                             n // 2 ** len(config.blocks))

    @staticmethod
    def _build_flow(Ff, Fm, config, n):
        flow = Ff.SequenceINN(1, n, n)
        seed = 0
        for scale, count in enumerate(config.blocks):
            flow.append(Fm.IRevNetDownsampling)
            side = n // 2 ** (scale + 1)
            for _ in range(count):
                flow.append(Fm.GLOWCouplingBlock, cond=scale,
                            cond_shape=(config.cond_channels, side, side),
                            subnet_constructor=_subnet(config.hidden), clamp=config.clamp)
                flow.append(Fm.PermuteRandom, seed=seed)
                seed += 1
        return flow

    def conditions(self, x):
        features = self.cond(x)
        return [F.avg_pool2d(features, 2 ** (s + 1)) for s in range(len(self.config.blocks))]

    def forward(self, r, x, rev=False):
        """FrEIA's (x, c, rev, jac) contract: residual <-> latent, with log|det J|."""
        return self.flow(r, c=self.conditions(x), rev=rev)

    def loss(self, x, r, generator):
        r = r + self.config.noise * randn(r.shape, generator, r)
        z, log_jac = self(r, x)
        dims = z[0].numel()
        return (0.5 * (z**2).flatten(1).sum(1) - log_jac).mean() / dims

    def sample_normalised(self, x, n_samples, generator):
        b = x.shape[0]
        conds = [c.repeat_interleave(n_samples, dim=0) for c in self.conditions(x)]
        z = randn((b * n_samples,) + self.latent_shape, generator, x)
        r, _ = self.flow(z, c=conds, rev=True, jac=False)
        return r.view(b, n_samples, 1, *r.shape[-2:])
