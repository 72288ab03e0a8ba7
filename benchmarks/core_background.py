"""What lies under a mock core that is not the core: how much of the cloud's column and of
the other cores' an annulus background leaves in the aperture, for cores placed uniformly
and on dense gas.

No network is involved: this is the column the two-component correction (and the
network-free baseline) start from. For every catalogued (detected) core of the mocks of
:mod:`nhpipe.sims.coremock`, the core's own column is rendered alone through the beam and
averaged in its aperture (radius R_obs, as ``nhpipe catalog`` measures it). Each
background estimate B of :data:`ESTIMATES` is taken from the annulus 2R-3R (the median on
the mock map is nhpipe's, :data:`nhpipe.cores.SURROUNDINGS`), and the ratio

    (N_ap - B) / core's own column

says how far the background-subtracted aperture column misreads the core's own (1: exact;
the mocks' true density is the core's own mass). The estimate on the map without the other
cores (the bare cloud, ``make_mock(cloud_only=True)``, plus the core alone) tells the
cloud's share of the misreading from the neighbours'. Its spread over cores is printed in
dex, with the share of cores whose background-subtracted column is not positive.

    python benchmarks/core_background.py --seeds 0 1 2 --out docs/core_background
"""

import argparse
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from photutils.aperture import ApertureStats, SkyCircularAnnulus, SkyCircularAperture

from nhpipe.cores import SURROUNDINGS, CatalogueColumns, blended_cores, core_coordinates, \
    core_radius_pc, read_catalog
from nhpipe.sims.coremock import BEAM_ARCSEC, CLOUDS, DISTANCE_PC, PIXEL_ARCSEC, PLACEMENTS, \
    PROFILES, add_cores, make_mock
from nhpipe.sims.observe import ARCSEC_PER_RAD, observe

from _report import report  # benchmarks/ is the script's folder

#: Background estimates: (label, image, percentile of the annulus). nhpipe's median on the
#: map; the same on the map without the other cores (the cloud and the core alone, noise
#: free: what the cloud by itself does); and the annulus' 90th percentile, about the most
#: a ring can subtract, on both: whether a harsher background would remove what is left.
ESTIMATES = (("median", "map", 50),
             ("median, other cores removed", "without the other cores", 50),
             ("90th percentile", "map", 90),
             ("90th percentile, other cores removed", "without the other cores", 90))
#: A catalogued neighbour closer than this many R_obs (the annulus' outer edge) counts in
#: the crowding column.
NEIGHBOUR_RADII = SURROUNDINGS[1]
#: The Orion B catalogue of Konyves et al. (2020), for the crowding of real cores.
REAL_CATALOGUE = (Path(__file__).resolve().parents[2] / "shared" / "data"
                  / "hgbs_orionB_core_catalog" / "HGBS_orionb_derived_core_catalog.txt")
#: Percentiles of log10((N_ap - B) / core column) over the cores, for the table.
SPREAD = (16, 50, 84)


def core_columns(profile, cloud, placement, seed):
    """Per catalogued core: its own aperture column and the aperture column minus the
    background for each estimate of :data:`ESTIMATES` (cm-2 of N_H; shapes (n_cores,) and
    (len(ESTIMATES), n_cores)), and whether another catalogued core lies within
    :data:`NEIGHBOUR_RADII` of its R_obs (:func:`nhpipe.cores.blended_cores`).

    The core's own column is rendered alone (:func:`nhpipe.sims.coremock.add_cores` on an
    empty map, through the beam); the map "without the other cores" is the bare cloud plus
    that column, noise free.
    """
    hdu, cores, cloud_hdu = make_mock(profile, seed=seed, cloud=cloud, placement=placement,
                                      cloud_only=True)
    wcs = WCS(hdu.header)
    mock = 2.0 * np.asarray(hdu.data, float)
    bare = 2.0 * np.asarray(cloud_hdu.data, float)
    coords = SkyCoord(np.asarray(cores["ra"], float), np.asarray(cores["dec"], float),
                      unit="deg")
    radius = np.asarray(cores["r_obs"], float) / DISTANCE_PC * u.rad.to(u.arcsec)
    pixel_pc = PIXEL_ARCSEC / ARCSEC_PER_RAD * DISTANCE_PC
    own = np.full(len(cores), np.nan)
    excess = np.full((len(ESTIMATES), len(cores)), np.nan)
    for i, (coord, r) in enumerate(zip(coords, radius)):
        alone = np.zeros_like(mock)
        add_cores(alone, wcs, cores[i:i + 1], profile)
        alone = observe(alone, pixel_pc=pixel_pc, distance_pc=DISTANCE_PC,
                        beam_arcsec=BEAM_ARCSEC, periodic=False)
        images = {"map": mock, "without the other cores": bare + alone}
        aperture = SkyCircularAperture(coord, r * u.arcsec).to_pixel(wcs)
        annulus = SkyCircularAnnulus(coord, SURROUNDINGS[0] * r * u.arcsec,
                                     SURROUNDINGS[1] * r * u.arcsec).to_pixel(wcs)
        ring = annulus.to_mask(method="center")
        if ring.get_values(mock).size == 0:
            continue
        own[i] = ApertureStats(alone, aperture).mean
        # Each image's aperture mean and annulus pixels once, for all its percentiles.
        measured = {name: (ApertureStats(image, aperture).mean, ring.get_values(image))
                    for name, image in images.items()}
        for k, (_, image, percentile) in enumerate(ESTIMATES):
            n_ap, values = measured[image]
            excess[k, i] = n_ap - np.percentile(values, percentile)
    return own, excess, blended_cores(coords, NEIGHBOUR_RADII * radius)


def summarise(own, excess, neighboured):
    """Rows of the table for one cell: per background estimate, the percentiles
    :data:`SPREAD` of log10(excess / own) over the cores with a positive excess, and the
    share of cores without one; and the share of cores with a close neighbour."""
    rows = {"neighboured": float(np.mean(neighboured))}
    for (label, _, _), column in zip(ESTIMATES, excess):
        ok = np.isfinite(column) & np.isfinite(own) & (own > 0)
        positive = ok & (column > 0)
        ratio = np.log10(column[positive] / own[positive])
        rows[label] = {"cores": int(ok.sum()),
                         "not_positive": float(1.0 - positive.sum() / max(ok.sum(), 1)),
                         **{f"log_ratio_p{q}": float(v) for q, v in
                            zip(SPREAD, np.percentile(ratio, SPREAD))}}
    return rows


def real_crowding(path=REAL_CATALOGUE):
    """Share of the cores of a real catalogue with a catalogued neighbour within
    :data:`NEIGHBOUR_RADII` R_obs, or None when the file is not there."""
    if not Path(path).exists():
        return None
    columns = CatalogueColumns()
    table = read_catalog(path)
    coords = core_coordinates(table, columns)
    radius = core_radius_pc(table, "observed", columns) / DISTANCE_PC * u.rad.to(u.arcsec)
    return float(np.mean(blended_cores(coords, NEIGHBOUR_RADII * radius)))


def header(seeds, real):
    """The text and table head of the report (``real``: :func:`real_crowding`)."""
    return ["What the background-subtracted aperture column makes of each catalogued mock "
            f"core (seeds {seeds}): log10((N_ap - B) / the core's own column), percentiles "
            f"{'/'.join(str(q) for q in SPREAD)} over the cores, with B the median of the "
            "2R-3R annulus (nhpipe's) or its 90th percentile, each on the mock map and on "
            "the map with the other mock cores taken out (the bare cloud and the core); "
            "'none' is the share of cores whose N_ap - B is not positive. 0 dex is exact. "
            f"'Crowded': the share of cores with another catalogued core within "
            f"{NEIGHBOUR_RADII:g} R_obs"
            + ("" if real is None else f" (the real Orion B catalogue, Konyves et al. 2020: "
               f"{real:.0%})") + ".", "",
            "| cores | placed | n | crowded | "
            + " | ".join(f"B: {e[0]}" for e in ESTIMATES) + " |",
            "|---|---|---|---|" + "---|" * len(ESTIMATES)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    real = real_crowding()
    result = {"seeds": args.seeds, "estimates": [e[0] for e in ESTIMATES], "cells": {},
              "orionB_crowded": real}
    lines = header(args.seeds, real)
    for cloud in CLOUDS:
        for profile in args.profiles:
            for placement in PLACEMENTS:
                parts = [core_columns(profile, cloud, placement, s) for s in args.seeds]
                rows = summarise(*(np.concatenate(x, axis=-1) for x in zip(*parts)))
                result["cells"][f"{profile} in {cloud}, {placement}"] = rows
                cells = " | ".join(
                    f"{r['log_ratio_p16']:+.2f} / {r['log_ratio_p50']:+.2f} / "
                    f"{r['log_ratio_p84']:+.2f}, none {r['not_positive']:.0%}"
                    for label, r in rows.items() if label != "neighboured")
                lines.append(f"| {profile} in {cloud} | {placement} | "
                             f"{rows[ESTIMATES[0][0]]['cores']} | "
                             f"{rows['neighboured']:.0%} | {cells} |")
                print(lines[-1], flush=True)
    report("\n".join(lines), result, args.out)


if __name__ == "__main__":
    main()
