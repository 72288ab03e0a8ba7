"""Stages *tile* and *stitch*: overlapping square patches and their seamless blending.

Each patch is blended with a separable window that is exactly zero over a margin at
the patch edge and rises smoothly (sin^2) inside it.  Dividing the weighted sum by the
summed weight makes a constant map stitch exactly, and since the patch edges, where a
convolutional network sees the padding, carry zero weight, a translation-equivariant
model whose receptive field is within the margin gives the whole-map result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .grid import PATCH

#: Default stride between patches, in pixels (half a patch).
DEFAULT_STRIDE = 64
#: Default zero-weight margin at each patch edge, in pixels.
DEFAULT_MARGIN = 16


@dataclass(frozen=True)
class Tiling:
    """Where the patches of one map lie.

    Attributes
    ----------
    shape : (ny, nx)
        Shape of the map.
    size, stride, margin : int
        Patch side, step between patches and zero-weight margin, in pixels.
    origins : ndarray, shape (n_patches, 2)
        (y, x) of each patch's first pixel in the padded frame.
    pad : ((top, bottom), (left, right))
        Padding added around the map.
    """

    shape: tuple[int, int]
    size: int
    stride: int
    margin: int
    origins: np.ndarray
    pad: tuple[tuple[int, int], tuple[int, int]]

    @property
    def padded_shape(self) -> tuple[int, int]:
        (top, bottom), (left, right) = self.pad
        return (self.shape[0] + top + bottom, self.shape[1] + left + right)

    def __len__(self) -> int:
        return len(self.origins)


def plan_tiles(shape, *, size=PATCH, stride=DEFAULT_STRIDE, margin=DEFAULT_MARGIN) -> Tiling:
    """Plan overlapping patches so that every map pixel is inside some patch's core.

    Parameters
    ----------
    shape : (ny, nx)
        Map shape; any size, smaller than a patch included.
    size : int
        Patch side in pixels.
    stride : int
        Step between patch origins, at most ``size - 2 * margin`` so that the weighted
        cores leave no gap.
    margin : int
        Zero-weight border of each patch, in pixels.
    """
    size, stride, margin = int(size), int(stride), int(margin)
    if size < 4:
        raise ValueError(f"size must be at least 4 pixels, got {size!r}")
    if not 0 <= margin < size // 2:
        raise ValueError(f"margin must be in [0, size/2), got {margin!r}")
    if not 1 <= stride <= size - 2 * margin:
        raise ValueError(
            f"stride must be between 1 and {size - 2 * margin} px (patch {size} px "
            f"minus twice the {margin} px margin), got {stride!r}"
        )
    core = size - 2 * margin
    counts, pads = [], []
    for n in shape:
        k = max(1, math.ceil((n - core) / stride) + 1)
        counts.append(k)
        pads.append((margin, (k - 1) * stride + size - margin - n))
    ys = np.arange(counts[0]) * stride
    xs = np.arange(counts[1]) * stride
    origins = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    return Tiling(tuple(shape), size, stride, margin, origins, (pads[0], pads[1]))


def fill_blanks(image: np.ndarray) -> np.ndarray:
    """Replace blank pixels by the nearest valid pixel (networks cannot take NaN).

    Parameters
    ----------
    image : ndarray, shape (..., ny, nx)
        A pixel is blank when any of its leading-axis values is not finite.
    """
    blank = ~np.all(np.isfinite(image), axis=tuple(range(image.ndim - 2)))
    if not blank.any():
        return image.copy()
    if blank.all():
        raise ValueError("cannot fill an image with no valid pixel")
    _, (iy, ix) = ndimage.distance_transform_edt(blank, return_indices=True)
    return image[..., iy, ix]


def tile(image: np.ndarray, tiling: Tiling) -> np.ndarray:
    """Cut a map into patches, reflecting it at the edges.

    Parameters
    ----------
    image : ndarray, shape ``tiling.shape`` (+ leading axes allowed)
        Map without NaN (use :func:`fill_blanks` first).

    Returns
    -------
    ndarray, shape (n_patches, ..., size, size)
    """
    lead = [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, lead + list(tiling.pad), mode="symmetric")
    s = tiling.size
    return np.stack([padded[..., y : y + s, x : x + s] for y, x in tiling.origins])


def blend_window(size=PATCH, margin=DEFAULT_MARGIN) -> np.ndarray:
    """Separable blending weight, shape (size, size): 0 in the margin, sin^2 inside."""
    core = size - 2 * margin
    i = np.arange(size) - margin
    w = np.where((i >= 0) & (i < core), np.sin(np.pi * (i + 0.5) / core) ** 2, 0.0)
    return np.outer(w, w)


def stitch(patches: np.ndarray, tiling: Tiling) -> np.ndarray:
    """Blend patch values back into one map.

    Parameters
    ----------
    patches : ndarray, shape (n_patches, ..., size, size)
        Per-patch values (any leading channel axes, e.g. the summary statistics).

    Returns
    -------
    ndarray, shape (..., ny, nx)
        Weighted mean of the overlapping patches at each pixel.
    """
    if len(patches) != len(tiling):
        raise ValueError(f"expected {len(tiling)} patches, got {len(patches)}")
    blend = Stitcher(tiling, np.shape(patches)[1:-2])
    for index, patch in enumerate(patches):
        blend.add(index, patch)
    return blend.result()


class Stitcher:
    """:func:`stitch` one patch at a time: only the weighted sums of the map are held.

    The pipeline adds each patch's statistics as soon as they are computed, so the
    patches of a whole map are never held together (with 1.8x overlap and nine
    statistics that saved ~250 bytes per model pixel).
    """

    def __init__(self, tiling: Tiling, channels: tuple = ()):
        self.tiling = tiling
        self.window = blend_window(tiling.size, tiling.margin)
        self.total = np.zeros(tuple(channels) + tiling.padded_shape)
        self.weight = np.zeros(tiling.padded_shape)

    def add(self, index: int, patch: np.ndarray) -> None:
        """Blend in patch ``index`` (values of shape (..., size, size))."""
        y, x = self.tiling.origins[index]
        s = self.tiling.size
        self.total[..., y : y + s, x : x + s] += np.asarray(patch, np.float64) * self.window
        self.weight[y : y + s, x : x + s] += self.window

    def result(self) -> np.ndarray:
        """The weighted mean, cropped to the map: shape (..., ny, nx)."""
        (top, _), (left, _) = self.tiling.pad
        ny, nx = self.tiling.shape
        crop = (..., slice(top, top + ny), slice(left, left + nx))
        return self.total[crop] / self.weight[crop[1:]]


def coverage(tiling: Tiling) -> np.ndarray:
    """Number of patches whose non-zero window covers each pixel, shape ``tiling.shape``."""
    inside = blend_window(tiling.size, tiling.margin) > 0
    return _overlay(np.broadcast_to(inside, (len(tiling),) + inside.shape), tiling)


def _overlay(patches: np.ndarray, tiling: Tiling) -> np.ndarray:
    """Sum patches into the padded frame and crop it to the map."""
    total = np.zeros(patches.shape[1:-2] + tiling.padded_shape)
    s = tiling.size
    for patch, (y, x) in zip(patches, tiling.origins):
        total[..., y : y + s, x : x + s] += patch
    (top, _), (left, _) = tiling.pad
    ny, nx = tiling.shape
    return total[..., top : top + ny, left : left + nx]
