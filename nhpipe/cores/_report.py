"""Outputs of a corrected catalogue: ECSV, FITS, DS9 regions, Fig. 10 and the CMF."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from ..load import NhpipeWarning
from ._correct import INDEPENDENT, joint_draws, shared_error_matrix
from ._read import CatalogueColumns, core_coordinates, core_mass_msun, core_radius_pc

#: Above this many cores in the CMF the errors' correlation by separation (an N x N matrix
#: to decompose) gives way to one correlation for every pair.
MAX_MATRIX_CORES = 5000

STATUS_COLORS = {"ok": "green", "inconsistent": "red", "outside": "yellow", "masked": "yellow",
                 "filtered": "gray", "invalid": "magenta"}


def write_outputs(result: Table, prefix, *, draws=None,
                  columns: CatalogueColumns = CatalogueColumns(), overwrite=False, inputs=()):
    """Write PREFIX.ecsv, PREFIX.fits, PREFIX.reg (DS9), PREFIX_fig10.png, PREFIX_cmf.png.

    All five or none: they are written to temporaries and renamed only when all are
    complete. None of them may be one of the ``inputs`` (the map, the catalogue).
    ``draws`` are the Monte-Carlo draws of :func:`correct_catalog`, for the CMF bands.
    """
    from .._write import ascii_text, atomic_group, check_output_path

    prefix = Path(prefix)
    paths = {k: Path(f"{prefix}{k}") for k in (".ecsv", ".fits", ".reg", "_fig10.png",
                                                "_cmf.png")}
    for path in paths.values():
        check_output_path(path, overwrite=overwrite, inputs=inputs)
    table = result.copy()
    for key, value in list(table.meta.items()):
        if value is None:
            table.meta[key] = "none"
    with atomic_group(paths.values()) as tmp:
        table.write(tmp[paths[".ecsv"]], format="ascii.ecsv", overwrite=True)
        ascii_table = table.copy()
        for name in ascii_table.colnames:  # FITS tables hold ASCII text only
            if ascii_table[name].dtype.kind == "U":
                ascii_table[name] = [ascii_text(str(v)) for v in ascii_table[name]]
        _write_fits_table(ascii_table, tmp[paths[".fits"]])
        _write_regions(table, tmp[paths[".reg"]], columns)
        _plot_fig10(table, tmp[paths["_fig10.png"]])
        _plot_cmf(table, draws, tmp[paths["_cmf.png"]], columns)
    return paths


def _write_fits_table(table: Table, path) -> None:
    """``table`` as a FITS binary table, its logarithmic columns' units kept.

    FITS has no form for astropy's dex units, which astropy then drops; they are written
    as text in TUNITn, as nhpipe writes BUNIT = 'dex(cm-3)' on its maps.
    """
    from astropy.io import fits

    table = table.copy(copy_data=False)
    logarithmic = {}
    for name in table.colnames:
        unit = table[name].unit
        if unit == u.dex:
            logarithmic[name] = "dex"
        elif isinstance(unit, u.FunctionUnitBase):
            logarithmic[name] = f"dex({unit.physical_unit.to_string('fits')})"
        if name in logarithmic:
            table[name].unit = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long meta keys become HIERARCH cards
        hdu = fits.table_to_hdu(table)
    for name, text in logarithmic.items():
        hdu.header[f"TUNIT{table.colnames.index(name) + 1}"] = text
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)


def _write_regions(table, path, columns):
    from regions import CircleSkyRegion, Regions

    coords = core_coordinates(table, columns) if len(table) else []
    radius_pc = core_radius_pc(table, table.meta["radius"], columns)
    distance = table.meta["distance_pc"]
    shapes = []
    for i in range(len(table)):
        if table["status"][i] == "invalid":
            continue  # no usable position or radius to draw
        region = CircleSkyRegion(coords[i], radius_pc[i] / distance * 206264.806 * u.arcsec)
        status = str(table["status"][i])
        region.visual["color"] = STATUS_COLORS.get(status, "white")
        # The status as a DS9 tag (select or hide a group in DS9's region list); no text
        # labels, which would cover the map under 1,844 cores.
        region.meta["tag"] = [status]
        if table["low_contrast"][i]:  # dashed: a density the mocks do not support
            region.visual["linestyle"] = "dashed"
            region.meta["tag"].append("low_contrast")
        for flag in ("blended", "neighbour_dominated"):
            if flag in table.colnames and table[flag][i]:
                region.meta["tag"].append(flag)
        shapes.append(region)
    Regions(shapes).write(path, format="ds9", overwrite=True)


def _plot_fig10(table, path):
    """Like the poster's Fig. 10: log-binned mean differences with 95 % bands."""
    from matplotlib.figure import Figure

    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log10(np.asarray(table["n_cat_h"], float) / 2.0)  # n(H2), as catalogued
    y = np.asarray(table["log_ratio"], float)
    ok = (np.asarray(table["status"]) == "ok") & np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    ax.scatter(x, y, s=4, alpha=0.3, color="0.5", label=f"cores ({ok.sum()})")
    if ok.sum() >= 2:
        edges = np.linspace(np.floor(x.min() * 4) / 4, np.ceil(x.max() * 4) / 4, 9)
        centres, means, errs = [], [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (x >= lo) & (x < hi)
            if sel.sum() >= 3:
                centres.append(0.5 * (lo + hi))
                means.append(y[sel].mean())
                errs.append(1.96 * y[sel].std(ddof=1) / np.sqrt(sel.sum()))
        ax.errorbar(centres, means, yerr=errs, fmt="o", color="C3", capsize=3,
                    label="bin mean, 95 % confidence")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel(r"catalogued $\log_{10} n(\mathrm{H_2})$ [cm$^{-3}$]")
    ax.set_ylabel(r"$\log_{10}(n_{c,\mathrm{new}} / n_{c,\mathrm{cat}})$")
    ax.set_title(f"{table.meta.get('method')}, {table.meta.get('nhpipe_map')}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)


def _between_cores(table, ok, columns):
    """The correlation between the errors of the cores ``ok`` (:func:`joint_draws`): one
    number when the curve of the table's metadata is one, else a matrix by separation
    (:func:`shared_error_matrix`); 0 when the metadata has none."""
    curve = json.loads(table.meta.get("between_cores_curve") or json.dumps(INDEPENDENT))
    flat = len(set(curve["rho"])) == 1
    if flat or ok.sum() > MAX_MATRIX_CORES:
        if not flat:
            warnings.warn(f"{int(ok.sum())} cores in the CMF, more than {MAX_MATRIX_CORES}: "
                          "their errors are shared with the correlation at the largest "
                          "separation measured, whatever their separation", NhpipeWarning,
                          stacklevel=4)
        return curve["rho"][-1]
    return shared_error_matrix(core_coordinates(table, columns)[ok],
                               float(table.meta["distance_pc"]), curve)


def _plot_cmf(table, draws, path, columns):
    """Core mass function of the prestellar cores, with Monte-Carlo 95 % bands."""
    from matplotlib.figure import Figure

    ok = np.asarray(table["status"] == "ok")
    if columns.core_type in table.colnames:
        ok &= np.asarray(table[columns.core_type]) == 2
    edges = np.linspace(-2.0, 2.0, 21)
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    if columns.mass in table.colnames:
        cat = np.log10(np.asarray(table[columns.mass], float)[ok])
        ax.stairs(np.histogram(cat, edges)[0], edges, color="k", label="catalogue masses")
    if draws is not None and ok.any():
        r_pc = core_radius_pc(table, table.meta["radius"], columns)[ok]
        # Every core in every draw, with the network's errors shared between cores.
        rng = np.random.default_rng(table.meta.get("seed", 0))
        masses = core_mass_msun(joint_draws(draws[:, ok], _between_cores(table, ok, columns),
                                            rng), r_pc)
        with np.errstate(invalid="ignore", divide="ignore"):
            hists = np.array([np.histogram(np.log10(m[np.isfinite(m)]), edges)[0]
                              for m in masses])
        lo, med, hi = np.percentile(hists, [2.5, 50, 97.5], axis=0)
        ax.stairs(med, edges, color="C0", label="corrected densities (median)")
        shared = table.meta.get("between_cores_correlation")
        ax.fill_between(edges[:-1], lo, hi, step="post", color="C0", alpha=0.3,
                        label="95 % Monte-Carlo band" + (f"\nerrors shared between cores:\n"
                                                         f"{shared}" if shared else ""))
    ax.set_yscale("log")
    ax.set_xlabel(r"$\log_{10} M$ [M$_\odot$]")
    ax.set_ylabel("prestellar cores per bin")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)


