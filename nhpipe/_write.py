"""Stage *write*: the one place that writes output files (FITS here), always atomically."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import stat
import tempfile
import time
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


#: When this process started (s since the epoch): temporary files of nhpipe's pattern
#: older than this were left by a killed run.
_STARTED = time.time()
#: The temporaries of :func:`atomic_path`: ".NAME." + mkstemp's 8 random characters + ".tmp".
_TMP_PATTERN = ".{name}.????????.tmp"


def check_output_path(out: str | os.PathLike, *, inputs=(), overwrite: bool = False,
                      size_bytes: int = 0) -> Path:
    """Check, before any work, that ``out`` can be written, and clean stale temporaries.

    Only a regular file (or nothing) may be at ``out``: a directory, a FIFO, a device or
    a dangling symbolic link there is refused whatever ``overwrite`` says. The directory
    must exist and be writable, the name encodable and short enough for the file system
    (with the temporary name's 14 extra characters), and the disk must hold
    ``size_bytes``. Temporaries of nhpipe's own pattern for this name older than this
    process (left by a killed run) are removed.

    Raises
    ------
    InputError
        One line naming the problem, when any check fails, when ``out`` is one of the
        ``inputs``, or when it exists and ``overwrite`` is False.
    """
    out = Path(out)
    text = str(out)
    try:
        encoded = os.fsencode(text)
    except UnicodeError:
        raise InputError(f"output name {text!r} cannot be encoded for this file system") \
            from None
    if "\n" in text or "\r" in text or b"\0" in encoded:
        raise InputError(f"output name {text!r} holds a line break or NUL: choose another")
    parent = out.parent
    if not parent.resolve().is_dir():
        raise InputError(f"output directory {parent} does not exist: create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"output directory {parent} is not writable")
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(out.name)) + 14 > name_max:
        raise InputError(f"output name {out.name[:40]!r}... is too long for this file system "
                         f"(at most {name_max - 14} bytes)")
    if os.path.lexists(out) and not out.exists():
        raise InputError(f"output {out} is a dangling symbolic link: remove it or choose "
                         "another name")
    if out.exists():
        if not stat.S_ISREG(os.stat(out).st_mode):
            kind = "a directory" if out.is_dir() else "not a regular file"
            raise InputError(f"output {out} is {kind}: nhpipe writes only regular files")
        for source in inputs:
            if source is not None and Path(source).exists() and os.path.samefile(out, source):
                raise InputError(f"output {out} is an input file: choose another `out`")
        if not overwrite:
            raise InputError(f"output {out} exists: pass `overwrite=True` to replace it")
    if size_bytes and shutil.disk_usage(parent).free < 1.1 * size_bytes:
        raise InputError(f"not enough free disk in {parent} for the output "
                         f"(~{size_bytes / 1e6:.0f} MB)")
    _remove_stale_temporaries(out)
    return out


def _remove_stale_temporaries(out: Path) -> None:
    for stale in out.parent.glob(_TMP_PATTERN.format(name=glob.escape(out.name))):
        try:
            if stale.is_file() and stale.stat().st_mtime < _STARTED:
                stale.unlink()
        except OSError:
            pass


def planes_hdulist(planes: list[Plane], wcs: WCS, provenance: dict) -> fits.HDUList:
    """An empty primary HDU with the provenance cards, then one image HDU per plane.

    Every image HDU carries the celestial WCS, BUNIT, EXTNAME and the provenance cards.

    Parameters
    ----------
    planes : list of Plane
        Images, each of the shape described by ``wcs`` (written as float32).
    wcs : WCS
        Celestial WCS shared by all planes.
    provenance : dict
        FITS keyword -> value or (value, comment); long strings use CONTINUE cards, any
        text is made ASCII (:func:`ascii_text`).
    """
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
    return fits.HDUList(hdus)


def write_hdulist(out, hdul: fits.HDUList, *, overwrite: bool = False, inputs=()) -> Path:
    """Write an HDUList atomically (temporary file, then rename) with CHECKSUM/DATASUM.

    ``out`` is checked first (:func:`check_output_path`): an existing file is kept
    unless ``overwrite``, and no input is ever replaced.
    """
    out = check_output_path(out, inputs=inputs, overwrite=overwrite)
    with atomic_path(out) as tmp:
        hdul.writeto(tmp, overwrite=True, output_verify="exception", checksum=True)
    return out


def write_planes(out, planes: list[Plane], wcs: WCS, provenance: dict, *, overwrite=False):
    """:func:`planes_hdulist` written by :func:`write_hdulist`; returns the path."""
    return write_hdulist(out, planes_hdulist(planes, wcs, provenance), overwrite=overwrite)


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


@contextmanager
def atomic_group(outs):
    """Yield temporaries for several outputs; rename them all only if the block succeeds.

    A multi-file output (a catalogue's ECSV, FITS, region file and plots) is then all new
    or all old: if any writer fails, every temporary is removed and no output changes.
    (The renames themselves happen one after the other, after every file is complete.)

    Yields
    ------
    dict
        output path -> temporary path beside it.
    """
    outs = [Path(o) for o in outs]
    temps = {}
    try:
        for out in outs:
            handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp",
                                           dir=out.parent)
            os.close(handle)
            temps[out] = tmp
        yield dict(temps)
        umask = os.umask(0)
        os.umask(umask)
        for out, tmp in temps.items():
            os.chmod(tmp, 0o666 & ~umask)
        for out, tmp in temps.items():
            os.replace(tmp, out)
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def ascii_text(value):
    """FITS header text is ASCII: other characters (a file name in any script, a line
    break in a path) become backslash escapes, so a provenance card holds any path."""
    if isinstance(value, (tuple, list)):
        return type(value)(ascii_text(v) for v in value)
    if isinstance(value, str):
        return value.encode("ascii", "backslashreplace").decode("ascii") \
            .replace("\n", "\\n").replace("\r", "\\r")
    return value


def _add_cards(header: fits.Header, cards: dict) -> None:
    cards = {key: ascii_text(value) for key, value in cards.items()}
    for key, value in cards.items():
        if key in ("HISTORY", "COMMENT"):
            for line in value:
                header.add_history(line) if key == "HISTORY" else header.add_comment(line)
        else:
            header[key] = value
