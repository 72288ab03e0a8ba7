"""Would a depth given by the user carry the U-Net to the targets on other families?

The accuracy targets of the honest-networks issue are missed mostly in the depth of the
line of sight, which a map does not show (``information_floor.py``: an in-family oracle
that knows N_H and the depth to within 0.1 dex reaches MSE 0.030 on ``fractal`` and 0.012
on ``mhd``, one that knows only N_H 0.085 and 0.188). An astronomer often has an
estimate of a cloud's depth (its extent on the sky, a 3-D dust map), and ``nhpipe
catalog`` already asks for one (``--ld``). This experiment asks whether a network
trained on our clouds alone can use such an estimate on families it never saw, where the
relation between depth and density (n ~ N / L) is physics rather than a generator's
habit.

The shipped U-Net is continued on the training clouds with two more input channels: the
log10 of a given depth, drawn about the true depth of the region's main cloud
(``cloud_depth_pc``: what an astronomer would estimate; foreground sheets add to the line
of sight's total but hardly to a mass-weighted density) with
a log-normal error of 0-``--max-scatter`` dex (uniform, one draw per crop), and that
error itself; in a quarter of the crops the depth is unknown (both channels at the
values :data:`UNKNOWN` holds), so the same weights also serve maps without one and give
the within-run control. The new channels' first-layer weights start at zero, so at step
0 the network is the shipped U-Net. Then every region of each validation family is read
with the depth unknown and given to 0, 0.1, 0.2 and 0.3 dex (one draw per region, fixed
seed), beside the shipped U-Net on the same pixels; the table gives MSE(log10), mean
error overall and by depth bin, and the raw Gaussian 68 / 95 % coverage (no
recalibration: it would be fitted on other families, as ``nhpipe evaluate`` does).

Not a feature of nhpipe: an experiment, trained on the CPU::

    python benchmarks/depth_prior.py train --data data/clouds.h5 --out runs/depth/unet \\
        --minutes 40 --threads 2
    python benchmarks/depth_prior.py evaluate --weights runs/depth/unet \\
        --data data/fractal.h5 data/mhd.h5 data/turb.h5 data/clouds.h5 \\
        --out docs/experiments/depth_prior
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from nhpipe.data import RegionDataset, load_meta, load_split
from nhpipe.metrics import DEPTH_BINS
from nhpipe.models import load_model
from nhpipe.models._common import RAW_CALIBRATION
from nhpipe.models.unet import HeteroUNet
from nhpipe.train import EMA

from _report import report  # benchmarks/ is the script's folder

#: Depth feature = (log10 L - LOG_DEPTH_CENTRE) / LOG_DEPTH_HALF: about -1..1 over 1-30 pc.
LOG_DEPTH_CENTRE, LOG_DEPTH_HALF = 0.74, 0.74
#: (depth feature, scatter feature) when no depth is given: the centre of the range, with
#: a scatter wider than any given one.
UNKNOWN = (0.0, 3.0)
UNKNOWN_SHARE = 0.25
SCATTERS = (0.0, 0.1, 0.2, 0.3)


class DepthUNet(HeteroUNet):
    """The shipped U-Net's architecture with two more input channels: a given log10
    line-of-sight depth and its error (dex), both as constant planes."""

    @property
    def in_channels(self) -> int:
        return super().in_channels + 2

    def depth_inputs(self, log_nh, beam_px, log_depth, scatter_dex):
        """Network input (B, 4, H, W): log10 N_H (B, 1, H, W), beam (B,) px, and the given
        log10 depth (B,) pc with its error (B,) dex; NaN depth = unknown."""
        x = self.inputs(log_nh, beam_px)
        log_depth = torch.as_tensor(log_depth, dtype=x.dtype)
        scatter = torch.as_tensor(scatter_dex, dtype=x.dtype)
        known = torch.isfinite(log_depth)
        depth_f = torch.where(known, (log_depth - LOG_DEPTH_CENTRE) / LOG_DEPTH_HALF,
                              torch.full_like(log_depth, UNKNOWN[0]))
        scatter_f = torch.where(known, scatter / 0.1, torch.full_like(scatter, UNKNOWN[1]))
        planes = torch.stack([depth_f, scatter_f], dim=1)[:, :, None, None]
        return torch.cat([x, planes.expand(-1, -1, *x.shape[-2:])], dim=1)


def from_shipped(base=None) -> DepthUNet:
    """A DepthUNet equal to ``base`` (default: the shipped U-Net, loaded) with its
    recalibration reset, the new channels' weights at zero."""
    base = load_model("unet") if base is None else base
    model = DepthUNet(replace(base.config, **RAW_CALIBRATION), base.normaliser)
    state = base.state_dict()
    stem = state["net.stem.weight"]
    state["net.stem.weight"] = torch.cat([stem, torch.zeros_like(stem[:, :2])], dim=1)
    model.load_state_dict(state)
    return model


def draw_depths(true_depth_pc, generator, max_scatter):
    """(log10 given depth, scatter dex) for a batch, the scatter uniform in 0-``max_scatter``
    dex: unknown (NaN) in a share :data:`UNKNOWN_SHARE` of it."""
    n = len(true_depth_pc)
    scatter = torch.rand(n, generator=generator) * max_scatter
    log_depth = torch.log10(true_depth_pc) + scatter * torch.randn(n, generator=generator)
    unknown = torch.rand(n, generator=generator) < UNKNOWN_SHARE
    return torch.where(unknown, torch.full_like(log_depth, float("nan")), log_depth), scatter



def train(args):
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = from_shipped()
    generator = torch.Generator().manual_seed(args.seed)
    noise = torch.Generator().manual_seed(args.seed + 1)
    data = RegionDataset(args.data, "train", augment=True, crop=64, generator=generator)
    depth = torch.from_numpy(load_meta(args.data, "train")["cloud_depth_pc"].astype(np.float32))
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    ema, step, elapsed, rows = EMA(model), 0, 0.0, []
    ckpt = out.with_suffix(".ckpt")
    if args.resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        ema.shadow, ema.updates = state["ema"], state["ema_updates"]
        step, elapsed, rows = state["step"], state["elapsed"], json.loads(state["rows"])
        generator.set_state(state["generator"])
        noise.set_state(state["noise"])
    start, last_save, running = time.monotonic() - elapsed, time.monotonic(), []

    def save():
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                    "ema": ema.shadow, "ema_updates": ema.updates, "step": step,
                    "elapsed": elapsed, "rows": json.dumps(rows),
                    "generator": generator.get_state(), "noise": noise.get_state()},
                   ckpt.with_suffix(".tmp"))
        ckpt.with_suffix(".tmp").replace(ckpt)

    while elapsed < 60 * args.minutes:
        model.train()
        index = torch.randint(len(data), (args.batch_size,), generator=generator)
        x, y, beam = (torch.stack(t) for t in zip(*(data[i] for i in index.tolist())))
        log_depth, scatter = draw_depths(depth[index], generator, args.max_scatter)
        r = model.normaliser.targets(y, x)
        inputs = model.depth_inputs(x, beam, log_depth, scatter)
        lr = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed
                                                          / (60 * args.minutes))))
        for group in optimiser.param_groups:
            group["lr"] = lr
        loss = model.loss(inputs, r, noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        ema.update(model)
        step, elapsed = step + 1, time.monotonic() - start
        running.append(loss.item())
        if step % 200 == 0:
            rows.append({"step": step, "minutes": round(elapsed / 60, 2),
                         "loss": float(np.mean(running))})
            print(json.dumps(rows[-1]), flush=True)
            running = []
        if time.monotonic() - last_save > 300:
            save()
            last_save = time.monotonic()
    save()
    ema.copy_to(model)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out.with_suffix(".safetensors")))
    out.with_suffix(".json").write_text(json.dumps(
        {"data": str(args.data), "minutes": args.minutes, "lr": args.lr, "steps": step,
         "max_scatter": args.max_scatter, "unknown_share": UNKNOWN_SHARE,
         "threads": args.threads,
         "seed": args.seed, "init": "shipped unet", "curve": rows}, indent=1))
    print(f"wrote {out.with_suffix('.safetensors')} after {step} steps")


@torch.no_grad()
def predict(model, log_nh, beam, log_depth=None, scatter=None, batch=8):
    """Mean and standard deviation (dex) of log10 <n_H>_m, each (regions, H, W)."""
    model.eval()
    means, stds = [], []
    for s in range(0, len(log_nh), batch):
        x = torch.from_numpy(log_nh[s:s + batch])[:, None]
        b = torch.from_numpy(beam[s:s + batch])
        if log_depth is None:
            inputs = model.inputs(x, b)
        else:
            inputs = model.depth_inputs(x, b, torch.from_numpy(log_depth[s:s + batch]),
                                        torch.from_numpy(scatter[s:s + batch]))
        mean, log_var = model(inputs)
        means.append(model.normaliser.log_density(mean, x)[:, 0].numpy())
        stds.append((model.normaliser.r_std * torch.exp(0.5 * log_var))[:, 0].numpy())
    return np.concatenate(means), np.concatenate(stds)


def scores(mean, std, truth, depth_pc):
    err = mean - truth
    z = np.abs(err) / std
    row = {"mse": float(np.mean(err**2)), "mean_error": float(err.mean()),
           "coverage68": float(np.mean(z < 0.9945)), "coverage95": float(np.mean(z < 1.96))}
    for name, (lo, hi) in DEPTH_BINS.items():
        pick = (lo <= depth_pc) & (depth_pc < hi)
        if pick.any():
            row[name] = {"mse": float(np.mean(err[pick] ** 2)),
                         "mean_error": float(err[pick].mean())}
    return row


def evaluate(args):
    shipped = load_model("unet")
    model = from_shipped(shipped)
    model.load_state_dict(load_file(str(Path(args.weights).with_suffix(".safetensors"))))
    result, lines = {}, [
        "U-Net continued with a given line-of-sight depth (experiment, "
        "`benchmarks/depth_prior.py`). MSE(log10) / mean error (dex) / raw 68 % / 95 % "
        "coverage; then the mean error in the depth bins < 3, 3-10, > 10 pc. No "
        "recalibration (the shipped U-Net is read without its card's offset and factors).",
        "", "| family | reader | MSE | mean error | 68 % | 95 % | mean error by depth |",
        "|---|---|---|---|---|---|---|"]
    rng = np.random.default_rng(args.seed)
    for path in args.data:
        name = Path(path).stem
        split = "test" if len(load_split(path, "test")[0]) else "val"
        log_nh, log_nm, _ = load_split(path, split)
        meta = load_meta(path, split)
        beam = meta["beam_px"].astype(np.float32)
        depth = meta["cloud_depth_pc"].astype(np.float64)  # given, with an error
        depth_px = np.broadcast_to(meta["los_depth_pc"][:, None, None], log_nm.shape)
        unit = rng.standard_normal(len(log_nh))
        readers = {"shipped U-Net": predict(shipped, log_nh, beam),
                   "depth unknown": predict(model, log_nh, beam,
                                            np.full(len(log_nh), np.nan, np.float32),
                                            np.zeros(len(log_nh), np.float32))}
        for s in SCATTERS:
            given = (np.log10(depth) + s * unit).astype(np.float32)
            readers[f"depth to {s:g} dex"] = predict(
                model, log_nh, beam, given, np.full(len(log_nh), s, np.float32))
        result[name] = {"split": split, "regions": len(log_nh)}
        for reader, (mean, std) in readers.items():
            row = result[name][reader] = scores(mean, std, log_nm, depth_px)
            by_depth = ", ".join(f"{row[k]['mean_error']:+.2f}" for k in DEPTH_BINS if k in row)
            lines.append(f"| {name} ({split}) | {reader} | {row['mse']:.3f} | "
                         f"{row['mean_error']:+.3f} | {row['coverage68']:.2f} | "
                         f"{row['coverage95']:.2f} | {by_depth} |")
    report("\n".join(lines), result, args.out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="continue the shipped U-Net with a depth input")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True, help="stem of the weights, e.g. runs/depth/unet")
    t.add_argument("--minutes", type=float, default=40.0)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--max-scatter", type=float, default=0.4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--resume", action="store_true")
    e = sub.add_parser("evaluate", help="read each family with and without a depth")
    e.add_argument("--weights", required=True)
    e.add_argument("--data", nargs="+", required=True)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    (train if args.command == "train" else evaluate)(args)


if __name__ == "__main__":
    main()
