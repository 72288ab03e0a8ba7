"""Core densities when the line of sight holds more than the core: what the two-component
correction is for.

The core mocks of ``benchmarks/core_mocks.py`` are made twice, alone and with an
unrelated, less dense clump on each core's line of sight (``make_mock(superposed=True)``:
a uniform sphere of 1.5 R_obs with 0.3-1 times the core's mass, inside the annulus where
the background is measured). The catalogue's density (what an extraction measures, the
clump's share of the aperture included), the network-free baseline (the
background-subtracted aperture column over L_c) and nhpipe's corrected densities (A.3 with
L_d = 10 pc and A.4 with the n_d of each core's surroundings, the cards' terms) are scored
against the core's own density, on the same maps but for the clumps (a few more cores
pass the detection with their clump). How much of the catalogue's excess a method keeps is
its median with clumps minus its median alone. Beside the networks, an oracle: A.3 and A.4
on the true <n_H>_m of the mock (``make_mock(true_nm=True)``, before the beam), with fixed
parameters and no term, which says what the two-component model itself can undo.

    python benchmarks/superposed_cores.py --models unet cinn ddpm --seeds 0 1 \\
        --out docs/superposed_cores
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import nhpipe
from astropy.wcs import WCS
from core_mocks import _baseline, coverage
from nhpipe._write import Plane, atomic_path, write_planes
from nhpipe.cores import LOCAL, CorrectionOptions, correct_catalog
from nhpipe.sims.coremock import CLOUDS, PROFILES, make_mock
from nhpipe.summarise import QUANTILES

#: The corrections scored, with the cards' model-error terms.
METHODS = {"A.3 L_d=10pc": {"l_d_pc": 10.0}, "A.4 n_d=local": {"n_d": LOCAL}}
#: The oracle's options: the true <n_H>_m has no spread, and no term was fitted for it.
EXACT = {"lc_spread": 0.0, "ld_dex": 0.0, "nd_correlation": 0.0, "model_offset_dex": 0.0,
         "model_scatter_dex": 0.0}


def oracle_file(path, hdu, log_nm) -> None:
    """An nhpipe-like output whose <n_H>_m quantiles are all the truth (N_H in H nuclei)."""
    planes = [Plane("NH", 2.0 * np.asarray(hdu.data, float), "cm-2", "observed N_H")]
    planes += [Plane(name, log_nm, "dex(cm-3)", "true <n_H>_m") for name in QUANTILES]
    write_planes(path, planes, WCS(hdu.header), {}, overwrite=True)


def score(models, clouds, seeds, samples, folder) -> tuple[dict, dict]:
    """Median log10(estimate / truth) (and the 68 % coverage of nhpipe's intervals) per
    cloud, profile and estimator, alone and superposed; and per cloud and profile, the
    median change that the clumps make to the <n_H>_m in the cores' apertures, true and
    as each network reads it (over the cores catalogued with and without them)."""
    rows, changes = {}, {}
    for cloud in clouds:
        for profile in PROFILES:
            aperture = {False: {}, True: {}}  # reader -> {seed/core: aperture log <n_H>_m}
            for superposed in (False, True):
                found = {}
                for seed in seeds:
                    hdu, cores, log_nm = make_mock(profile, seed=seed, cloud=cloud,
                                                   superposed=superposed, true_nm=True)
                    truth = np.log10(np.asarray(cores["n_true_h"], float))
                    found.setdefault("catalogue", []).append(
                        (np.log10(np.asarray(cores["n_h2_ave_obs"], float) * 2e4)[None],
                         truth))
                    oracle = Path(folder) / "oracle.fits"
                    oracle_file(oracle, hdu, log_nm)
                    for name, given in METHODS.items():
                        table, _ = correct_catalog(cores, oracle, CorrectionOptions(
                            distance_pc=400.0, **given, **EXACT))
                        _aperture_nm(aperture[superposed], "true", seed, table)
                        ok = np.asarray(table["status"]) == "ok"
                        found.setdefault(f"true <n_H>_m {name}", []).append(
                            (np.log10(np.asarray(table["nc_med"], float)[ok])[None],
                             truth[ok]))
                    for model in models:
                        path = Path(folder) / f"{model}.fits"
                        nhpipe.estimate(hdu, distance="400pc", species="H2", model=model,
                                        samples=samples, seed=seed).writeto(path,
                                                                            overwrite=True)
                        for name, given in METHODS.items():
                            options = CorrectionOptions(distance_pc=400.0, **given)
                            table, nc = correct_catalog(cores, path, options)
                            _aperture_nm(aperture[superposed], model, seed, table)
                            ok = np.asarray(table["status"]) == "ok"
                            with np.errstate(divide="ignore", invalid="ignore"):
                                found.setdefault(f"{model} {name}", []).append(
                                    (np.log10(nc[:, ok]), truth[ok]))
                            if model == models[0] and name == "A.3 L_d=10pc":
                                draws, kept = _baseline(table, truth, options)[:2]
                                found.setdefault("no network", []).append((draws, kept))
                key = f"{profile} in {cloud}" + (", superposed" if superposed else "")
                rows[key] = {}
                for name, parts in found.items():
                    draws = np.concatenate([p[0] for p in parts], axis=1)
                    truth = np.concatenate([p[1] for p in parts])
                    result = coverage(draws, truth)
                    rows[key][name] = {"cores": int(truth.size),
                                       "median_dex": result["median_dex"],
                                       "coverage_68": result["coverage_68"]}
            changes[f"{profile} in {cloud}"] = {
                reader: float(np.nanmedian([aperture[True][reader][k] - alone[k]
                                            for k in set(alone) & set(aperture[True][reader])]))
                for reader, alone in aperture[False].items()}
    return rows, changes


def _aperture_nm(store: dict, reader: str, seed: int, table) -> None:
    """Keep each core's aperture log10 <n_H>_m (median plane) as ``reader`` gives it."""
    store.setdefault(reader, {}).update(
        {f"{seed}/{name}": float(value)
         for name, value in zip(table["name"], np.asarray(table["log_nm_q50"], float))})


def markdown(rows: dict, changes: dict) -> str:
    first = ["catalogue", "no network", "true <n_H>_m A.3 L_d=10pc",
             "true <n_H>_m A.4 n_d=local"]
    names = first + [n for n in next(iter(rows.values())) if n not in first]
    lines = ["| cores | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, row in rows.items():
        cells = []
        for name in names:
            entry = row[name]
            cell = f"{entry['median_dex']:+.3f}"
            if name not in first[:2] and not name.startswith("true"):
                cell += f" ({entry['coverage_68']:.2f})"
            cells.append(cell)
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "Excess carried over from the clumps (median with clumps minus median "
              "alone, dex):", "", "| cores | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for key, row in rows.items():
        if key.endswith(", superposed"):
            alone = rows[key[:-len(", superposed")]]
            lines.append(f"| {key[:-len(', superposed')]} | " + " | ".join(
                f"{row[n]['median_dex'] - alone[n]['median_dex']:+.3f}" for n in names) + " |")
    readers = list(next(iter(changes.values())))
    lines += ["", "Change the clumps make to the <n_H>_m in the cores' apertures (median over "
              "the cores catalogued with and without them, dex), true and as read:", "",
              "| cores | " + " | ".join(readers) + " |", "|---|" + "---|" * len(readers)]
    for key, row in changes.items():
        lines.append(f"| {key} | " + " | ".join(f"{row[r]:+.3f}" for r in readers) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["unet", "cinn", "ddpm"])
    parser.add_argument("--clouds", nargs="+", default=["turbulent", "fractal"],
                        choices=CLOUDS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--out", help="prefix of the .json and .md written")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows, changes = score(args.models, args.clouds, args.seeds, args.samples, folder)
    table = ("Median log10(estimate / core's own density) (and, for nhpipe, the fraction of "
             "cores whose 68 % interval holds it), seeds " f"{args.seeds}, {args.samples} "
             "samples:\n\n" + markdown(rows, changes))
    print(table)
    if args.out:
        result = {"scores": rows, "aperture_nm_change_dex": changes}
        for suffix, text in ((".json", json.dumps(result, indent=2)), (".md", table)):
            with atomic_path(Path(args.out + suffix)) as tmp:
                Path(tmp).write_text(text + "\n")


if __name__ == "__main__":
    main()
