"""Blended mock cores (another catalogued core's centre inside the aperture, column
``blended`` of ``nhpipe catalog``; or, with ``--flag neighbour_dominated``, cores whose
aperture excess the catalogued neighbours account for) against the others: bias and
interval coverage of the corrected densities, as a user gets them (each card's stored
term, default priors).

For each cloud family of :mod:`nhpipe.sims.coremock` and each profile, the mocks of
``benchmarks/core_mocks.py`` are read by a network, corrected with ``--nd local`` and
``--ld 10pc``, and the solved cores split by the flag; the table gives, per
cloud (both profiles pooled) and per split, the number of cores, the median
log10(n_c / n_true) and the 68 % coverage.

    python benchmarks/core_blending.py --models unet --seeds 0 1 2 --out docs/core_blending
    python benchmarks/core_blending.py --models unet --seeds 0 1 2 --flag neighbour_dominated \
        --out docs/core_neighbours
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

import nhpipe
from nhpipe.cores import correct_catalog, term_method
from nhpipe.sims.coremock import CLOUDS, PLACEMENTS, PROFILES

from _report import report  # benchmarks/ is the script's folder
from core_mocks import FLAGS, PLACED, _cells, _mock, coverage, methods


def scored(model, cloud, seeds, samples, options, folder, placement, flag="blended"):
    """log10 draws of n_c (n_draws, n), log10 n_true (n,) and the ``flag`` column (n,) of
    the solved cores of both profiles' mocks in ``cloud``."""
    parts = []
    for profile in PROFILES:
        for seed in seeds:
            hdu, cores = _mock(profile, seed, cloud, placement)
            path = Path(folder) / f"{model}_{cloud}_{profile}_{placement}_{seed}.fits"
            if not path.exists():
                nhpipe.estimate(hdu, distance="400pc", species="H2", model=model,
                                samples=samples, seed=seed).writeto(path)
            table, nc = correct_catalog(cores, path, options)
            ok = np.asarray(table["status"]) == "ok"
            with np.errstate(divide="ignore", invalid="ignore"):
                parts.append((np.log10(nc[:, ok]),
                              np.log10(np.asarray(cores["n_true_h"], float)[ok]),
                              np.asarray(table[flag], bool)[ok]))
    return [np.concatenate([p[i] for p in parts], axis=-1) for i in range(3)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet"])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--placement", default="uniform", choices=PLACEMENTS)
    parser.add_argument("--flag", default="blended", choices=FLAGS,
                        help="the output table's column the cores are split by")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    result = {"samples": args.samples, "seeds": args.seeds, "placement": args.placement,
              "models": {}}
    lines = [f"Mock cores {PLACED[args.placement]} (nhpipe.sims.coremock, seeds {args.seeds}, "
             f"{args.samples} samples), corrected with each card's stored term and the "
             f"default priors, split by the column `{args.flag}` ({FLAGS[args.flag]}); "
             "both profiles pooled. ± as in core_mocks: "
             "cores taken as independent.", "",
             f"| model | method | cloud | {args.flag} | n | median log10(n_c/n_true) | "
             "68 % range | 68 % coverage | 95 % coverage |",
             "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            for options in methods(10.0, card_term=True):
                name = term_method(options)["method"]
                for cloud in CLOUDS:
                    draws, truth, flagged = scored(model, cloud, args.seeds, args.samples,
                                                   options, folder, args.placement, args.flag)
                    for flag in (True, False):
                        pick = flagged == flag
                        if not pick.any():
                            continue
                        row = coverage(draws[:, pick], truth[pick])
                        result["models"].setdefault(model, {}).setdefault(name, {})[
                            f"{cloud}, {args.flag} {flag}"] = row
                        lines.append(f"| {model} | {name} | {cloud} | "
                                     f"{'yes' if flag else 'no'} | {row['cores']} | "
                                     f"{_cells(row)} |")
                        print(lines[-1], flush=True)
    report("\n".join(lines), result, args.out)


if __name__ == "__main__":
    main()
