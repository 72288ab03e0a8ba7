"""``nhpipe evaluate``: the poster's metrics, recomputed on a split of a dataset.

Every number comes from the model's samples on the evaluated regions, in log10 units,
next to the power-law baseline refitted on the training split, on the same pixels.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .data import load_split
from .errors import InputError
from .metrics import DENSITY_BINS, binned_metrics
from .models import load_model, resolve_device
from .models.analytic import PowerLaw, fit_powerlaw


def sample_regions(model, log_nh, n_samples, generator, device, batch=1):
    """Samples (S, N_regions * 128 * 128) of every region, and regions/s of the model calls.

    ``log_nh`` is (N, 128, 128) log10 N_H; regions go through the model ``batch`` at a time.
    """
    draws = []
    elapsed = 0.0
    with torch.inference_mode():
        for start in range(0, len(log_nh), batch):
            x = torch.from_numpy(log_nh[start:start + batch])[:, None].to(device)
            t0 = time.perf_counter()
            out = model.sample(x, n_samples, generator)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - t0
            draws.append(out[:, :, 0].float().cpu().numpy())
    samples = np.concatenate(draws)  # (N, S, H, W)
    return np.moveaxis(samples, 1, 0).reshape(n_samples, -1), len(log_nh) / elapsed


def evaluate(model_name: str, data, *, split: str = "test", samples: int = 16,
             max_regions: int | None = None, device: str = "auto", seed: int = 0,
             model_path=None) -> dict:
    """Metrics of a model and of the fitted power-law baseline on one split.

    Parameters
    ----------
    model_name : str
        Registered model.
    data : path
        Dataset from ``nhpipe make-dataset``.
    split : {'train', 'val', 'test'}
    samples : int
        Samples per region for probabilistic models.
    max_regions : int, optional
        Evaluate the first regions only (all regions of a cube come together).

    Returns
    -------
    dict
        ``model`` and ``baseline`` metric sets (overall and per density bin), parameter
        count, regions/s with the number of samples and threads, and what was evaluated.
    """
    if samples < 1:
        raise InputError(f"--samples must be at least 1, got {samples!r}")
    torch_device = resolve_device(device)
    log_nh, log_nm, cube = load_split(data, split)
    if max_regions is not None:
        log_nh, log_nm, cube = log_nh[:max_regions], log_nm[:max_regions], cube[:max_regions]
    if len(log_nh) == 0:
        raise InputError(f"{data}: split {split!r} is empty")
    train_nh, train_nm, _ = load_split(data, "train")
    baseline = PowerLaw(fit_powerlaw(train_nh[:, ::4, ::4], train_nm[:, ::4, ::4]))
    model = load_model(model_name, device=torch_device, path=model_path)
    truth = log_nm.reshape(-1)
    gen = torch.Generator(device=torch_device).manual_seed(seed)
    draws, speed = sample_regions(model, log_nh, samples, gen, torch_device)
    base_draws, _ = sample_regions(baseline.to(torch_device), log_nh, samples,
                                torch.Generator(device=torch_device).manual_seed(seed),
                                torch_device)
    return {
        "model": model_name, "split": split, "regions": int(len(log_nh)),
        "cubes": int(len(np.unique(cube))), "samples": samples,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "regions_per_s": speed, "threads": torch.get_num_threads(),
        "device": str(torch_device), "data": Path(data).name,
        "metrics": binned_metrics(draws, truth),
        "baseline_powerlaw": {"config": baseline.card()["config"],
                              "metrics": binned_metrics(base_draws, truth)},
    }


def markdown_table(results: list[dict]) -> str:
    """The README's table: one column per model, the power-law baseline last."""
    if not results:
        return ""
    columns = [(r["model"], r["metrics"], r) for r in results]
    columns.append(("power law (fit on train)", results[0]["baseline_powerlaw"]["metrics"],
                    None))
    header = "| metric | " + " | ".join(name for name, _, _ in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]

    def row(label, get):
        cells = []
        for _, metrics, result in columns:
            try:
                value = get(metrics, result)
            except (KeyError, TypeError):
                value = None
            cells.append("–" if value is None else value)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("MSE (log10)", lambda m, r: f"{m['all']['mse_log10']:.4f}")
    row("error at 80 % accuracy (dex)", lambda m, r: f"{m['all']['error_at_80pct_dex']:.3f}")
    row("68 % interval coverage", lambda m, r: f"{m['all']['coverage_68']:.3f}")
    row("95 % interval coverage", lambda m, r: f"{m['all']['coverage_95']:.3f}")
    row("CRPS (dex)", lambda m, r: f"{m['all']['crps_dex']:.4f}")
    for name in DENSITY_BINS:
        row(f"MSE, {name} cm-3", lambda m, r, n=name: f"{m[n]['mse_log10']:.4f}")
    row("parameters", lambda m, r: f"{r['parameters']:,}")
    row("regions/s (CPU)", lambda m, r: f"{r['regions_per_s']:.2f} ({r['samples']} samples, "
        f"{r['threads']} threads)")
    first = results[0]
    lines.append("")
    lines.append(f"Split `{first['split']}` of `{first['data']}`: {first['regions']} regions "
                 f"from {first['cubes']} cubes; every number recomputed from samples "
                 "by `nhpipe evaluate`.")
    return "\n".join(lines)


def write_results(results: list[dict], prefix) -> tuple[Path, Path]:
    """Write ``PREFIX.json`` and ``PREFIX.md``."""
    from .write import atomic_path

    prefix = Path(prefix)
    paths = prefix.with_suffix(".json"), prefix.with_suffix(".md")
    with atomic_path(paths[0]) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=2) + "\n")
    with atomic_path(paths[1]) as tmp:
        Path(tmp).write_text(markdown_table(results) + "\n")
    return paths


def store_in_card(result: dict) -> None:
    """Put an evaluation's metrics into the model card of a shipped network.

    The card's sha256 covers the weights file only, so the card stays valid.
    """
    from .models import NETWORKS, models_dir
    from .write import atomic_path

    if result["model"] not in NETWORKS:
        return
    path = models_dir() / f"{result['model']}.json"
    card = json.loads(path.read_text())
    card["metrics"] = {k: result[k] for k in ("split", "data", "regions", "cubes", "samples",
                                              "regions_per_s", "threads", "device")}
    card["metrics"]["values"] = result["metrics"]
    card["metrics"]["baseline_powerlaw"] = result["baseline_powerlaw"]
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=2) + "\n")
