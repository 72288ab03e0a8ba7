"""Model cards: the one place that reads, checks, writes and updates them.

A card ``NAME.json`` sits beside its weights ``NAME.safetensors`` (networks) and holds
the architecture config, the normalisation, the training data recipe, the calibration
and the metrics. Two checksums protect them: ``sha256`` of the weights file, and
``card_sha256`` of the card's own content (its canonical JSON without that key), so an
edited card is refused like edited weights. nhpipe's own commands that update a card
(``calibrate``, ``evaluate --write-card``) rewrite the checksum through :func:`update_card`.
Every card is validated on load (required keys, types, ranges) before any network is
built from it, so a card can neither crash the loader nor ask for a huge network.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import fields
from pathlib import Path

from .errors import InputError

#: Upper bounds of the architecture numbers a card may ask for (a larger network than
#: these is no nhpipe model; the shipped ones are far below).
CONFIG_LIMITS = {"base": 128, "depth": 7, "cond_base": 128, "cond_depth": 7,
                 "cond_channels": 128, "hidden": 512, "den_base": 128, "den_depth": 7,
                 "temb": 512, "train_timesteps": 10_000, "steps": 100, "region_px": 512}


def card_checksum(card: dict) -> str:
    """sha256 of the card's canonical JSON (sorted keys), without ``card_sha256``."""
    body = {k: v for k, v in card.items() if k != "card_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def card_path(stem) -> Path:
    return Path(stem).with_suffix(".json")


def write_card(stem, card: dict) -> dict:
    """Write ``stem.json`` atomically with its ``card_sha256``; returns the card written."""
    from ._write import atomic_path

    card = {k: v for k, v in card.items() if k != "card_sha256"}
    card["card_sha256"] = card_checksum(card)
    with atomic_path(card_path(stem)) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=2) + "\n")
    return card


def update_card(stem, **sections) -> dict:
    """Read a card (checked), replace top-level ``sections``, and write it re-checksummed.

    ``config`` is merged key by key (e.g. ``config={"spread": 1.2}``); other sections
    are replaced whole.
    """
    card = read_card(stem)
    for key, value in sections.items():
        if key == "config":
            card["config"] = {**card["config"], **value}
        else:
            card[key] = value
    return write_card(stem, card)


def read_card(stem) -> dict:
    """Read and validate ``stem.json``; one-line :class:`InputError` for any problem."""
    path = card_path(stem)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no model card {path}: reinstall nhpipe (its weights are package "
                         "data), set NHPIPE_MODELS to a folder of weights, or train the model "
                         "(nhpipe train)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = str(exc).splitlines()[0]
        raise InputError(f"model card {path} cannot be read as JSON ({reason})") from None
    _validate(card, path)
    return card


def _validate(card, path) -> None:
    from .models import ANALYTIC, NETWORKS

    def fail(what):
        raise InputError(f"model card {path}: {what}; reinstall nhpipe or retrain the model")

    if not isinstance(card, dict):
        fail("not a JSON object")
    if card.get("card_sha256") != card_checksum(card):
        fail("its content does not match its card_sha256 (edited or damaged)")
    name = card.get("name")
    if name not in NETWORKS and name not in ANALYTIC:
        fail(f"unknown model name {name!r}")
    if not isinstance(card.get("config"), dict):
        fail("no 'config' object")
    if name in NETWORKS:
        config_cls = NETWORKS[name][0]
        _check_config(card["config"], config_cls, fail)
        if not isinstance(card.get("weights"), str) or "/" in card["weights"] \
                or not card["weights"].endswith(".safetensors"):
            fail("'weights' must name a .safetensors file beside the card")
        if not re.fullmatch(r"[0-9a-f]{64}", str(card.get("sha256", ""))):
            fail("no valid 'sha256' of the weights")
        normaliser = card.get("normaliser")
        keys = ("nh_mean", "nh_std", "a", "b", "r_std")
        if not isinstance(normaliser, dict) or set(normaliser) != set(keys) \
                or not all(_finite_number(normaliser[k]) for k in keys) \
                or normaliser["nh_std"] <= 0 or normaliser["r_std"] <= 0:
            fail("'normaliser' must hold finite nh_mean, nh_std > 0, a, b, r_std > 0")
    terms = card.get("core_terms")
    if terms is not None:
        if not isinstance(terms, list):
            fail("'core_terms' must be a list of model-error terms")
        for term in terms:
            _check_core_term(term, fail)
    correlation = card.get("error_correlation")
    if correlation is not None and not _correlation_ok(correlation):
        fail("'error_correlation' needs ascending positive 'lag_px' and as many 'rho' "
             "values in [-1, 1]")
    if name in NETWORKS:
        edges, factors = (card["config"].get(k) for k in ("spread_edges", "spread_factors"))
        if (edges is not None or factors is not None) \
                and len(factors or []) != len(edges or []) + 1:
            fail("config spread_factors must hold one more value than spread_edges")
    if name == "powerlaw":
        config = card["config"]
        if not {"a", "b", "sigma"} <= set(config) <= {"a", "b", "sigma", "pixel_pc"} \
                or not all(map(_finite_number, config.values())) or config["sigma"] < 0 \
                or config.get("pixel_pc", 1.0) <= 0:
            fail("'config' of powerlaw must hold finite a, b, sigma >= 0 (and pixel_pc > 0)")


def _check_core_term(term, fail) -> None:
    """One model-error term of the core correction (:mod:`nhpipe.cores`): what it was
    fitted for, its pooled offset and scatter, optionally one per bin of envelope ratio
    and contrast."""
    if not isinstance(term, dict) or not isinstance(term.get("method"), str) \
            or not isinstance(term.get("priors"), dict):
        fail("each of 'core_terms' must be an object with a 'method' text and 'priors'")
    if not _finite_number(term.get("offset_dex")) or not _finite_number(term.get("scatter_dex")) \
            or term["scatter_dex"] < 0:
        fail(f"core term {term['method']}: needs finite offset_dex and scatter_dex >= 0")
    bins = term.get("by_profile")
    if bins is not None and not _profile_bins_ok(bins):
        fail(f"core term {term['method']}: 'by_profile' needs ascending finite "
             "envelope_edges and contrast_edges, and offset_dex and scatter_dex >= 0 "
             "tables of one more row and column than edges")
    fitted = term.get("map_calibration")
    if fitted is not None and not (isinstance(fitted, dict)
                                   and all(_finite_number(fitted.get(k))
                                           for k in ("offset", "spread"))):
        fail(f"core term {term['method']}: 'map_calibration' must hold a finite offset "
             "and spread")
    rho = term.get("error_correlation")  # what an n_d=local term was fitted with
    if rho is not None and not (isinstance(rho, list) and rho
                                and all(map(_finite_number, rho))):
        fail(f"core term {term['method']}: 'error_correlation' must be a list of numbers")


def _profile_bins_ok(bins) -> bool:
    """Whether a ``by_profile`` term has ascending edges and full tables of numbers."""
    if not isinstance(bins, dict):
        return False
    edges = [bins.get("envelope_edges"), bins.get("contrast_edges")]
    if not all(isinstance(e, list) and all(map(_finite_number, e))
               and all(b > a for a, b in zip(e, e[1:])) for e in edges):
        return False
    for key in ("offset_dex", "scatter_dex"):
        table = bins.get(key)
        if not (isinstance(table, list) and len(table) == len(edges[0]) + 1
                and all(isinstance(row, list) and len(row) == len(edges[1]) + 1
                        and all(map(_finite_number, row)) for row in table)):
            return False
    return min(min(row) for row in bins["scatter_dex"]) >= 0


def _correlation_ok(entry) -> bool:
    """Whether an ``error_correlation`` (benchmarks/error_correlation.py) can be read:
    the correlation of the network's errors at separations in model pixels."""
    if not isinstance(entry, dict):
        return False
    lags, rho = entry.get("lag_px"), entry.get("rho")
    return isinstance(lags, list) and isinstance(rho, list) and 0 < len(lags) == len(rho) \
        and all(map(_finite_number, lags + rho)) and lags[0] > 0 \
        and all(b > a for a, b in zip(lags, lags[1:])) and all(-1 <= r <= 1 for r in rho)


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and value == value and abs(value) != float("inf")


#: Float config keys that may be zero or negative (all others must be > 0).
_SIGNED = {"beta", "offset"}


def _check_config(config: dict, config_cls, fail) -> None:
    known = {f.name: f for f in fields(config_cls)}
    unknown = set(config) - set(known)
    if unknown:
        fail(f"unknown config keys {sorted(unknown)}")
    defaults = config_cls()
    for key, value in config.items():
        default = getattr(defaults, key)
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) and isinstance(default, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and 0 < value <= CONFIG_LIMITS.get(key, 10_000)
        elif isinstance(default, float):
            ok = _finite_number(value) and (key in _SIGNED or value > 0)
        elif key == "spread_edges":
            ok = value is None or (isinstance(value, list) and len(value) <= 63
                                   and all(map(_finite_number, value))
                                   and all(a < b for a, b in zip(value, value[1:])))
        elif key == "spread_factors":
            ok = value is None or (isinstance(value, list) and 0 < len(value) <= 64
                                   and all(_finite_number(v) and v > 0 for v in value))
        elif key == "beam_range":
            ok = value is None or (isinstance(value, list) and len(value) == 2
                                   and all(map(_finite_number, value)) and 0 < value[0] < value[1])
        elif isinstance(default, list):
            ok = isinstance(value, list) and 0 < len(value) <= 4 and all(
                isinstance(v, int) and 0 < v <= 32 for v in value)
        else:
            ok = False
        if not ok:
            fail(f"config {key}={value!r} is of the wrong type or out of range")
