"""Validation family "fractal": hierarchical clump ensembles, a physics of their own.

No turbulent log-normal field and no filaments: the gas is a hierarchy of clumps within
clumps, the picture of Elmegreen (1997, ApJ 477, 196) and of the clump-ensemble models of
Stutzki et al. (1998, A&A 336, 697). ``levels`` generations of points are placed: each
point of one generation has ``n_sub`` children scattered uniformly within a cube of half
side ``s / F``, where ``s`` is its own scale and F = n_sub^(1/D) for a fractal dimension
D ~ 2.3 (Elmegreen & Falgarone 1996, ApJ 471, 816). Every generation is a set of Gaussian
clumps of width half its scale carrying the same share of the mass, so the smallest clumps
are the densest; a uniform atomic floor is added under the clump gas of mean density
n_mean. The density PDF is nothing like a
log-normal (a floor, then a broad shoulder of clumps), which is the point: a network that
only learned the training generator's statistics is caught here.

The box is 128 cells wide and L deep (log-uniform 1-30 pc, like the training lines of
sight) at the same 0.026 pc cells; the mean density follows Larson's relation n_H ~
6800 cm-3 (L / pc)^-1.1 (Larson 1981, MNRAS 194, 809, n(H2) ~ 3400 L^-1.1) with a log-
uniform scatter of +-0.5 dex.

How a map of this family shows its depth is a choice made here, not a property of the
sky: by Larson's relation N_H hardly changes with the depth while <n_H>_m does, and the
number of top-level clumps grows with the depth at a fixed clump width, so a deep box is a
smoother map. A network trained on this family learns that rule and reads the family's
depth well (docs/experiments/in_family.md); the family tests transfer only while no
network trains on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import fft

from .cloud import CELL_PC
from .observe import loguniform


@dataclass(frozen=True)
class FractalRanges:
    """Ranges of the fractal clump family (log-uniform where marked *log*).

    los_depth_pc : depth of the box along the line of sight in pc, log.
    larson_scatter_dex : scatter of the mean density about Larson's relation, uniform.
    levels : generations of clumps (integers, inclusive).
    n_sub : children per clump (integers, inclusive).
    dimension : fractal dimension D.
    top_per_width : top-level clumps per 128-cell width of depth.
    n_floor : cm-3, uniform atomic floor, log.
    """

    los_depth_pc: tuple = (1.0, 30.0)
    larson_scatter_dex: tuple = (-0.5, 0.5)
    levels: tuple = (3, 5)
    n_sub: tuple = (3, 6)
    dimension: tuple = (2.0, 2.6)
    top_per_width: tuple = (1.0, 4.0)
    n_floor: tuple = (1.0, 20.0)

    def to_dict(self) -> dict:
        return asdict(self)


def larson_density(depth_pc: float) -> float:
    """Mean n_H (cm-3) of a cloud of size ``depth_pc`` by Larson's relation (2 x n(H2))."""
    return 6800.0 * depth_pc ** -1.1


def fractal_cube(rng: np.random.Generator, ranges: FractalRanges = FractalRanges(), *,
                 width: int = 128):
    """A hierarchical clump cloud.

    Returns
    -------
    cube : ndarray, shape (nz, width, width), float32
        n_H in cm-3, periodic on every axis; axis 0 is the line of sight.
    params : dict
    """
    nz = max(8, int(round(loguniform(rng, ranges.los_depth_pc) / CELL_PC)))
    depth_pc = nz * CELL_PC
    n_mean = larson_density(depth_pc) * 10 ** rng.uniform(*ranges.larson_scatter_dex)
    levels = int(rng.integers(ranges.levels[0], ranges.levels[1] + 1))
    n_sub = int(rng.integers(ranges.n_sub[0], ranges.n_sub[1] + 1))
    dim = float(rng.uniform(*ranges.dimension))
    shrink = n_sub ** (1.0 / dim)
    n_top = max(1, int(round(rng.uniform(*ranges.top_per_width) * nz / width)))
    n_floor = loguniform(rng, ranges.n_floor)

    shape = np.array([nz, width, width])
    freqs = np.meshgrid(fft.fftfreq(nz), fft.fftfreq(width), fft.rfftfreq(width),
                        indexing="ij", sparse=True)
    k2 = sum(f.astype(np.float32) ** 2 for f in freqs)
    points = rng.uniform(0, shape, size=(n_top, 3))
    scale = width / 2.0
    spectrum = 0.0
    for _ in range(levels):
        grid = np.zeros(tuple(shape), dtype=np.float32)
        idx = np.floor(np.mod(points, shape)).astype(int)
        np.add.at(grid, (idx[:, 0], idx[:, 1], idx[:, 2]), 1.0)
        # Gaussian clumps of width scale / 2 (a product in Fourier space, periodic); each
        # generation carries the same mass, hence the division by its number of points.
        kernel = np.exp(-2.0 * np.pi**2 * (0.5 * scale) ** 2 * k2)
        spectrum = spectrum + fft.rfftn(grid, workers=-1) * kernel / len(points)
        scale /= shrink
        children = np.repeat(points, n_sub, axis=0)
        points = children + rng.uniform(-scale, scale, size=children.shape)
    clumps = np.clip(fft.irfftn(spectrum, s=tuple(shape), workers=-1), 0.0, None)
    cube = n_floor + n_mean * clumps / clumps.mean()
    params = {"kind": "fractal", "depth_pc": depth_pc, "n_mean": n_mean, "levels": levels,
              "n_sub": n_sub, "dimension": dim, "n_top": n_top, "n_floor": n_floor}
    return cube.astype(np.float32), params
