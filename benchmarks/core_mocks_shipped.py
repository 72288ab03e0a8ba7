"""Core densities on mocks, corrected as a user gets them: with each network's shipped
model-error term (its card's, fitted by ``core_mocks.py --write-card``), nothing refitted.

The mocks of ``core_mocks.py`` (Plummer-like and uniform-sphere cores in the turbulent,
fractal and driven clouds of :mod:`nhpipe.sims.coremock`), with the cores placed
uniformly (as the terms were fitted) or on the cloud's dense gas (``--placement dense``,
:func:`nhpipe.sims.coremock.dense_positions`: cores crowd and sit on bright backgrounds,
as real prestellar cores do). Every cell is a test of the shipped terms. The network-free
baseline has no card: it takes its term from ``core_mocks.py``'s report (``--baseline``,
fitted there on the uniformly placed cores of the turbulent clouds), nothing refitted
either.

    python benchmarks/core_mocks_shipped.py --placement dense --out docs/core_mocks_dense
"""

import argparse
import json
import tempfile
from pathlib import Path

from core_mocks import BASELINE, COVERAGE_TARGET, MEDIAN_TARGET, PLACED, _cells, _met, \
    _term, coverage, methods, score_family

from _report import report  # benchmarks/ is the script's folder
from nhpipe.cores import term_method
from nhpipe.sims.coremock import CLOUDS, PLACEMENTS, PROFILES


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["unet", "cinn", "ddpm"])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--ld", type=float, default=10.0, help="A.3's diffuse depth L_d (pc)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--placement", default="dense", choices=PLACEMENTS,
                        help="where the mock cores are placed in their cloud")
    parser.add_argument("--baseline", type=Path,
                        default=Path(__file__).parent.parent / "docs" / "core_mocks.json",
                        help="core_mocks.py's JSON report, whose baseline term is used")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    stored = json.loads(args.baseline.read_text())["models"]["-"][BASELINE]
    options_list = methods(args.ld, card_term=True)
    names = [term_method(o)["method"] for o in options_list]
    result = {"samples": args.samples, "seeds": args.seeds, "placement": args.placement,
              "methods": names, "models": {}}
    lo, hi = COVERAGE_TARGET
    lines = [(f"Cores of mock HGBS maps {PLACED[args.placement]} "
              f"(nhpipe.sims.coremock), {args.samples} samples, default priors, seeds "
              f"{args.seeds}; corrected by {' and '.join(names)} with each network's "
              f"shipped term (its card's), nothing refitted; the baseline ({BASELINE}) with "
              f"the term of {args.baseline.name} (fitted on uniformly placed cores in the "
              "turbulent clouds). ± is a standard "
              "error that treats the cores as independent: a lower bound."), "",
             (f"Cells (3 clouds x 2 profiles) that meet the targets (68 % coverage in "
              f"{lo:.2f}-{hi:.2f}, |median| <= {MEDIAN_TARGET:g} dex):"), "",
             "| model | method | coverage met | median met |", "|---|---|---|---|"]
    rows_lines = ["", ("| model | method | cores | n | median log10(n_c/n_true) | 68 % range"
                       " | 68 % coverage | 95 % coverage |"), "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for m, model in enumerate(args.models):
            scored = {(c, p): score_family(c, p, args.seeds, model, args.samples,
                                           options_list, folder, placement=args.placement)
                      for c in CLOUDS for p in PROFILES}
            entries = [(model, name, k) for k, name in enumerate(names)]
            if m == 0:  # the same for every network: the map's N_H only
                entries.append(("-", BASELINE, len(names)))
            for label, name, k in entries:
                per_cell = {key: value[k] for key, value in scored.items()}
                if label == "-":
                    fitted = (stored["offset_dex"], stored["scatter_dex"],
                              stored["by_profile"])
                    cells = {key: coverage(draws, truth, *_term(flags, fitted))
                             for key, (draws, truth, *flags) in per_cell.items()}
                else:  # the draws already hold the card's term
                    cells = {key: coverage(draws, truth)
                             for key, (draws, truth, *_) in per_cell.items()}
                met = [0, 0]
                for (cloud, profile), row in cells.items():
                    rows_lines.append(f"| {label} | {name} | {profile} in {cloud} | "
                                      f"{row['cores']} | {_cells(row)} |")
                    met = [a + b for a, b in zip(met, _met(row))]
                lines.append(f"| {label} | {name} | {met[0]} of {len(cells)} | "
                             f"{met[1]} of {len(cells)} |")
                result["models"].setdefault(label, {})[name] = {
                    "cells_met": {"coverage": met[0], "median": met[1], "of": len(cells)},
                    **{f"{p} in {c}": row for (c, p), row in cells.items()}}
    report("\n".join(lines + rows_lines), result, args.out)


if __name__ == "__main__":
    main()
