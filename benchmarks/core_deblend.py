"""Deblending the cores' aperture columns: does sharing each aperture's excess among the
catalogued cores that overlap it take the neighbours' column out of a core's density?

On the mocks of ``core_mocks.py`` (Plummer-like and uniform-sphere cores in the turbulent,
fractal and driven clouds, placed uniformly or on the clouds' dense gas), the
network-free baseline, (N_ap - N_around) / L_c, is scored as ``core_mocks.py`` scores it
(its term fitted on the turbulent clouds' uniformly placed cores, tested everywhere else)
with the aperture excess N_ap - N_around as measured, and deblended (column ``nh_own``
of ``nhpipe catalog``, :func:`nhpipe.cores.own_excess`): every catalogued core is taken
as a Gaussian on the sky whose half maximum lies at its observed radius, and the excesses
of all apertures are solved together for each core's own (non-negative least squares), as
a source extraction that fits overlapping cores would. No network is run: the maps are
read with the analytic power law, whose <n_H>_m the baseline does not use.

    python benchmarks/core_deblend.py --seeds 0 1 2 --out docs/experiments/core_deblend
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

import nhpipe
from core_mocks import BASELINE, COVERAGE_TARGET, MEDIAN_TARGET, PLACED, _baseline, \
    _cells, _met, _mock, _term, aperture_excess, coverage, evaluate_method, methods
from nhpipe.cores import correct_catalog
from nhpipe.sims.coremock import CLOUDS, PLACEMENTS, PROFILES

from _report import report  # benchmarks/ is the script's folder


def score(cloud, profile, seeds, placement, options, folder):
    """Baseline draws (log10 n_c), log10 n_true, envelope, contrast, blended of the
    catalogued cores, with the measured and with the deblended excess, and with the
    measured excess on the cores that keep a positive excess once deblended (the same
    cores as the deblended rows: deblending gives some cores none)."""
    plain, deblended, same = [], [], []
    for seed in seeds:
        hdu, cores = _mock(profile, seed, cloud, placement)
        hdul = nhpipe.estimate(hdu, distance="400pc", species="H2", model="powerlaw",
                               samples=4, seed=seed)
        path = Path(folder) / f"{cloud}_{profile}_{placement}_{seed}.fits"
        hdul.writeto(path, overwrite=True)
        table, _ = correct_catalog(cores, path, options)
        truth = np.log10(np.asarray(cores["n_true_h"], float))
        plain.append(_baseline(table, truth, options))
        own = np.asarray(table["nh_own"], float)
        deblended.append(_baseline(table, truth, options, excess=own))
        same.append(_baseline(table, truth, options,
                              excess=np.where(own > 0, aperture_excess(table), np.nan)))
    return [tuple(np.concatenate([s[i] for s in rows], axis=-1) for i in range(5))
            for rows in (plain, deblended, same)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    options = methods(10.0)[0]
    kinds = ("measured", "deblended", "measured, cores kept by deblending")
    with tempfile.TemporaryDirectory() as folder:
        scored = {(placement, kind): {} for placement in PLACEMENTS for kind in kinds}
        for placement in PLACEMENTS:
            for cloud in CLOUDS:
                for profile in PROFILES:
                    both = score(cloud, profile, args.seeds, placement, options, folder)
                    for kind, cell in zip(kinds, both):
                        scored[(placement, kind)][(cloud, profile)] = cell
    lo, hi = COVERAGE_TARGET
    lines = [f"The network-free baseline ({BASELINE}) on the cores of core_mocks.py's mocks, "
             f"seeds {args.seeds}, default priors, with the aperture excess as measured "
             "and deblended (module docstring). Its term (envelope and contrast bins) is "
             "fitted on the uniformly placed cores of the turbulent clouds, for each kind "
             "of excess, and applied to every cell, the dense-placed ones included (as a "
             "user gets it). ± is a standard error that treats the cores as independent: "
             "a lower bound.", "",
             f"Cells that meet the targets (68 % coverage in {lo:.2f}-{hi:.2f}, |median| <= "
             f"{MEDIAN_TARGET:g} dex): tested cells (uniform: 2 clouds x 2 profiles; dense: "
             "3 x 2):", "", "| excess | placement | coverage met | median met |",
             "|---|---|---|---|"]
    rows = ["", "| excess | placement | cores | blended | n | median log10(n_c/n_true) | "
            "68 % range | 68 % coverage | 95 % coverage |", "|---|---|---|---|---|---|---|---|---|"]
    result = {"seeds": args.seeds, "cells": {}}
    for kind in kinds:
        fitted = evaluate_method(scored[("uniform", kind)], "turbulent")
        terms = (fitted["offset_dex"], fitted["scatter_dex"], fitted["by_profile"])
        for placement in PLACEMENTS:
            met, cells = [0, 0], 0
            for (cloud, profile), (draws, truth, *flags) in scored[(placement, kind)].items():
                tested = placement == "dense" or cloud != "turbulent"
                term = _term(flags, terms)
                for label, pick in (("all", np.ones(truth.size, bool)),
                                    ("yes", flags[2]), ("no", ~flags[2])):
                    if not pick.any():
                        continue
                    row = coverage(draws[:, pick], truth[pick], *(t[pick] for t in term))
                    result["cells"][f"{kind}, {placement}, {profile} in {cloud}, "
                                    f"blended {label}"] = row
                    role = "tested" if tested else "fitted"
                    rows.append(f"| {kind} | {placement} | {profile} in {cloud} ({role}) | "
                                f"{label} | {row['cores']} | {_cells(row)} |")
                    if label == "all" and tested:
                        met = [m + ok for m, ok in zip(met, _met(row))]
                        cells += 1
            lines.append(f"| {kind} | {PLACED[placement]} | {met[0]} of {cells} | "
                         f"{met[1]} of {cells} |")
    report("\n".join(lines + rows), result, args.out)


if __name__ == "__main__":
    main()
