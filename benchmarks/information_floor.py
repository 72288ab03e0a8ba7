"""How much of log10 <n_H>_m a pixel's N_H alone carries, in each family: an in-family oracle.

A method that sees only a pixel's observed N_H can do no better than the conditional mean
E[log10 <n_H>_m | log10 N_H] of the family the pixel comes from. This script estimates
that conditional mean inside each family itself (40 equal-count bins of observed log10
N_H, fitted on half of the family's regions and scored on the other half, then the halves
swapped), so its MSE is what knowing the family's own prior, and nothing of the map's
structure, buys. A second oracle also knows each region's true line-of-sight depth L
(bins of log10 N_H - log10 L): the error left when the depth is known.

Neither is a method (both are fitted on the family they score); they say where a target
sits: a network that beats the first reads depth from the map's structure, and the gap to
the second is what is still to be read. The first oracle's mean error in each depth bin
shows what not knowing the depth costs there: it reads shallow lines of sight too low and
deep ones too high, whatever its overall calibration.

    python benchmarks/information_floor.py --data data/fractal.h5 data/mhd.h5 \
        data/clouds.h5 --out docs/information_floor
"""

import argparse
from pathlib import Path

import numpy as np

from nhpipe.data import load_meta, load_split
from nhpipe.metrics import DEPTH_BINS

from _report import report  # benchmarks/ is the script's folder

BINS = 40


def binned_mean(x_fit, y_fit, x_score, bins=BINS):
    """E[y | x] by equal-count bins of ``x_fit``, evaluated at ``x_score`` (1-D arrays)."""
    edges = np.quantile(x_fit, np.linspace(0.0, 1.0, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf

    def index(x):
        return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)

    fit_bins = index(x_fit)
    sums = np.bincount(fit_bins, weights=y_fit, minlength=bins)
    counts = np.bincount(fit_bins, minlength=bins)
    return (sums / np.maximum(counts, 1))[index(x_score)]


def cross_fitted_errors(x, y):
    """Errors (prediction - truth, shape of ``y``) of the binned conditional mean, fitted
    on one half of the regions and scored on the other (both ways). ``x``, ``y``: arrays
    of shape (regions, pixels)."""
    halves = np.arange(len(x)) % 2 == 0
    errors = np.empty_like(y, dtype=np.float64)
    for fit in (halves, ~halves):
        pred = binned_mean(x[fit].ravel(), y[fit].ravel(), x[~fit].ravel())
        errors[~fit] = pred.reshape(y[~fit].shape) - y[~fit]
    return errors


def family_floor(path, split, stride=2):
    """The two oracles' MSE (dex^2) on one family's split, every ``stride``-th pixel, and
    the N_H-only oracle's mean error (dex) in each line-of-sight depth bin of
    :data:`nhpipe.metrics.DEPTH_BINS`."""
    log_nh, log_nm, _ = load_split(path, split)
    depth_pc = np.asarray(load_meta(path, split)["los_depth_pc"], float)
    x = log_nh[:, ::stride, ::stride].reshape(len(log_nh), -1)
    y = log_nm[:, ::stride, ::stride].reshape(len(log_nm), -1)
    nh_only = cross_fitted_errors(x, y)
    in_bin = {name: (lo <= depth_pc) & (depth_pc < hi) for name, (lo, hi) in DEPTH_BINS.items()}
    by_depth = {name: float(nh_only[pick].mean()) for name, pick in in_bin.items() if pick.any()}
    return {"regions": int(len(x)), "split": split,
            "nh_only": float(np.mean(nh_only**2)),
            "nh_and_true_depth": float(np.mean(cross_fitted_errors(
                x - np.log10(depth_pc)[:, None], y) ** 2)),
            "nh_only_mean_error_by_depth": by_depth}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="HDF5 files of make-dataset")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    result, lines = {}, [
        "In-family oracles (fitted on half of a family's regions, scored on the other half; "
        "not methods): MSE(log10 <n_H>_m), dex^2.", "",
        "| family (split) | regions | knowing N_H | knowing N_H and the true depth | "
        "mean error knowing N_H, by depth (dex) |",
        "|---|---|---|---|---|"]
    for path in args.data:
        name = Path(path).stem
        # A validation family has only a val split; the training family is scored on test.
        split = "test" if len(load_split(path, "test")[0]) else "val"
        row = result[name] = family_floor(path, split)
        depth = ", ".join(f"{k.removeprefix('depth ')} {v:+.2f}"
                          for k, v in row["nh_only_mean_error_by_depth"].items())
        lines.append(f"| {name} ({split}) | {row['regions']} | {row['nh_only']:.3f} | "
                     f"{row['nh_and_true_depth']:.3f} | {depth} |")
    report("\n".join(lines), result, args.out)


if __name__ == "__main__":
    main()
