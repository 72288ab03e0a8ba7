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
from astropy.wcs.utils import proj_plane_pixel_scales
from reproject import reproject_exact, reproject_interp
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


def resample(image: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out: tuple[int, int]):
    """Resample a map onto another celestial grid, blank-aware.

    Where output pixels are larger than input pixels (the usual case: Herschel maps have
    3" to 14" pixels and the model's pixel is 13" to 20"), the exact spherical-polygon
    overlap average of ``reproject_exact`` is used.  It averages every input pixel in
    proportion to the area it shares with the output pixel, so the mean column density,
    hence the mass, in each output pixel is conserved and nothing aliases; bilinear
    decimation, by contrast, samples 1 input pixel in 10 and keeps noise and beam-scale
    spikes.  Where output pixels are smaller (mapping results back to a finer input grid)
    bilinear interpolation (``reproject_interp``) gives a smooth map instead of blocks.

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

    Returns
    -------
    out : ndarray, shape ``shape_out`` or (k, *shape_out), float64
        Resampled values, NaN where blank.
    valid_fraction : ndarray, shape ``shape_out``
        Fraction (0 to 1) of each output pixel covered by valid input.
    """
    image = np.asarray(image, dtype=np.float64)
    planes = image[None] if image.ndim == 2 else image
    valid = np.all(np.isfinite(planes), axis=0)
    scale_in = float(np.mean(proj_plane_pixel_scales(wcs_in)))
    scale_out = float(np.mean(proj_plane_pixel_scales(wcs_out)))
    method = reproject_exact if scale_out >= scale_in else reproject_interp
    shape_out = tuple(shape_out)

    # The mask and every plane go through one call: reproject broadcasts over the
    # leading axis, so the coordinate mapping between the grids is computed once.
    stack = np.concatenate([valid[None].astype(np.float64), np.where(valid, planes, 0.0)])
    resampled, _ = method((stack, wcs_in), wcs_out, shape_out=shape_out)
    del stack
    # In place, plane by plane: no second copy of the (possibly large) output stack.
    np.nan_to_num(resampled, nan=0.0, copy=False)
    valid_fraction = np.clip(resampled[0], 0.0, 1.0)
    keep = valid_fraction >= MIN_VALID_FRACTION
    out = resampled[1:]
    for plane in out:
        np.divide(plane, valid_fraction, out=plane, where=keep)
        plane[~keep] = np.nan
    return (out[0] if image.ndim == 2 else out), valid_fraction
