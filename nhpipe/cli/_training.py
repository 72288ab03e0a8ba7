"""Commands that make data and train, calibrate and evaluate models."""

from __future__ import annotations

import argparse
import sys

from ..errors import InputError
from ._options import add_device, add_speed_options


def add_make_dataset(sub) -> None:
    make = sub.add_parser(
        "make-dataset",
        help="simulate clouds and write (N_H, <n_H>_m) regions to HDF5",
        description="Simulate lines of sight and write 128x128 regions of observed log10 "
        "N_H (input) and exact log10 <n_H>_m (target) with their record (depth, components, "
        "beam, noise, offset, family, generator parameters). Family 'clouds' (generator v5: "
        "turbulent clouds 1-30 pc deep, 40 % of them smooth (subsonic, filling), "
        "self-gravity in half of them, 1-3 components along the line of sight; 25 % of "
        "the lines of sight one quiescent cloud alone) is what networks train on, split "
        "train/val/test 80/10/10 % by cube; the validation families 'fractal' "
        "(hierarchical clumps), 'mhd' (a real "
        "MHD snapshot, --source) and 'turb' (driven isothermal supersonic turbulence solved "
        "by nhpipe: 8 boxes of 96^3 cells, Mach 4-16, about 4 minutes each, kept as FITS "
        "cubes in the --source folder and reused) go whole into 'val'. Every family is "
        "observed alike: beam 0.5-16 model pixels, noise 1-10 %, a zero-level offset in "
        "30 % of the maps. "
        "'v1' is the first generator (128^3 cubes, 3 views, one --beam and --noise).",
        epilog="examples:\n"
        "  nhpipe make-dataset --family clouds --n-cubes 3000 --out data/clouds.h5 --workers 2\n"
        "  nhpipe make-dataset --family fractal --n-cubes 300 --out data/fractal.h5\n"
        "  nhpipe make-dataset --family mhd --n-cubes 300 --out data/mhd.h5 \\\n"
        "      --source ../shared/data/idefix_orszagtang3d_mhd/data.0001.ref.vtk\n"
        "  nhpipe make-dataset --family turb --n-cubes 300 --out data/turb.h5 --source data/turb\n"
        "  nhpipe make-dataset --family v1 --n-cubes 1250 --beam 18.2 --noise 0.02 "
        "--out data/regions.h5",
    )
    make.add_argument("--family", default="clouds", choices=["clouds", "fractal", "mhd", "turb",
                                                              "v1"],
                      help="generator family (default: clouds, the training family)")
    make.add_argument("--n-cubes", type=int, required=True,
                      help="cubes to simulate: one region each (3 for v1)")
    make.add_argument("--out", required=True, help="output HDF5 file")
    make.add_argument("--source", help="simulation snapshot for --family mhd (anything yt "
                      "reads, e.g. an IDEFIX .vtk); for --family turb, the folder that keeps "
                      "its turbulence snapshots")
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


def add_describe_dataset(sub) -> None:
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


def add_train(sub) -> None:
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
    add_device(train)
    train.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    train.add_argument("--max-minutes", type=float, default=None,
                       help="stop and save after this wall-clock time")
    train.add_argument("--crop", type=int, default=64, help="training crop side in px (default 64)")
    train.add_argument("--config", default=None,
                       help='architecture options as JSON, e.g. \'{"base": 16}\'')
    train.add_argument("--init", default=None, metavar="STEM",
                       help="start from a trained network of the same kind (e.g. "
                       "models/unet) instead of random weights; keeps its config")
    train.add_argument("--keep-best", action="store_true",
                       help="ship the weights of the epoch with the lowest validation loss "
                       "(the data set's own val split), not the last ones")
    train.add_argument("--ema", action=argparse.BooleanOptionalAction, default=None,
                       help="validate and ship a moving average of the weights (default: "
                       "on for cinn and ddpm, off for unet)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace existing weights and card at --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train)


def add_calibrate(sub) -> None:
    calibrate = sub.add_parser(
        "calibrate",
        help="fit a network's offset and sample spread on validation data (stored in its card)",
        description="Draw samples on the val regions of one or more data sets (repeat --data: "
        "the training family and the validation families) with the raw network, fit an "
        "offset (dex) that zeroes the mean error there, then factors on the spread of the "
        "samples about their mean, one per quarter of the pixels ranked by that spread, so "
        "that the 68% and 95% intervals hold 68% and 95% of the true pixels; all are stored "
        "in the model card (replacing its calibration) and applied to every sample the "
        "network draws.",
    )
    calibrate.add_argument("--model", required=True, choices=["unet", "cinn", "ddpm"])
    calibrate.add_argument("--data", required=True, action="append",
                           help="HDF5 file from make-dataset (repeat for several)")
    calibrate.add_argument("--path", help="model stem (default: the shipped weights of NAME)")
    calibrate.add_argument("--regions", type=int, default=24,
                           help="val regions per data set (default 24)")
    calibrate.add_argument("--samples", type=int, default=32, help="samples per region")
    add_device(calibrate)
    calibrate.set_defaults(handler=_cmd_calibrate)


def add_evaluate(sub) -> None:
    evaluate = sub.add_parser(
        "evaluate", help="the poster's metrics per family and bin, beside the power law and MDR",
        description="Recompute MSE(log10), mean error, error at 80% accuracy, 68/95% "
        "interval coverage and CRPS of models on one or more data sets (the val split of a "
        "validation family, the test split of the training family), overall and per bin "
        "of density, line-of-sight depth, beam and contrast (scatter of log10 N_H in the "
        "region), next to the shipped power law and MDR (Zhao et al. 2025) on the same "
        "pixels. With several data sets each network's offset and "
        "spread are recalibrated leaving the tested family out.",
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
    add_device(evaluate)
    add_speed_options(evaluate)
    evaluate.add_argument("--out", default="evaluation", help="writes OUT.json and OUT.md")
    evaluate.add_argument("--write-card", action="store_true",
                          help="also store the metrics in each evaluated network's card")
    evaluate.set_defaults(handler=_cmd_evaluate)


def _cmd_train(args, command: str) -> int:
    import json

    from ..train import train

    try:
        config = json.loads(args.config) if args.config else None
    except json.JSONDecodeError as exc:
        raise InputError(f"--config is not valid JSON ({exc})") from None
    card = train(args.model, args.data, args.out, epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                 resume=args.resume, max_minutes=args.max_minutes, crop=args.crop,
                 config=config, progress=not args.quiet and sys.stderr.isatty(),
                 overwrite=args.overwrite, init=args.init, keep_best=args.keep_best,
                 ema=args.ema)
    if "parameters" in card:
        print(f"wrote {args.out}.safetensors ({card['parameters']:,} parameters), "
              f"{args.out}.json, .csv, .png")
    else:
        print(f"wrote {args.out}.json: {card['config']}")
    return 0


def _cmd_calibrate(args, command: str) -> int:
    from ..calibrate import calibrate_card, describe

    report = calibrate_card(args.model, args.data, stem=args.path, regions=args.regions,
                            samples=args.samples, device=args.device)
    print(f"{args.model}: recalibrated {describe(report)} (narrowest first); raw val mean "
          f"error {report['mean_error_before_dex']:+.3f} dex; val coverage 68 % "
          f"{report['coverage_68_before']:.3f} -> {report['coverage_68_after']:.3f}, 95 % "
          f"{report['coverage_95_before']:.3f} -> {report['coverage_95_after']:.3f}")
    return 0


def _cmd_evaluate(args, command: str) -> int:
    from ..evaluate import evaluate, markdown_table, store_in_card, write_results
    from ..models import NETWORKS, models_dir

    paths = {}
    for item in args.path:
        name, sep, stem = item.partition("=")
        if not sep or not stem:
            raise InputError(f"--path must look like unet=runs/unet, got {item!r}")
        paths[name] = stem
    result = evaluate(args.model, args.data, samples=args.samples, max_regions=args.max_regions,
                      device=args.device, model_paths=paths, mdr=not args.no_mdr,
                      split=args.split, precision=args.precision, steps=args.steps)
    json_path, md_path = write_results(result, args.out)
    if args.write_card:
        for name in args.model:
            if name in NETWORKS:
                store_in_card(result, name, paths.get(name, models_dir() / name))
    print(markdown_table(result))
    print(f"wrote {json_path} and {md_path}")
    return 0


def _cmd_make_dataset(args, command: str) -> int:
    from ..data import make_dataset
    from ..units import parse_distance

    out = make_dataset(args.out, family=args.family, n_cubes=args.n_cubes, seed=args.seed,
                       workers=args.workers, source=args.source, beam_arcsec=args.beam,
                       distance_pc=parse_distance(args.distance), noise=args.noise,
                       overwrite=args.overwrite, progress=not args.quiet and sys.stderr.isatty())
    if not args.quiet:
        print(f"wrote {out}")
    return 0


def _cmd_describe_dataset(args, command: str) -> int:
    from pathlib import Path

    from ..describe import describe_dataset

    png = args.png or f"{Path(args.data[0]).stem}_describe.png"
    print(describe_dataset(args.data, png=png))
    return 0


