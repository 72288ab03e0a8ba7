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
import os
from pathlib import Path

import torch

from ..errors import InputError
from ..cards import read_card
from ._common import Normaliser, load_weights
from .analytic import ConstantWidth, PowerLaw, PowerLawConfig
from .cinn import CINN, CINNConfig
from .ddpm import DDPM, DDPMConfig
from .unet import HeteroUNet, UNetConfig

#: Analytic models, built from their default configuration.
ANALYTIC = {"powerlaw": PowerLaw, "width": ConstantWidth}

#: Trained networks: name -> (config class, model class).
NETWORKS = {"unet": (UNetConfig, HeteroUNet), "cinn": (CINNConfig, CINN),
            "ddpm": (DDPMConfig, DDPM)}


def models_dir() -> Path:
    """Folder of the weights: $NHPIPE_MODELS, else the shipped ones.

    In the repository they live in ``models/``; a wheel (and any non-editable install)
    carries them as package data in ``nhpipe/weights/`` (pyproject maps the package
    ``nhpipe.weights`` to ``models/``), so every install finds them without a download.
    """
    if os.environ.get("NHPIPE_MODELS"):
        return Path(os.environ["NHPIPE_MODELS"])
    package = Path(__file__).resolve().parents[1]
    installed = package / "weights"
    return installed if installed.is_dir() else package.parent / "models"


def available() -> list[str]:
    """Names accepted by :func:`load_model`."""
    return sorted(ANALYTIC) + sorted(NETWORKS)


def build_network(name: str, config: dict | None, normaliser: Normaliser):
    """A fresh (untrained) network from its name, config dict and normaliser."""
    config_cls, model_cls = NETWORKS[name]
    return model_cls(config_cls(**(config or {})), normaliser)


def load_model(name: str, *, device: str | torch.device = "cpu", path=None):
    """Build a registered model by name and move it to ``device``.

    Networks are rebuilt from their model card and safetensors weights in
    :func:`models_dir` (or ``path``, a file stem ``DIR/NAME``); the weights' sha256 is
    checked first. ``powerlaw`` needs its fitted card (``powerlaw.json``, written by
    ``nhpipe train --model powerlaw``): without it the model is refused, never built from
    placeholder coefficients. ``width`` has no fitted parameter.

    Returns
    -------
    model : nn.Module
        In eval mode, on ``device``, with a ``checksum`` attribute: the sha256 of its
        weights file, or of its configuration for analytic models; networks also have
        ``systematic_dex``, their card's bias spread between cloud families (dex; None
        when the card has no evaluation).
    """
    if name not in ANALYTIC and name not in NETWORKS:
        raise InputError(f"unknown model {name!r}: choose one of {', '.join(available())}")
    stem = Path(path) if path is not None else models_dir() / name
    if name in NETWORKS:
        card = read_card(stem)
        state = load_weights(stem, card)
        # Building draws initial weights from torch's global generator; they are replaced
        # by the file's, so the draws happen in a fork that leaves the caller's state.
        with torch.random.fork_rng(devices=[]):
            model = build_network(name, card["config"], Normaliser(**card["normaliser"]))
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"weights of {name} do not fit its card ({exc})") from None
        model.checksum = card["sha256"]
        # The bias spread between cloud families that `nhpipe evaluate --write-card`
        # measured (None before an evaluation): outputs state it beside their intervals.
        model.systematic_dex = (card.get("metrics") or {}).get("systematic_dex")
        return model.to(device).eval()
    if name == "powerlaw":
        model = PowerLaw(PowerLawConfig(**read_card(stem)["config"]))
    else:
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
        raise InputError("`device='cuda'` asked but no CUDA GPU is visible: use `device='cpu'`")
    return torch.device(device)
