"""Inference speed of nhpipe's models on this machine, and how close they get to its peak.

For each model: regions/s (one region = one 128 x 128 patch with all its samples), the
median of repeated timed calls after a warm-up, the floating-point operations of one
call (counted by torch.utils.flop_counter) and so the achieved GFLOP/s, next to the
GFLOP/s of a plain float32 matmul measured in the same run on the same device.

Each model runs through nhpipe's own sampling loop (:func:`nhpipe.inference.sample_batches`:
channels-last, bfloat16 autocast where asked) at float32 and at the precision ``auto``
picks on this machine (on CUDA: float32 and bfloat16), and the DDPM also with
``--ddpm-steps`` sampler steps. ``--batch`` regions go through the model per call, as
the pipeline batches them (one per call on a CPU, where larger batches spill the caches;
a GPU needs many to be kept busy).

    python benchmarks/speed.py                 # all models with shipped weights
    python benchmarks/speed.py --threads 2 --repeats 5 --out benchmarks/speed.json
    python benchmarks/speed.py --device cuda --batch 8 --out benchmarks/speed_h200.json
"""

import argparse
import json
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from nhpipe.inference import resolve_precision
from nhpipe.models import load_model, resolve_device

SAMPLES = {"powerlaw": 64, "unet": 16, "cinn": 64, "ddpm": 64}


def _synchronise(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device, n=None, repeats=10):
    """GFLOP/s of an n x n float32 matmul on ``device`` (median of ``repeats``); by default
    n = 1024 on a CPU and 8192 on a GPU, where a 1024^3 product is over before it is busy."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    times = []
    for _ in range(repeats):
        _synchronise(device)
        t0 = time.perf_counter()
        a @ b
        _synchronise(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def bench(name, samples, repeats, device, precision="float32", steps=None, batch=1):
    import numpy as np

    from nhpipe.inference import sample_batches

    model = load_model(name, device=device)
    patches = np.full((batch, 128, 128), 21.7, dtype=np.float32)
    gen = torch.Generator(device=device).manual_seed(0)

    def call():
        # sample_batches synchronises on CUDA before it hands the samples back.
        return next(sample_batches(model, patches, samples, gen, beam_px=4.0,
                                   batch_size=batch, precision=precision, steps=steps))

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
            "batch": batch, "regions_per_s": batch / seconds,
            "seconds_per_region": seconds / batch,
            "gflop_per_region": flops / batch / 1e9, "gflop_per_s": flops / seconds / 1e9,
            "parameters": sum(p.numel() for p in model.parameters())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(SAMPLES))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ddpm-steps", type=int, default=4,
                        help="also time the DDPM with this many sampler steps")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch", type=int, nargs="*", default=[1],
                        help="regions per model call (several: one row each)")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    peak = matmul_gflops(device)
    fast = resolve_precision("auto", device)
    precisions = ["float32", "bfloat16"] if device.type == "cuda" else ["float32", fast]
    rows = []
    for batch in args.batch:
        for name in args.models:
            for precision in dict.fromkeys(precisions):
                rows.append(bench(name, SAMPLES[name], args.repeats, device, precision,
                                  batch=batch))
            if name == "ddpm" and args.ddpm_steps:
                rows.append(bench(name, SAMPLES[name], args.repeats, device, precisions[-1],
                                  args.ddpm_steps, batch=batch))
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.processor() or platform.machine()}, {args.threads} threads")
    print(f"{where}, torch {torch.__version__}; float32 matmul: {peak:.1f} GFLOP/s")
    print("| model | samples/region | precision | steps | regions/call | regions/s | "
          "GFLOP/region | GFLOP/s | % of float32 matmul |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        steps = r["steps"] or ("8 (card)" if r["model"] == "ddpm" else "–")
        print(f"| {r['model']} | {r['samples']} | {r['precision']} | {steps} | {r['batch']} | "
              f"{r['regions_per_s']:.2f} | "
              f"{r['gflop_per_region']:.2f} | {r['gflop_per_s']:.1f} | "
              f"{100 * r['gflop_per_s'] / peak:.0f} % |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"device": where, "threads": args.threads, "torch": torch.__version__,
                       "matmul_gflop_per_s": peak, "models": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
