"""Simulated molecular clouds: 3-D cubes of n_H (cm-3) for training and for mock maps.

A cube is the sum of physically motivated components, each with its reference:

- a diffuse atomic background of uniform density, 1-20 cm-3 (the cold and warm neutral
  medium, Wolfire et al. 2003, ApJ 587, 278);
- a molecular envelope whose shape comes from thresholding a very smooth random field,
  so that its depth along the line of sight varies across the map: the same N_H comes
  from a thin dense or a deep diffuse column (the degeneracy of Ribeiro & Hily-Blant);
- inside it, log-normal supersonic turbulence: ln(n / n_0) is a Gaussian random field
  with a power-law spectrum and variance sigma_ln^2 = ln(1 + b^2 M^2) (Padoan, Nordlund &
  Jones 1997, MNRAS 288, 145; Federrath, Klessen & Schmidt 2008, ApJ 688, L79);
- filaments with Plummer-like cross-sections n_f / (1 + (r / r_flat)^2), whose column
  profile has a FWHM of 2 sqrt(3) r_flat ~ 0.1 pc (Arzoumanian et al. 2011, A&A 529, L6);
- dense cores with Plummer-like profiles (flat inner part, r^-2 envelope, as a
  Bonnor-Ebert sphere; Whitworth & Ward-Thompson 2001, ApJ 547, 317), 1e4 to 1e6 cm-3 at
  the centre, 70 % of them on filaments (Konyves et al. 2015, A&A 584, A91).

All parameters are drawn from the documented ranges of :class:`CloudRanges` with a seeded
``numpy.random.Generator``, so a seed always gives the same cube.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import fft, ndimage

from ..grid import PIXEL_PC
from .gravity import with_tail

#: Cell size of the training cubes (the model pixel, :mod:`nhpipe.grid`).
CELL_PC = PIXEL_PC


@dataclass(frozen=True)
class CloudRanges:
    """Ranges the cloud parameters are drawn from (log-uniform where marked *log*)."""

    mach: tuple = (2.0, 15.0)            # sonic Mach number, log
    forcing_b: tuple = (0.33, 0.8)       # turbulence forcing parameter b
    density_slope: tuple = (3.2, 4.0)    # 3-D power-spectrum slope of ln n (11/3 Kolmogorov)
    n_envelope: tuple = (50.0, 1.0e4)    # cm-3, mean envelope density, log
    fill: tuple = (0.15, 0.9)            # volume filling fraction of the envelope
    n_background: tuple = (1.0, 20.0)    # cm-3, diffuse atomic background, log
    n_filaments: tuple = (0, 4)          # filaments per cube (integers, inclusive)
    filament_density: tuple = (1.0e3, 3.0e4)  # cm-3, filament axis density, log
    filament_r_flat_pc: tuple = (0.02, 0.04)  # pc, Plummer flat radius
    n_cores: tuple = (0, 8)              # cores per cube (integers, inclusive)
    core_density: tuple = (1.0e4, 1.0e6)  # cm-3, core central density, log
    core_r_flat_pc: tuple = (0.02, 0.05)  # pc, Plummer flat radius


@dataclass
class CloudParams:
    """Parameters of one simulated cube (see :class:`CloudRanges` for units)."""

    mach: float
    forcing_b: float
    density_slope: float
    n_envelope: float
    fill: float
    n_background: float
    filaments: list = field(default_factory=list)  # dicts: density, r_flat_pc
    cores: list = field(default_factory=list)      # dicts: density, r_flat_pc, on_filament

    @property
    def sigma_ln(self) -> float:
        """Width of ln(n) of the turbulence, sqrt(ln(1 + b^2 M^2))."""
        return float(np.sqrt(np.log1p((self.forcing_b * self.mach) ** 2)))

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform(rng, bounds, log=False):
    lo, hi = bounds
    if log:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


def draw_params(rng: np.random.Generator, ranges: CloudRanges = CloudRanges()) -> CloudParams:
    """Draw the parameters of one cloud from ``ranges``."""
    params = CloudParams(
        mach=_uniform(rng, ranges.mach, log=True),
        forcing_b=_uniform(rng, ranges.forcing_b),
        density_slope=_uniform(rng, ranges.density_slope),
        n_envelope=_uniform(rng, ranges.n_envelope, log=True),
        fill=_uniform(rng, ranges.fill),
        n_background=_uniform(rng, ranges.n_background, log=True),
    )
    for _ in range(int(rng.integers(ranges.n_filaments[0], ranges.n_filaments[1] + 1))):
        params.filaments.append({
            "density": _uniform(rng, ranges.filament_density, log=True),
            "r_flat_pc": _uniform(rng, ranges.filament_r_flat_pc),
        })
    for _ in range(int(rng.integers(ranges.n_cores[0], ranges.n_cores[1] + 1))):
        params.cores.append({
            "density": _uniform(rng, ranges.core_density, log=True),
            "r_flat_pc": _uniform(rng, ranges.core_r_flat_pc),
            "on_filament": bool(rng.random() < 0.7),
        })
    return params


def gaussian_field(shape, slope: float, rng: np.random.Generator, *, spacing=None,
                   k_floor: float = 0.0) -> np.ndarray:
    """Periodic Gaussian random field with power spectrum P(k) ~ (k^2 + k_floor^2)^(-slope/2).

    Parameters
    ----------
    shape : tuple of int
    slope : float
        Power-spectrum slope.
    rng : numpy.random.Generator
    spacing : tuple of float, optional
        Cell size along each axis in units of the cell size of the last two axes
        (anisotropic cells keep the spectrum isotropic in physical space); default all 1.
    k_floor : float
        Wavenumber (cycles per cell) below which the spectrum flattens, so that in a box
        much deeper than wide the few longest line-of-sight modes do not carry all the
        variance; 0 (the default) is a pure power law.

    Returns
    -------
    ndarray, float32, zero mean and unit variance.
    """
    spacing = (1.0,) * len(shape) if spacing is None else tuple(spacing)
    freqs = np.meshgrid(*[fft.fftfreq(n, d) for n, d in zip(shape[:-1], spacing[:-1])],
                        fft.rfftfreq(shape[-1], spacing[-1]), indexing="ij", sparse=True)
    k2 = sum(f.astype(np.float32) ** 2 for f in freqs)
    if k_floor:
        k2 = k2 + np.float32(k_floor) ** 2
    k2.flat[0] = np.inf  # no mean mode
    amplitude = k2 ** (-slope / 4.0)
    noise = rng.standard_normal(shape).astype(np.float32)
    out = fft.irfftn(fft.rfftn(noise, workers=-1) * amplitude, s=shape, workers=-1)
    out -= out.mean()
    return (out / out.std()).astype(np.float32)


def make_cube(params: CloudParams, rng: np.random.Generator, *, shape=(128, 128, 128),
              cell_pc: float = CELL_PC, k_floor: float = 0.0, turb_k_floor: float = 0.0,
              tail=None) -> np.ndarray:
    """Build the density cube of one cloud.

    Parameters
    ----------
    params : CloudParams
    rng : numpy.random.Generator
        Source of the random fields and positions.
    shape : (nz, ny, nx)
        Cells; axis 0 is the line of sight of the 'z' view.
    cell_pc : float
        Cell size in pc.
    k_floor : float
        Passed to :func:`gaussian_field` for the envelope (see there); 0 in the first
        generator, ``1 / ny`` in deep boxes (generator v2).
    turb_k_floor : float
        The same for the turbulent field: 0 (a pure power law) except in the quiescent
        clouds of generator v5, whose turbulence is driven at the cloud's depth.
    tail : dict, optional
        ``{"slope": alpha, "start": t}``: give the turbulent density a power-law
        high-density tail (self-gravity, :func:`nhpipe.sims.gravity.with_tail`).

    Returns
    -------
    ndarray, shape ``shape``, float32
        n_H in cm-3.
    """
    shape = tuple(int(n) for n in shape)
    turb = gaussian_field(shape, params.density_slope, rng, k_floor=turb_k_floor)
    sigma = params.sigma_ln
    if tail:
        lognormal = with_tail(turb, sigma, slope=tail["slope"], start=tail["start"])
    else:
        lognormal = np.exp(sigma * turb - 0.5 * sigma**2)

    smooth = gaussian_field(shape, 6.0, rng, k_floor=k_floor)
    threshold = np.quantile(smooth[::4, ::4, ::4], 1.0 - params.fill)
    envelope = 1.0 / (1.0 + np.exp(-(smooth - threshold) / 0.15))

    cube = params.n_background + params.n_envelope * envelope * lognormal
    spines = []
    for fil in params.filaments:
        spine = _filament_spine(shape, rng)
        spines.append(spine)
        r_pc = ndimage.distance_transform_edt(~_rasterise(spine, shape)) * cell_pc
        clumpy = np.exp(0.5 * sigma * turb - 0.125 * sigma**2)
        cube += fil["density"] * clumpy / (1.0 + (r_pc / fil["r_flat_pc"]) ** 2)
    for core in params.cores:
        if core["on_filament"] and spines:
            spine = spines[int(rng.integers(len(spines)))]
            centre = spine[int(rng.integers(len(spine)))]
        else:
            centre = rng.uniform(0, shape)
        _add_plummer(cube, centre, core["density"], core["r_flat_pc"] / cell_pc)
    return cube.astype(np.float32)


def _filament_spine(shape, rng) -> np.ndarray:
    """Points (in cells) of a gently curved filament crossing the box, 0.5 cell apart."""
    size = np.asarray(shape, dtype=np.float64)
    start = rng.uniform(0, size)
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    length = float(size.max())
    steps = int(2 * length)
    # A slowly turning direction: small random rotations integrated along the curve.
    turns = np.cumsum(rng.standard_normal((steps, 3)) * 0.01, axis=0)
    dirs = direction + turns
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    points = start + np.cumsum(dirs * 0.5, axis=0) - 0.5 * length * direction
    return np.mod(points, size)


def _rasterise(points: np.ndarray, shape) -> np.ndarray:
    grid = np.zeros(shape, dtype=bool)
    idx = np.clip(np.floor(points).astype(int), 0, np.asarray(shape) - 1)
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return grid


def _add_plummer(cube: np.ndarray, centre, density: float, r_flat: float) -> None:
    """Add n_c / (1 + (r / r_flat)^2), tapered beyond 8 r_flat, around ``centre`` (cells).

    The profile is evaluated where it matters (within 12 r_flat) and wraps periodically,
    like the turbulent field.
    """
    reach = int(np.ceil(12 * r_flat))
    offsets = np.arange(-reach, reach + 1)
    base = np.floor(centre).astype(int)
    idx = [np.mod(base[a] + offsets, cube.shape[a]) for a in range(3)]
    d = [(base[a] + offsets + 0.5 - centre[a]) for a in range(3)]
    r2 = d[0][:, None, None] ** 2 + d[1][None, :, None] ** 2 + d[2][None, None, :] ** 2
    profile = density / (1.0 + r2 / r_flat**2) * np.exp(-((r2 / (8 * r_flat) ** 2) ** 2))
    cube[np.ix_(*idx)] += profile.astype(cube.dtype)
