"""Families of simulated regions: the training generator and independent validation families.

A family is a recipe that turns (seed, index) into one 128 x 128 region: the true N_H and
<n_H>_m of a line of sight, the same observation for all (:class:`ObservationRanges`:
beam, noise, zero-level offset), and what is recorded about it. Families differ in their
physics, so that "does a network trained on family A hold on family B?" has an honest
answer:

- ``clouds``: generator v5 (:mod:`nhpipe.sims.sky`), the one networks train on;
- ``fractal``: hierarchical clump ensembles (:mod:`nhpipe.sims.fractal`);
- ``mhd``: a real MHD simulation snapshot read with yt (by default the IDEFIX
  Orszag-Tang snapshot), projected along a random axis and rescaled (:func:`mhd_region`);
- ``turb``: driven isothermal supersonic turbulence solved here (:mod:`nhpipe.sims.hydro`),
  eight boxes of Mach 4-16 per seed, viewed like the MHD snapshot.

Each family draws from its own random stream ``default_rng([seed, key, index])`` (the key
is the family's), so files of different families never share a cloud, whatever seeds
they were made with.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .cloud import CELL_PC
from .fractal import FractalRanges, fractal_cube, larson_density
from .hydro import TurbulenceRanges, read_snapshot, snapshot_headers
from .observe import ObservationRanges, draw_observation, loguniform, observe_region
from .project import project
from .sky import REGION, SkyRanges, simulate_sightline


@dataclass(frozen=True)
class MHDRanges:
    """How one MHD snapshot is turned into many regions.

    Ideal MHD without gravity, cooling or a fixed sound speed has no intrinsic length or
    density scale: a snapshot of box side 1 and mean density 1 in code units is equally a
    box of side L pc at mean density n (the scaling of ideal MHD; e.g. Federrath &
    Klessen 2012, ApJ 761, 156, Sect. 2). So each region rescales the snapshot:

    box_pc : side of the (periodic) box in pc, log-uniform; it is the depth of the line
        of sight. Boxes narrower than a region (3.33 pc) repeat periodically across it.
    larson_scatter_dex : the mean density is Larson's n_H = 6800 (L / pc)^-1.1 cm-3 times
        10 to a power drawn uniform in this range.

    The transverse axes are resampled to the model's 0.026 pc pixels by trilinear
    interpolation of the density (periodic), the line-of-sight axis keeps its cells, and
    the projection of that cube is exact.
    """

    box_pc: tuple = (1.0, 30.0)
    larson_scatter_dex: tuple = (-0.5, 0.5)


@functools.lru_cache(maxsize=TurbulenceRanges.n_snapshots)
def _turb_snapshot(path: str):
    return read_snapshot(path)


@functools.lru_cache(maxsize=2)
def _snapshot(source: str):
    """The snapshot's n / <n> and its cells in box units (read once per process)."""
    from .readers import read_yt

    cube = read_yt(source, box_pc=1.0, density_cm3=1.0)
    n = cube.n.astype(np.float32)
    return n / n.mean(), tuple(cube.cell_pc)


def mhd_region(rng: np.random.Generator, n_rel: np.ndarray, cells, *,
               ranges: MHDRanges = MHDRanges(), width: int = REGION) -> dict:
    """One region from an MHD snapshot: random axis, box size, density, offset and flips.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_rel : ndarray, shape (n0, n1, n2)
        The snapshot's density divided by its mean, periodic on every axis.
    cells : tuple of 3 floats
        Cell size along each axis in box units (the box is as long as ``cells[a] *
        n_rel.shape[a]`` along axis a).
    ranges : MHDRanges
    width : int
        Region side in model pixels.

    Returns
    -------
    dict with ``nh`` (cm-2), ``n_m`` (cm-3), ``meta`` and ``params`` (see
    :func:`nhpipe.sims.sky.simulate_sightline`).
    """
    axis = int(rng.integers(3))
    box_pc = loguniform(rng, ranges.box_pc)
    n_mean = larson_density(box_pc) * 10 ** rng.uniform(*ranges.larson_scatter_dex)
    cube = np.moveaxis(n_rel, axis, 0)
    cells = [cells[axis]] + [c for a, c in enumerate(cells) if a != axis]
    if rng.random() < 0.5:  # the two transverse axes swapped: a mirror view
        cube, cells = cube.transpose(0, 2, 1), [cells[0], cells[2], cells[1]]
    side = cells[0] * cube.shape[0]  # box side in box units along the line of sight
    scale_pc = box_pc / side
    start = rng.uniform(0, 1, size=2) * np.asarray(cube.shape[1:])
    pix = (np.arange(width) + 0.5) * CELL_PC
    # Cell-index coordinates of the model pixels' centres (cell j spans [j, j+1) * size).
    ya = start[0] + pix / (cells[1] * scale_pc) - 0.5
    xa = start[1] + pix / (cells[2] * scale_pc) - 0.5
    za = np.arange(cube.shape[0], dtype=np.float64)
    coords = np.stack(np.meshgrid(za, ya, xa, indexing="ij"))
    sampled = ndimage.map_coordinates(cube.astype(np.float64), coords, order=1,
                                      mode="grid-wrap")
    nh, n_m = project(n_mean * sampled, axis=0, cell_pc=cells[0] * scale_pc)
    meta = {"los_depth_pc": box_pc, "cloud_depth_pc": box_pc, "n_components": 1}
    params = {"kind": "mhd", "axis": axis, "box_pc": box_pc, "n_mean": n_mean}
    return {"nh": nh, "n_m": n_m, "meta": meta, "params": params}


def _fractal_region(rng, source=None, *, width=REGION):
    cube, params = fractal_cube(rng, FractalRanges(), width=width)
    nh, n_m = project(cube, axis=0, cell_pc=CELL_PC)
    meta = {"los_depth_pc": params["depth_pc"], "cloud_depth_pc": params["depth_pc"],
            "n_components": 1}
    return {"nh": nh, "n_m": n_m, "meta": meta, "params": params}


def _clouds_region(rng, source=None, *, width=REGION):
    return simulate_sightline(rng, SkyRanges(), width=width)


def _mhd_region(rng, source=None, *, width=REGION):
    if source is None:
        raise ValueError("the mhd family needs a snapshot: source=PATH (e.g. an IDEFIX .vtk)")
    n_rel, cells = _snapshot(str(source))
    region = mhd_region(rng, n_rel, cells, ranges=MHDRanges(), width=width)
    region["params"]["source"] = str(source)
    return region


def _turb_region(rng, source=None, *, width=REGION):
    from pathlib import Path

    if source is None:
        raise ValueError("the turb family needs its snapshots' folder: source=DIR")
    paths = sorted(Path(source).glob("snapshot_*.fits"))
    if not paths:
        raise ValueError(f"no turbulence snapshots in {source}")
    path = paths[int(rng.integers(len(paths)))]
    n_rel, cells = _turb_snapshot(str(path))
    region = mhd_region(rng, n_rel, cells, ranges=MHDRanges(), width=width)
    region["params"].update(kind="turb", source=str(path))
    return region


#: name -> (random-stream key, region maker, ranges, generator module).
FAMILIES = {
    "clouds": (2, _clouds_region, SkyRanges, "nhpipe.sims.sky"),
    "fractal": (3, _fractal_region, FractalRanges, "nhpipe.sims.fractal"),
    "mhd": (4, _mhd_region, MHDRanges, "nhpipe.sims.families.mhd_region"),
    "turb": (5, _turb_region, TurbulenceRanges, "nhpipe.sims.hydro"),
}


def family_recipe(family: str, source=None) -> dict:
    """What makes the regions of ``family``: generator, its ranges and the observation."""
    _, _, ranges, module = FAMILIES[family]
    recipe = {"family": family, "generator": module, "ranges": asdict(ranges()),
              "observation": asdict(ObservationRanges()), "cell_pc": CELL_PC,
              "region_px": REGION}
    if family == "turb":  # its boxes are viewed like the MHD snapshot
        recipe["box"] = asdict(MHDRanges())
        if source is not None:
            recipe["snapshots"] = snapshot_headers(source)
    if source is not None:
        recipe["source"] = str(source)
    return recipe


def simulate_region(family: str, seed: int, index: int, *, source=None,
                    width: int = REGION) -> dict:
    """Region ``index`` of ``family``: observed input, exact target, and its record.

    The random stream depends only on (seed, family, index), so the result does not
    depend on the number of workers or the order in which regions are made.

    Returns
    -------
    dict
        ``log_nh`` (observed log10 N_H / cm-2) and ``log_nm`` (true log10 <n_H>_m / cm-3),
        float32 of shape (1, width, width); ``meta``: family, uid, los_depth_pc,
        cloud_depth_pc, n_components, beam_px, noise, offset_cm2; ``params``.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    key, make, _, _ = FAMILIES[family]
    rng = np.random.default_rng([seed, key, index])
    region = make(rng, source, width=width)
    obs = draw_observation(rng, ObservationRanges())
    nh_obs, offset = observe_region(region["nh"], obs, rng, ObservationRanges())
    meta = {"family": family, "uid": f"{family}:{seed}:{index}", **region["meta"],
            "beam_px": obs["beam_px"], "noise": obs["noise"], "offset_cm2": offset}
    return {"log_nh": np.log10(nh_obs)[None].astype(np.float32),
            "log_nm": np.log10(region["n_m"])[None].astype(np.float32),
            "meta": meta, "params": region["params"]}
