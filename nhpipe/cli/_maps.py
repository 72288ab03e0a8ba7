"""Commands that process maps: ``run``, ``catalog`` and ``batch``."""

from __future__ import annotations

import sys

from ..correction import LOW_CONTRAST
from ..errors import InputError
from ..models import available
from ..summarise import STATISTICS
from ..tiling import DEFAULT_STRIDE
from ._options import add_device, add_speed_options

_RUN_EPILOG = f"""\
output: one FITS file with the HDUs
  {', '.join(STATISTICS)}, NH and COVERAGE.
  MEAN..Q97_5 are statistics of the samples of log10(<n_H>_m / cm-3); STD is in dex;
  NH is N_H of hydrogen nuclei in cm-2 (N_H = 2 N(H2)); every HDU has the WCS of
  the chosen grid and provenance cards (model, checksums, seed, distance, command).

the networks are conditioned on the beam: it is read from BMAJ/BMIN, or given with
--beam when the header has none (never guessed); it must span 0.5-16 model pixels
(0.026 pc), e.g. 18.2" at 140-500 pc or 36" at 1-2 kpc.

examples:
  nhpipe run orionB_NH2.fits --distance 400pc --species H2 --model ddpm --samples 64
  nhpipe run perB5.fits --distance 300pc --species H2 --beam 36.3arcsec --model unet
  nhpipe run higal_l30.fits --distance 2kpc --species H2 --model unet --output-grid model
  nhpipe run orionB_NH2.fits --distance 400pc --species H2 --model cinn \\
      --catalog HGBS_orionb_derived_core_catalog.txt --ld 10pc
"""


def add_run(sub) -> None:
    run = sub.add_parser(
        "run",
        help="estimate <n_H>_m maps from a column-density FITS map",
        description="Read an N(H2) or N_H map, regrid it to the model's physical pixel at "
        "the cloud's distance, run the model over overlapping 128-px patches, and write "
        "per-pixel statistics of log10 <n_H>_m to one FITS file.",
        epilog=_RUN_EPILOG,
    )
    run.add_argument("input", metavar="INPUT.fits", help="column-density map (FITS with WCS)")
    run.add_argument("--distance", help="distance to the cloud, e.g. 400pc or 0.4kpc (required)")
    run.add_argument("--species", choices=["H2", "H"], type=str.upper,
                     help="the map gives N(H2) (HGBS, Hi-GAL) or N_H; required unless the "
                     "header says")
    run.add_argument("--bunit", help="unit of the map values when BUNIT is missing or wrong, "
                     "e.g. cm-2 or '1e21 cm-2'")
    run.add_argument("--model", default="unet", help=f"estimator: {', '.join(available())} "
                     "(default: unet, the fastest network)")
    run.add_argument("--samples", type=int, default=16,
                     help="samples of <n_H>_m per patch (default: 16)")
    run.add_argument("--beam", help="beam FWHM of the map with its unit, e.g. 18.2arcsec; "
                     "default: BMAJ/BMIN of the header (the networks need one or the other)")
    run.add_argument("--hdu", help="HDU index or name to read (default: first 2-D image)")
    run.add_argument("--out", help="output FITS (default: INPUT_nhpipe_MODEL.fits here)")
    run.add_argument("--output-grid", choices=["input", "model"], default="input",
                     help="write on the input's grid (default) or on the model's grid")
    run.add_argument("--stride", type=int, default=DEFAULT_STRIDE,
                     help=f"step between 128-px patches in model pixels (default: "
                     f"{DEFAULT_STRIDE}, at most 96)")
    add_device(run)
    add_speed_options(run)
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--quicklook", action="store_true",
                     help="also write OUT.png: MEAN and STD on sky coordinates")
    run.add_argument("--catalog", metavar="CATALOGUE",
                     help="also correct this core catalogue on the output (see nhpipe catalog)")
    _add_catalog_options(run, in_run=True)
    run.set_defaults(handler=_cmd_run)


def add_catalog(sub) -> None:
    cat = sub.add_parser(
        "catalog", help="correct core densities of a catalogue on an nhpipe output (A.3/A.4)",
        description="Measure each core of a catalogue on an nhpipe output file (aperture "
        "mean N_H and <n_H>_m distribution within the core radius) and replace its density "
        "by the two-component solution: A.3 with the diffuse depth L_d (--ld) or A.4 with "
        "the diffuse density n_d (--nd; --nd local takes it from the map around each core, "
        "the method whose intervals hold on mock cores). Every core is kept; those outside "
        "the map, on "
        "blank pixels, without a solution or filtered out are flagged in 'status', and "
        f"cores fainter than {LOW_CONTRAST:g} times their background in 'low_contrast' "
        "cores with another core's centre inside their aperture in 'blended', and cores "
        "whose aperture excess their catalogued neighbours account for in "
        "'neighbour_dominated' (all read too dense on mocks). "
        "Writes PREFIX.ecsv, PREFIX.fits, PREFIX.reg (DS9), PREFIX_fig10.png, PREFIX_cmf.png.",
        epilog="examples:\n  nhpipe catalog orionB_NH_nhpipe_ddpm.fits "
        "HGBS_orionb_derived_core_catalog.txt --distance 400pc --nd local --out orionB_cores"
        "\n  nhpipe catalog orionB_NH_nhpipe_ddpm.fits "
        "HGBS_orionb_derived_core_catalog.txt --distance 400pc --ld 10pc --out poster_A3",
    )
    cat.add_argument("map", metavar="NHPIPE_OUTPUT.fits", help="output of nhpipe run")
    cat.add_argument("catalog", metavar="CATALOGUE",
                     help="HGBS archive table, VizieR .dat (with --readme), FITS, VOTable, ECSV")
    cat.add_argument("--distance", help="distance of the cloud, e.g. 400pc (default: the "
                     "map's DISTPC; a different value is refused)")
    cat.add_argument("--out", help="output prefix (default: CATALOGUE stem + _nhpipe)")
    cat.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_catalog_options(cat, in_run=False)
    cat.set_defaults(handler=_cmd_catalog)


def add_batch(sub) -> None:
    batch = sub.add_parser(
        "batch", help="run many fields from a manifest on dask.distributed (resumable)",
        description="Run nhpipe on every field of a manifest (CSV or ECSV with columns path, "
        "distance, species and optional hdu, beam, out), one dask.distributed task per "
        "field: a local cluster of --workers processes, or an existing --scheduler (how a "
        "Slurm/PBS cluster started with dask-jobqueue is used). Fields whose output exists "
        "with the same provenance are skipped, so an interrupted batch run again does only "
        "what is missing; a failing field is reported and the others go on. Writes "
        "OUT-DIR/batch_report.ecsv. Exit status: 0 when every field is done or skipped, 1 "
        "when any failed, 2 for a bad manifest.",
        epilog="example:\n  nhpipe batch fields.csv --out-dir results --workers 2",
    )
    batch.add_argument("manifest", metavar="MANIFEST", help="CSV or ECSV list of fields")
    batch.add_argument("--out-dir", required=True, help="folder of the outputs and the report")
    batch.add_argument("--workers", type=int, default=2, help="local worker processes "
                       "(default 2)")
    batch.add_argument("--scheduler", help="address of a running dask scheduler, e.g. "
                       "tcp://10.0.0.5:8786 (instead of --workers)")
    batch.add_argument("--model", default="unet", help="estimator (default: unet)")
    batch.add_argument("--samples", type=int, default=16, help="samples per patch (default 16)")
    batch.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    batch.add_argument("--retries", type=int, default=1,
                       help="retries of a field whose worker died (default 1)")
    batch.add_argument("--quicklook", action="store_true",
                       help="also write OUT.png beside each output: MEAN and STD on the sky")
    add_device(batch)
    add_speed_options(batch, per_worker=True)
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.set_defaults(handler=_cmd_batch)


def _cmd_batch(args, command: str) -> int:
    from ..batch import REPORT, run_batch

    report = run_batch(args.manifest, args.out_dir, workers=args.workers,
                       scheduler=args.scheduler, model=args.model, samples=args.samples,
                       seed=args.seed, retries=args.retries, device=args.device,
                       quicklook=args.quicklook, steps=args.steps, precision=args.precision,
                       threads=args.threads, progress=not args.quiet and sys.stderr.isatty())
    counts = {s: int((report["status"] == s).sum()) for s in ("done", "skipped", "failed")}
    for row in report[report["status"] == "failed"]:
        print(f"failed: {row['path']}: {row['error']}", file=sys.stderr)
    print(f"{len(report)} fields: {counts['done']} done, {counts['skipped']} skipped, "
          f"{counts['failed']} failed; report {args.out_dir}/{REPORT}")
    return 1 if counts["failed"] else 0


def _add_catalog_options(parser, *, in_run: bool) -> None:
    """The correction options, shared by ``run --catalog`` and ``catalog``."""
    group = parser.add_argument_group("core correction" + (" (with --catalog)" if in_run else ""))
    group.add_argument("--ld", help="diffuse depth L_d for A.3, e.g. 10pc (the poster's value)")
    group.add_argument("--nd", help="diffuse density n_d of H nuclei for A.4, e.g. 1e3cm-3, "
                       "or 'local': the <n_H>_m of the map around each core (annulus 2R-3R)")
    group.add_argument("--radius", choices=["observed", "deconvolved"], default="observed",
                       help="core radius for the aperture and L_c (default: observed)")
    group.add_argument("--lc-factor", type=float, default=2.0,
                       help="L_c = factor x radius (default: 2, the core's diameter)")
    group.add_argument("--lc-spread", type=float, default=0.25,
                       help="prior of L_c / radius: uniform in factor x [1-s, 1+s] (default "
                       "0.25, i.e. 1.5-2.5 radii); 0 fixes it")
    group.add_argument("--ld-scatter", type=float, default=0.3, metavar="DEX",
                       help="prior of L_d (or n_d): log-normal about the given value with "
                       "this width in dex (default 0.3); 0 fixes it (--nd local draws n_d "
                       "from the map's quantiles around the core instead)")
    group.add_argument("--nd-correlation", type=float, default=None, metavar="RHO",
                       help="with --nd local: correlation of the network's errors inside "
                       "and around a core, 0-1 (default: measured for the network on "
                       "validation clouds, stored in its card; 0 treats them as independent)")
    group.add_argument("--model-offset", type=float, default=None, metavar="DEX",
                       help="model-error term: shift of every draw of log10 n_c (default: "
                       "fitted on mock cores, see the README)")
    group.add_argument("--model-scatter", type=float, default=None, metavar="DEX",
                       help="model-error term: log-normal scatter of the draws of n_c in dex "
                       "(default: fitted on mock cores); 0 with --model-offset 0 turns it off")
    group.add_argument("--taper", help="taper the correction above this N_H, e.g. 1e23cm-2")
    group.add_argument("--types", help="only these core types, e.g. 2 or 1,2 (HGBS: "
                       "1 starless, 2 prestellar, 3 protostellar)")
    group.add_argument("--max-alpha-be", type=float, help="only cores with alpha_BE <= this")
    group.add_argument("--exclude-comment", action="append", default=[],
                       help="skip cores whose comment contains this text (repeatable)")
    group.add_argument("--readme", help="CDS ReadMe for a VizieR .dat catalogue")
    from dataclasses import fields

    from ..cores import CatalogueColumns

    # One option per field of the catalogue's column map, so that every hint the
    # catalogue code gives (--col-<field>) names an option that exists.
    for field in fields(CatalogueColumns):
        group.add_argument(f"--col-{field.name.replace('_', '-')}", dest=f"col_{field.name}",
                           help=f"catalogue {field.name.replace('_', ' ')} (default: "
                           f"{field.default})")


def _catalog_inputs(args, distance_pc: float):
    """The catalogue job, checked before any map work."""
    from ..api import prepare_catalog

    return prepare_catalog(
        args.catalog, distance_pc, readme=args.readme,
        columns={k[4:]: v for k, v in vars(args).items() if k.startswith("col_")},
        ld=args.ld, nd=args.nd, radius=args.radius, lc_factor=args.lc_factor,
        lc_spread=args.lc_spread, ld_scatter=args.ld_scatter,
        nd_correlation=args.nd_correlation,
        model_offset=args.model_offset, model_scatter=args.model_scatter, taper=args.taper,
        types=args.types, max_alpha_be=args.max_alpha_be,
        exclude_comments=args.exclude_comment)


def _catalog_job(args, map_path, out_prefix, job) -> int:
    from ..api import write_corrected

    result, paths = write_corrected(job, map_path, out_prefix,
                                    overwrite=getattr(args, "overwrite", False),
                                    inputs=[args.catalog])
    print(_catalog_summary(result))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _catalog_summary(result) -> str:
    import numpy as np

    status, counts = np.unique(np.asarray(result["status"]), return_counts=True)
    text = f"{len(result)} cores: " + ", ".join(f"{c} {s}" for s, c in zip(status, counts))
    if "method" in result.meta:  # what the numbers below rest on, in the user's terms
        text += (f"\n{result.meta['method']}; model-error term: "
                 f"{result.meta.get('model_term', 'none')}")
        if result.meta.get("nd_correlation"):
            text += (f"; <n_H>_m inside and around each core drawn with correlation "
                     f"{result.meta['nd_correlation']}")
    faint = int(np.sum(np.asarray(result["low_contrast"])
                       & (np.asarray(result["status"]) == "ok")))
    if faint:
        text += (f"\n{faint} ok cores have low contrast over their background (column "
                 "low_contrast): mock cores like them read up to 0.3 dex too dense (README, "
                 "\"Core densities on mocks\")")
    blended = int(np.sum(np.asarray(result["blended"]) & (np.asarray(result["status"]) == "ok")))
    if blended:
        text += (f"\n{blended} ok cores have another catalogued core's centre inside their "
                 "aperture (column blended): mock cores like them read too dense, more than "
                 "their intervals allow (README, \"Cores on dense gas\")")
    dominated = int(np.sum(np.asarray(result["neighbour_dominated"])
                           & (np.asarray(result["status"]) == "ok")))
    if dominated:
        text += (f"\n{dominated} ok cores have an aperture excess that their catalogued "
                 "neighbours account for (column neighbour_dominated): cores like them read "
                 "0.4-1.1 dex too dense on the README's cloud mocks, though not on its Orion "
                 "B mock (README, \"Cores on dense gas\")")
    ratio = np.asarray(result["log_ratio"], float)
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size:
        p16, p50, p84 = np.percentile(ratio, [16, 50, 84])
        text += (f"\nlog10(new / catalogued density): median {p50:+.3f}, 68 % range "
                 f"[{p16:+.3f}, {p84:+.3f}] over {ratio.size} cores")
    return text


def _cmd_catalog(args, command: str) -> int:
    from pathlib import Path

    from ..api import map_distance

    if not Path(args.map).is_file():
        raise InputError(f"{args.map}: no such nhpipe output")
    prefix = args.out or f"{Path(args.catalog).stem}_nhpipe"
    prepared = _catalog_inputs(args, map_distance(args.map, args.distance))
    return _catalog_job(args, args.map, prefix, prepared)


def _cmd_run(args, command: str) -> int:
    from ..pipeline import run_map
    from ..units import parse_distance

    prepared = None
    if args.catalog is not None:
        if (args.ld is None) == (args.nd is None):
            raise InputError("--catalog needs exactly one of --ld (e.g. 10pc) or --nd "
                             "(e.g. 1e3cm-3)")
        # The catalogue and every correction option are checked before the inference.
        prepared = _catalog_inputs(args, parse_distance(args.distance))
    out = run_map(
        args.input, distance=args.distance, out=args.out, species=args.species,
        bunit=args.bunit, hdu=args.hdu, beam=args.beam, model=args.model, samples=args.samples,
        output_grid=args.output_grid, stride=args.stride, device=args.device,
        seed=args.seed, steps=args.steps, precision=args.precision, overwrite=args.overwrite,
        progress=not args.quiet and sys.stderr.isatty(), command=command,
    )
    if not args.quiet:
        print(f"wrote {out}")
    if args.quicklook:
        from astropy.io import fits

        from ..quicklook import quicklook

        with fits.open(out) as hdul:
            quicklook(hdul, out.with_suffix(".png"))
    if args.catalog is not None:
        return _catalog_job(args, out, f"{out.with_suffix('')}_cores", prepared)
    return 0


