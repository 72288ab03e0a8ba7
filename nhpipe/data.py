"""Training data: pairs of (log10 N_H, log10 <n_H>_m) regions from simulated clouds.

One HDF5 file holds the regions of one family (:mod:`nhpipe.sims.families`). The training
family ``clouds`` is split train/val/test (80/10/10 %) by cube; a validation family
(``fractal``, ``mhd``, ``turb``) goes whole into ``val``: no network trains on it. Regions of one
cube always go to the same split: views of one cube share their structures, and a
validation split that shares cubes with training (as in the poster's research code)
overstates accuracy. The first generator's files (``--family v1``, format 1: three views
per 128^3 cube, one beam) can still be made and read.

File layout (all maps 128 x 128, float16 after subtracting an offset, which keeps
0.001 dex precision at half the size of float32)::

    /                 attrs: format, family, nhpipe_version, seed, recipe (JSON), units
    /<split>/log_nh   (N, 128, 128)  observed log10 N_H / cm-2 minus attrs['offset'] (21)
    /<split>/log_nm   (N, 128, 128)  true log10 <n_H>_m / cm-3 minus attrs['offset'] (3)
    /<split>/cube     (N,)  index of the cube the region was cut from
    /<split>/axis     (N,)  line-of-sight axis of the view (0, 1, 2)
    /<split>/params   (N,)  JSON of the generator parameters
    format 2 only, one value per region (see :data:`META`):
    /<split>/uid, family, los_depth_pc, cloud_depth_pc, n_components, beam_px, noise,
    offset_cm2
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__
from .errors import InputError
from .grid import PATCH
from .sims.cloud import CELL_PC, CloudRanges, draw_params, make_cube
from .sims.observe import FWHM_PER_SIGMA, beam_sigma_pixels, observe
from .sims.project import project

SPLITS = ("train", "val", "test")
FORMAT = "nhpipe-regions-1"
FORMAT_V2 = "nhpipe-regions-2"
#: Per-region record of format 2: name -> (HDF5 dtype, meaning).
META = {
    "uid": (h5py.string_dtype(), "family:seed:index, unique across families"),
    "family": (h5py.string_dtype(), "generator family"),
    "los_depth_pc": ("f4", "pc, total depth of gas along the line of sight"),
    "cloud_depth_pc": ("f4", "pc, depth of the main cloud"),
    "n_components": ("i1", "unrelated components along the line of sight"),
    "beam_px": ("f4", "beam FWHM in model pixels"),
    "noise": ("f4", "relative rms noise of the input"),
    "offset_cm2": ("f4", "cm-2, zero-level offset added to the input"),
}
OFFSETS = {"log_nh": 21.0, "log_nm": 3.0}
REGION = PATCH
#: The family networks train on; the others are validation families.
TRAINING_FAMILY = "clouds"


def assign_splits(n_cubes: int, *, seed: int, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of each cube: a seeded permutation, by cube.

    With at least 3 cubes, validation and test get at least one cube each.
    """
    if n_cubes < 1:
        raise InputError(f"`n_cubes` must be at least 1, got {n_cubes!r}")
    counts = np.floor(np.asarray(fractions) * n_cubes).astype(int)
    if n_cubes >= 3:
        counts[1:] = np.maximum(counts[1:], 1)
    counts[0] = n_cubes - counts[1:].sum()
    labels = np.repeat(np.arange(3), counts)
    return labels[np.random.default_rng([seed, 2**31]).permutation(n_cubes)]


def simulate_regions(seed: int, index: int, *, beam_arcsec=None, distance_pc=400.0,
                     noise=0.0, ranges: CloudRanges = CloudRanges()):
    """Three views of cube ``index``: inputs log10 N_H (observed) and targets log10 <n>_m.

    The random stream depends only on (seed, index), so the result does not depend on
    the number of workers or on the order in which cubes are made.

    Returns
    -------
    dict with ``log_nh`` and ``log_nm`` of shape (3, 128, 128) (float32, unshifted),
    ``params`` (dict) and ``axes`` (0, 1, 2).
    """
    rng = np.random.default_rng([seed, index])
    params = draw_params(rng, ranges)
    cube = make_cube(params, rng, shape=(REGION,) * 3, cell_pc=CELL_PC)
    log_nh, log_nm = [], []
    for axis in range(3):
        nh, n_m = project(cube, axis=axis, cell_pc=CELL_PC)
        observed = observe(nh, pixel_pc=CELL_PC, distance_pc=distance_pc,
                           beam_arcsec=beam_arcsec, noise=noise, rng=rng)
        log_nh.append(np.log10(np.clip(observed, 1e15, None)))
        log_nm.append(np.log10(n_m))
    return {"log_nh": np.asarray(log_nh, np.float32), "log_nm": np.asarray(log_nm, np.float32),
            "params": params.to_dict(), "axes": (0, 1, 2)}


def _simulate(job):
    family, seed, index, options = job
    if family == "v1":
        result = simulate_regions(seed, index, **options)
        return index, [{"log_nh": result["log_nh"][k], "log_nm": result["log_nm"][k],
                        "axis": axis, "params": result["params"]}
                       for k, axis in enumerate(result["axes"])]
    from .sims.families import simulate_region

    region = simulate_region(family, seed, index, **options)
    return index, [{**region, "axis": 0}]


def _recipe(family, *, n_cubes, seed, source, v1_options):
    if family == "v1":
        return {"generator": "nhpipe.sims.cloud", "ranges": asdict(CloudRanges()),
                "cell_pc": CELL_PC, "region_px": REGION, "n_cubes": n_cubes, "seed": seed,
                "views": "3 axes per cube", **v1_options, "split_fractions": [0.8, 0.1, 0.1]}
    from .sims.families import family_recipe

    return {**family_recipe(family, source), "n_cubes": n_cubes, "seed": seed,
            "views": "1 line of sight per cube", "split_fractions":
            [0.8, 0.1, 0.1] if family == TRAINING_FAMILY else "all in val"}


def make_dataset(out, *, n_cubes: int, family: str = TRAINING_FAMILY, seed: int = 0,
                 workers: int = 1, source=None, beam_arcsec=None, distance_pc: float = 400.0,
                 noise: float = 0.0, overwrite: bool = False, progress: bool = False) -> Path:
    """Simulate ``n_cubes`` clouds of a family and write their regions to an HDF5 file.

    Parameters
    ----------
    out : path
        HDF5 file to write (atomically: a temporary file renamed at the end).
    n_cubes : int
        Number of cubes: one region each (three, one per axis, for ``v1``).
    family : str
        ``clouds`` (generator v5, split 80/10/10 by cube), ``fractal``, ``mhd`` or ``turb``
        (validation families, all in ``val``), or ``v1`` (the first generator).
    seed : int
        Seed of everything (parameters, fields, noise, split).
    workers : int
        Processes simulating cubes in parallel.
    source : path, optional
        The simulation snapshot of the ``mhd`` family; for ``turb``, the folder that keeps
        its turbulence snapshots (:func:`nhpipe.sims.hydro.make_snapshots` runs those of
        ``seed`` that are not there yet, minutes each).
    beam_arcsec, distance_pc, noise
        ``v1`` only: one observation for all its inputs (see
        :func:`nhpipe.sims.observe.observe`); the other families draw theirs per region.
    """
    from .sims.families import FAMILIES
    from ._write import atomic_path, check_output_path

    if family != "v1" and family not in FAMILIES:
        raise InputError(f"`family` must be one of {', '.join(['v1', *FAMILIES])}, "
                         f"got {family!r}")
    if workers < 1:
        raise InputError(f"`workers` must be at least 1, got {workers!r}")
    if family == "mhd" and source is None:
        raise InputError("`family='mhd'` needs `source`, a snapshot (e.g. ../shared/data/"
                         "idefix_orszagtang3d_mhd/data.0001.ref.vtk)")
    if family == "turb" and source is None:
        raise InputError("`family='turb'` needs `source`, a folder that keeps its turbulence "
                         "snapshots (e.g. data/turb; made there on the first call)")
    v1_options = {"beam_arcsec": beam_arcsec, "distance_pc": distance_pc, "noise": noise}
    if family != "v1" and (beam_arcsec or noise):
        raise InputError(f"`beam_arcsec` and `noise` are for `family='v1'` only; family {family} "
                         "draws a beam and a noise level per region")
    out = check_output_path(out, overwrite=overwrite)
    if family == "turb":
        from .sims.hydro import make_snapshots, snapshot_dir

        make_snapshots(source, seed=seed, workers=workers, progress=progress)
        source = snapshot_dir(source, seed)
    if family in ("v1", TRAINING_FAMILY):
        labels = assign_splits(n_cubes, seed=seed)
    else:
        labels = np.full(n_cubes, SPLITS.index("val"))
    views = 3 if family == "v1" else 1
    options = v1_options if family == "v1" else {"source": source}
    recipe = _recipe(family, n_cubes=n_cubes, seed=seed, source=source, v1_options=v1_options)
    jobs = [(family, seed, i, options) for i in range(n_cubes)]
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"format": FORMAT if family == "v1" else FORMAT_V2,
                         "family": family, "nhpipe_version": __version__, "seed": seed,
                         "recipe": json.dumps(recipe),
                         "units": "log_nh: log10 N_H/cm-2; log_nm: log10 <n_H>_m/cm-3"})
        sets = {split: _create_split(h5, split, views * int((labels == k).sum()),
                                     meta=family != "v1")
                for k, split in enumerate(SPLITS)}
        fill = dict.fromkeys(SPLITS, 0)
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        mapper = pool.map(_simulate, jobs) if pool else map(_simulate, jobs)
        try:
            for index, regions in tqdm(mapper, total=n_cubes, unit="cube",
                                       disable=not progress, desc=f"simulating {family}"):
                split = SPLITS[labels[index]]
                for region in regions:
                    _write_region(sets[split], fill[split], index, region)
                    fill[split] += 1
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
    return out


def _create_split(h5, split: str, n: int, *, meta: bool):
    group = h5.create_group(split)
    for name, offset in OFFSETS.items():
        ds = group.create_dataset(name, (n, REGION, REGION), dtype="f2",
                                  chunks=(1, REGION, REGION) if n else None,
                                  compression="gzip", compression_opts=1, shuffle=True)
        ds.attrs["offset"] = offset
    group.create_dataset("cube", (n,), dtype="i4")
    group.create_dataset("axis", (n,), dtype="i1")
    group.create_dataset("params", (n,), dtype=h5py.string_dtype())
    for name, (dtype, meaning) in (META.items() if meta else ()):
        group.create_dataset(name, (n,), dtype=dtype).attrs["meaning"] = meaning
    return group


def _write_region(group, row: int, index: int, region: dict) -> None:
    for name, offset in OFFSETS.items():
        group[name][row] = (np.asarray(region[name]).reshape(REGION, REGION) - offset) \
            .astype(np.float16)
    group["cube"][row] = index
    group["axis"][row] = region["axis"]
    group["params"][row] = json.dumps(region["params"])
    for name, value in region.get("meta", {}).items():
        group[name][row] = value


def _open_dataset(path):
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the dataset ({exc})") from None
    if h5.attrs.get("format") not in (FORMAT, FORMAT_V2):
        h5.close()
        raise InputError(f"{path}: not an nhpipe dataset (format {FORMAT} or {FORMAT_V2})")
    return h5


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def load_split(path, split: str):
    """Read one split into memory.

    Returns
    -------
    log_nh, log_nm : ndarray, shape (N, 128, 128), float32
        log10 N_H (cm-2) and log10 <n_H>_m (cm-3).
    cube : ndarray, shape (N,)
        Cube index of each region.
    """
    _check_split(split)
    with _open_dataset(path) as h5:
        group = h5[split]
        arrays = [(group[name][...] + np.float32(group[name].attrs["offset"]))
                  .astype(np.float32) for name in OFFSETS]
        return arrays[0], arrays[1], group["cube"][...]


def load_recipe(path) -> dict:
    """What made a data set (generator, its ranges, the observation; :func:`make_dataset`),
    or {} for a file that records none."""
    with _open_dataset(path) as h5:
        return json.loads(h5.attrs.get("recipe", "{}"))


def split_size(path, split: str) -> int:
    """Number of regions in one split, without reading them."""
    _check_split(split)
    with _open_dataset(path) as h5:
        return len(h5[split]["cube"])


def load_meta(path, split: str) -> dict:
    """The per-region record of one split (:data:`META`), as arrays of length N.

    Files of the first generator (format 1) record none of it; their values are
    reconstructed from the recipe: family ``v1``, depth 3.33 pc, one component, the one
    beam (in model pixels) and noise level of the recipe, no offset.
    """
    _check_split(split)
    with _open_dataset(path) as h5:
        group = h5[split]
        n = len(group["cube"])
        if h5.attrs["format"] == FORMAT_V2:
            return {name: (group[name].asstr()[...] if name in ("uid", "family")
                           else group[name][...]) for name in META}
        recipe = json.loads(h5.attrs["recipe"])
        beam_px = 0.0
        if recipe.get("beam_arcsec"):
            beam_px = beam_sigma_pixels(recipe["beam_arcsec"], pixel_pc=CELL_PC,
                                        distance_pc=recipe["distance_pc"]) * FWHM_PER_SIGMA
        cube, seed = group["cube"][...], h5.attrs["seed"]
        return {"uid": np.array([f"v1:{seed}:{c}" for c in cube]),
                "family": np.full(n, "v1"), "los_depth_pc": np.full(n, REGION * CELL_PC),
                "cloud_depth_pc": np.full(n, REGION * CELL_PC),
                "n_components": np.ones(n, np.int8), "beam_px": np.full(n, beam_px),
                "noise": np.full(n, recipe.get("noise", 0.0)), "offset_cm2": np.zeros(n)}


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 symmetries of the square (k = 0..7) on the last two axes.

    k % 4 quarter turns, then a transpose-free flip if k >= 4.  Column density and the
    mass-weighted density are both invariant under them, so they are exact augmentations.
    """
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


class RegionDataset(torch.utils.data.Dataset):
    """A split of an nhpipe dataset as (log10 N_H, log10 <n_H>_m, beam) tensors.

    Items are ``x`` and ``y`` of shape (1, H, W) and ``beam``, a 0-d tensor: the beam FWHM
    of the region's input in model pixels (:func:`load_meta`). With ``augment=True``, each
    item is passed through one of the 8 dihedral symmetries, and with ``crop`` it is cut
    to a random ``crop`` x ``crop`` window; both are drawn from ``generator`` (a
    torch.Generator), in that order, so runs are reproducible.
    """

    def __init__(self, path, split: str, *, augment: bool = False, crop: int | None = None,
                 generator=None):
        self.log_nh, self.log_nm, self.cube = load_split(path, split)
        self.beam_px = load_meta(path, split)["beam_px"].astype(np.float32)
        self.augment = augment
        self.crop = crop
        self.generator = generator

    def __len__(self) -> int:
        return len(self.log_nh)

    def __getitem__(self, i):
        x = torch.from_numpy(self.log_nh[i])[None]
        y = torch.from_numpy(self.log_nm[i])[None]
        if self.augment:
            k = int(torch.randint(8, (1,), generator=self.generator))
            x, y = dihedral(x, k), dihedral(y, k)
        size = x.shape[-1]
        if self.crop is not None and self.crop < size:
            oy, ox = (int(v) for v in torch.randint(size - self.crop + 1, (2,),
                                                    generator=self.generator))
            x = x[:, oy:oy + self.crop, ox:ox + self.crop]
            y = y[:, oy:oy + self.crop, ox:ox + self.crop]
        return x, y, torch.tensor(self.beam_px[i])
