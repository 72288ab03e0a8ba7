"""How much of log10 <n_H>_m a pixel's N_H alone carries, in each family: an in-family oracle.

A method that sees only a pixel's observed N_H can do no better than the conditional mean
E[log10 <n_H>_m | log10 N_H] of the family the pixel comes from. This script estimates
that conditional mean inside each family itself (40 equal-count bins of observed log10
N_H, fitted on half of the family's regions and scored on the other half, then the halves
swapped), so its MSE is what knowing the family's own prior, and nothing of the map's
structure, buys. A second oracle also knows each region's true line-of-sight depth L (in
each bin of N_H, a straight line in log10 L): the error left when the depth is known.
(Before, this oracle binned log10 N_H - log10 L alone and was weaker: 0.050 on
``fractal`` against 0.027.) Further oracles
know the depth only to within a log-normal error of ``--depth-scatter`` dex per region (one
draw per region, as an astronomer's estimate of a cloud's depth would be one number): how
well would the depth have to be known for a target to be in reach?

None is a method (all are fitted on the family they score); they say where a target
sits: a network that beats the first reads depth from the map's structure, and the gap to
the second is what is still to be read. The first oracle's mean error in each depth bin
shows what not knowing the depth costs there: it reads shallow lines of sight too low and
deep ones too high, whatever its overall calibration.

    python benchmarks/information_floor.py --data data/fractal.h5 data/mhd.h5 \
        data/turb.h5 data/clouds.h5 --out docs/information_floor
"""

import argparse
from pathlib import Path

import numpy as np

from nhpipe.data import load_meta, load_split
from nhpipe.metrics import DEPTH_BINS

from _report import report  # benchmarks/ is the script's folder

BINS = 40


def binned_mean(x_fit, y_fit, x_score, bins=BINS, z_fit=None, z_score=None):
    """E[y | x] by equal-count bins of ``x_fit``, evaluated at ``x_score`` (1-D arrays).

    With ``z_fit`` and ``z_score`` (1-D, like ``x``), E[y | x, z] as a straight line in z
    inside each bin of x: flexible in x, two numbers per bin in z, so that a variable
    known only roughly is not over-fitted on a few regions."""
    edges = np.quantile(x_fit, np.linspace(0.0, 1.0, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf

    def index(x):
        return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)

    fit_bins, score_bins = index(x_fit), index(x_score)
    counts = np.maximum(np.bincount(fit_bins, minlength=bins), 1)

    def mean(values):
        return np.bincount(fit_bins, weights=values, minlength=bins) / counts

    y_mean = mean(y_fit)
    if z_fit is None:
        return y_mean[score_bins]
    z_mean = mean(z_fit)
    var = mean(z_fit**2) - z_mean**2
    slope = np.where(var > 1e-12, (mean(z_fit * y_fit) - z_mean * y_mean)
                     / np.maximum(var, 1e-12), 0.0)
    return y_mean[score_bins] + slope[score_bins] * (
        z_score - z_mean[score_bins])


def cross_fitted_errors(x, y, log_depth=None):
    """Errors (prediction - truth, shape of ``y``) of the binned conditional mean, fitted
    on one half of the regions and scored on the other (both ways). ``x``, ``y``: arrays
    of shape (regions, pixels). With ``log_depth`` (regions,), the depth an oracle is
    given, the mean is conditioned on it too: linear in ``log_depth`` inside each bin of
    N_H, so that a depth known poorly is worth no more than it tells (its slope falls
    toward zero, the N_H-only oracle) and a depth known exactly reads a family of slabs,
    n = N / L, exactly."""
    halves = np.arange(len(x)) % 2 == 0
    errors = np.empty_like(y, dtype=np.float64)
    z = None if log_depth is None else np.broadcast_to(log_depth[:, None], x.shape)
    for fit in (halves, ~halves):
        extra = {} if z is None else {"z_fit": z[fit].ravel(), "z_score": z[~fit].ravel()}
        pred = binned_mean(x[fit].ravel(), y[fit].ravel(), x[~fit].ravel(), **extra)
        errors[~fit] = pred.reshape(y[~fit].shape) - y[~fit]
    return errors


def family_floor(path, split, depth_scatter=(), stride=2, seed=0):
    """The oracles' MSE (dex^2) on one family's split, every ``stride``-th pixel, and the
    N_H-only oracle's mean error (dex) in each line-of-sight depth bin of
    :data:`nhpipe.metrics.DEPTH_BINS`.

    ``depth_scatter``: errors (dex, 1 sigma, log-normal, one draw per region) of the depth
    given to the further oracles; their MSE is keyed by the scatter in
    ``nh_and_noisy_depth``."""
    log_nh, log_nm, _ = load_split(path, split)
    depth_pc = np.asarray(load_meta(path, split)["los_depth_pc"], float)
    x = log_nh[:, ::stride, ::stride].reshape(len(log_nh), -1)
    y = log_nm[:, ::stride, ::stride].reshape(len(log_nm), -1)
    nh_only = cross_fitted_errors(x, y)
    in_bin = {name: (lo <= depth_pc) & (depth_pc < hi) for name, (lo, hi) in DEPTH_BINS.items()}
    by_depth = {name: float(nh_only[pick].mean()) for name, pick in in_bin.items() if pick.any()}
    unit_errors = np.random.default_rng(seed).standard_normal(len(x))

    def with_depth(scatter):
        log_depth = np.log10(depth_pc) + scatter * unit_errors
        return float(np.mean(cross_fitted_errors(x, y, log_depth) ** 2))

    return {"regions": int(len(x)), "split": split,
            "nh_only": float(np.mean(nh_only**2)),
            "nh_and_true_depth": with_depth(0.0),
            "nh_and_noisy_depth": {f"{s:g}": with_depth(s) for s in depth_scatter},
            "nh_only_mean_error_by_depth": by_depth}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="HDF5 files of make-dataset")
    parser.add_argument("--depth-scatter", nargs="*", type=float, default=[0.1, 0.2, 0.3],
                        help="errors (dex, 1 sigma) of the depth given to further oracles")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    noisy = [f"knowing N_H and the depth to {s:g} dex" for s in args.depth_scatter]
    result, lines = {}, [
        "In-family oracles (fitted on half of a family's regions, scored on the other half; "
        "not methods): MSE(log10 <n_H>_m), dex^2.", "",
        "| family (split) | regions | knowing N_H | knowing N_H and the true depth | "
        + "".join(f"{n} | " for n in noisy) + "mean error knowing N_H, by depth (dex) |",
        "|---|---|---|---|" + "---|" * len(noisy) + "---|"]
    for path in args.data:
        name = Path(path).stem
        # A validation family has only a val split; the training family is scored on test.
        split = "test" if len(load_split(path, "test")[0]) else "val"
        row = result[name] = family_floor(path, split, args.depth_scatter)
        depth = ", ".join(f"{k.removeprefix('depth ')} {v:+.2f}"
                          for k, v in row["nh_only_mean_error_by_depth"].items())
        lines.append(f"| {name} ({split}) | {row['regions']} | {row['nh_only']:.3f} | "
                     f"{row['nh_and_true_depth']:.3f} | "
                     + "".join(f"{v:.3f} | " for v in row["nh_and_noisy_depth"].values())
                     + f"{depth} |")
    report("\n".join(lines), result, args.out)


if __name__ == "__main__":
    main()
