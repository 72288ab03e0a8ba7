"""Building blocks shared by the networks: a small U-Net with optional time conditioning."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4) or 1, channels)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and SiLU, a residual path, and an optional
    additive time embedding (as in Ho et al. 2020's denoiser)."""

    def __init__(self, c_in: int, c_out: int, temb: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = _norm(c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.time = nn.Linear(temb, c_out) if temb else None

    def forward(self, x, t=None):
        h = F.silu(self.norm1(self.conv1(x)))
        if self.time is not None:
            h = h + self.time(t)[:, :, None, None]
        h = F.silu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """U-Net (Ronneberger, Fischer & Brox 2015) with ``depth`` resolution levels.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    base : int
        Channels at full resolution, doubled at each level down.
    depth : int
        Number of levels (the input side must be divisible by 2**(depth-1)).
    temb : int
        Size of the time embedding (0 for none).

    Shapes: (B, c_in, H, W) -> (B, c_out, H, W); the time ``t`` is (B, temb).
    """

    def __init__(self, c_in: int, c_out: int, *, base: int = 16, depth: int = 4, temb: int = 0):
        super().__init__()
        chans = [base * 2**i for i in range(depth)]
        self.stem = nn.Conv2d(c_in, chans[0], 3, padding=1)
        self.down = nn.ModuleList(ResBlock(chans[max(i - 1, 0)], chans[i], temb)
                                  for i in range(depth))
        self.up = nn.ModuleList(ResBlock(chans[i + 1] + chans[i], chans[i], temb)
                                for i in reversed(range(depth - 1)))
        self.head = nn.Conv2d(chans[0], c_out, 1)

    def forward(self, x, t=None):
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                h = F.avg_pool2d(h, 2)
            h = block(h, t)
            skips.append(h)
        skips.pop()
        for block in self.up:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), t)
        return self.head(h)


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of times t in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t[:, None].float() * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
