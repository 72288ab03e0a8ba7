"""``nhpipe evaluate``: the poster's metrics, recomputed per family and per bin.

Every number comes from samples drawn on the evaluated regions, in log10 units: for the
networks, the fitted power law (the shipped ``powerlaw`` card) and the peer method MDR
(Zhao et al. 2025, ``compute_mean_density_width`` of the PyPI package
volume-density-mapper), all on the same pixels. Validation families (made by generators
no network trained on) come first; the training family's test split last. With several
families, the offset and spread of each network are recalibrated leaving out the family it
is tested on (:func:`nhpipe.calibrate.fit_recalibration` on the others' draws), so that no
mean error or coverage is measured on the pixels its calibration was fitted on.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .calibrate import fit_recalibration
from .data import TRAINING_FAMILY, load_meta, load_split, split_size
from .errors import InputError
from .inference import check_steps, resolve_precision, sample_batches
from .metrics import (BEAM_BINS, CALIBRATION_TARGETS, CONTRAST_BINS, DENSITY_BINS, DEPTH_BINS,
                      binned_metrics)
from .models import load_model, resolve_device
from .models._common import RAW_CALIBRATION, calibration_of, recalibrate
from .grid import PIXEL_PC as CELL_PC
from .units import PC_CM

#: The peer method's name in the tables.
MDR = "mdr"


def sample_regions(model, log_nh, n_samples, generator, *, beam_px=None, batch=1,
                   **sampling):
    """Samples (S, N_regions * H * W) of every region, and regions/s of the model calls.

    ``log_nh`` is (N, H, W) log10 N_H; ``beam_px`` (N,) the beam of each region in model
    pixels; regions go through the model ``batch`` at a time; ``sampling`` are the
    ``precision`` and ``steps`` of :func:`nhpipe.inference.sample_batches`.
    """
    draws, seconds = [], 0.0
    for _, out, spent in sample_batches(model, log_nh, n_samples, generator, beam_px=beam_px,
                                        batch_size=batch, **sampling):
        draws.append(out)
        seconds += spent
    samples = np.concatenate(draws)  # (N, S, H, W)
    return np.moveaxis(samples, 1, 0).reshape(n_samples, -1), len(log_nh) / max(seconds, 1e-9)


def mdr_regions(log_nh: np.ndarray, *, pixel_pc: float = CELL_PC) -> np.ndarray:
    """MDR's estimate of log10 <n_H>_m on every region: (1, N * H * W).

    ``compute_mean_density_width`` (Zhao et al. 2025) turns a column density map and its
    pixel size into a mean density N / (width-derived thickness); it is linear in the
    column, so N_H in cm-2 and the pixel in cm give n_H in cm-3.
    """
    try:
        from volume_density_mapper import compute_mean_density_width
    except ImportError:
        raise InputError("the MDR baseline needs volume-density-mapper: pip install "
                         "volume-density-mapper (or pass `mdr=False`)") from None
    out = []
    for region in log_nh:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every scale
            density, _ = compute_mean_density_width(10.0 ** region.astype(np.float64),
                                                    pixel_pc * PC_CM)
        with np.errstate(divide="ignore"):
            out.append(np.log10(np.where(density > 0, density, np.nan)))
    return np.stack(out).reshape(1, -1)


@dataclass
class Family:
    """The evaluated regions of one data set."""

    name: str
    data: str
    split: str
    log_nh: np.ndarray   # (N, H, W)
    log_nm: np.ndarray   # (N, H, W)
    depth_pc: np.ndarray  # (N,) depth of gas on the line of sight
    beam_px: np.ndarray   # (N,)

    @functools.cached_property  # read once per estimator's metrics: computed once
    def contrast_dex(self) -> np.ndarray:
        """(N,) standard deviation of each region's observed log10 N_H (dex)."""
        return self.log_nh.reshape(len(self.log_nh), -1).std(axis=1)

    @property
    def validation(self) -> bool:
        """Made by a generator no network trained on (not clouds, not the first one)."""
        return self.name not in (TRAINING_FAMILY, "v1")

    def per_pixel(self, values):
        return np.repeat(values, self.log_nh[0].size)


def load_family(path, *, split=None, max_regions=None) -> Family:
    """The regions of a data set to evaluate: its test split if it has one (the training
    family), else its val split (a validation family)."""
    if split is None:
        split = "test" if split_size(path, "test") else "val"
    log_nh, log_nm, _ = load_split(path, split)
    meta = load_meta(path, split)
    keep = slice(None, max_regions)
    if len(log_nh[keep]) == 0:
        raise InputError(f"{path}: split {split!r} is empty")
    families = np.unique(meta["family"])
    return Family(str(families[0]) if len(families) == 1 else "mixed", Path(path).name, split,
                  log_nh[keep], log_nm[keep], meta["los_depth_pc"][keep],
                  meta["beam_px"][keep].astype(np.float32))


def evaluate(models, data, *, samples: int = 16, max_regions: int | None = None,
             device: str = "auto", seed: int = 0, model_paths: dict | None = None,
             mdr: bool = True, split: str | None = None, precision: str = "auto",
             steps: int | None = None) -> dict:
    """Metrics of models, the shipped power law and MDR on one or more data sets.

    Parameters
    ----------
    models : list of str
        Registered models (``powerlaw`` is always added).
    data : list of paths
        Data sets (one family each), e.g. the validation families and the training file.
    samples : int
        Samples per region for probabilistic models.
    max_regions : int, optional
        Evaluate the first regions of each data set only.
    model_paths : dict, optional
        name -> model stem, for models not in the shipped folder.
    mdr : bool
        Also evaluate MDR.
    split : str, optional
        Force a split (default: test if present, else val).
    precision : {'auto', 'float32', 'bfloat16'}
        Arithmetic of the networks (:data:`nhpipe.inference.PRECISIONS`).
    steps : int, optional
        Sampler steps of the diffusion model (default: its card's).

    Returns
    -------
    dict
        ``families`` (what was evaluated) and ``estimators``: per estimator its
        parameters, regions/s, samples, the leave-one-family-out offsets and spreads and the
        metrics per family (:func:`nhpipe.metrics.binned_metrics` by density, depth, beam
        and contrast).
    """
    if samples < 1:
        raise InputError(f"`samples` must be at least 1, got {samples!r}")
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    torch_device = resolve_device(device)
    precision = resolve_precision(precision, torch_device)
    families = [load_family(p, split=split, max_regions=max_regions) for p in paths]
    families.sort(key=lambda f: (not f.validation, f.name))
    names = list(dict.fromkeys([*models, "powerlaw"]))
    model_paths = model_paths or {}
    result = {"families": [{"name": f.name, "data": f.data, "split": f.split,
                            "regions": len(f.log_nh), "validation": f.validation}
                           for f in families],
              "samples": samples, "threads": torch.get_num_threads(),
              "device": str(torch_device), "precision": precision, "steps": steps,
              "estimators": {}}
    for name in names:
        model = load_model(name, device=torch_device, path=model_paths.get(name))
        config = getattr(model, "config", None)
        card_calibration = calibration_of(config)
        calibrated = bool(card_calibration) and len(families) > 1
        if calibrated:  # the raw network's draws, recalibrated on the other families below
            model.config = replace(config, **RAW_CALIBRATION)
        sampling = {"precision": precision}
        if steps is not None and hasattr(getattr(model, "config", None), "steps"):
            check_steps(model, steps)
            sampling["steps"] = steps
        draws, speeds = [], []
        for family in families:
            gen = torch.Generator(device=torch_device).manual_seed(seed)
            d, speed = sample_regions(model, family.log_nh, samples, gen,
                                      beam_px=family.beam_px, **sampling)
            draws.append(d)
            speeds.append(speed)
        lofo = _leave_one_out(draws, families) if calibrated else {}
        result["estimators"][name] = {
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "regions_per_s": float(np.mean(speeds)), "samples": samples,
            "calibration_card": card_calibration, "lofo_calibration": lofo,
            "metrics": {f.name: _metrics(recalibrate(d, axis=0, **lofo.get(f.name, {})), f)
                        for d, f in zip(draws, families)}}
    if mdr:
        result["estimators"][MDR] = {
            "parameters": 0, "samples": 1, "lofo_calibration": {},
            "metrics": {f.name: _metrics(mdr_regions(f.log_nh), f) for f in families}}
    return result


def _leave_one_out(draws, families) -> dict:
    """Per family, the recalibration fitted on the draws of all the others.

    ``draws`` are the raw network's (its card's calibration set aside): what is fitted
    here replaces the card's, fitted on all families including the tested one.
    """
    fitted = {}
    for k, family in enumerate(families):
        others = [i for i in range(len(families)) if i != k]
        pooled = np.concatenate([draws[i] for i in others], axis=1)
        truth = np.concatenate([families[i].log_nm.reshape(-1) for i in others])
        fitted[family.name] = fit_recalibration(pooled, truth)[0]
    return fitted


def _metrics(draws, family: Family) -> dict:
    truth = family.log_nm.reshape(-1)
    good = np.isfinite(draws).all(axis=0)
    return binned_metrics(draws[:, good], truth[good],
                          depth=family.per_pixel(family.depth_pc)[good],
                          beam=family.per_pixel(family.beam_px)[good],
                          contrast=family.per_pixel(family.contrast_dex)[good],
                          groups=family.per_pixel(np.arange(len(family.log_nh)))[good])


def markdown_table(result: dict) -> str:
    """The README's tables: per family (validation families first), one row per bin,
    one column per estimator, each cell ``MSE / mean error / 68 % cov / 95 % cov``."""
    estimators = list(result["estimators"])
    lines = []
    for family in result["families"]:
        role = "validation family: no network trained on it" if family["validation"] \
            else "training family, test split"
        lines += [f"#### {family['name']} ({role}; {family['regions']} regions of "
                  f"`{family['data']}`, split {family['split']})", "",
                  "| pixels of | " + " | ".join(estimators) + " |",
                  "|---" * (len(estimators) + 1) + "|"]
        bins = ["all", *DENSITY_BINS, *DEPTH_BINS, *BEAM_BINS, *CONTRAST_BINS]
        for bin_name in bins:
            cells = []
            for name in estimators:
                m = result["estimators"][name]["metrics"][family["name"]].get(bin_name)
                cells.append("–" if m is None else _cell(m))
            if any(c != "–" for c in cells):
                lines.append(f"| {bin_name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Cells: MSE(log10) / mean error (dex) / 68 % / 95 % interval coverage "
                 "(MDR gives no interval). Regions/s and CRPS are in the JSON.")
    speed = ", ".join(f"{n} {e['regions_per_s']:.2f}" for n, e in result["estimators"].items()
                      if "regions_per_s" in e)
    precision = result.get("precision", "float32")
    steps = f", ddpm {result['steps']} steps" if result.get("steps") else ""
    lines.append(f"Regions/s ({result['samples']} samples, {result['threads']} threads, "
                 f"{result['device']}, {precision}{steps}): {speed}.")
    lines += ["", target_summary(result)]
    if len(result["families"]) > 1:
        lines += ["", "Bias of each estimator before its offset (mean error minus the offset "
                  "fitted leaving the family out, dex), and its standard deviation between "
                  "the families: the error an offset fitted on other kinds of cloud may "
                  "leave on a new one, not held by the intervals (an estimate from "
                  f"{len(result['families'])} families): " + "; ".join(
                      f"{n} " + ", ".join(f"{f} {b:+.2f}" for f, b in r["families"].items())
                      + f" (between families {r['between_families_dex']:.2f})"
                      for n, r in raw_biases(result).items()) + ".", ""]
    lofo = {n: e["lofo_calibration"] for n, e in result["estimators"].items()
            if e.get("lofo_calibration")}
    if lofo:
        lines.append("Offset (dex) and spread factors (by quarter of the samples' own "
                     "spread, narrowest first) fitted leaving the tested family out: "
                     + "; ".join(f"{n} " + ", ".join(
                         f"{f} {v['offset']:+.2f} x" + "/".join(
                             f"{x:.2f}" for x in v.get("spread_factors") or [v["spread"]])
                         for f, v in c.items()) for n, c in lofo.items()) + ".")
    return "\n".join(lines)


def raw_biases(result: dict) -> dict:
    """Per estimator, each family's mean error before its offset, and their spread.

    The recalibration's offset moves every sample and its spread factors act about the
    per-pixel mean, so the mean error minus the offset is the raw network's bias on that
    family. Its standard deviation between families (ddof 1; None with one family) is
    what one offset fitted on some kinds of cloud leaves on another kind: a systematic
    error that the per-pixel intervals, calibrated within families, do not hold.

    Returns
    -------
    dict
        name -> {"families": {family: bias_dex}, "between_families_dex": float or None}
    """
    out = {}
    for name, entry in result["estimators"].items():
        lofo = entry.get("lofo_calibration") or {}
        bias = {f: m["all"]["mean_error_dex"] - lofo.get(f, {}).get("offset", 0.0)
                for f, m in entry["metrics"].items()}
        spread = float(np.std(list(bias.values()), ddof=1)) if len(bias) > 1 else None
        out[name] = {"families": bias, "between_families_dex": spread}
    return out


def target_summary(result: dict) -> str:
    """Which calibration targets each network meets on the validation families.

    Checked overall and in each bin of depth and beam (:data:`CALIBRATION_TARGETS`), a
    markdown table with the count of bins met per quantity and every miss spelled out,
    with its standard error over regions where the metrics have one
    (:func:`nhpipe.metrics.clustered_se`); misses farther than two standard errors from
    the target range are counted apart, as the ones more regions would not remove.
    """
    bins = ["all", *DEPTH_BINS, *BEAM_BINS]
    names = {"mean_error_dex": "mean error", "coverage_68": "68 %", "coverage_95": "95 %"}
    lines = ["#### Calibration targets on the validation families",
             "", "Mean error within ±{:.2f} dex, 68 % coverage in {:.2f}–{:.2f}, 95 % in "
             "{:.2f}–{:.2f}; checked on all pixels and in each bin of depth and beam. "
             "± is the standard error over regions (pixels of one region share its depth, "
             "beam and cloud); a miss beyond 2 s.e. is one that more regions of the family "
             "would not remove.".format(
                 CALIBRATION_TARGETS["mean_error_dex"][1], *CALIBRATION_TARGETS["coverage_68"],
                 *CALIBRATION_TARGETS["coverage_95"]), "",
             "| network | family | " + " | ".join(f"{v} met" for v in names.values())
             + " | misses beyond 2 s.e. | misses |", "|---" * (len(names) + 4) + "|"]
    for name, entry in result["estimators"].items():
        for family in (f for f in result["families"] if f["validation"]):
            metrics = entry["metrics"][family["name"]]
            checked = [b for b in bins if b in metrics and "coverage_68" in metrics[b]]
            if not checked:
                continue
            met, clear, misses = {k: 0 for k in names}, 0, []
            for b in checked:
                bad = []
                for key, (lo, hi) in CALIBRATION_TARGETS.items():
                    value, se = metrics[b][key], metrics[b].get(key + "_se")
                    if lo <= value <= hi:
                        met[key] += 1
                        continue
                    clear += se is None or max(lo - value, value - hi) > 2 * se
                    text = f"{value:+.3f}" if key == "mean_error_dex" else f"{value:.3f}"
                    bad.append(f"{names[key]} {text}" + ("" if se is None else f" ± {se:.3f}"))
                if bad:
                    misses.append(f"{b}: " + ", ".join(bad))
            lines.append(f"| {name} | {family['name']} | "
                         + " | ".join(f"{met[k]} of {len(checked)}" for k in names)
                         + f" | {clear} of {len(checked) * len(names) - sum(met.values())} | "
                         + ("; ".join(misses) or "none") + " |")
    return "\n".join(lines)


def _cell(m: dict) -> str:
    text = f"{m['mse_log10']:.3f} / {m['mean_error_dex']:+.2f}"
    if "coverage_68" in m:
        text += f" / {m['coverage_68']:.2f} / {m['coverage_95']:.2f}"
    return text


def write_results(result: dict, prefix) -> tuple[Path, Path]:
    """Write ``PREFIX.json`` and ``PREFIX.md``."""
    from ._write import atomic_path

    prefix = Path(prefix)
    paths = prefix.with_suffix(".json"), prefix.with_suffix(".md")
    with atomic_path(paths[0]) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2) + "\n")
    with atomic_path(paths[1]) as tmp:
        Path(tmp).write_text(markdown_table(result) + "\n")
    return paths


def store_in_card(result: dict, name: str, stem) -> None:
    """Put an evaluation's metrics into the model card at ``stem`` (the evaluated model).

    With them go the raw network's bias per family and its standard deviation between
    families (:func:`raw_biases`) as ``systematic_dex``, which ``nhpipe run`` writes into
    its outputs (SYSTDEX). The card is rewritten with its new checksum
    (:func:`nhpipe.cards.update_card`).
    """
    from .cards import update_card

    entry = result["estimators"][name]
    biases = raw_biases(result)[name]
    update_card(stem, metrics={
        "families": result["families"], "samples": result["samples"],
        "threads": result["threads"], "device": result["device"],
        "regions_per_s": entry.get("regions_per_s"),
        "lofo_calibration": entry["lofo_calibration"],
        "values": {f: m["all"] for f, m in entry["metrics"].items()},
        "raw_bias_dex": biases["families"],
        "systematic_dex": biases["between_families_dex"]})
