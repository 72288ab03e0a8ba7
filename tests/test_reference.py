"""Outputs stay the same for the same seed: a small map against stored reference values.

The reference (tests/data/reference_outputs.npz) was made with the shipped weights on the
CPU; when the weights are retrained on purpose, regenerate it with ``python -m
tests.test_reference`` and say so in the commit. It runs on the CPU everywhere: a CUDA
generator draws other numbers from the same seed (tests/test_cuda.py holds the GPU's maps
to the CPU's within their sampling noise instead).
"""

from pathlib import Path

import numpy as np

import nhpipe

from .conftest import beam_hdu
from .test_catalog import _cores

REFERENCE = Path(__file__).parent / "data" / "reference_outputs.npz"


def outputs() -> dict:
    hdu = beam_hdu((48, 40))
    result = {}
    for model in ("powerlaw", "unet"):
        hdul = nhpipe.estimate(hdu, distance="400pc", species="H2", model=model, samples=4,
                               seed=0, precision="float32", device="cpu")
        result[f"{model}_MEAN"] = hdul["MEAN"].data
        result[f"{model}_STD"] = hdul["STD"].data
    cores = nhpipe.correct_catalog(hdul, _cores([85.5, 85.5005], [-1.0, -1.0003]), ld="10pc")
    result["unet_nc_med"] = np.asarray(cores["nc_med"], float)
    result["unet_nc_lo68"] = np.asarray(cores["nc_lo68"], float)
    return result


def test_outputs_match_the_stored_reference():
    stored = np.load(REFERENCE)
    for name, values in outputs().items():
        np.testing.assert_allclose(values, stored[name], rtol=1e-5, atol=1e-6, err_msg=name)


if __name__ == "__main__":
    np.savez_compressed(REFERENCE, **outputs())
    print(f"wrote {REFERENCE}")
