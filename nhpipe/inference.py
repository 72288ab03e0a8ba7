"""The one batched sampling loop: patches of log10 N_H in, samples of log10 <n_H>_m out.

Used by the pipeline (:func:`nhpipe.pipeline.infer_map`), ``nhpipe evaluate`` and
``nhpipe calibrate``, so that all three see the model exactly alike.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import torch

from .errors import InputError

#: Arithmetic of the network calls: float32 everywhere, or bfloat16 autocast (the
#: convolutions and matrix products in bfloat16, everything else in float32). ``auto`` is
#: bfloat16 on CPUs with native bfloat16 instructions, float32 otherwise; the tolerance
#: that justifies it is measured in the README (``nhpipe evaluate --precision``).
PRECISIONS = ("auto", "float32", "bfloat16")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX512-BF16 or AMX), read from the kernel."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``'float32'`` or ``'bfloat16'`` for ``precision`` on ``device``.

    ``auto`` gives bfloat16 only on CPUs with native support (measured there); on CUDA it
    stays float32: on an H200 bfloat16 autocast was slower for the U-Net and gained at
    most 25 % for the others (benchmarks/gpu_h200.md).
    """
    if precision not in PRECISIONS:
        raise InputError(f"`precision` must be one of {', '.join(PRECISIONS)}, got "
                         f"{precision!r}")
    if precision == "auto":
        return "bfloat16" if device.type == "cpu" and cpu_has_bf16() else "float32"
    return precision


def check_steps(model, steps) -> None:
    """``steps`` (sampler steps) must be a whole number 1-100, for models that take them."""
    if steps is None:
        return
    if not hasattr(getattr(model, "config", None), "steps"):
        raise InputError(f"`steps` is for the diffusion model (ddpm), not {model.name}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) \
            or not 1 <= steps <= 100:
        raise InputError(f"`steps` must be a whole number from 1 to 100, got {steps!r}")


def sample_batches(model, log_nh: np.ndarray, n_samples: int, generator: torch.Generator, *,
                   beam_px=None, batch_size: int = 8, precision: str = "float32",
                   steps: int | None = None, on_device: bool = False):
    """Draw samples for patches, ``batch_size`` patches per model call.

    Parameters
    ----------
    model : registered model (:mod:`nhpipe.models`)
    log_nh : ndarray, shape (N, H, W)
        log10 N_H (cm-2) of each patch, without blanks.
    n_samples : int
    generator : torch.Generator
        On the model's device; the only source of randomness.
    beam_px : float or ndarray of shape (N,), optional
        Beam FWHM of each patch in model pixels (beam-conditioned networks).
    batch_size : int
    precision : {'float32', 'bfloat16'}
        Arithmetic of the network (see :data:`PRECISIONS`; resolve ``auto`` first).
    steps : int, optional
        Sampler steps of the diffusion model (its card's ``steps`` by default).
    on_device : bool
        Yield the samples as a float32 tensor on the generator's device, for statistics
        computed there (:func:`nhpipe.summarise.summarise`), instead of an array.

    Yields
    ------
    start : int
        Index of the first patch of the batch.
    samples : ndarray or torch.Tensor, shape (b, n_samples, H, W), float32
        log10 <n_H>_m (cm-3).
    seconds : float
        Time spent in the model call (synchronised on CUDA).
    """
    device = generator.device
    beams = None if beam_px is None else np.array(np.broadcast_to(
        np.asarray(beam_px, dtype=np.float32), (len(log_nh),)))
    options = {} if steps is None else {"steps": int(steps)}
    # Channels-last is the layout oneDNN's convolutions run fastest in on CPUs (measured:
    # 1.3-1.7x for the three networks); results agree with the default layout to float
    # rounding.
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=precision == "bfloat16")
    with torch.inference_mode(), autocast:
        for start in range(0, len(log_nh), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(
                log_nh[start:start + batch_size], dtype=np.float32))[:, None].to(device)
            beam = None if beams is None else torch.from_numpy(
                np.ascontiguousarray(beams[start:start + batch_size])).to(device)
            t0 = time.perf_counter()
            out = model.sample(x, n_samples, generator, beam_px=beam, **options)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            samples = out[:, :, 0].float()
            yield start, samples if on_device else samples.cpu().numpy(), seconds
