"""How much memory a run needs and how many patches go through a network at once.

The pipeline asks :func:`check_memory` before any work, so that a map too large for the
machine is refused with the estimate and what to do, instead of ending in the OOM killer.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .grid import PATCH

#: Peak bytes per pixel of the input grid and of the model grid during a run, and the
#: base (Python, torch, a model). Measured as peak RSS with the unet: a 315^2 Hi-GAL map
#: at 2 kpc on its 1352^2 model grid (``--output-grid model``: few input pixels) peaked at
#: 0.81 GB, ~220 B per model pixel (the statistics stitched as patches arrive);
#: ``benchmarks/endtoend.py`` (3" pixels at 400 pc, 20 input pixels per model pixel):
#: 0.71 GB at 2290^2, 2.51 GB at 6000^2, 5.99 GB at 10000^2, the peak when the ten float32
#: planes are mapped back beside the float64 input (~60 B per input pixel). Rounded up;
#: the sum overestimates (the two parts peak at different stages). Per sample pixel of a
#: batch: the float32 samples, their sorted copy for the quantiles and the entropy
#: histogram.
BYTES_PER_INPUT_PX = 60
BYTES_PER_MODEL_PX = 300
BASE_BYTES = 400_000_000
BYTES_PER_SAMPLE_PX = 16
#: Largest batch of patches, and the memory one batch of samples may take.
MAX_BATCH = 8
BATCH_BYTES = 1 << 30


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


#: Sample images (patches x samples) per network call on a CPU: larger batches spill the
#: caches and run slower per patch (measured on 2 cores, bfloat16: 64 DDPM samples 0.69 s
#: per patch one patch per call, 0.94 s four at a time; 16 U-Net samples fastest at 2-8).
CPU_IMAGES_PER_CALL = 32


def check_memory(input_shape, model_shape, samples: int, *, name: str = "map",
                 available: int | None = None, device_type: str = "cpu") -> int:
    """Refuse a run that cannot fit in memory, before the work; return the batch size.

    The estimate is :data:`BYTES_PER_INPUT_PX` per input pixel, :data:`BYTES_PER_MODEL_PX`
    per model pixel and one batch of samples (``batch x samples x 128^2`` x
    :data:`BYTES_PER_SAMPLE_PX`), the batch shrinking to fit :data:`BATCH_BYTES`, and on a
    CPU to :data:`CPU_IMAGES_PER_CALL` sample images per call.

    Raises
    ------
    InputError
        With the estimate and what to do, when it exceeds 90 % of the available memory.
    """
    per_patch = samples * PATCH * PATCH * BYTES_PER_SAMPLE_PX
    batch = int(max(1, min(MAX_BATCH, BATCH_BYTES // per_patch)))
    if device_type == "cpu":
        batch = min(batch, max(1, CPU_IMAGES_PER_CALL // samples))
    need = (BASE_BYTES + int(np.prod(input_shape)) * BYTES_PER_INPUT_PX
            + int(np.prod(model_shape)) * BYTES_PER_MODEL_PX + batch * per_patch)
    available = available_memory() if available is None else available
    if available is not None and need > 0.9 * available:
        raise InputError(
            f"{name}: this run needs about {need / 1e9:.1f} GB ({np.prod(input_shape):,} "
            f"input pixels, {np.prod(model_shape):,} model pixels, {samples} samples per "
            f"patch) but {available / 1e9:.1f} GB are available: lower `samples`, use "
            "`output_grid='model'`, or cut the map into parts")
    return batch
