"""nhpipe: maps of the mass-weighted mean density <n_H>_m from column-density maps.

The method and its benchmark follow Ribeiro & Hily-Blant, "Neural network estimation
of the average density in molecular clouds and prestellar cores: a benchmark of modern
architectures" (poster; paper in prep., 2026).
"""

__version__ = "0.1.0"

from .errors import InputError  # noqa: E402,F401
