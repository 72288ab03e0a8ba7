"""End to end: ``nhpipe run`` per stage on a Herschel-sized map, each model, and MDR.

Makes one synthetic HGBS-like N(H2) map (3" pixels at 400 pc, 18.2" beam, log-normal
turbulent column density), then runs each model on it in a fresh process (so each peak
memory is its own) and times the stages nhpipe logs (load, regrid, infer, map back,
write). MDR (Zhao et al. 2025, volume-density-mapper) runs on the same cloud's model grid
(what it needs: a column density map with its pixel size), after the same load and regrid.

    python benchmarks/endtoend.py                       # 2290^2, unet cinn ddpm and MDR
    python benchmarks/endtoend.py --size 6000 --models unet --no-mdr   # memory scaling
    python benchmarks/endtoend.py --out benchmarks/endtoend            # .json and .md
"""

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLES = {"powerlaw": 16, "unet": 16, "cinn": 64, "ddpm": 64}
STAGES = ("load", "regrid", "infer", "map back", "write")


def make_map(path: Path, size: int, seed: int = 0) -> None:
    """A size x size N(H2) map: exp of a Gaussian field with a k^-3.4 power spectrum."""
    from astropy.io import fits

    from nhpipe.sims.observe import tan_wcs

    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(size)[:, None]
    kx = np.fft.rfftfreq(size)[None, :]
    k = np.hypot(ky, kx).astype(np.float32)
    k[0, 0] = 1.0
    spectrum = (k ** -1.7).astype(np.float32)
    del k
    noise = rng.standard_normal((size, size // 2 + 1), dtype=np.float32) * spectrum + \
        1j * rng.standard_normal((size, size // 2 + 1), dtype=np.float32) * spectrum
    del spectrum
    field = np.fft.irfft2(noise, s=(size, size)).astype(np.float32)
    del noise
    field = (field - field.mean()) / field.std()
    # log10 N(H2) of 21.5 +- 0.35 dex: Herschel clouds' range.
    nh2 = (10.0 ** (21.5 + 0.35 * field)).astype(np.float32)
    del field
    header = tan_wcs(nh2.shape, pixel_arcsec=3.0).to_header()
    header["BUNIT"] = "cm-2"
    header["BTYPE"] = "N(H2)"
    header["BMAJ"] = header["BMIN"] = 18.2 / 3600
    fits.PrimaryHDU(nh2, header=header).writeto(path, overwrite=True)


class _Stages(logging.Handler):
    """Collects the (stage, seconds) that nhpipe.pipeline logs with -v."""

    def __init__(self):
        super().__init__()
        self.seconds, self.peak_gb = {}, {}

    def emit(self, record):
        name, seconds = record.args
        self.seconds[name.strip()] = seconds
        self.peak_gb[name.strip()] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def one(model: str, map_path: str, samples: int, out: str, extra: list) -> dict:
    """Run one estimator in this process; its stage times, total and peak memory."""
    handler = _Stages()
    logger = logging.getLogger("nhpipe")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    if model == "mdr":
        seconds = _mdr(map_path)
    else:
        from nhpipe.pipeline import run_map

        options = dict(zip(extra[::2], extra[1::2]))
        if "steps" in options:
            options["steps"] = int(options["steps"])
        run_map(map_path, distance="400pc", species="H2", model=model, samples=samples,
                out=out, overwrite=True, **options)
        seconds = handler.seconds
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"model": model, "samples": samples if model != "mdr" else 1,
            "stages_s": seconds, "total_s": total, "peak_gb": peak, "options": extra,
            "peak_gb_by_stage": handler.peak_gb}


def _mdr(map_path: str) -> dict:
    """Load and regrid as nhpipe does, then MDR on the whole model grid."""
    import contextlib
    import io

    from volume_density_mapper import compute_mean_density_width

    from nhpipe.grid import PIXEL_PC
    from nhpipe.load import load_map
    from nhpipe.regrid import model_grid, resample
    from nhpipe.units import PC_CM

    seconds = {}
    t0 = time.perf_counter()
    cmap = load_map(map_path, species="H2")
    seconds["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    wcs, shape = model_grid(cmap.wcs, cmap.shape, pixel_pc=PIXEL_PC, distance_pc=400.0)
    nh, _ = resample(cmap.nh, cmap.wcs, wcs, shape)
    seconds["regrid"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        compute_mean_density_width(np.nan_to_num(nh, nan=np.nanmin(nh)), PIXEL_PC * PC_CM)
    seconds["infer"] = time.perf_counter() - t0
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2290, help="map side in pixels")
    parser.add_argument("--models", nargs="*", default=["unet", "cinn", "ddpm"])
    parser.add_argument("--no-mdr", action="store_true")
    parser.add_argument("--ddpm-steps", type=int, default=None,
                        help="also run the ddpm with this many sampler steps")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--map", help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--extra", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(one(args.one, args.map, args.samples,
                                 os.path.join(folder, "out.fits"), args.extra)))
        return

    runs = [(m, SAMPLES[m], []) for m in args.models]
    if args.ddpm_steps:
        runs.append(("ddpm", SAMPLES["ddpm"], ["steps", str(args.ddpm_steps)]))
    if not args.no_mdr:
        runs.append(("mdr", 1, []))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        map_path = Path(folder) / f"synthetic_{args.size}.fits"
        t0 = time.perf_counter()
        make_map(map_path, args.size)
        print(f"made a {args.size}^2 map in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for model, samples, extra in runs:
            done = subprocess.run(
                [sys.executable, __file__, "--one", model, "--map", str(map_path),
                 "--samples", str(samples), "--extra", *extra],
                check=True, capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(_row(rows[-1]), file=sys.stderr)
    table = _table(rows, args.size)
    print(table)
    if args.out:
        Path(f"{args.out}.json").write_text(json.dumps({"size": args.size, "threads":
                                                       os.cpu_count(), "runs": rows},
                                                      indent=2))
        Path(f"{args.out}.md").write_text(table + "\n")


def _row(r) -> str:
    name = r["model"] + (f" ({' '.join(r['options'])})" if r["options"] else "")
    cells = [f"{r['stages_s'][s]:.1f}" if s in r["stages_s"] else "-" for s in STAGES]
    return (f"| {name} | {r['samples']} | " + " | ".join(cells) +
            f" | **{r['total_s']:.1f}** | {r['peak_gb']:.2f} |")


def _table(rows, size) -> str:
    head = (f"`nhpipe run` on a {size} x {size} map (3\" px, 400 pc), {os.cpu_count()} "
            "cores; seconds per stage, peak memory of the process\n\n"
            "| estimator | samples | load | regrid | infer | map back | write | total s | "
            "peak GB |\n|---|---|---|---|---|---|---|---|---|")
    return "\n".join([head, *(_row(r) for r in rows)])


if __name__ == "__main__":
    main()
