"""Can an offset that depends on what a map shows transfer between cloud families where
one constant offset does not?

The raw network's error (its card's recalibration set aside) is fitted, leaving one
family out, as a linear function of covariates that nhpipe knows at run time: the pixel's
log10 N_H, the beam (log10 model px), the log10 spread of its samples, the region's
contrast (scatter of log10 N_H) and mean log10 N_H, and the prediction itself. The
fitted offset is removed from the held-out family, whose mean error (overall and per
depth bin, < 3, 3-10, > 10 pc) and MSE of the mean are printed as a markdown table.

    python benchmarks/offset_covariates.py --model unet --data data/fractal.h5 \\
        data/mhd.h5 data/clouds.h5 --out docs/experiments/offset_covariates
"""

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nhpipe.evaluate import load_family, sample_regions
from nhpipe.models import load_model
from nhpipe.models._common import RAW_CALIBRATION

#: Covariate sets tried (each with a constant term), all of them fixed before the run.
SETS = (("lognh",), ("beam",), ("logsd",), ("contrast",), ("region_nh",), ("pred",),
        ("lognh", "beam", "logsd"),
        ("lognh", "beam", "logsd", "contrast", "region_nh", "pred"))


def covariates(model, family, samples: int) -> tuple[np.ndarray, dict, np.ndarray]:
    """Raw error of the sample mean per pixel, the covariates and the depth (pc)."""
    draws, _ = sample_regions(model, family.log_nh, samples,
                              torch.Generator().manual_seed(0), beam_px=family.beam_px)
    mean = draws.mean(axis=0)
    regions = family.log_nh.reshape(len(family.log_nh), -1).astype(np.float64)
    x = {"one": np.ones_like(mean), "lognh": regions.reshape(-1) - 22.0,
         "beam": np.log10(family.per_pixel(family.beam_px)),
         "logsd": np.log10(draws.std(axis=0)),
         "contrast": family.per_pixel(family.contrast_dex),
         "region_nh": family.per_pixel(regions.mean(axis=1)) - 22.0,
         "pred": mean - 3.0}
    return mean - family.log_nm.reshape(-1), x, family.per_pixel(family.depth_pc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--out", default=None, help="write OUT.md")
    args = parser.parse_args()
    model = load_model(args.model)
    model.config = replace(model.config, **RAW_CALIBRATION)
    families = [load_family(p) for p in args.data]
    scored = {f.name: covariates(model, f, args.samples) for f in families}
    lines = [f"Raw {args.model} ({args.samples} samples, every region), offset fitted leaving "
             "the family out; cells: mean error (dex) / depth < 3, 3-10, > 10 pc / MSE.", "",
             "| covariates | " + " | ".join(scored) + " |", "|---" * (len(scored) + 1) + "|"]
    for keys in (("one",), *(("one", *s) for s in SETS)):
        cells = []
        for held, (error, x, depth) in scored.items():
            others = [scored[k] for k in scored if k != held]
            a = np.stack([np.concatenate([o[1][c] for o in others]) for c in keys], axis=1)
            coef = np.linalg.lstsq(a, np.concatenate([o[0] for o in others]), rcond=None)[0]
            left = error - np.stack([x[c] for c in keys], axis=1) @ coef
            bins = [left[depth < 3], left[(depth >= 3) & (depth <= 10)], left[depth > 10]]
            cells.append(f"{left.mean():+.3f} / " + "/".join(f"{b.mean():+.2f}" for b in bins)
                         + f" / {np.mean(left ** 2):.3f}")
        lines.append(f"| {' + '.join(keys)} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(f"{args.out}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
