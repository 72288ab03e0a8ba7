"""Training data: pairs of (log10 N_H, log10 <n_H>_m) regions from simulated clouds.

One HDF5 file holds the three splits.  Regions of one cube (its three views) always go to
the same split: views of one cube share their structures, and a validation split that
shares cubes with training (as in the poster's research code) overstates accuracy.

File layout (all maps 128 x 128, float16 after subtracting an offset, which keeps
0.001 dex precision at half the size of float32)::

    /                 attrs: format, nhpipe_version, seed, recipe (JSON), units
    /<split>/log_nh   (N, 128, 128)  log10 N_H / cm-2 minus attrs['offset'] (21)
    /<split>/log_nm   (N, 128, 128)  log10 <n_H>_m / cm-3 minus attrs['offset'] (3)
    /<split>/cube     (N,)  index of the cube the region was cut from
    /<split>/axis     (N,)  line-of-sight axis of the view (0, 1, 2)
    /<split>/params   (N,)  JSON of the cloud's generator parameters
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
from .sims.cloud import CELL_PC, CloudRanges, draw_params, make_cube
from .sims.observe import observe
from .sims.project import project

SPLITS = ("train", "val", "test")
FORMAT = "nhpipe-regions-1"
OFFSETS = {"log_nh": 21.0, "log_nm": 3.0}
REGION = 128


def assign_splits(n_cubes: int, *, seed: int, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of each cube: a seeded permutation, by cube.

    With at least 3 cubes, validation and test get at least one cube each.
    """
    if n_cubes < 1:
        raise InputError(f"--n-cubes must be at least 1, got {n_cubes!r}")
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
    seed, index, options = job
    return index, simulate_regions(seed, index, **options)


def make_dataset(out, *, n_cubes: int, seed: int = 0, workers: int = 1, beam_arcsec=None,
                 distance_pc: float = 400.0, noise: float = 0.0, overwrite: bool = False,
                 progress: bool = False) -> Path:
    """Simulate ``n_cubes`` clouds and write their regions to an HDF5 file.

    Parameters
    ----------
    out : path
        HDF5 file to write (atomically: a temporary file renamed at the end).
    n_cubes : int
        Number of cubes; each gives 3 regions (one per axis).
    seed : int
        Seed of everything (parameters, fields, noise, split).
    workers : int
        Processes simulating cubes in parallel.
    beam_arcsec, distance_pc, noise
        Observational realism of the inputs (see :func:`nhpipe.sims.observe.observe`);
        the targets are always the exact <n_H>_m.
    """
    from .write import atomic_path, check_output_path

    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers!r}")
    out = check_output_path(out, overwrite=overwrite)
    labels = assign_splits(n_cubes, seed=seed)
    options = {"beam_arcsec": beam_arcsec, "distance_pc": distance_pc, "noise": noise}
    recipe = {"generator": "nhpipe.sims.cloud", "ranges": asdict(CloudRanges()),
              "cell_pc": CELL_PC, "region_px": REGION, "n_cubes": n_cubes, "seed": seed,
              "views": "3 axes per cube", **options,
              "split_fractions": [0.8, 0.1, 0.1]}
    jobs = [(seed, i, options) for i in range(n_cubes)]
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"format": FORMAT, "nhpipe_version": __version__, "seed": seed,
                         "recipe": json.dumps(recipe),
                         "units": "log_nh: log10 N_H/cm-2; log_nm: log10 <n_H>_m/cm-3"})
        sets, fill = {}, {}
        for k, split in enumerate(SPLITS):
            n = 3 * int((labels == k).sum())
            group = h5.create_group(split)
            for name, offset in OFFSETS.items():
                ds = group.create_dataset(name, (n, REGION, REGION), dtype="f2",
                                          chunks=(1, REGION, REGION) if n else None,
                                          compression="gzip", compression_opts=1, shuffle=True)
                ds.attrs["offset"] = offset
            group.create_dataset("cube", (n,), dtype="i4")
            group.create_dataset("axis", (n,), dtype="i1")
            group.create_dataset("params", (n,), dtype=h5py.string_dtype())
            sets[split], fill[split] = group, 0
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        mapper = pool.map(_simulate, jobs, chunksize=4) if pool else map(_simulate, jobs)
        try:
            for index, result in tqdm(mapper, total=n_cubes, unit="cube", disable=not progress,
                                      desc="simulating clouds"):
                split = SPLITS[labels[index]]
                group, start = sets[split], fill[split]
                rows = slice(start, start + 3)
                for name, offset in OFFSETS.items():
                    group[name][rows] = (result[name] - offset).astype(np.float16)
                group["cube"][rows] = index
                group["axis"][rows] = result["axes"]
                group["params"][rows] = [json.dumps(result["params"])] * 3
                fill[split] = start + 3
        finally:
            if pool:
                pool.shutdown()
    return out


def load_split(path, split: str):
    """Read one split into memory.

    Returns
    -------
    log_nh, log_nm : ndarray, shape (N, 128, 128), float32
        log10 N_H (cm-2) and log10 <n_H>_m (cm-3).
    cube : ndarray, shape (N,)
        Cube index of each region.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("format") != FORMAT:
                raise InputError(f"{path}: not an nhpipe dataset (format {FORMAT})")
            group = h5[split]
            arrays = [(group[name][...] + np.float32(group[name].attrs["offset"]))
                      .astype(np.float32) for name in OFFSETS]
            return arrays[0], arrays[1], group["cube"][...]
    except OSError as exc:
        raise InputError(f"{path}: cannot read the dataset ({exc})") from None


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 symmetries of the square (k = 0..7) on the last two axes.

    k % 4 quarter turns, then a transpose-free flip if k >= 4.  Column density and the
    mass-weighted density are both invariant under them, so they are exact augmentations.
    """
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


class RegionDataset(torch.utils.data.Dataset):
    """A split of an nhpipe dataset as (log10 N_H, log10 <n_H>_m) tensors of (1, H, W).

    With ``augment=True``, each item is passed through one of the 8 dihedral symmetries,
    and with ``crop`` it is cut to a random ``crop`` x ``crop`` window; both are drawn
    from ``generator`` (a torch.Generator), in that order, so runs are reproducible.
    """

    def __init__(self, path, split: str, *, augment: bool = False, crop: int | None = None,
                 generator=None):
        self.log_nh, self.log_nm, self.cube = load_split(path, split)
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
        return x, y


def describe_dataset(path, *, png=None) -> str:
    """Counts and ranges of a dataset, and a PNG of its distributions.

    Parameters
    ----------
    path : path
        nhpipe dataset (HDF5).
    png : path, optional
        Where to draw the histograms of log10 N_H and log10 <n_H>_m and their joint
        histogram (all splits together).

    Returns
    -------
    str
        A plain-text report.
    """
    lines = [f"{path}"]
    with h5py.File(path, "r") as h5:
        recipe = json.loads(h5.attrs.get("recipe", "{}"))
        lines.append(f"  made by nhpipe {h5.attrs.get('nhpipe_version')}, seed "
                     f"{h5.attrs.get('seed')}, {recipe.get('n_cubes')} cubes, beam "
                     f"{recipe.get('beam_arcsec')}\" at {recipe.get('distance_pc')} pc, "
                     f"noise {recipe.get('noise')}")
    all_nh, all_nm = [], []
    for split in SPLITS:
        log_nh, log_nm, cube = load_split(path, split)
        all_nh.append(log_nh.ravel())
        all_nm.append(log_nm.ravel())
        if len(log_nh) == 0:
            lines.append(f"  {split:5s}: 0 regions")
            continue
        p_nh = np.percentile(log_nh, [0, 1, 50, 99, 100])
        p_nm = np.percentile(log_nm, [0, 1, 50, 99, 100])
        lines.append(
            f"  {split:5s}: {len(log_nh):5d} regions from {len(np.unique(cube)):4d} cubes; "
            f"log10 N_H/cm-2 min {p_nh[0]:.2f} p1 {p_nh[1]:.2f} median {p_nh[2]:.2f} "
            f"p99 {p_nh[3]:.2f} max {p_nh[4]:.2f}; log10 <n>_m/cm-3 min {p_nm[0]:.2f} "
            f"p1 {p_nm[1]:.2f} median {p_nm[2]:.2f} p99 {p_nm[3]:.2f} max {p_nm[4]:.2f}")
    if png is not None:
        _plot_distributions(np.concatenate(all_nh), np.concatenate(all_nm), png, str(path))
        lines.append(f"  wrote {png}")
    return "\n".join(lines)


def _plot_distributions(log_nh, log_nm, png, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .write import atomic_path

    step = max(1, len(log_nh) // 2_000_000)  # a subsample is enough for the histograms
    x, y = log_nh[::step], log_nm[::step]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    axes[0].hist(x, bins=120, color="C0")
    axes[0].set_xlabel(r"$\log_{10} N_H$ [cm$^{-2}$]")
    axes[1].hist(y, bins=120, color="C1")
    axes[1].set_xlabel(r"$\log_{10} \langle n_H \rangle_m$ [cm$^{-3}$]")
    for ax in axes[:2]:
        ax.set_yscale("log")
        ax.set_ylabel("pixels")
    counts, xe, ye, image = axes[2].hist2d(x, y, bins=150, norm=matplotlib.colors.LogNorm(),
                                           cmap="viridis")
    fig.colorbar(image, ax=axes[2], label="pixels")
    axes[2].set_xlabel(r"$\log_{10} N_H$ [cm$^{-2}$]")
    axes[2].set_ylabel(r"$\log_{10} \langle n_H \rangle_m$ [cm$^{-3}$]")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
