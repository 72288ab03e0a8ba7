"""Training stability: the spread of the final validation loss over seeds, and divergences.

Trains each model with several seeds for the same short wall-clock budget (one thread
each, run side by side), then reports the final validation loss of each seed, their
spread, and how many runs diverged (a non-finite loss stops nhpipe train with an error).

    python benchmarks/stability.py --data data/regions.h5 --models unet cinn ddpm \\
        --seeds 0 1 2 --minutes 4 --out docs/stability
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="+", default=["unet", "cinn", "ddpm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--out", default="stability")
    args = parser.parse_args()
    settings = {"unet": ["--batch-size", "16", "--lr", "2e-3"],
                "cinn": ["--batch-size", "16", "--lr", "5e-4"],
                "ddpm": ["--batch-size", "32", "--lr", "1e-3"]}
    work = Path(tempfile.mkdtemp(prefix="nhpipe-stability-"))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = {}
    for model in args.models:
        procs = {seed: subprocess.Popen(
            [sys.executable, "-m", "nhpipe", "train", "--model", model, "--data", args.data,
             "--out", str(work / f"{model}_{seed}"), "--epochs", "1000", "--seed", str(seed),
             "--max-minutes", str(args.minutes), "--quiet", *settings[model]],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for seed in args.seeds}
        runs = []
        for seed, proc in procs.items():
            _, err = proc.communicate()
            card = work / f"{model}_{seed}.json"
            if proc.returncode == 0 and card.exists():
                training = json.loads(card.read_text())["training"]
                runs.append({"seed": seed, "final_val_loss": training["final_val_loss"],
                             "steps": training["steps"], "diverged": False})
            else:
                runs.append({"seed": seed, "diverged": "diverged" in err,
                             "error": err.strip().splitlines()[-1] if err.strip() else ""})
        losses = [r["final_val_loss"] for r in runs if "final_val_loss" in r]
        results[model] = {"runs": runs, "minutes_each": args.minutes,
                          "val_loss_mean": float(np.mean(losses)) if losses else None,
                          "val_loss_std": float(np.std(losses)) if losses else None,
                          "divergences": sum(bool(r["diverged"]) for r in runs)}
    Path(f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| model | seeds | final val loss, mean ± std | divergences |", "|---|---|---|---|"]
    for model, r in results.items():
        spread = (f"{r['val_loss_mean']:.4f} ± {r['val_loss_std']:.4f}"
                  if r["val_loss_mean"] is not None else "–")
        lines.append(f"| {model} | {len(r['runs'])} | {spread} | {r['divergences']} |")
    lines.append("")
    lines.append(f"Each run: {args.minutes:g} min wall-clock on one CPU thread, runs of a model "
                 "side by side; losses in each model's own units (beta-NLL, NLL per dimension, "
                 "v-prediction MSE), so compare spreads within a row.")
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
