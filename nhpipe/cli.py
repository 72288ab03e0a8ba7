"""The ``nhpipe`` command line.  ``main(argv) -> int``; nothing imports this module.

User errors print one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings

from . import __version__
from .errors import InputError
from .models import available
from .summarise import STATISTICS
from .tiling import DEFAULT_STRIDE

EXIT_USAGE = 2

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


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wraps prose paragraphs to the terminal; keeps indented lines (examples) as written."""

    def _fill_text(self, text, width, indent):
        import textwrap

        paragraphs = []
        for block in text.split("\n\n"):
            lines = block.splitlines()
            if any(line.startswith(" ") for line in lines[1:]) or block.startswith(" "):
                paragraphs.append(textwrap.indent(block, indent))
            else:
                paragraphs.append(textwrap.fill(" ".join(lines), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (InputError) instead of exiting."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise InputError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nhpipe",
        description="Maps of the mass-weighted mean density <n_H>_m along the line of sight, "
        "with uncertainties, from Herschel column-density maps.",
    )
    parser.add_argument("--version", action="version", version=f"nhpipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log the time of each stage (load, regrid, infer, map back)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                     help="where the model runs (default: auto = cuda if available)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--quicklook", action="store_true",
                     help="also write OUT.png: MEAN and STD on sky coordinates")
    run.add_argument("--catalog", metavar="CATALOGUE",
                     help="also correct this core catalogue on the output (see nhpipe catalog)")
    _add_catalog_options(run, in_run=True)
    run.set_defaults(handler=_cmd_run)

    cat = sub.add_parser(
        "catalog", help="correct core densities of a catalogue on an nhpipe output (A.3/A.4)",
        description="Measure each core of a catalogue on an nhpipe output file (aperture "
        "mean N_H and <n_H>_m distribution within the core radius) and replace its density "
        "by the two-component solution: A.3 with the diffuse depth L_d (--ld) or A.4 with "
        "the diffuse density n_d (--nd). Every core is kept; those outside the map, on "
        "blank pixels, without a solution or filtered out are flagged in 'status'. "
        "Writes PREFIX.ecsv, PREFIX.fits, PREFIX.reg (DS9), PREFIX_fig10.png, PREFIX_cmf.png.",
        epilog="example:\n  nhpipe catalog orionB_NH_nhpipe_ddpm.fits "
        "HGBS_orionb_derived_core_catalog.txt --distance 400pc --ld 10pc --out orionB_cores",
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
    batch.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.set_defaults(handler=_cmd_batch)

    make = sub.add_parser(
        "make-dataset",
        help="simulate clouds and write (N_H, <n_H>_m) regions to HDF5",
        description="Simulate lines of sight and write 128x128 regions of observed log10 "
        "N_H (input) and exact log10 <n_H>_m (target) with their record (depth, components, "
        "beam, noise, offset, family, generator parameters). Family 'clouds' (generator v2: "
        "turbulent clouds 1-30 pc deep, self-gravity in half of them, 1-3 components along "
        "the line of sight) is what networks train on, split train/val/test 80/10/10 % by "
        "cube; the validation families 'fractal' (hierarchical clumps) and 'mhd' (a real "
        "MHD snapshot, --source) go whole into 'val'. Every family is observed alike: beam "
        "0.5-16 model pixels, noise 1-10 %%, a zero-level offset in 30 %% of the maps. "
        "'v1' is the first generator (128^3 cubes, 3 views, one --beam and --noise).",
        epilog="examples:\n"
        "  nhpipe make-dataset --family clouds --n-cubes 3000 --out data/clouds.h5 --workers 2\n"
        "  nhpipe make-dataset --family fractal --n-cubes 300 --out data/fractal.h5\n"
        "  nhpipe make-dataset --family mhd --n-cubes 300 --out data/mhd.h5 \\\n"
        "      --source ../shared/data/idefix_orszagtang3d_mhd/data.0001.ref.vtk\n"
        "  nhpipe make-dataset --family v1 --n-cubes 1250 --beam 18.2 --noise 0.02 "
        "--out data/regions.h5",
    )
    make.add_argument("--family", default="clouds", choices=["clouds", "fractal", "mhd", "v1"],
                      help="generator family (default: clouds, the training family)")
    make.add_argument("--n-cubes", type=int, required=True,
                      help="cubes to simulate: one region each (3 for v1)")
    make.add_argument("--out", required=True, help="output HDF5 file")
    make.add_argument("--source", help="simulation snapshot for --family mhd (anything yt "
                      "reads, e.g. an IDEFIX .vtk)")
    make.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    make.add_argument("--workers", type=int, default=1, help="parallel processes (default: 1)")
    make.add_argument("--beam", type=float, default=None, metavar="ARCSEC",
                      help="v1 only: smooth the inputs by a Gaussian beam of this FWHM")
    make.add_argument("--distance", default="400pc",
                      help="v1 only: distance used with --beam (default: 400pc)")
    make.add_argument("--noise", type=float, default=0.0,
                      help="v1 only: relative rms noise added to the inputs (default: 0)")
    make.add_argument("--overwrite", action="store_true", help="replace an existing file")
    make.add_argument("--quiet", action="store_true", help="no progress bar")
    make.set_defaults(handler=_cmd_make_dataset)

    describe = sub.add_parser(
        "describe-dataset", help="counts and ranges of data sets, and a PNG of them",
        description="Print counts and percentiles per split, the range of every recorded "
        "quantity (los_depth_pc, beam_px, noise, n_components, ...) and the regions per "
        "family, and draw their histograms with those of log10 N_H and log10 <n_H>_m.",
        epilog="example:\n  nhpipe describe-dataset data/clouds.h5 data/fractal.h5 "
        "data/mhd.h5 --png docs/dataset.png",
    )
    describe.add_argument("data", nargs="+", help="HDF5 files from make-dataset")
    describe.add_argument("--png", help="PNG to write (default: DATA_describe.png here)")
    describe.set_defaults(handler=_cmd_describe_dataset)

    train = sub.add_parser(
        "train", help="train a network (unet, cinn, ddpm) on a dataset",
        description="Train a network on the train split of a dataset, validating on the val "
        "split. Writes OUT.safetensors and OUT.json (the model card), OUT.csv and OUT.png "
        "(loss curves) and OUT.ckpt (a checkpoint every few minutes, for --resume).",
    )
    train.add_argument("--model", required=True, choices=["unet", "cinn", "ddpm", "powerlaw"],
                       help="network to train, or powerlaw to refit the baseline")
    train.add_argument("--data", required=True, help="HDF5 file from make-dataset")
    train.add_argument("--out", required=True,
                       help="output stem, e.g. runs/unet (writes runs/unet.safetensors, .json)")
    train.add_argument("--epochs", type=int, default=20, help="passes over the training regions")
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    train.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    train.add_argument("--max-minutes", type=float, default=None,
                       help="stop and save after this wall-clock time")
    train.add_argument("--crop", type=int, default=64, help="training crop side in px (default 64)")
    train.add_argument("--config", default=None,
                       help='architecture options as JSON, e.g. \'{"base": 16}\'')
    train.add_argument("--overwrite", action="store_true",
                       help="replace existing weights and card at --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train)

    calibrate = sub.add_parser(
        "calibrate", help="fit a network's sample spread on validation data (stored in its card)",
        description="Draw samples on the val regions of one or more data sets (repeat --data: "
        "the training family and the validation families) and fit one factor on the spread "
        "of the samples about their mean so that the 68%% and 95%% intervals hold 68%% and "
        "95%% of the true pixels; the factor is stored in the model card.",
    )
    calibrate.add_argument("--model", required=True, choices=["unet", "cinn", "ddpm"])
    calibrate.add_argument("--data", required=True, action="append",
                           help="HDF5 file from make-dataset (repeat for several)")
    calibrate.add_argument("--path", help="model stem (default: the shipped weights of NAME)")
    calibrate.add_argument("--regions", type=int, default=24,
                           help="val regions per data set (default 24)")
    calibrate.add_argument("--samples", type=int, default=32, help="samples per region")
    calibrate.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    calibrate.set_defaults(handler=_cmd_calibrate)

    evaluate = sub.add_parser(
        "evaluate", help="the poster's metrics per family and bin, beside the power law and MDR",
        description="Recompute MSE(log10), mean error, error at 80%% accuracy, 68/95%% "
        "interval coverage and CRPS of models on one or more data sets (the val split of a "
        "validation family, the test split of the training family), overall and per bin "
        "of density, line-of-sight depth and beam, next to the shipped power law and MDR "
        "(Zhao et al. 2025) on the same pixels. With several data sets each network's "
        "spread is recalibrated leaving the tested family out.",
        epilog="example:\n  nhpipe evaluate --model unet --model cinn --model ddpm --data "
        "data/fractal.h5 --data data/mhd.h5 --data data/clouds.h5 --samples 32 "
        "--max-regions 40 --out docs/evaluation",
    )
    evaluate.add_argument("--model", required=True, action="append",
                          help="model to evaluate (repeat for several)")
    evaluate.add_argument("--data", required=True, action="append",
                          help="HDF5 file from make-dataset (repeat for several)")
    evaluate.add_argument("--path", action="append", default=[], metavar="NAME=STEM",
                          help="evaluate NAME from the weights at STEM (default: shipped)")
    evaluate.add_argument("--split", default=None, choices=["train", "val", "test"],
                          help="default: test if the file has one, else val")
    evaluate.add_argument("--samples", type=int, default=16, help="samples per region")
    evaluate.add_argument("--max-regions", type=int, default=None,
                          help="evaluate only the first N regions of each data set")
    evaluate.add_argument("--no-mdr", action="store_true", help="leave out the MDR baseline")
    evaluate.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    evaluate.add_argument("--out", default="evaluation", help="writes OUT.json and OUT.md")
    evaluate.add_argument("--write-card", action="store_true",
                          help="also store the metrics in each evaluated network's card")
    evaluate.set_defaults(handler=_cmd_evaluate)
    return parser


def _cmd_train(args, command: str) -> int:
    import json

    from .train import train

    try:
        config = json.loads(args.config) if args.config else None
    except json.JSONDecodeError as exc:
        raise InputError(f"--config is not valid JSON ({exc})") from None
    card = train(args.model, args.data, args.out, epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                 resume=args.resume, max_minutes=args.max_minutes, crop=args.crop,
                 config=config, progress=not args.quiet and sys.stderr.isatty(),
                 overwrite=args.overwrite)
    if "parameters" in card:
        print(f"wrote {args.out}.safetensors ({card['parameters']:,} parameters), "
              f"{args.out}.json, .csv, .png")
    else:
        print(f"wrote {args.out}.json: {card['config']}")
    return 0


def _cmd_calibrate(args, command: str) -> int:
    from .calibrate import calibrate_card

    report = calibrate_card(args.model, args.data, stem=args.path, regions=args.regions,
                            samples=args.samples, device=args.device)
    print(f"{args.model}: spread x{report['spread']:.2f}; val coverage 68 % "
          f"{report['coverage_68_before']:.3f} -> {report['coverage_68_after']:.3f}, 95 % "
          f"{report['coverage_95_before']:.3f} -> {report['coverage_95_after']:.3f}")
    return 0


def _cmd_evaluate(args, command: str) -> int:
    from .evaluate import evaluate, markdown_table, store_in_card, write_results
    from .models import NETWORKS, models_dir

    paths = {}
    for item in args.path:
        name, sep, stem = item.partition("=")
        if not sep or not stem:
            raise InputError(f"--path must look like unet=runs/unet, got {item!r}")
        paths[name] = stem
    result = evaluate(args.model, args.data, samples=args.samples, max_regions=args.max_regions,
                      device=args.device, model_paths=paths, mdr=not args.no_mdr,
                      split=args.split)
    json_path, md_path = write_results(result, args.out)
    if args.write_card:
        for name in args.model:
            if name in NETWORKS:
                store_in_card(result, name, paths.get(name, models_dir() / name))
    print(markdown_table(result))
    print(f"wrote {json_path} and {md_path}")
    return 0


def _cmd_batch(args, command: str) -> int:
    from .batch import REPORT, run_batch

    report = run_batch(args.manifest, args.out_dir, workers=args.workers,
                       scheduler=args.scheduler, model=args.model, samples=args.samples,
                       seed=args.seed, retries=args.retries, device=args.device,
                       progress=not args.quiet and sys.stderr.isatty())
    counts = {s: int((report["status"] == s).sum()) for s in ("done", "skipped", "failed")}
    for row in report[report["status"] == "failed"]:
        print(f"failed: {row['path']}: {row['error']}", file=sys.stderr)
    print(f"{len(report)} fields: {counts['done']} done, {counts['skipped']} skipped, "
          f"{counts['failed']} failed; report {args.out_dir}/{REPORT}")
    return 1 if counts["failed"] else 0


def _cmd_make_dataset(args, command: str) -> int:
    from .data import make_dataset
    from .units import parse_distance

    out = make_dataset(args.out, family=args.family, n_cubes=args.n_cubes, seed=args.seed,
                       workers=args.workers, source=args.source, beam_arcsec=args.beam,
                       distance_pc=parse_distance(args.distance), noise=args.noise,
                       overwrite=args.overwrite, progress=not args.quiet and sys.stderr.isatty())
    if not args.quiet:
        print(f"wrote {out}")
    return 0


def _cmd_describe_dataset(args, command: str) -> int:
    from pathlib import Path

    from .describe import describe_dataset

    png = args.png or f"{Path(args.data[0]).stem}_describe.png"
    print(describe_dataset(args.data, png=png))
    return 0


def _add_catalog_options(parser, *, in_run: bool) -> None:
    """The correction options, shared by ``run --catalog`` and ``catalog``."""
    group = parser.add_argument_group("core correction" + (" (with --catalog)" if in_run else ""))
    group.add_argument("--ld", help="diffuse depth L_d for A.3, e.g. 10pc (the poster's value)")
    group.add_argument("--nd", help="diffuse density n_d of H nuclei for A.4, e.g. 1e3cm-3")
    group.add_argument("--radius", choices=["observed", "deconvolved"], default="observed",
                       help="core radius for the aperture and L_c (default: observed)")
    group.add_argument("--lc-factor", type=float, default=2.0,
                       help="L_c = factor x radius (default: 2, the core's diameter)")
    group.add_argument("--lc-spread", type=float, default=0.25,
                       help="prior of L_c / radius: uniform in factor x [1-s, 1+s] (default "
                       "0.25, i.e. 1.5-2.5 radii); 0 fixes it")
    group.add_argument("--ld-scatter", type=float, default=0.3, metavar="DEX",
                       help="prior of L_d (or n_d): log-normal about the given value with "
                       "this width in dex (default 0.3); 0 fixes it")
    group.add_argument("--taper", help="taper the correction above this N_H, e.g. 1e23cm-2")
    group.add_argument("--types", help="only these core types, e.g. 2 or 1,2 (HGBS: "
                       "1 starless, 2 prestellar, 3 protostellar)")
    group.add_argument("--max-alpha-be", type=float, help="only cores with alpha_BE <= this")
    group.add_argument("--exclude-comment", action="append", default=[],
                       help="skip cores whose comment contains this text (repeatable)")
    group.add_argument("--readme", help="CDS ReadMe for a VizieR .dat catalogue")
    from dataclasses import fields

    from .cores import CatalogueColumns

    # One option per field of the catalogue's column map, so that every hint the
    # catalogue code gives (--col-<field>) names an option that exists.
    for field in fields(CatalogueColumns):
        group.add_argument(f"--col-{field.name.replace('_', '-')}", dest=f"col_{field.name}",
                           help=f"catalogue {field.name.replace('_', ' ')} (default: "
                           f"{field.default})")


def _catalog_inputs(args, distance_pc: float):
    """Everything of a catalogue job that can be checked before any map work: the options,
    the column map and the catalogue with the columns it must have."""
    from .api import correction_options
    from .cores import check_columns, column_map, read_catalog

    options = correction_options(
        distance_pc, ld=args.ld, nd=args.nd, radius=args.radius, lc_factor=args.lc_factor,
        lc_spread=args.lc_spread, ld_scatter=args.ld_scatter, taper=args.taper,
        types=args.types, max_alpha_be=args.max_alpha_be,
        exclude_comments=args.exclude_comment, prefix="--")
    columns = column_map(**{k[4:]: v for k, v in vars(args).items() if k.startswith("col_")})
    table = read_catalog(args.catalog, readme=args.readme)
    check_columns(table, columns, options)
    return options, columns, table


def _catalog_job(args, map_path, out_prefix, prepared) -> int:
    from .cores import correct_catalog, write_outputs

    options, columns, table = prepared
    result, draws = correct_catalog(table, map_path, options, columns)
    paths = write_outputs(result, out_prefix, draws=draws, columns=columns,
                          overwrite=getattr(args, "overwrite", False),
                          inputs=[map_path, args.catalog])
    print(_catalog_summary(result))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _catalog_summary(result) -> str:
    import numpy as np

    status, counts = np.unique(np.asarray(result["status"]), return_counts=True)
    text = f"{len(result)} cores: " + ", ".join(f"{c} {s}" for s, c in zip(status, counts))
    ratio = np.asarray(result["log_ratio"], float)
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size:
        p16, p50, p84 = np.percentile(ratio, [16, 50, 84])
        text += (f"\nlog10(new / catalogued density): median {p50:+.3f}, 68 % range "
                 f"[{p16:+.3f}, {p84:+.3f}] over {ratio.size} cores")
    return text


def _cmd_catalog(args, command: str) -> int:
    from pathlib import Path

    from .api import map_distance

    if not Path(args.map).is_file():
        raise InputError(f"{args.map}: no such nhpipe output")
    prefix = args.out or f"{Path(args.catalog).stem}_nhpipe"
    prepared = _catalog_inputs(args, map_distance(args.map, args.distance))
    return _catalog_job(args, args.map, prefix, prepared)


def _cmd_run(args, command: str) -> int:
    from .pipeline import run_map
    from .units import parse_distance

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
        seed=args.seed, overwrite=args.overwrite,
        progress=not args.quiet and sys.stderr.isatty(), command=command,
    )
    if not args.quiet:
        print(f"wrote {out}")
    if args.quicklook:
        from astropy.io import fits

        from .quicklook import quicklook

        with fits.open(out) as hdul:
            quicklook(hdul, out.with_suffix(".png"))
    if args.catalog is not None:
        return _catalog_job(args, out, f"{out.with_suffix('')}_cores", prepared)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Warnings are collected and printed (one line each, duplicates once) when the command
    succeeds; a refusal prints its one line alone, so a user error is always exactly one
    line on stderr.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "nhpipe " + shlex.join(argv)
    caught: list[str] = []
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *args, **kwargs: caught.append(
            (str(message).strip().splitlines() or [""])[0])
        try:
            args = build_parser().parse_args(argv)
            if args.verbose:
                import logging

                logging.basicConfig(level=logging.INFO, format="nhpipe: %(message)s")
            if getattr(args, "handler", None) is None:
                build_parser().print_help()
                return EXIT_USAGE
            status = args.handler(args, command)
        except InputError as exc:
            print(f"nhpipe: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("nhpipe: interrupted", file=sys.stderr)
            return 130
    for message in dict.fromkeys(caught):
        print(f"nhpipe: warning: {message}", file=sys.stderr)
    return status


def entry_point() -> None:
    sys.exit(main())
