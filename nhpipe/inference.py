"""The one batched sampling loop: patches of log10 N_H in, samples of log10 <n_H>_m out.

Used by the pipeline (:func:`nhpipe.pipeline.infer_map`), ``nhpipe evaluate`` and
``nhpipe calibrate``, so that all three see the model exactly alike.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def sample_batches(model, log_nh: np.ndarray, n_samples: int, generator: torch.Generator, *,
                   beam_px=None, batch_size: int = 8):
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

    Yields
    ------
    start : int
        Index of the first patch of the batch.
    samples : ndarray, shape (b, n_samples, H, W), float32
        log10 <n_H>_m (cm-3).
    seconds : float
        Time spent in the model call (synchronised on CUDA).
    """
    device = generator.device
    beams = None if beam_px is None else np.array(np.broadcast_to(
        np.asarray(beam_px, dtype=np.float32), (len(log_nh),)))
    with torch.inference_mode():
        for start in range(0, len(log_nh), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(
                log_nh[start:start + batch_size], dtype=np.float32))[:, None].to(device)
            beam = None if beams is None else torch.from_numpy(
                np.ascontiguousarray(beams[start:start + batch_size])).to(device)
            t0 = time.perf_counter()
            out = model.sample(x, n_samples, generator, beam_px=beam)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            yield start, out[:, :, 0].float().cpu().numpy(), seconds
