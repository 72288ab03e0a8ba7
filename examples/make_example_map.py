"""Make a synthetic Herschel-like N(H2) map to try nhpipe on.

A simulated cloud (nhpipe.sims) 256 x 256 cells of 0.026 pc across and 128 deep is
projected, seen at 400 pc with 3" pixels and an 18.2" beam (HGBS high-resolution maps),
given 2 % noise and written as N(H2) in cm-2 with a TAN WCS in Orion B.  The true
<n_H>_m map is written beside it for comparison.

    python examples/make_example_map.py            # writes examples/example_NH2.fits
    nhpipe run examples/example_NH2.fits --distance 400pc --species H2 --model unet
    python examples/make_example_map.py --score example_NH2_nhpipe_unet.fits
    # MSE and mean error of the MEAN map against the truth, 68 % / 95 % coverage
"""

import argparse
from pathlib import Path

import numpy as np
from astropy.io import fits

from nhpipe.sims.cloud import CELL_PC, draw_params, make_cube
from nhpipe.sims.observe import ARCSEC_PER_RAD, herschel_like_hdu, tan_wcs, upsample
from nhpipe.sims.project import project


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("example_NH2.fits")))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cells", type=int, default=256, help="map side in 0.026-pc cells")
    parser.add_argument("--score", metavar="OUTPUT.fits",
                        help="instead: score an nhpipe output of the example map against the "
                        "truth written beside the map")
    args = parser.parse_args()
    if args.score:
        score(args.score, truth_path(args.out))
        return

    rng = np.random.default_rng(args.seed)
    params = draw_params(rng)
    cube = make_cube(params, rng, shape=(128, args.cells, args.cells))
    nh, n_m = project(cube, axis=0, cell_pc=CELL_PC)
    pixel_pc = 3.0 / ARCSEC_PER_RAD * 400.0
    nh_pixels = upsample(nh, cell_pc=CELL_PC, pixel_pc=pixel_pc)
    hdu = herschel_like_hdu(nh_pixels, distance_pc=400.0, pixel_arcsec=3.0, rng=rng)
    hdu.header["SEED"] = (args.seed, "seed of nhpipe.sims")
    hdu.writeto(args.out, overwrite=True)
    truth = truth_path(args.out)
    cell_arcsec = CELL_PC / 400.0 * ARCSEC_PER_RAD
    header = tan_wcs(n_m.shape, pixel_arcsec=cell_arcsec).to_header()
    header["BUNIT"] = ("dex(cm-3)", "true log10 <n_H>_m")
    fits.PrimaryHDU(np.log10(n_m).astype(np.float32), header=header).writeto(truth, overwrite=True)
    print(f"wrote {args.out} ({hdu.data.shape[1]} x {hdu.data.shape[0]} px) and {truth}")


def truth_path(out) -> Path:
    """Where the true log10 <n_H>_m of the map ``out`` is written."""
    return Path(out).with_name(Path(out).stem + "_true_nm.fits")


def score(output, truth_file):
    """Print MSE (dex^2) and mean error (dex) of the MEAN plane against the true log10
    <n_H>_m, interpolated onto the output's grid, and the fraction of pixels whose truth
    lies inside the 68 % (Q16-Q84) and 95 % (Q02_5-Q97_5) intervals."""
    from reproject import reproject_interp

    with fits.open(output) as hdul:
        planes = {name: np.asarray(hdul[name].data, float)
                  for name in ("MEAN", "Q16", "Q84", "Q02_5", "Q97_5")}
        header = hdul["MEAN"].header
    with fits.open(truth_file) as hdul:
        truth, _ = reproject_interp(hdul[0], header)
    ok = np.isfinite(truth) & np.all([np.isfinite(p) for p in planes.values()], axis=0)
    error = planes["MEAN"][ok] - truth[ok]
    inside68 = (planes["Q16"][ok] <= truth[ok]) & (truth[ok] <= planes["Q84"][ok])
    inside95 = (planes["Q02_5"][ok] <= truth[ok]) & (truth[ok] <= planes["Q97_5"][ok])
    print(f"{output}: {ok.sum()} pixels, MSE {np.mean(error ** 2):.3f} dex^2, mean error "
          f"{error.mean():+.3f} dex, 68 % interval holds {inside68.mean():.2f}, 95 % "
          f"{inside95.mean():.2f}")


if __name__ == "__main__":
    main()
