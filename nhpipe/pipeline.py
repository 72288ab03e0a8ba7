"""The runner: the one place that knows the order of the stages.

load -> regrid -> tile -> infer -> summarise -> stitch -> (map back) -> write
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits
from tqdm.auto import tqdm

from . import __version__
from .calibrate import describe, header_cards
from .errors import InputError
from .inference import check_steps, resolve_precision, sample_batches
from .load import ColumnMap, NhpipeWarning, load_map
from .models import load_model, resolve_device
from .models._common import calibration_of
from .regrid import interpolate, model_grid, resample
from .resources import check_memory
from .summarise import PLANE_DOC, STATISTICS, summarise
from .tiling import DEFAULT_STRIDE, Stitcher, coverage, fill_blanks, plan_tiles, tile
from .units import parse_angle_arcsec, parse_distance, pixel_scale_deg
from ._write import Plane, check_output_path, planes_hdulist, write_hdulist

log = logging.getLogger("nhpipe")

#: A beam wider than this many model pixels gets a warning (models trained on one beam).
BEAM_WARN_PIXELS = 3.0

#: Output grids: the input map's own, or the model's physical grid.
OUTPUT_GRIDS = ("input", "model")


def default_output(source, model: str) -> Path:
    """``<input stem>_nhpipe_<model>.fits`` in the current directory (inputs may be read-only)."""
    stem = Path(source).stem if isinstance(source, (str, os.PathLike)) else "map"
    return Path(f"{stem}_nhpipe_{model}.fits")


def infer_map(model, log_nh: np.ndarray, *, n_samples: int, generator: torch.Generator,
              stride: int = DEFAULT_STRIDE, batch_size: int = 8, progress: bool = False,
              beam_px: float | None = None, **sampling):
    """Run a model over a whole map in overlapping patches and stitch the statistics.

    Parameters
    ----------
    model : registered model
        See :mod:`nhpipe.models`.
    log_nh : ndarray, shape (ny, nx)
        log10 N_H (cm-2) on the model's grid; NaN where blank (filled for inference).
    n_samples : int
        Samples per patch.
    generator : torch.Generator
        On the model's device; the only source of randomness.
    stride : int
        Step between patches in pixels.
    batch_size : int
        Patches per call of the model.
    progress : bool
        Show a progress bar over patches.
    beam_px : float, optional
        Beam FWHM of the map in model pixels, for beam-conditioned networks.
    **sampling
        ``precision`` and ``steps`` of :func:`nhpipe.inference.sample_batches`.

    Returns
    -------
    stats : ndarray, shape (len(STATISTICS), ny, nx)
        Stitched per-pixel statistics (see :func:`nhpipe.summarise.summarise`), NaN
        where ``log_nh`` is blank.
    count : ndarray, shape (ny, nx)
        Number of patches that contributed to each pixel.
    """
    blank = ~np.isfinite(log_nh)
    tiling = plan_tiles(log_nh.shape, stride=stride)
    patches = tile(fill_blanks(log_nh), tiling).astype(np.float32)
    blend = Stitcher(tiling, (len(STATISTICS),))
    with tqdm(total=len(tiling), unit="patch", disable=not progress,
              desc=f"{model.name} x{n_samples}") as bar:
        # The statistics are computed where the samples are: on a GPU they would
        # otherwise take most of the inference time on the CPU (benchmarks/gpu_h200.md).
        for start, draws, _ in sample_batches(model, patches, n_samples, generator,
                                              beam_px=beam_px, batch_size=batch_size,
                                              on_device=True, **sampling):
            for k, d in enumerate(draws):
                blend.add(start + k, summarise(d))
            bar.update(len(draws))
    stats = blend.result()
    stats[:, blank] = np.nan
    return stats, coverage(tiling)


def run_map(source, *, distance, out=None, species=None, bunit=None, hdu=None, beam=None,
            model="unet", samples=16, output_grid="input", stride=DEFAULT_STRIDE,
            device="auto", seed=0, steps=None, precision="auto", overwrite=False,
            progress=False, command=None) -> Path:
    """Turn a column-density map into a FITS file of <n_H>_m statistics.

    :func:`estimate`, then the file written atomically; the output path is checked
    before any work (and its free disk once the output's size is known).

    Parameters
    ----------
    source, distance, species, bunit, hdu, beam, model, samples, output_grid, stride,
    device, seed, steps, precision, progress, command
        As for :func:`estimate`.
    out : path, optional
        Output FITS; default :func:`default_output`.
    overwrite : bool
        Replace an existing output (never an input).

    Returns
    -------
    Path of the written file.
    """
    out = Path(out) if out is not None else default_output(source, model)
    inputs = [source] if isinstance(source, (str, os.PathLike)) else []
    check_output_path(out, inputs=inputs, overwrite=overwrite)

    def before_work(shape):
        check_output_path(out, inputs=inputs, overwrite=overwrite,
                          size_bytes=(len(STATISTICS) + 2) * 4 * int(np.prod(shape)))

    hdul = estimate(source, distance=distance, species=species, bunit=bunit, hdu=hdu,
                    beam=beam, model=model, samples=samples, output_grid=output_grid,
                    stride=stride, device=device, seed=seed, steps=steps,
                    precision=precision, progress=progress, command=command,
                    _before_work=before_work)
    stage = _StageClock()
    written = write_hdulist(out, hdul, overwrite=overwrite, inputs=inputs)
    stage("write")
    return written


def estimate(data, *, distance, species=None, beam=None, model="unet", samples=16, seed=0,
             device="auto", output_grid="input", stride=DEFAULT_STRIDE, bunit=None, hdu=None,
             steps=None, precision="auto", progress=False, command=None,
             _before_work=None) -> fits.HDUList:
    """<n_H>_m statistics of a column-density map, as an HDUList (nothing is written).

    Parameters
    ----------
    data : path, HDU, HDUList, NDData or (array, WCS or Header)
        N(H2) or N_H map (see :func:`nhpipe.load.load_map`).
    distance : str, Quantity or float
        Distance to the cloud (``'400pc'``, ``400 * u.pc``; a number is in pc).
    species : {'H2', 'H'}, optional
        Required unless the header says.
    beam : str, Quantity or float, optional
        Beam FWHM (``'18.2arcsec'``; a number is in arcsec); default BMAJ/BMIN.
    model : str or loaded model
        Registered model name (:func:`nhpipe.models.available`), or a model returned by
        :func:`nhpipe.models.load_model` (on ``device``).
    samples : int
        Samples of <n_H>_m per patch (>= 1).
    seed : int
        Seed of the random generator: the same seed gives the same values.
    device : {'auto', 'cpu', 'cuda'}
    output_grid : {'input', 'model'}
        The input's grid (same shape and WCS) or the model's.
    stride : int
        Step between 128-px patches, in model pixels.
    bunit, hdu
        Passed to :func:`nhpipe.load.load_map`.
    steps : int, optional
        Sampler steps of the diffusion model (network evaluations per sample); default
        its card's.
    precision : {'auto', 'float32', 'bfloat16'}
        Arithmetic of the network (:data:`nhpipe.inference.PRECISIONS`).
    progress : bool
        Progress bar over patches.
    command : str, optional
        Command line recorded in the header.

    Returns
    -------
    astropy.io.fits.HDUList
        An empty primary HDU with the provenance, then MEAN, MODE, STD, ENTROPY, Q02_5,
        Q16, Q50, Q84, Q97_5 (log10 <n_H>_m statistics), NH and COVERAGE, each with the
        chosen grid's celestial WCS, BUNIT and the provenance cards.
    """
    # Every option is checked before any work, so a bad one costs nothing.
    _check_options(samples, output_grid, stride)
    distance_pc = parse_distance(distance)
    torch_device = resolve_device(device)
    # A loaded model can be passed instead of a name (batch workers load each once).
    estimator = model if isinstance(model, torch.nn.Module) else \
        load_model(model, device=torch_device)
    check_steps(estimator, steps)
    precision = resolve_precision(precision, torch_device)

    beam_arcsec = parse_angle_arcsec(beam) if beam is not None else None
    stage = _StageClock()

    cmap = load_map(data, hdu=hdu, species=species, bunit=bunit)
    stage("load")
    beam_px, beam_source = _map_beam(cmap, beam_arcsec, estimator, distance_pc)
    grid_wcs, grid_shape = model_grid(cmap.wcs, cmap.shape, pixel_pc=estimator.pixel_pc,
                                      distance_pc=distance_pc)
    batch_size = check_memory(cmap.shape, grid_shape, int(samples), name=cmap.name,
                              device_type=torch_device.type)
    if _before_work is not None:
        _before_work(cmap.shape if output_grid == "input" else grid_shape)
    nh_grid, _ = resample(cmap.nh, cmap.wcs, grid_wcs, grid_shape, progress=progress)
    stage("regrid")
    if not np.isfinite(nh_grid).any():
        raise InputError(f"{cmap.name}: no valid pixel left on the model grid")
    generator = torch.Generator(device=torch_device).manual_seed(int(seed))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_nh = np.log10(nh_grid)
    stats, count = infer_map(estimator, log_nh, n_samples=int(samples), generator=generator,
                             stride=stride, progress=progress, beam_px=beam_px,
                             batch_size=batch_size, precision=precision, steps=steps)
    stage("infer")

    if output_grid == "input":
        wcs, nh = cmap.wcs, cmap.nh
        stats, count = _map_back(stats, count, grid_wcs, cmap, progress=progress)
    else:
        wcs, nh = grid_wcs, nh_grid
    stage("map back")

    planes = [Plane(name, stats[i], *PLANE_DOC[name]) for i, name in enumerate(STATISTICS)]
    planes.append(Plane("NH", nh, "cm-2", "N_H of hydrogen nuclei on this grid"))
    planes.append(Plane("COVERAGE", np.nan_to_num(count), "",
                        "number of 128-px patches blended into each pixel"))
    provenance = _provenance(cmap, estimator, samples=samples, seed=seed,
                             distance_pc=distance_pc, stride=stride, output_grid=output_grid,
                             device=torch_device, command=command)
    provenance["PRECISN"] = (precision, "arithmetic of the network")
    if hasattr(getattr(estimator, "config", None), "steps"):
        provenance["NSTEPS"] = (int(steps or estimator.config.steps), "diffusion sampler steps")
    if beam_px is not None:
        provenance["BEAMPX"] = (round(beam_px, 4), "[model px] beam FWHM on the model grid")
        provenance["BEAMSRC"] = (beam_source, "where the beam came from")
    return planes_hdulist(planes, wcs, provenance)


class _StageClock:
    """Logs the seconds since the previous stage (``nhpipe -v``; benchmarks/endtoend.py
    reads these records)."""

    def __init__(self):
        self.clock = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        log.info("%-8s %7.2f s", name, now - self.clock)
        self.clock = now


def _check_options(samples, output_grid, stride) -> None:
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise InputError(f"`samples` must be a positive integer, got {samples!r}")
    if output_grid not in OUTPUT_GRIDS:
        raise InputError(f"`output_grid` must be input or model, got {output_grid!r}")
    _check_stride(stride)


def _map_back(stats, count, grid_wcs, cmap, *, progress=False):
    """The statistics (S, ny, nx) and coverage (ny, nx) of the model grid on the input's
    grid, as float32, blank where the input is blank."""
    # Extending the statistics by their nearest valid value first lets the bilinear
    # mapping reach the input's edge pixels; the input's own blanks are masked after.
    back = interpolate(fill_blanks(np.concatenate([stats, count[None]])), grid_wcs,
                       cmap.wcs, cmap.shape, dtype=np.float32,  # float32: what is written
                       progress=progress)
    back[:, ~np.isfinite(cmap.nh)] = np.nan
    # A count of patches is a whole number: the bilinear value rounded, i.e. the count of
    # the nearer model pixels.
    np.rint(back[-1], out=back[-1])
    return back[:-1], back[-1]


def _map_beam(cmap: ColumnMap, beam_arcsec: float | None, model, distance_pc: float):
    """The map's beam FWHM in model pixels and where it came from, checked for the model.

    ``--beam`` wins; else the header's BMAJ and BMIN (degrees; an elliptical beam counts
    as the circular one of the same area, FWHM sqrt(BMAJ BMIN)). A beam-conditioned
    network refuses a map without a beam (never guessed) or with one outside the range it
    was trained on; for the other models a coarse beam only gets a warning.

    Returns
    -------
    (float, str) or (None, None)
    """
    source = "--beam"
    if beam_arcsec is None:
        bmaj, bmin = cmap.header.get("BMAJ"), cmap.header.get("BMIN")
        if isinstance(bmaj, (int, float)) and np.isfinite(bmaj) and bmaj > 0:
            if not (isinstance(bmin, (int, float)) and np.isfinite(bmin) and bmin > 0):
                bmin = bmaj
            beam_arcsec, source = float(np.sqrt(bmaj * bmin)) * 3600.0, "header BMAJ/BMIN"
    pixel_arcsec = pixel_scale_deg(model.pixel_pc, distance_pc) * 3600.0
    beam_range = getattr(model, "beam_range", None)
    if beam_arcsec is None:
        if beam_range:
            raise InputError(f"{cmap.name}: the header gives no beam (BMAJ): give the map's "
                             "resolution with `beam`, e.g. `beam='18.2arcsec'` (HGBS N_H maps)"
                             " or `beam='36.3arcsec'` (500 um resolution)")
        return None, None
    beam_px = beam_arcsec / pixel_arcsec
    if beam_range and not beam_range[0] <= beam_px <= beam_range[1]:
        lo, hi = beam_range
        raise InputError(
            f"{cmap.name}: the beam ({beam_arcsec:.1f}\", {source}) is {beam_px:.2f} model "
            f"pixels of {model.pixel_pc:.4f} pc at {distance_pc:g} pc, outside the {lo:g}-"
            f"{hi:g} px the {model.name} model was trained on ({lo * pixel_arcsec:.1f}-"
            f"{hi * pixel_arcsec:.1f}\" at this distance)")
    if not beam_range and beam_px > BEAM_WARN_PIXELS:
        warnings.warn(
            f"{cmap.name}: the beam ({beam_arcsec:.1f}\") spans {beam_px:.1f} model pixels "
            f"of {model.pixel_pc:.3f} pc at {distance_pc:g} pc; {model.name} was trained on "
            "one beam only: estimates will be smoothed towards diffuse values",
            NhpipeWarning, stacklevel=3)
    return beam_px, source


def _check_stride(stride) -> None:
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)):
        raise InputError(f"`stride` must be an integer number of pixels, got {stride!r}")
    try:
        plan_tiles((1, 1), stride=stride)
    except ValueError as exc:
        raise InputError(f"--{exc}") from None


def _provenance(cmap: ColumnMap, model, *, samples, seed, distance_pc, stride, output_grid,
                device, command) -> dict:
    cards = {
        "ORIGIN": ("nhpipe", "software that wrote this file"),
        "NHPVERS": (__version__, "nhpipe version"),
        "MODEL": (model.name, "estimator of <n_H>_m"),
        "MODELSHA": (model.checksum, ""),
        "PIXPC": (model.pixel_pc, "[pc] model pixel size"),
        "NSAMPLES": (int(samples), "samples of <n_H>_m per patch"),
        "SEED": (int(seed), "seed of the random generator"),
        "DISTPC": (distance_pc, "[pc] distance to the cloud"),
        "SPECIES": (cmap.species, "input species; N_H = 2 N(H2)"),
        "STRIDE": (int(stride), "[model px] step between 128-px patches"),
        "OUTGRID": (output_grid, "grid of this file: input or model"),
        "DEVICE": (str(device), "device used for inference"),
        "INFILE": (cmap.name, "input map"),
        "INSHA256": (cmap.sha256 or "n/a", ""),
        "DATE": (_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                 "UTC date of this file"),
    }
    calibration = calibration_of(getattr(model, "config", None))  # {} for a baseline
    if calibration:
        cards.update(header_cards(calibration))
    systematic = getattr(model, "systematic_dex", None)
    if systematic is not None:
        # The quantiles are calibrated within known kinds of cloud; how far one kind's
        # bias lies from another's is a shift they do not hold (README: The output file).
        cards["SYSTDEX"] = (round(float(systematic), 4),
                            "[dex] systematic: bias spread between clouds")
    if command:
        cards["NHPCMD"] = (command, "command line")
    # What the input said about itself travels with the results.
    for key in ("OBJECT", "TELESCOP", "INSTRUME", "BMAJ", "BMIN", "BPA"):
        value = cmap.header.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            cards[key] = (value, cmap.header.comments[key] or "from the input map")
    cards["HISTORY"] = [f"nhpipe {__version__}: {step}" for step in (
        f"load {cmap.name} ({cmap.species}; N_H = {'2 N(H2)' if cmap.species == 'H2' else 'N_H'})",
        f"regrid to {model.pixel_pc:.6f} pc pixels at {distance_pc:g} pc (reproject)",
        f"tile 128-px patches, stride {int(stride)}",
        f"infer {int(samples)} samples per patch with {model.name}, seed {int(seed)}"
        + (f", recalibrated {describe(calibration)} (model card)" if calibration else ""),
        "summarise per pixel and stitch with a sin^2 window",
        f"write on the {output_grid} grid")] + _versions()
    return cards


def _versions() -> list[str]:
    import astropy
    import reproject

    return [f"versions: nhpipe {__version__}, torch {torch.__version__}",
            f"versions: astropy {astropy.__version__}, reproject {reproject.__version__}"]
