"""``nhpipe train``: fit a network on an nhpipe dataset, with checkpoints and resume.

Training imports the models and the data, never the pipeline.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__
from .data import RegionDataset, load_meta, load_recipe, load_split
from .errors import InputError
from .cards import read_card
from .models import NETWORKS, build_network, load_model, resolve_device
from .models._common import RAW_CALIBRATION, Normaliser, save_network
from ._write import sha256_file

#: Networks trained with an exponential moving average of their weights (as the poster).
EMA_MODELS = {"cinn", "ddpm"}
EMA_DECAY = 0.998


class EMA:
    """Exponential moving average of a model's floating-point parameters and buffers."""

    def __init__(self, model: torch.nn.Module, decay: float = EMA_DECAY):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model):
        # Warm-up: early on the average follows the weights closely, so short runs (and
        # the start of long ones) are not dominated by the random initialisation.
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v, 1.0 - decay)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, model):
        model.load_state_dict(self.shadow)


def train(model_name: str, data, out, *, epochs: int = 20, batch_size: int = 16,
          lr: float = 2e-3, seed: int = 0, device: str = "auto", resume: bool = False,
          max_minutes: float | None = None, crop: int = 64, config: dict | None = None,
          checkpoint_minutes: float = 5.0, progress: bool = False,
          overwrite: bool = False, init=None, keep_best: bool = False,
          ema: bool | None = None) -> dict:
    """Train a network and write ``OUT.safetensors``, ``OUT.json``, ``OUT.csv``, ``OUT.png``.

    Parameters
    ----------
    model_name : {'unet', 'cinn', 'ddpm'}
    data : path
        Dataset from ``nhpipe make-dataset``.
    out : path
        Output stem, e.g. ``models/unet``; ``OUT.ckpt`` holds the checkpoint.
    epochs : int
        Passes over the training regions (each region seen once per epoch in one of its
        8 dihedral symmetries, as a random ``crop`` x ``crop`` cut).
    batch_size, lr, seed, device
        Adam's batch and learning rate (cosine-decayed to 5 %); the seed of the weights,
        batches and noise; where to train.
    resume : bool
        Continue from ``OUT.ckpt``.
    max_minutes : float, optional
        Stop (and save) after this wall-clock time, whatever ``epochs`` says.
    crop : int
        Side of the random training crops in pixels (convolutions are translation-
        equivariant, so 64-px crops train a 128-px model at a quarter of the cost).
    config : dict, optional
        Architecture options overriding the defaults of the model's config class.
    overwrite : bool
        Replace existing weights or card at ``out`` (never done silently; ``resume``
        continues a run and replaces them at its end).
    init : path, optional
        Stem of a trained network of the same kind (e.g. ``models/unet``) to start from
        instead of random weights: its config and normaliser are kept (the weights
        predict in its units; spread and offset are reset for a new calibration),
        so ``config`` must be None. The card records where the run started and the
        training time of both.
    keep_best : bool
        Ship the weights of the epoch with the lowest validation loss (on the data set's
        own val split, never on another family), not the last ones: early stopping
        without stopping, so a run that starts to learn its generator's particulars
        after some epochs keeps the epoch before. The card records which epoch.
    ema : bool, optional
        Validate and ship an exponential moving average of the weights (decay
        :data:`EMA_DECAY`); default: for the networks of :data:`EMA_MODELS`.

    Returns
    -------
    dict : the model card written.
    """
    out = Path(out)
    _check_options(model_name, out, epochs=epochs, batch_size=batch_size, lr=lr,
                   overwrite=overwrite, resume=resume, init=init, config=config)
    if model_name == "powerlaw":
        return fit_powerlaw_card(data, out)
    torch_device = resolve_device(device)
    ckpt_path = out.with_suffix(".ckpt")
    if resume and not ckpt_path.is_file():
        raise InputError(f"`resume`: no checkpoint {ckpt_path}")

    started = None
    if init is not None:  # before the data set loads: a refusal costs nothing
        model, started = _trained_network(model_name, init, data)
    generator = torch.Generator().manual_seed(seed)
    train_set = RegionDataset(data, "train", augment=True, crop=crop, generator=generator)
    log_nh, log_nm = train_set.log_nh, train_set.log_nm
    val = _validation_split(data)
    if len(log_nh) == 0:
        raise InputError(f"{data}: the train and val splits must not be empty")
    if init is None:
        model = _initial_network(model_name,
                                 {"beam_range": _beam_range(data), **(config or {})},
                                 log_nh, log_nm, seed)
    model = model.to(torch_device)
    run = _Run(model_name, model, lr, generator,
               torch.Generator(device=torch_device).manual_seed(seed + 1), keep_best,
               model_name in EMA_MODELS if ema is None else ema)
    if resume:
        run.restore(ckpt_path, torch_device)
    steps_per_epoch = max(1, len(log_nh) // batch_size)
    total_steps = epochs * steps_per_epoch

    def schedule(step):
        # Cosine decay over the steps or over the time limit, whichever ends first.
        done = step / total_steps
        if max_minutes:
            done = max(done, run.elapsed / (60 * max_minutes))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))

    start = time.monotonic() - run.elapsed
    last_ckpt = time.monotonic()
    running, count = 0.0, 0
    bar = tqdm(total=total_steps, initial=run.step, unit="step", disable=not progress,
               desc=f"train {model_name}")
    stopped_early = False
    while run.step < total_steps:
        index = torch.randint(len(log_nh), (batch_size,), generator=generator)
        x, y, beam = (torch.stack(t).to(torch_device)
                      for t in zip(*(train_set[i] for i in index.tolist())))
        loss = run.update(x, y, beam, lr * schedule(run.step))
        running += loss
        count += 1
        bar.update(1)
        bar.set_postfix(loss=f"{running / count:.4f}")
        run.elapsed = time.monotonic() - start
        end_of_epoch = run.step % steps_per_epoch == 0 or run.step == total_steps
        out_of_time = max_minutes is not None and run.elapsed > 60 * max_minutes
        if end_of_epoch or out_of_time:
            bar.write(run.end_epoch(running / count, steps_per_epoch,
                                    _validation_loss(model, run.ema, val, torch_device, seed)))
            running, count = 0.0, 0
        if time.monotonic() - last_ckpt > 60 * checkpoint_minutes or out_of_time:
            run.save(ckpt_path)
            last_ckpt = time.monotonic()
        if out_of_time:
            stopped_early = True
            break
    bar.close()
    run.save(ckpt_path)
    if run.best is not None:
        model.load_state_dict(run.best["state"])
    elif run.ema is not None:
        run.ema.copy_to(model)
    training = {"data": Path(data).name, "data_sha256": sha256_file(data),
                "data_recipe": load_recipe(data), "seed": seed, "batch_size": batch_size,
                "lr": lr, "crop_px": crop, "stopped_by_time_limit": stopped_early,
                **run.record(steps_per_epoch, torch_device)}
    if started is not None:
        training["initialised_from"] = started
        training["total_time_s"] = round(started["total_time_s"] + run.elapsed, 1)
    _write_curves(out, run.rows)
    return save_network(model.cpu(), out, {
        "name": model_name, "nhpipe_version": __version__, "config": model.card()["config"],
        "normaliser": model.card()["normaliser"], "training": training, "metrics": {}})


def _check_options(model_name, out: Path, *, epochs, batch_size, lr, overwrite, resume,
                   init=None, config=None):
    """Refuse bad training options and an unasked replacement of weights, before any work."""
    existing = [p for p in (out.with_suffix(".safetensors"), out.with_suffix(".json"))
                if p.exists()]
    if existing and not (overwrite or resume):
        raise InputError(f"{existing[0]} exists: pass `overwrite=True` to replace it (or train to "
                         "another `out`)")
    if model_name != "powerlaw" and model_name not in NETWORKS:
        raise InputError(f"`model_name` must be one of powerlaw, {', '.join(NETWORKS)}, got "
                         f"{model_name!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise InputError(f"`{name}` must be at least 1, got {value!r}")
    if not lr > 0:
        raise InputError(f"`lr` must be positive, got {lr!r}")
    if init is not None and model_name == "powerlaw":
        raise InputError("`init`: the power law is fitted in closed form, not trained from "
                         "weights: leave `init` out")
    if init is not None and config:
        raise InputError("`init` keeps the config of the network it starts from: "
                         "leave `config` out")
    if not out.parent.is_dir():
        raise InputError(f"output directory {out.parent} does not exist: create it first")


class _Run:
    """The state of one training run: network, optimiser, EMA, random streams, progress;
    one optimiser step at a time, saved to and restored from a checkpoint."""

    def __init__(self, model_name, model, lr, generator, noise_gen, keep_best=False,
                 ema=False):
        self.name, self.model, self.generator, self.noise_gen = model_name, model, generator, \
            noise_gen
        self.optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        self.ema = EMA(model) if ema else None
        self.step, self.elapsed, self.rows = 0, 0.0, []
        self.keep_best = keep_best
        self.best = None  # {"step", "epoch", "val_loss", "state"} of the best epoch so far

    def identity(self) -> str:
        """Model name and config: a checkpoint resumes only the same network."""
        return json.dumps({"name": self.name, "config": self.model.card()["config"]},
                          sort_keys=True)

    def update(self, x, y, beam, lr: float) -> float:
        """One optimiser step on a batch (x: log10 N_H, y: log10 <n_H>_m, beam in px)."""
        self.model.train()
        # The targets are residuals about the power law of the raw log10 N_H.
        r = self.model.normaliser.targets(y, x)
        x = self.model.inputs(x, beam)
        for group in self.optimiser.param_groups:
            group["lr"] = lr
        loss = self.model.loss(x, r, self.noise_gen)
        if not torch.isfinite(loss):
            raise RuntimeError(f"training diverged at step {self.step} (loss {loss.item()})")
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimiser.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        return loss.item()

    def end_epoch(self, train_loss: float, steps_per_epoch: int, val_loss: float) -> str:
        """Record the losses of an epoch (or of the last steps before the time limit)."""
        self.rows.append({"step": self.step, "epoch": round(self.step / steps_per_epoch, 3),
                          "train_loss": train_loss, "val_loss": val_loss,
                          "elapsed_s": round(self.elapsed, 1)})
        if self.keep_best and (self.best is None or val_loss < self.best["val_loss"]):
            # The weights the validation loss was measured with (the EMA's, if any).
            state = self.ema.shadow if self.ema is not None else self.model.state_dict()
            self.best = {"step": self.step, "epoch": self.rows[-1]["epoch"],
                         "val_loss": val_loss,
                         "state": {k: v.detach().cpu().clone() for k, v in state.items()}}
        return f"step {self.step}: train {train_loss:.4f} val {val_loss:.4f}"

    def record(self, steps_per_epoch: int, device) -> dict:
        """What the model card says of this run's progress and machine."""
        return {
            "epochs_done": round(self.step / steps_per_epoch, 2), "steps": self.step,
            "ema": self.ema is not None, "optimizer": "Adam, cosine decay, grad-norm clip 1.0",
            "time_s": round(self.elapsed, 1), "device": _device_name(device),
            "threads": torch.get_num_threads(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "final_val_loss": self.rows[-1]["val_loss"] if self.rows else None,
            "kept": "last epoch" if self.best is None else
            {"best_validation_epoch": self.best["epoch"], "step": self.best["step"],
             "val_loss": self.best["val_loss"]},
        }

    def save(self, path: Path) -> None:
        from ._write import atomic_path

        payload = {"identity": self.identity(), "model": self.model.state_dict(),
                   "optimiser": self.optimiser.state_dict(),
                   "generator": self.generator.get_state(),
                   "noise_gen": self.noise_gen.get_state(), "step": self.step,
                   "elapsed": self.elapsed, "rows": json.dumps(self.rows)}
        if self.ema is not None:
            payload["ema"] = self.ema.shadow
        if self.best is not None:
            payload["best"] = self.best
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    def restore(self, path: Path, device) -> None:
        saved = torch.load(path, map_location=device, weights_only=True)
        if saved.get("identity") != self.identity():
            raise InputError(f"`resume`: checkpoint {path} is of another model or "
                             f"config ({saved.get('identity', 'not recorded')}); train "
                             "afresh without `resume` or use the same `model_name` and `config`")
        if ("ema" in saved) != (self.ema is not None):
            raise InputError(f"`resume`: checkpoint {path} was trained "
                             f"{'with' if 'ema' in saved else 'without'} an EMA of the "
                             "weights: resume with the same `ema`")
        self.model.load_state_dict(saved["model"])
        self.optimiser.load_state_dict(saved["optimiser"])
        if self.ema is not None:
            self.ema.shadow = saved["ema"]
            self.ema.updates = int(saved["step"])
        # Generator states are CPU byte tensors even for a CUDA generator; map_location
        # moved them to the device, where set_state refuses them.
        self.generator.set_state(saved["generator"].cpu())
        self.noise_gen.set_state(saved["noise_gen"].cpu())
        self.step, self.elapsed = int(saved["step"]), float(saved["elapsed"])
        self.rows = json.loads(saved["rows"])
        self.best = saved.get("best")  # saved as kept: numbers and a CPU state
        if self.best is not None:  # map_location may have moved the state to the device
            self.best["state"] = {k: v.cpu() for k, v in self.best["state"].items()}


def fit_powerlaw_card(data, out) -> dict:
    """Refit the power-law baseline on the train split and write its model card OUT.json.

    ``nhpipe run --model powerlaw`` then uses the fitted a, b and sigma.
    """
    from .cards import write_card
    from .models.analytic import fit_powerlaw

    log_nh, log_nm, _ = load_split(data, "train")
    config = fit_powerlaw(log_nh, log_nm)
    card = {"name": "powerlaw", "nhpipe_version": __version__, "config": asdict(config),
            "training": {"data": Path(data).name, "data_sha256": sha256_file(data),
                         "data_recipe": load_recipe(data), "fit": "least squares on every "
                         "pixel of the train split; sigma = rms residual (dex)"}}
    return write_card(out, card)


def _initial_network(model_name, config, log_nh, log_nm, seed):
    """The untrained network, its normaliser fitted on the training split."""
    normaliser = Normaliser.fit(log_nh[:, ::4, ::4], log_nm[:, ::4, ::4])
    # The initial weights come from torch's global generator; seed it inside a fork so
    # that the caller's random state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        return build_network(model_name, config, normaliser)


def _trained_network(model_name, init, data):
    """A trained network to continue from, and what its card says of how it was made.

    Refused when ``data`` holds beams outside the network's beam range: the run would teach
    it beams that ``nhpipe run`` then refuses (the range is part of the kept config).
    """
    stem = Path(init)
    card = read_card(stem)
    if card["name"] != model_name:
        raise InputError(f"`init`: {stem} is a {card['name']}, not a {model_name}")
    model = load_model(model_name, path=stem)
    have, need = model.beam_range, _beam_range(data)
    if bool(have) != bool(need) or (have and not have[0] <= need[0] <= need[1] <= have[1]):
        def say(r):
            return f"beams of {r[0]:.3g}-{r[1]:.3g} px" if r else "a single beam"
        raise InputError(f"`init`: {stem} was trained on {say(have)}, {data} holds "
                         f"{say(need)}: train from scratch for other beams")
    # The calibration was fitted for the old weights: the new ones are calibrated afresh.
    model.config = replace(model.config, **RAW_CALIBRATION)
    previous = card.get("training", {})
    started = {"stem": stem.name, "sha256": model.checksum,
               "data": previous.get("data"), "data_sha256": previous.get("data_sha256"),
               "data_recipe": previous.get("data_recipe"),
               "steps": previous.get("steps"), "time_s": previous.get("time_s"),
               "total_time_s": previous.get("total_time_s", previous.get("time_s", 0.0))}
    if previous.get("initialised_from"):  # a card of a third stage keeps the first two
        started["initialised_from"] = previous["initialised_from"]
    return model, started


def _validation_split(data):
    """(log10 N_H, log10 <n_H>_m, beam in px) of the val split; refused when empty."""
    val_nh, val_nm, _ = load_split(data, "val")
    if len(val_nh) == 0:
        raise InputError(f"{data}: the train and val splits must not be empty")
    return val_nh, val_nm, load_meta(data, "val")["beam_px"].astype(np.float32)


@torch.no_grad()
def _validation_loss(model, ema, val, device, seed, n=32):
    """Loss on a fixed subset of the validation split, with the EMA weights if any.

    ``val`` is (log10 N_H, log10 <n_H>_m, beam in px) of the split.
    """
    backup = None
    if ema is not None:
        backup = {k: v.clone() for k, v in model.state_dict().items()}
        ema.copy_to(model)
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed + 12345)
    val_nh, val_nm, val_beam = val
    # Spread over the split, not its first regions, which may share one kind of cloud.
    index = torch.from_numpy(np.linspace(0, len(val_nh) - 1, min(n, len(val_nh))).astype(int))
    losses = []
    for chunk in index.split(8):
        rows = chunk.numpy()
        x = torch.from_numpy(val_nh[rows])[:, None].to(device)
        y = torch.from_numpy(val_nm[rows])[:, None].to(device)
        beam = torch.from_numpy(val_beam[rows]).to(device)
        losses.append(model.loss(model.inputs(x, beam), model.normaliser.targets(y, x),
                                 generator).item())
    if backup is not None:
        model.load_state_dict(backup)
    return float(np.mean(losses))


def _beam_range(data):
    """The beam range (model px) a data set's inputs were drawn from, or None for the
    first generator's single-beam files (networks trained on those are not conditioned)."""
    observation = load_recipe(data).get("observation")
    return list(observation["beam_px"]) if observation else None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _write_curves(out: Path, rows):
    from ._write import atomic_path

    with atomic_path(out.with_suffix(".csv")) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["step", "epoch", "train_loss", "val_loss", "elapsed_s"])
        writer.writeheader()
        writer.writerows(rows)
    if not rows:
        return
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], label="train")
    ax.plot([r["epoch"] for r in rows], [r["val_loss"] for r in rows], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(out.name)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
