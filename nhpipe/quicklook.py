"""Quick-look PNG of an nhpipe result: MEAN and STD side by side on sky coordinates."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning


def quicklook(hdul: fits.HDUList, png) -> None:
    """Draw MEAN and STD with coordinate grids and colour bars (units), blanks blank.

    Parameters
    ----------
    hdul : HDUList
        An nhpipe result (``nhpipe run`` output or :func:`nhpipe.estimate`).
    png : path
        Written atomically.
    """
    from matplotlib.figure import Figure

    from ._write import atomic_path

    header = hdul["MEAN"].header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header).celestial
    fig = Figure(figsize=(12, 5.2))
    for k, (name, cmap, label) in enumerate((("MEAN", "magma", r"mean $\log_{10}\langle n_H"
                                                              r"\rangle_m$"),
                                             ("STD", "viridis", "std"))):
        ax = fig.add_subplot(1, 2, k + 1, projection=wcs)
        data = np.asarray(hdul[name].data, dtype=float)
        finite = data[np.isfinite(data)]
        limits = np.percentile(finite, [1, 99]) if finite.size else (0, 1)
        image = ax.imshow(np.ma.masked_invalid(data), origin="lower", cmap=cmap,
                          vmin=limits[0], vmax=limits[1])
        ax.coords.grid(color="white", alpha=0.4, linestyle="dotted")
        ax.set_xlabel(wcs.wcs.ctype[0][:4].rstrip("-"))
        ax.set_ylabel(wcs.wcs.ctype[1][:4].rstrip("-"))
        fig.colorbar(image, ax=ax, label=f"{label} [{hdul[name].header.get('BUNIT', '')}]")
        ax.set_title(name)
    fig.subplots_adjust(wspace=0.5)
    fig.suptitle(f"{header.get('INFILE', '')}: model {header.get('MODEL')}, "
                 f"{header.get('NSAMPLES')} samples, {header.get('DISTPC'):g} pc")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
