"""The speed options: bfloat16 autocast, channels-last, --steps, --threads.

Speed itself is measured in benchmarks/, never here; these tests hold the results to the
tolerance the README states and the options to their one-line refusals.
"""

import numpy as np
import pytest

import nhpipe
from nhpipe.errors import InputError
from nhpipe.inference import resolve_precision

from .conftest import beam_hdu


def test_bfloat16_agrees_with_float32_within_the_stated_tolerance():
    """Same seed, same draws: bfloat16 moves the U-Net's MEAN by < 0.02 dex anywhere and
    by < 0.002 dex on average (README: 'Inference precision')."""
    hdu = beam_hdu((64, 56))
    runs = {p: nhpipe.estimate(hdu, distance="400pc", species="H2", model="unet", samples=8,
                               seed=3, precision=p) for p in ("float32", "bfloat16")}
    diff = runs["bfloat16"]["MEAN"].data - runs["float32"]["MEAN"].data
    assert np.nanmax(np.abs(diff)) < 0.02 and abs(np.nanmean(diff)) < 0.002
    assert 0 < np.nanmax(np.abs(diff))  # the bfloat16 path did run
    assert runs["bfloat16"][0].header["PRECISN"] == "bfloat16"
    assert runs["float32"][0].header["PRECISN"] == "float32"


def test_channels_last_changes_nothing_in_float32():
    """The float32 path (channels-last on CPU) reproduces a contiguous-layout call."""
    import torch

    from nhpipe.models import load_model

    model = load_model("cinn")
    x = torch.full((1, 1, 128, 128), 21.7)
    with torch.inference_mode():
        plain = model.sample_normalised(model.inputs(x, 4.0), 4,
                                        torch.Generator().manual_seed(0))
        last = model.sample_normalised(
            model.inputs(x, 4.0).contiguous(memory_format=torch.channels_last), 4,
            torch.Generator().manual_seed(0))
    # The two layouts run different convolution kernels, whose float32 rounding the cINN's
    # inverse coupling layers amplify: up to 6e-4 (normalised units) with one thread.
    torch.testing.assert_close(plain, last, rtol=0, atol=2e-3)


def test_precision_auto_and_refusal():
    import torch

    assert resolve_precision("float32", torch.device("cpu")) == "float32"
    assert resolve_precision("auto", torch.device("cuda")) == "float32"
    assert resolve_precision("auto", torch.device("cpu")) in ("float32", "bfloat16")
    with pytest.raises(InputError, match="`precision` must be one of auto, float32, bfloat16"):
        resolve_precision("half", torch.device("cpu"))


def test_steps_recorded_and_validated(run_cli, write_map, tmp_path):
    hdu = beam_hdu((40, 40))
    hdul = nhpipe.estimate(hdu, distance="400pc", species="H2", model="ddpm", samples=2,
                           steps=2)
    assert hdul[0].header["NSTEPS"] == 2
    assert "NSTEPS" not in nhpipe.estimate(hdu, distance="400pc", species="H2",
                                           model="unet", samples=2)[0].header
    with pytest.raises(InputError, match="`steps` is for the diffusion model"):
        nhpipe.estimate(hdu, distance="400pc", species="H2", model="unet", steps=4)
    path = write_map((40, 40))
    for steps, message in (("0", "--steps must be a whole number from 1 to 100, got 0"),
                           ("101", "--steps must be a whole number from 1 to 100, got 101")):
        status, _, err = run_cli("run", path, "--distance", "400pc", "--species", "H2",
                                 "--model", "ddpm", "--steps", steps,
                                 "--out", tmp_path / "x.fits")
        assert status == 2 and message in err and not (tmp_path / "x.fits").exists()
    status, _, err = run_cli("run", path, "--distance", "400pc", "--species", "H2",
                             "--threads", "0")
    assert status == 2 and "--threads must be at least 1" in err
