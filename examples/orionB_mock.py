"""An Orion B mock with known core densities, to test nhpipe's core correction end to end.

The real cores of Konyves et al. (2020) (positions, radii, masses, from the HGBS archive
table in ../shared/data/) are placed as Plummer-like profiles (flat radius half the
deconvolved radius, truncated at twice the observed radius, holding the catalogued mass
inside the observed radius) into a simulated cloud (nhpipe.sims) of the field with the
most cores.  The map is seen at 400 pc with 3" pixels, an 18.2" beam and 2 % noise, and
written as N(H2) in cm-2 with a TAN WCS.  The true mean density of each core inside its
observed radius is then exactly the catalogued one (both from M / (4/3 pi R_obs^3)), so
nhpipe's recovered densities can be compared with the truth.

    python examples/orionB_mock.py
    # writes examples/orionB_NH.fits and examples/orionB_mock_cores.ecsv
    nhpipe run examples/orionB_NH.fits --distance 400pc --species H2 --model ddpm \
        --samples 64 --catalog examples/orionB_mock_cores.ecsv --nd local
    python examples/orionB_mock.py --score orionB_NH_nhpipe_ddpm_cores.ecsv
    # median and 68 % range of log10(recovered / true) core density
"""

import argparse
from pathlib import Path

import numpy as np
from astropy.table import Table

from nhpipe.cores import CatalogueColumns, core_coordinates, read_catalog
from nhpipe.sims.cloud import CELL_PC, draw_params, make_cube
from nhpipe.sims.coremock import DISTANCE_PC, PIXEL_ARCSEC, add_cores, true_density
from nhpipe.sims.observe import ARCSEC_PER_RAD, herschel_like_hdu, tan_wcs, upsample
from nhpipe.sims.project import project

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE.parent.parent / "shared" / "data" / "hgbs_orionB_core_catalog" / \
    "HGBS_orionb_derived_core_catalog.txt"


def densest_field(coords, size_deg):
    """Centre (RA, Dec) of the ``size_deg`` box holding the most cores."""
    ra, dec = coords.ra.deg, coords.dec.deg
    best, centre = -1, (ra.mean(), dec.mean())
    for r0 in np.arange(ra.min(), ra.max(), size_deg / 4):
        for d0 in np.arange(dec.min(), dec.max(), size_deg / 4):
            inside = (np.abs(ra - r0) < size_deg / 2 / np.cos(np.radians(d0))) & \
                (np.abs(dec - d0) < size_deg / 2)
            if inside.sum() > best:
                best, centre = inside.sum(), (r0, d0)
    return centre


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=str(CATALOGUE))
    parser.add_argument("--size-deg", type=float, default=1.0, help="field side (deg)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "orionB_NH.fits"))
    parser.add_argument("--score", metavar="CORES.ecsv",
                        help="instead: score a corrected catalogue against the true densities")
    args = parser.parse_args()
    if args.score:
        score(args.score)
        return

    # The mock's observation is coremock's (add_cores places cores on that grid).
    distance, pixel_arcsec = DISTANCE_PC, PIXEL_ARCSEC
    table = read_catalog(args.catalog)
    coords = core_coordinates(table, CatalogueColumns())
    centre = densest_field(coords, args.size_deg)

    # The simulated cloud behind the cores (its own cores are left out).
    rng = np.random.default_rng(args.seed)
    params = draw_params(rng)
    params.cores = []
    params.n_envelope = 300.0
    cells = int(round(args.size_deg * np.pi / 180 * distance / CELL_PC))
    cube = make_cube(params, rng, shape=(128, cells, cells))
    nh, _ = project(cube, axis=0, cell_pc=CELL_PC)
    pixel_pc = pixel_arcsec / ARCSEC_PER_RAD * distance
    nh = upsample(nh, cell_pc=CELL_PC, pixel_pc=pixel_pc)
    wcs = tan_wcs(nh.shape, pixel_arcsec=pixel_arcsec, centre=centre)

    placed = Table({"ra": coords.ra.deg, "dec": coords.dec.deg, "r_obs": table["r_obs"],
                    "r_deconv": table["r_deconv"], "mass": table["mass"]})
    inside = add_cores(nh, wcs, placed, "plummer")

    hdu = herschel_like_hdu(nh, distance_pc=distance, pixel_arcsec=pixel_arcsec, centre=centre,
                            rng=rng)
    hdu.header["SEED"] = (args.seed, "seed of nhpipe.sims")
    hdu.writeto(args.out, overwrite=True)

    cores = table[inside]
    cores["n_true_h"] = true_density(cores)
    cores["n_true_h"].unit = "cm-3"
    cores["n_true_h"].description = "true mean n_H inside r_obs (equals 2 x n_h2_ave_obs)"
    cores.meta["mock"] = f"Orion B mock, field centre {centre}, seed {args.seed}"
    # No absolute path of this machine in the (tracked) file.
    cores.meta["source"] = "HGBS_orionb_derived_core_catalog.txt (Konyves et al. 2020)"
    truth = Path(args.out).with_name("orionB_mock_cores.ecsv")
    Table(cores).write(truth, format="ascii.ecsv", overwrite=True)
    print(f"wrote {args.out} ({nh.shape[1]} x {nh.shape[0]} px, centre RA {centre[0]:.3f} "
          f"Dec {centre[1]:.3f}) with {inside.sum()} cores, and {truth}")


def score(path):
    """Print the median and 68 % range of log10(nc_med / n_true_h) over the solved cores."""
    table = Table.read(path)
    truth = np.asarray(table["n_true_h"], float)
    # Cores catalogued with mass 0.00 Msun (rounded) have no usable truth.
    ok = (np.asarray(table["status"]) == "ok") & (truth > 0)
    ratio = np.log10(np.asarray(table["nc_med"], float)[ok] / truth[ok])
    p16, p50, p84 = np.percentile(ratio, [16, 50, 84])
    inside = {level: np.mean((np.asarray(table[f"nc_lo{level}"], float)[ok] <= truth[ok])
                             & (truth[ok] <= np.asarray(table[f"nc_hi{level}"], float)[ok]))
              for level in (68, 95)}
    print(f"{Path(path).name}: {ok.sum()} of {len(table)} cores solved with a known truth; "
          f"log10(recovered / true): median {p50:+.3f}, 68 % range [{p16:+.3f}, {p84:+.3f}]; "
          f"the 68 % interval holds the truth for {inside[68]:.0%} of them, the 95 % one "
          f"for {inside[95]:.0%}")


if __name__ == "__main__":
    main()
