"""The depth experiments of benchmarks/: the oracles that know a depth, and the U-Net that
is given one, start from what they claim (exact on an analytic family; the shipped
network at step 0)."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import depth_prior  # noqa: E402
import information_floor  # noqa: E402


def test_oracle_knowing_the_depth_is_exact_on_a_slab_family():
    # Uniform slabs: <n_H>_m = N_H / L exactly, so knowing N_H and L leaves no error,
    # N_H alone leaves the spread of the depths, and a noisy depth lies between.
    rng = np.random.default_rng(1)
    regions, pixels = 400, 64
    log_depth = rng.uniform(0.0, 1.5, regions)
    x = rng.uniform(20.5, 23.0, (regions, pixels))
    y = x - log_depth[:, None] - 18.49
    exact = information_floor.cross_fitted_errors(x, y, log_depth)
    noisy = information_floor.cross_fitted_errors(
        x, y, log_depth + 0.2 * rng.standard_normal(regions))
    blind = information_floor.cross_fitted_errors(x, y)
    assert np.mean(exact**2) < 1e-3
    assert np.mean(exact**2) < np.mean(noisy**2) < np.mean(blind**2)
    # a depth known to 0.2 dex leaves about 0.2**2 dex^2 (the bins add a little)
    assert 0.03 < np.mean(noisy**2) < 0.06


def test_depth_unet_starts_as_the_shipped_unet():
    shipped = depth_prior.load_model("unet")
    model = depth_prior.from_shipped()
    log_nh = 21.5 + 0.3 * torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    beam = torch.tensor([2.0, 9.0])
    with torch.no_grad():
        want = shipped(shipped.inputs(log_nh, beam))
        for log_depth in ([np.nan, np.nan], [0.3, 1.2]):
            got = model(model.depth_inputs(log_nh, beam, torch.tensor(log_depth),
                                           torch.tensor([0.1, 0.3])))
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b)
    assert model.in_channels == shipped.in_channels + 2
