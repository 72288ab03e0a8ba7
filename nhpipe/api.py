"""The Python API for notebooks and scripts: ``nhpipe.estimate``, ``nhpipe.write`` and
``nhpipe.correct_catalog``. The CLI runs the same functions underneath."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from .errors import InputError


def write(hdul: fits.HDUList, path, overwrite: bool = False) -> Path:
    """Write an HDUList from :func:`nhpipe.estimate` atomically, with checksums.

    An existing file is kept unless ``overwrite=True``; directories, FIFOs, devices and
    dangling links are refused.
    """
    from ._write import write_hdulist

    if not isinstance(hdul, fits.HDUList):
        raise InputError(f"hdul must be an astropy.io.fits.HDUList, got {type(hdul).__name__}")
    return write_hdulist(path, hdul, overwrite=overwrite)


def correct_catalog(result, catalogue, *, distance=None, ld=None, nd=None,
                    radius="observed", lc_factor=2.0, lc_spread=0.25, ld_scatter=0.3,
                    nd_correlation=None, between_cores_correlation=None, model_offset=None,
                    model_scatter=None, taper=None, columns=None, seed=0, n_draws=1000):
    """Corrected core densities (A.3 with ``ld`` or A.4 with ``nd``) on an nhpipe result.

    Parameters
    ----------
    result : path or HDUList
        Output of ``nhpipe run`` or :func:`nhpipe.estimate`.
    catalogue : path or astropy.table.Table
        Core catalogue (see :func:`nhpipe.cores.read_catalog`).
    distance : str, Quantity or float, optional
        Distance to the cloud; by default the result's DISTPC. A value that contradicts
        DISTPC is refused.
    ld, nd : str, Quantity or float
        Exactly one: the diffuse depth (``'10pc'``) or density (``'1e3cm-3'``, or
        ``'local'``: the <n_H>_m of the map around each core).
    radius, lc_factor, lc_spread, ld_scatter, taper, seed, n_draws
        See :class:`nhpipe.cores.CorrectionOptions`.
    nd_correlation, between_cores_correlation : float, optional
        Correlations of the draws of <n_H>_m inside and around a core (``nd='local'``) and
        between cores, 0-1; default: measured for the network (its card), see
        :class:`nhpipe.cores.CorrectionOptions`.
    model_offset, model_scatter : float, optional
        The empirical model-error term (dex); default the one fitted on mock cores
        (:class:`nhpipe.cores.CorrectionOptions`).
    columns : dict, optional
        Catalogue column names overriding :class:`nhpipe.cores.CatalogueColumns`'s defaults.

    Returns
    -------
    astropy.table.Table
        The catalogue with the measured and corrected columns (units attached).
    """
    from .cores import correct_catalog as _correct

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "result.fits"
        if isinstance(result, fits.HDUList):
            result.writeto(path)
        else:
            path = Path(result)
        job = prepare_catalog(catalogue, map_distance(path, distance), columns=columns, ld=ld,
                              nd=nd, radius=radius, lc_factor=lc_factor, lc_spread=lc_spread,
                              ld_scatter=ld_scatter, nd_correlation=nd_correlation,
                              between_cores_correlation=between_cores_correlation,
                              model_offset=model_offset,
                              model_scatter=model_scatter, taper=taper, seed=seed,
                              n_draws=n_draws)
        return _correct(job.table, path, job.options, job.columns)[0]


@dataclass(frozen=True)
class CatalogueJob:
    """A core catalogue with its correction options and column map, all checked."""

    table: object
    options: object
    columns: object


def prepare_catalog(catalogue, distance_pc: float, *, columns=None, readme=None,
                    **options) -> CatalogueJob:
    """Everything of a correction that can be checked before any map work: the options
    (:func:`correction_options`), the column map and the catalogue with the columns it
    needs. ``catalogue`` is a path or an astropy Table."""
    from astropy.table import Table

    from .cores import check_columns, column_map, read_catalog

    checked = correction_options(distance_pc, **options)
    cols = column_map(**(columns or {}))
    table = catalogue if isinstance(catalogue, Table) else read_catalog(catalogue,
                                                                         readme=readme)
    check_columns(table, cols, checked)
    return CatalogueJob(table, checked, cols)


def write_corrected(job: CatalogueJob, map_path, prefix, *, overwrite=False, inputs=()):
    """Correct a prepared catalogue on an nhpipe output file and write its five outputs
    (PREFIX.ecsv, .fits, .reg, _fig10.png, _cmf.png, all or none).

    Returns
    -------
    result : astropy.table.Table
    paths : dict of Path
    """
    from .cores import correct_catalog as _correct
    from .cores import write_outputs

    result, draws = _correct(job.table, map_path, job.options, job.columns)
    paths = write_outputs(result, prefix, draws=draws, columns=job.columns,
                          overwrite=overwrite, inputs=[map_path, *inputs])
    return result, paths


def correction_options(distance_pc: float, *, ld=None, nd=None, radius="observed",
                       lc_factor=2.0, lc_spread=0.25, ld_scatter=0.3, nd_correlation=None,
                       between_cores_correlation=None, model_offset=None,
                       model_scatter=None, taper=None, types=None,
                       max_alpha_be=None, exclude_comments=(), seed=0, n_draws=1000):
    """Checked :class:`nhpipe.cores.CorrectionOptions` from user values (strings or numbers).

    The one place the correction's options are parsed and validated, for the Python API
    and the CLI alike; its messages name the Python parameters (the CLI shows its flags).
    """
    from .cores import CorrectionOptions
    from .units import parse_column_density, parse_length_pc

    if (ld is None) == (nd is None):
        raise InputError("give exactly one of `ld` (diffuse depth, A.3) or `nd` "
                         "(diffuse density, A.4), e.g. `ld='10pc'`")
    if isinstance(types, str):
        try:
            types = tuple(int(t) for t in types.split(","))
        except ValueError:
            raise InputError(f"`types` must be integers like 2 or 1,2, got {types!r}") \
                from None

    def finite(value, name, *, positive=False, upper=None) -> float:
        ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
        if not ok or (upper is not None and value > upper):
            bound = f" and at most {upper:g}" if upper is not None else ""
            raise InputError(f"`{name}` must be a finite number "
                             f"{'> 0' if positive else '>= 0'}{bound}, got {value!r}")
        return float(value)

    n_d = _diffuse_density(nd)
    if nd_correlation is not None:
        from .cores import LOCAL

        if n_d != LOCAL:
            raise InputError("`nd_correlation` is for `nd='local'` only (the <n_H>_m inside "
                             "and around each core)")
        nd_correlation = finite(nd_correlation, "nd_correlation", upper=1.0)
    return CorrectionOptions(
        distance_pc=distance_pc,
        l_d_pc=parse_length_pc(ld, what="ld") if ld is not None else None,
        n_d=n_d, nd_correlation=nd_correlation,
        between_cores_correlation=None if between_cores_correlation is None else finite(
            between_cores_correlation, "between_cores_correlation", upper=1.0),
        radius=radius, lc_factor=finite(lc_factor, "lc_factor", positive=True),
        lc_spread=finite(lc_spread, "lc_spread", upper=0.9),
        ld_dex=finite(ld_scatter, "ld_scatter", upper=2.0),
        **_model_term(model_offset, model_scatter),
        nh_taper=parse_column_density(taper, what="taper") if taper else None,
        types=tuple(types) if types else None, max_alpha_be=max_alpha_be,
        exclude_comments=tuple(exclude_comments), seed=seed, n_draws=n_draws)


def _diffuse_density(nd):
    """A.4's n_d: None, ``'local'`` (each core's surroundings) or a density in cm-3."""
    from .cores import LOCAL
    from .units import parse_number_density

    if nd is None:
        return None
    if isinstance(nd, str) and nd.strip().lower() == LOCAL:
        return LOCAL
    try:
        return parse_number_density(nd, what="nd")
    except InputError as exc:
        raise InputError(f"{exc} (or 'local': the <n_H>_m around each core)") from None


def _model_term(offset, scatter) -> dict:
    """The model-error term's fields of CorrectionOptions: the given values (checked) or
    the defaults fitted on mock cores."""
    out = {}
    for name, value, field in (("model_offset", offset, "model_offset_dex"),
                               ("model_scatter", scatter, "model_scatter_dex")):
        if value is None:
            continue
        value = float(value)
        if not math.isfinite(value) or abs(value) > 2 or (name == "model_scatter" and value < 0):
            raise InputError(f"`{name}` must be a number of dex within +-2 (scatter >= 0), "
                             f"got {value!r}")
        out[field] = value
    return out


def map_distance(path, distance=None) -> float:
    """The distance (pc) of an nhpipe output: its DISTPC card, or ``distance`` if given;
    both given and different by more than 0.1 % is an error."""
    from .units import parse_distance

    try:
        recorded = fits.getheader(path, 0).get("DISTPC")
    except (OSError, FileNotFoundError):
        raise InputError(f"{path}: no such nhpipe output") from None
    if distance is None:
        if recorded is None:
            raise InputError(f"{path}: no DISTPC card: give the distance, e.g. 400pc")
        return float(recorded)
    value = parse_distance(distance)
    if recorded is not None and abs(value / float(recorded) - 1) > 1e-3:
        raise InputError(f"distance {distance!r} contradicts the map's DISTPC = "
                         f"{float(recorded):g} pc (the distance its pixels were made for)")
    return value
