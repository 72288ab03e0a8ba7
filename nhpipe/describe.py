"""``nhpipe describe-dataset``: counts, ranges and histograms of nhpipe data sets."""

from __future__ import annotations

import json

import numpy as np

from .data import SPLITS, load_meta, load_split

#: Recorded quantities printed as ``name: MIN..MAX`` (format of each bound).
RANGES = {"los_depth_pc": ".2f", "cloud_depth_pc": ".2f", "beam_px": ".2f", "noise": ".3f",
          "offset_cm2": ".2e"}


def _recipe_line(path) -> str:
    import h5py

    with h5py.File(path, "r") as h5:
        recipe = json.loads(h5.attrs.get("recipe", "{}"))
        family = h5.attrs.get("family", "v1")
        line = (f"  family {family} (generator {recipe.get('generator')}), made by nhpipe "
                f"{h5.attrs.get('nhpipe_version')}, seed {h5.attrs.get('seed')}, "
                f"{recipe.get('n_cubes')} cubes")
        if family == "v1":
            line += (f", beam {recipe.get('beam_arcsec')}\" at {recipe.get('distance_pc')} pc, "
                     f"noise {recipe.get('noise')}")
    return line


def _percentile_line(split, log_nh, log_nm, cube) -> str:
    if len(log_nh) == 0:
        return f"  {split:5s}: 0 regions"
    p_nh = np.percentile(log_nh, [0, 1, 50, 99, 100])
    p_nm = np.percentile(log_nm, [0, 1, 50, 99, 100])
    return (f"  {split:5s}: {len(log_nh):5d} regions from {len(np.unique(cube)):4d} cubes; "
            f"log10 N_H/cm-2 min {p_nh[0]:.2f} p1 {p_nh[1]:.2f} median {p_nh[2]:.2f} "
            f"p99 {p_nh[3]:.2f} max {p_nh[4]:.2f}; log10 <n>_m/cm-3 min {p_nm[0]:.2f} "
            f"p1 {p_nm[1]:.2f} median {p_nm[2]:.2f} p99 {p_nm[3]:.2f} max {p_nm[4]:.2f}")


def _range_lines(meta: dict, indent: str = "  ") -> list[str]:
    lines = []
    if len(meta["family"]) == 0:
        return lines
    for name, fmt in RANGES.items():
        values = meta[name]
        lines.append(f"{indent}{name}: {values.min():{fmt}}..{values.max():{fmt}}")
        if name == "offset_cm2":
            lines[-1] += f" ({int(np.count_nonzero(values))} regions with an offset)"
    comps = meta["n_components"]
    counts = ", ".join(f"{k}: {int((comps == k).sum())}" for k in np.unique(comps))
    lines.append(f"{indent}n_components: {comps.min()}..{comps.max()} ({counts})")
    for family in np.unique(meta["family"]):
        lines.append(f"{indent}family: {family} ({int((meta['family'] == family).sum())})")
    return lines


def describe_dataset(paths, *, png=None) -> str:
    """Counts and ranges of one or more data sets, and a PNG of their distributions.

    Parameters
    ----------
    paths : path or list of paths
        nhpipe data sets (HDF5), e.g. the training file and the validation families.
    png : path, optional
        Where to draw the histograms of log10 N_H, log10 <n_H>_m, their joint histogram,
        and of the recorded line-of-sight depth, beam, noise and number of components,
        by family.

    Returns
    -------
    str
        A plain-text report: per file and split, percentiles of the maps; per file, one
        ``name: MIN..MAX`` line for each recorded quantity and ``family: NAME (count)``;
        for several files, the same lines over all of them.
    """
    paths = [paths] if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__") \
        else list(paths)
    lines, maps, metas = [], {}, []
    for path in paths:
        lines += [f"{path}", _recipe_line(path)]
        file_meta = []
        for split in SPLITS:
            log_nh, log_nm, cube = load_split(path, split)
            lines.append(_percentile_line(split, log_nh, log_nm, cube))
            meta = load_meta(path, split)
            file_meta.append(meta)
            for family in np.unique(meta["family"]):
                sel = meta["family"] == family
                nh, nm = maps.setdefault(family, ([], []))
                step = max(1, int(sel.sum()) * 128 * 128 // 500_000)
                nh.append(log_nh[sel].ravel()[::step])
                nm.append(log_nm[sel].ravel()[::step])
        merged = _merge(file_meta)
        lines += _range_lines(merged)
        metas.append(merged)
    if len(paths) > 1:
        lines.append("all files")
        lines += _range_lines(_merge(metas))
    if png is not None:
        _plot(maps, _merge(metas), png, ", ".join(str(p) for p in paths))
        lines.append(f"  wrote {png}")
    return "\n".join(lines)


def _merge(metas: list[dict]) -> dict:
    return {name: np.concatenate([m[name] for m in metas]) for name in metas[0]}


def _plot(maps: dict, meta: dict, png, title) -> None:
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    from ._write import atomic_path

    fig = Figure(figsize=(18, 8.5))
    axes = fig.subplots(2, 4)
    for family, (nh, nm) in maps.items():
        x, y = np.concatenate(nh), np.concatenate(nm)
        axes[0, 0].hist(x, bins=120, histtype="step", density=True, label=family)
        axes[0, 1].hist(y, bins=120, histtype="step", density=True, label=family)
    all_x = np.concatenate([np.concatenate(v[0]) for v in maps.values()])
    all_y = np.concatenate([np.concatenate(v[1]) for v in maps.values()])
    image = axes[0, 2].hist2d(all_x, all_y, bins=150, norm=LogNorm(), cmap="viridis")[3]
    fig.colorbar(image, ax=axes[0, 2], label="pixels")
    axes[0, 0].set_xlabel(r"$\log_{10} N_H$ [cm$^{-2}$] (observed)")
    axes[0, 1].set_xlabel(r"$\log_{10} \langle n_H \rangle_m$ [cm$^{-3}$]")
    axes[0, 2].set_xlabel(r"$\log_{10} N_H$ [cm$^{-2}$]")
    axes[0, 2].set_ylabel(r"$\log_{10} \langle n_H \rangle_m$ [cm$^{-3}$]")
    panels = [(axes[0, 3], "n_components", "components on the line of sight", None),
              (axes[1, 0], "los_depth_pc", "depth of gas on the line of sight [pc]", "log"),
              (axes[1, 1], "cloud_depth_pc", "depth of the main cloud [pc]", "log"),
              (axes[1, 2], "beam_px", "beam FWHM [model pixels]", "log"),
              (axes[1, 3], "noise", "relative noise", "log")]
    for ax, name, label, scale in panels:
        every = meta[name].astype(float)
        if name == "n_components":
            bins = np.arange(0.5, 4.0, 1.0)
        elif scale == "log" and (every > 0).any():
            positive = every[every > 0]
            bins = np.geomspace(positive.min() * 0.99, positive.max() * 1.01, 30)
        else:
            scale, bins = None, 30
        for family in np.unique(meta["family"]):
            values = every[meta["family"] == family]
            ax.hist(values[values > 0] if scale else values, bins=bins, histtype="step",
                    label=family)
        if scale:
            ax.set_xscale(scale)
        ax.set_xlabel(label)
        ax.set_ylabel("regions")
    for ax in axes.flat:
        if ax is not axes[0, 2]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
