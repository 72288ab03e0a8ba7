"""Inference speed of nhpipe's models on this machine, and how close they get to its peak.

For each model: regions/s (one region = one 128 x 128 patch with all its samples), the
median of repeated timed calls after a warm-up, the floating-point operations of one
call (counted by torch.utils.flop_counter) and so the achieved GFLOP/s, next to the
GFLOP/s of a plain float32 matmul measured in the same run.

Each model runs through nhpipe's own sampling loop (:func:`nhpipe.inference.sample_batches`:
channels-last, bfloat16 autocast where asked) at float32 and at the precision ``auto``
picks on this machine, and the DDPM also with ``--ddpm-steps`` sampler steps.

    python benchmarks/speed.py                 # all models with shipped weights
    python benchmarks/speed.py --threads 2 --repeats 5 --out benchmarks/speed.json
"""

import argparse
import json
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from nhpipe.inference import resolve_precision
from nhpipe.models import load_model

SAMPLES = {"powerlaw": 64, "unet": 16, "cinn": 64, "ddpm": 64}


def matmul_gflops(n=1024, repeats=10):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def bench(name, samples, repeats, precision="float32", steps=None):
    import numpy as np

    from nhpipe.inference import sample_batches

    model = load_model(name)
    patch = np.full((1, 128, 128), 21.7, dtype=np.float32)
    gen = torch.Generator().manual_seed(0)

    def call():
        return next(sample_batches(model, patch, samples, gen, beam_px=4.0,
                                   precision=precision, steps=steps))

    call()  # warm-up
    with FlopCounterMode(display=False) as counter:
        call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    flops = counter.get_total_flops()
    return {"model": name, "samples": samples, "precision": precision, "steps": steps,
            "regions_per_s": 1.0 / seconds, "seconds_per_region": seconds,
            "gflop_per_region": flops / 1e9, "gflop_per_s": flops / seconds / 1e9,
            "parameters": sum(p.numel() for p in model.parameters())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(SAMPLES))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ddpm-steps", type=int, default=4,
                        help="also time the DDPM with this many sampler steps")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_gflops()
    fast = resolve_precision("auto", torch.device("cpu"))
    rows = []
    for name in args.models:
        for precision in dict.fromkeys(["float32", fast]):
            rows.append(bench(name, SAMPLES[name], args.repeats, precision))
        if name == "ddpm" and args.ddpm_steps:
            rows.append(bench(name, SAMPLES[name], args.repeats, fast, args.ddpm_steps))
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads; float32 matmul 1024^3: {peak:.1f} GFLOP/s")
    print("| model | samples/region | precision | steps | regions/s | GFLOP/region | GFLOP/s | "
          "% of float32 matmul |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        steps = r["steps"] or ("8 (card)" if r["model"] == "ddpm" else "–")
        print(f"| {r['model']} | {r['samples']} | {r['precision']} | {steps} | "
              f"{r['regions_per_s']:.2f} | "
              f"{r['gflop_per_region']:.2f} | {r['gflop_per_s']:.1f} | "
              f"{100 * r['gflop_per_s'] / peak:.0f} % |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"threads": args.threads, "matmul_gflop_per_s": peak, "models": rows},
                      handle, indent=2)


if __name__ == "__main__":
    main()
