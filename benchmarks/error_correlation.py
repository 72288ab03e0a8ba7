"""How far apart a network's errors stay alike: the correlation of its standardised errors
between pixels a given number of model pixels apart, on the validation families.

A core's corrected density with ``--nd local`` (A.4, n_d of the gas around it) uses the
<n_H>_m the network reads inside the core and the one it reads 2-3 radii away. The output
maps give each pixel's quantiles, not how the errors of two places move together; the
Monte-Carlo of :mod:`nhpipe.cores` draws the two with this correlation at the core's
separation. Each network is sampled as ``nhpipe run`` samples it (its card's
recalibration), :func:`nhpipe.metrics.error_correlation` is computed per family, and the
smallest value over the families at each separation is what ``--write-card`` stores
(``error_correlation`` of the card): the least correlated family gives the widest n_c
intervals of the ones measured.

    python benchmarks/error_correlation.py --models unet cinn ddpm --data data/fractal.h5 \\
        data/turb.h5 data/mhd.h5 --regions 60 --samples 16 --out docs/error_correlation \\
        --write-card
"""

import argparse
import json
from pathlib import Path

import torch

from nhpipe._write import atomic_path
from nhpipe.evaluate import load_family, sample_regions
from nhpipe.metrics import CORRELATION_LAGS_PX, error_correlation
from nhpipe.models import load_model, models_dir


def measure(model_name: str, paths, regions: int, samples: int, seed: int = 0) -> dict:
    """Per family and its minimum over families, at :data:`CORRELATION_LAGS_PX`."""
    model = load_model(model_name, device=torch.device("cpu"))
    by_family, sizes = {}, {}
    for path in paths:
        family = load_family(path, max_regions=regions)
        draws, _ = sample_regions(model, family.log_nh, samples,
                                  torch.Generator().manual_seed(seed), beam_px=family.beam_px)
        shape = family.log_nh.shape
        rho = error_correlation(draws.reshape(samples, *shape), family.log_nm)
        by_family[family.name] = [round(float(r), 4) for r in rho]
        sizes[family.name] = int(shape[0])
    return {"lag_px": list(CORRELATION_LAGS_PX),
            "rho": [min(v[i] for v in by_family.values())
                    for i in range(len(CORRELATION_LAGS_PX))],
            "by_family": by_family, "regions": sizes, "samples": samples, "seed": seed,
            "statistic": "Pearson correlation of (truth - sample mean) / sample std between "
                         "pixels lag_px apart (both axes pooled); rho: the minimum over "
                         "the families (benchmarks/error_correlation.py)"}


def markdown(result: dict) -> str:
    lags = result[next(iter(result))]["lag_px"]
    lines = ["| network | family | " + " | ".join(f"{lag} px" for lag in lags) + " |",
             "|---|---|" + "---|" * len(lags)]
    for name, entry in result.items():
        for family, rho in [*entry["by_family"].items(), ("**stored (min)**", entry["rho"])]:
            lines.append(f"| {name} | {family} | " + " | ".join(f"{r:.2f}" for r in rho) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["unet", "cinn", "ddpm"])
    parser.add_argument("--data", nargs="+", required=True, help="validation families (h5)")
    parser.add_argument("--regions", type=int, default=60, help="regions per family")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--out", help="prefix of the .json and .md written")
    parser.add_argument("--write-card", action="store_true",
                        help="store each network's correlation in its card")
    args = parser.parse_args()
    result = {m: measure(m, args.data, args.regions, args.samples) for m in args.models}
    table = markdown(result)
    print(table)
    if args.out:
        for suffix, text in ((".json", json.dumps(result, indent=2)), (".md", table)):
            with atomic_path(Path(args.out + suffix)) as tmp:
                Path(tmp).write_text(text + "\n")
    if args.write_card:
        from nhpipe.cards import update_card

        for name, entry in result.items():
            update_card(models_dir() / name, error_correlation=entry)


if __name__ == "__main__":
    main()
