"""nhpipe: maps of the mass-weighted mean density <n_H>_m from column-density maps.

The method and its benchmark follow Ribeiro & Hily-Blant, "Neural network estimation
of the average density in molecular clouds and prestellar cores: a benchmark of modern
architectures" (poster; paper in prep., 2026).

Python API (the CLI calls the same functions)::

    import nhpipe
    hdul = nhpipe.estimate("orionB_NH2.fits", distance="400pc", species="H2", model="unet")
    nhpipe.write(hdul, "orionB_nhpipe.fits")
    cores = nhpipe.correct_catalog("orionB_nhpipe.fits", "cores.ecsv", distance="400pc",
                                   ld="10pc")
"""

__version__ = "0.1.0"

from .errors import InputError  # noqa: E402,F401

__all__ = ["InputError", "estimate", "write", "correct_catalog"]


def __getattr__(name):
    # The Python API, imported on first use so that ``import nhpipe`` stays light.
    if name == "estimate":
        from .pipeline import estimate

        return estimate
    if name == "correct_catalog":
        from .api import correct_catalog

        return correct_catalog
    if name == "write":
        from .api import write

        return write
    raise AttributeError(f"module 'nhpipe' has no attribute {name!r}")
