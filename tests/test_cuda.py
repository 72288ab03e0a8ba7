"""The same code on a CUDA GPU: inference agrees with the CPU, training and resuming work.

These tests run only where torch sees a CUDA device (CI has none: they are skipped there
and run on GPU machines; the README's "GPU" section says where they last ran). The CPU
and the GPU draw different random numbers from the same seed, so the maps are compared
as Monte-Carlo estimates: their difference must be the sampling noise of ``samples``
draws, not a bias.
"""

import numpy as np
import pytest
import torch
from astropy.wcs import WCS

import nhpipe
from nhpipe.models import load_model

from .conftest import beam_hdu
from .test_models import TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("name", ["unet", "cinn", "ddpm"])
def test_shipped_networks_on_cuda_agree_with_the_cpu(name):
    """float32 on both: same planes, same WCS, MEAN equal within the Monte-Carlo noise."""
    hdu = beam_hdu((300, 280), peak=3e22)
    runs = {device: nhpipe.estimate(hdu, distance="400pc", species="H2", model=name,
                                    samples=64, seed=1, device=device, precision="float32")
            for device in ("cpu", "cuda")}
    cpu, gpu = runs["cpu"], runs["cuda"]
    assert [h.name for h in cpu] == [h.name for h in gpu]
    assert gpu[0].header["DEVICE"] == "cuda"
    assert WCS(gpu["MEAN"].header).wcs.compare(WCS(cpu["MEAN"].header).wcs)
    mean_cpu, mean_gpu = cpu["MEAN"].data, gpu["MEAN"].data
    assert np.array_equal(np.isfinite(mean_cpu), np.isfinite(mean_gpu))
    diff = mean_gpu - mean_cpu
    # The sample mean of 64 draws of spread STD differs between two independent runs by
    # about STD * sqrt(2 / 64): allow 3 of that per pixel on average, no bias beyond it.
    noise = np.nanmedian(cpu["STD"].data) * np.sqrt(2 / 64)
    assert np.sqrt(np.nanmean(diff ** 2)) < 3 * noise
    assert abs(np.nanmean(diff)) < noise
    spread = np.nanmedian(gpu["STD"].data) / np.nanmedian(cpu["STD"].data)
    assert 0.9 < spread < 1.1


def test_statistics_on_cuda_equal_the_cpu_ones():
    from nhpipe.summarise import summarise

    samples = torch.randn((64, 128, 128), generator=torch.Generator().manual_seed(0),
                          dtype=torch.float64) * 0.3 + 3.0
    np.testing.assert_allclose(summarise(samples.float().cuda()), summarise(samples.float()),
                               rtol=1e-6, atol=1e-6)


def test_same_seed_same_map_on_cuda():
    hdu = beam_hdu((120, 110), peak=3e22)
    a, b = (nhpipe.estimate(hdu, distance="400pc", species="H2", model="ddpm", samples=8,
                            seed=5, device="cuda")["MEAN"].data for _ in range(2))
    assert np.array_equal(a, b, equal_nan=True)


def test_training_on_cuda_resumes_and_loads_on_the_cpu(tmp_path):
    from nhpipe.data import make_dataset
    from nhpipe.train import train

    data = make_dataset(tmp_path / "tiny.h5", n_cubes=4, seed=3, family="v1")
    out = tmp_path / "unet"
    options = dict(batch_size=4, seed=0, device="cuda", crop=32, config=TINY["unet"])
    first = train("unet", data, out, epochs=1, **options)["training"]
    assert first["device"].startswith("cuda")
    card = train("unet", data, out, epochs=2, resume=True, **options)
    assert card["training"]["steps"] == 2 * first["steps"]
    model = load_model("unet", path=out, device="cpu")
    with torch.inference_mode():
        draws = model.sample(torch.full((1, 1, 64, 64), 22.0), 2,
                             torch.Generator().manual_seed(0), beam_px=4.0)
    assert torch.isfinite(draws).all()
