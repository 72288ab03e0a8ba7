"""Stage *write*: the one place that writes output files (FITS here), always atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from .errors import InputError


@dataclass
class Plane:
    """One named image HDU: data, unit and a one-line description."""

    name: str
    data: np.ndarray
    bunit: str
    comment: str


def check_output_path(out: str | os.PathLike, *, inputs=(), overwrite: bool = False) -> Path:
    """Check, before any work, that ``out`` can be written.

    Raises
    ------
    InputError
        When the directory is missing, the file is one of the ``inputs``, or the file
        exists and ``overwrite`` is False.
    """
    out = Path(out)
    if not out.parent.resolve().is_dir():
        raise InputError(f"output directory {out.parent} does not exist: create it first")
    for source in inputs:
        if source is not None and out.exists() and Path(source).exists():
            if os.path.samefile(out, source):
                raise InputError(f"output {out} is the input file: choose another --out")
    if out.exists() and not overwrite:
        raise InputError(f"output {out} exists: pass --overwrite to replace it")
    return out


def write_planes(out, planes: list[Plane], wcs: WCS, provenance: dict, *, overwrite=False):
    """Write image planes to one FITS file: an empty primary HDU and one HDU per plane.

    Every HDU carries the celestial WCS, BUNIT and the provenance cards.  The file is
    written to a temporary name in the same directory and renamed, so a crash never
    leaves a half-written output and an existing file is replaced in one step.

    Parameters
    ----------
    out : path
        Output file.
    planes : list of Plane
        Images, each of the shape described by ``wcs``.
    wcs : WCS
        Celestial WCS shared by all planes.
    provenance : dict
        FITS keyword -> value or (value, comment); long strings use CONTINUE cards.
    """
    out = check_output_path(out, overwrite=overwrite)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs_header = wcs.to_header()
    primary = fits.PrimaryHDU()
    _add_cards(primary.header, provenance)
    hdus = [primary]
    for plane in planes:
        header = wcs_header.copy()
        header["BUNIT"] = (plane.bunit, "unit of the data")
        header["EXTNAME"] = plane.name
        header["COMMENT"] = plane.comment
        _add_cards(header, provenance)
        hdus.append(fits.ImageHDU(np.asarray(plane.data, dtype=np.float32), header=header))
    with atomic_path(out) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True, output_verify="exception",
                                   checksum=True)
    return out


def sha256_file(path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(out):
    """Yield a temporary path beside ``out``; rename it to ``out`` if the block succeeds.

    The temporary file is removed if the block fails, so a crash or a Ctrl-C never leaves
    a half-written file under the output's name.
    """
    out = Path(out)
    handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(handle)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the usual permissions instead.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _add_cards(header: fits.Header, cards: dict) -> None:
    for key, value in cards.items():
        if key in ("HISTORY", "COMMENT"):
            for line in value:
                header.add_history(line) if key == "HISTORY" else header.add_comment(line)
        else:
            header[key] = value
