"""Stage *regrid*: put a map on a model's physical pixel at the cloud's distance, and back.

The networks are trained on regions of 128 pixels of 0.026 pc (3.33 pc / 128).  An
observed map is resampled so that one pixel spans the model's physical size at the
given distance (0.026 pc at 400 pc is 13.4").
"""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import pixel_to_pixel, proj_plane_pixel_scales
from scipy import ndimage
from tqdm.auto import tqdm
from reproject import reproject_exact
from reproject.mosaicking import find_optimal_celestial_wcs

from .units import pixel_scale_deg

#: A regridded pixel is blank when less than this fraction of its area had valid input.
MIN_VALID_FRACTION = 0.5


def model_grid(wcs: WCS, shape: tuple[int, int], *, pixel_pc: float, distance_pc: float):
    """The model's grid covering a map: a north-up TAN projection in the map's own frame.

    Parameters
    ----------
    wcs : WCS
        Celestial WCS of the input map (any projection, rotation, flip or SIP).
    shape : (ny, nx)
        Shape of the input map.
    pixel_pc : float
        Physical pixel size of the model, in pc.
    distance_pc : float
        Distance to the cloud, in pc.

    Returns
    -------
    wcs_out : WCS
        TAN WCS with square pixels of ``pixel_pc / distance_pc`` radians, in the frame
        of the input (ICRS/FK5 or Galactic), north up and east left.
    shape_out : (ny, nx)
        The smallest shape that covers the input's footprint, plus one pixel each side.
    """
    if not pixel_pc > 0:
        raise ValueError(f"pixel_pc must be positive, got {pixel_pc!r}")
    if not distance_pc > 0:
        raise ValueError(f"distance_pc must be positive, got {distance_pc!r}")
    resolution = pixel_scale_deg(pixel_pc, distance_pc) * u.deg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs_out, shape_out = find_optimal_celestial_wcs(
            [(tuple(shape), wcs)], resolution=resolution, projection="TAN"
        )
    # One spare pixel on each side keeps the input's edge pixels between model pixel
    # centres, so results interpolated back to the input grid reach its edges.
    wcs_out.wcs.crpix = wcs_out.wcs.crpix + 1
    return wcs_out, tuple(int(n) + 2 for n in shape_out)


def resample(image: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out: tuple[int, int], *,
             progress: bool = False):
    """Resample a map onto another celestial grid, blank-aware.

    Where output pixels are larger than input pixels (the usual case: Herschel maps have
    3" to 14" pixels and the model's pixel is 13" to 20"), the exact spherical-polygon
    overlap average of ``reproject_exact`` is used.  It averages every input pixel in
    proportion to the area it shares with the output pixel, so the mean column density,
    hence the mass, in each output pixel is conserved and nothing aliases; bilinear
    decimation, by contrast, samples 1 input pixel in 10 and keeps noise and beam-scale
    spikes.  Where output pixels are smaller (mapping results back to a finer input grid)
    bilinear interpolation (:func:`interpolate`) gives a smooth map instead of blocks. The
    exact average runs on strips of input rows (:data:`STRIP_ROWS`), which bounds its
    memory whatever the size of the map.

    Blank input pixels (NaN) are handled as a normalised convolution: the data with
    blanks set to 0 and the valid-pixel mask are resampled alike and divided, and an
    output pixel with less than ``MIN_VALID_FRACTION`` valid area is blank.

    Parameters
    ----------
    image : ndarray, shape (ny, nx) or (k, ny, nx)
        Values to resample (several planes share one resampling of the mask).
    wcs_in, wcs_out : WCS
        Celestial WCS of the input and output.
    shape_out : (ny, nx)
        Output shape.
    progress : bool
        Progress bar over the strips or blocks (a 10000^2 map takes minutes).

    Returns
    -------
    out : ndarray, shape ``shape_out`` or (k, *shape_out), float64
        Resampled values, NaN where blank.
    valid_fraction : ndarray, shape ``shape_out``
        Fraction (0 to 1) of each output pixel covered by valid input.
    """
    planes = image[None] if image.ndim == 2 else image
    scale_in = float(np.mean(proj_plane_pixel_scales(wcs_in)))
    scale_out = float(np.mean(proj_plane_pixel_scales(wcs_out)))
    shape_out = tuple(shape_out)
    if scale_out >= scale_in:
        resampled = _exact_in_strips(planes, wcs_in, wcs_out, shape_out, progress=progress)
    else:
        resampled = interpolate(_masked_stack(planes), wcs_in, wcs_out, shape_out,
                                dtype=np.float64, progress=progress)
    # In place, plane by plane: no second copy of the (possibly large) output stack.
    np.nan_to_num(resampled, nan=0.0, copy=False)
    valid_fraction = np.clip(resampled[0], 0.0, 1.0)
    keep = valid_fraction >= MIN_VALID_FRACTION
    out = resampled[1:]
    for plane in out:
        np.divide(plane, valid_fraction, out=plane, where=keep)
        plane[~keep] = np.nan
    return (out[0] if image.ndim == 2 else out), valid_fraction


def _masked_stack(planes: np.ndarray) -> np.ndarray:
    """(1 + k, ny, nx) float64: the valid-pixel mask (a pixel is valid when every plane is
    finite there), then the planes with blanks set to 0; resampled alike and divided, they
    give the blank-aware average (see :func:`resample`)."""
    valid = np.all(np.isfinite(planes), axis=0)
    return np.concatenate([valid[None].astype(np.float64), np.where(valid, planes, 0.0)])


#: Input rows per strip of :func:`_exact_in_strips`: reproject_exact holds ~100 bytes per
#: input pixel while it works, so a 10000-px wide map costs ~0.5 GB per strip, not ~10 GB.
STRIP_ROWS = 512


def _exact_in_strips(planes, wcs_in: WCS, wcs_out: WCS, shape_out, *,
                     progress: bool = False) -> np.ndarray:
    """``reproject_exact`` of the valid mask and the blank-zeroed planes, strip by strip.

    Exact overlap averages add up over disjoint parts of the input: each strip gives
    the mean over the area it covers and that area (the footprint), so the sum of
    mean x footprint over strips, divided by the summed footprint, is the mean over the
    whole input, identical to one call on the whole map (to rounding).

    Returns
    -------
    ndarray, shape (1 + k, *shape_out)
        The valid-area fraction, then each plane's mean over its valid area times that
        fraction (the stack :func:`resample` normalises).
    """
    total = np.zeros((1 + len(planes), *shape_out))
    covered = np.zeros(shape_out)
    for y0 in tqdm(range(0, planes.shape[-2], STRIP_ROWS), desc="regrid", unit="strip",
                   disable=not progress, leave=False):
        strip = np.asarray(planes[:, y0:y0 + STRIP_ROWS], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs_strip = wcs_in.slice((slice(y0, y0 + STRIP_ROWS), slice(None)))
        # reproject_exact recomputes the pixel overlaps for every plane it is given, so
        # the valid mask is resampled only for strips that have blanks (its mean is 1
        # wherever a strip without blanks covers).
        blanks = not np.isfinite(strip).all()
        if blanks:
            strip = _masked_stack(strip)
        mean, footprint = reproject_exact((strip, wcs_strip), wcs_out, shape_out=shape_out)
        np.nan_to_num(mean, nan=0.0, copy=False)
        # The footprints of all planes are alike: they share one grid.
        if blanks:
            total += mean * footprint
        else:
            total[0] += footprint[0]
            total[1:] += mean * footprint
        covered += footprint[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(covered > 0, total / covered, np.nan)  # broadcasts over planes


#: Output rows per block of :func:`interpolate`: the pixel mapping of one block (two float64
#: coordinates per pixel) is all it holds besides the output.
BLOCK_ROWS = 256


def interpolate(planes: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out: tuple[int, int],
                *, dtype=np.float32, progress: bool = False) -> np.ndarray:
    """Bilinear values of planes on one grid at the pixel centres of another.

    The way back from the model's grid to a finer input grid. The pixel mapping is
    computed once per block of output rows and serves every plane, and the output is
    allocated once in ``dtype``, so the memory is the output itself plus one block's
    mapping (a whole-map call of ``reproject_interp`` holds float64 planes, their
    footprints and the mapping of every pixel at once). The values are those of
    ``reproject_interp(order='bilinear')`` (tested to 1e-6).

    Parameters
    ----------
    planes : ndarray, shape (k, ny_in, nx_in)
        Values on the ``wcs_in`` grid, without blanks (see :func:`nhpipe.tiling.fill_blanks`).
    wcs_in, wcs_out : WCS
        Celestial WCS of the planes' grid and of the output grid (any frames).
    shape_out : (ny, nx)
    dtype : numpy dtype
        Of the output.
    progress : bool
        Progress bar over the blocks of rows.

    Returns
    -------
    ndarray, shape (k, *shape_out), ``dtype``
        NaN where an output pixel centre falls outside the planes' grid.
    """
    planes = np.asarray(planes)
    ny, nx = shape_out
    out = np.empty((len(planes), ny, nx), dtype=dtype)
    x = np.arange(nx, dtype=np.float64)
    for y0 in tqdm(range(0, ny, BLOCK_ROWS), desc="map back", unit="block",
                   disable=not progress, leave=False):
        rows = np.arange(y0, min(y0 + BLOCK_ROWS, ny), dtype=np.float64)
        xx, yy = np.meshgrid(x, rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            px, py = pixel_to_pixel(wcs_out, wcs_in, xx, yy)
        del xx, yy
        outside = ~((px > -0.5) & (px < planes.shape[-1] - 0.5)
                    & (py > -0.5) & (py < planes.shape[-2] - 0.5))
        coords = np.stack([py.ravel(), px.ravel()])
        for plane, target in zip(planes, out):
            block = target[y0:y0 + len(rows)]
            block.flat[:] = ndimage.map_coordinates(plane, coords, order=1, mode="nearest")
            block[outside] = np.nan
    return out
