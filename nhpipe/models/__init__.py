"""The model registry: every estimator of <n_H>_m behind one interface.

A model is an ``nn.Module`` with attributes ``name``, ``pixel_pc`` (its physical pixel,
in pc) and ``probabilistic``, a method ``card()`` describing it for provenance, and

    sample(log_nh, n_samples, generator) -> samples

taking log10 N_H (cm-2) of shape (B, 1, 128, 128) and returning log10 <n_H>_m (cm-3)
of shape (B, S, 1, 128, 128).  Models know tensors only: no FITS, WCS or paths.
"""

from __future__ import annotations

import hashlib
import json

import torch

from ..errors import InputError
from .analytic import ConstantWidth, PowerLaw

#: Analytic models, built from their default configuration.
ANALYTIC = {"powerlaw": PowerLaw, "width": ConstantWidth}


def available() -> list[str]:
    """Names accepted by :func:`load_model`."""
    return sorted(ANALYTIC)


def load_model(name: str, *, device: str | torch.device = "cpu"):
    """Build a registered model by name and move it to ``device``.

    Returns
    -------
    model : nn.Module
        In eval mode, on ``device``, with a ``checksum`` attribute: the sha256 of its
        weights file, or of its configuration for analytic models.
    """
    if name not in ANALYTIC:
        raise InputError(f"unknown model {name!r}: choose one of {', '.join(available())}")
    model = ANALYTIC[name]()
    model.checksum = hashlib.sha256(
        json.dumps(model.card(), sort_keys=True).encode()
    ).hexdigest()
    return model.to(device).eval()


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available, else the CPU; 'cuda' without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked but no CUDA GPU is visible: use --device cpu")
    return torch.device(device)
