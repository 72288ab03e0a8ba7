"""``nhpipe batch``: many survey fields, one dask.distributed task each.

A manifest (CSV or ECSV) lists the fields: columns ``path, distance, species`` and
optionally ``hdu, beam, out``, and ``catalog`` with ``ld`` or ``nd`` to correct a core
catalogue on the field's output (``OUT_cores.*``, as ``nhpipe run --catalog``). Each
field is one task on a dask.distributed cluster: a ``LocalCluster`` of ``workers``
processes by default, or an existing scheduler (``tcp://HOST:PORT``; a Slurm or PBS
cluster started with dask-jobqueue gives one). Every worker loads the model once and keeps
it for all its fields.

A field whose output already exists with the same provenance (input sha256, model sha256
and the options that change the result) is skipped, so a batch killed at any moment and
run again does only what is missing; outputs are written atomically, so a killed worker
never leaves a partial one, and dask retries its field (``retries``). A field that fails
is reported with its one-line error and the others go on. The report ``batch_report.ecsv``
has one row per field: path, status (done, skipped, failed), error, output, seconds and
the worker's peak memory.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .errors import InputError

REQUIRED = ("path", "distance", "species")
OPTIONAL = ("hdu", "beam", "out", "catalog", "ld", "nd")
REPORT = "batch_report.ecsv"


def read_manifest(path) -> list[dict]:
    """The fields of a manifest, each a dict of its (string) values; blanks are None.

    Raises
    ------
    InputError
        Naming the row and column of the first problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such manifest")
    try:
        fmt = "ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv"
        table = Table.read(path, format=fmt)
    except Exception as exc:  # astropy's readers raise many types
        raise InputError(f"{path}: not a CSV/ECSV manifest ({str(exc).splitlines()[0]})") \
            from None
    missing = [c for c in REQUIRED if c not in table.colnames]
    if missing:
        raise InputError(f"{path}: manifest has no column {missing[0]!r} (needs "
                         f"{', '.join(REQUIRED)}; optional {', '.join(OPTIONAL)})")
    fields = []
    for row_number, row in enumerate(table, start=1):
        field = {}
        for name in REQUIRED + OPTIONAL:
            value = row[name] if name in table.colnames else None
            if value is None or np.ma.is_masked(value) or str(value).strip() == "":
                value = None
            field[name] = None if value is None else str(value).strip()
        for name in REQUIRED:
            if field[name] is None:
                raise InputError(f"{path}: row {row_number}, column {name!r} is blank")
        fields.append(field)
    if not fields:
        raise InputError(f"{path}: the manifest lists no field")
    outs = [output_name(f) for f in fields]
    if len(set(outs)) != len(outs):
        raise InputError(f"{path}: two rows would write the same output; give them distinct "
                         "'out' names")
    return fields


def output_name(field: dict) -> str:
    return field["out"] or f"{Path(field['path']).stem}_nhpipe.fits"


def _up_to_date(out: Path, field: dict, model, samples: int, seed: int, steps,
                precision: str) -> bool:
    """Whether ``out`` was made from this input by this model with these options
    (``precision`` resolved: float32 or bfloat16)."""
    from ._write import sha256_file
    from .units import parse_distance

    if not out.is_file():
        return False
    try:
        header = fits.getheader(out, 0)
        same = (header.get("INSHA256") == sha256_file(field["path"])
                and header.get("MODELSHA") == model.checksum
                and header.get("NSAMPLES") == samples and header.get("SEED") == seed
                and abs(header.get("DISTPC", -1) - parse_distance(field["distance"])) < 1e-6
                and header.get("SPECIES") == str(field["species"]).upper()
                and header.get("PRECISN") == precision
                and (steps is None or header.get("NSTEPS") == steps))
        if field["beam"] is not None:
            same = same and header.get("BEAMSRC") == "--beam"
        return bool(same)
    except (OSError, InputError, TypeError, ValueError):
        return False


def _threads_per_worker(workers: int, scheduler) -> int | None:
    """The cores of this machine shared among local workers (none set for a scheduler)."""
    import os

    if scheduler is not None:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def _worker_model(name: str, device: str):
    """The model, loaded once per worker process (kept on the dask worker)."""
    from .models import load_model, resolve_device

    try:
        from distributed import get_worker

        cache = get_worker().__dict__.setdefault("_nhpipe_models", {})
    except (ImportError, ValueError):
        cache = {}
    key = (name, device)
    if key not in cache:
        cache[key] = load_model(name, device=resolve_device(device))
    return cache[key]


def run_field(field: dict, *, out_dir, model: str, samples: int, seed: int,
              device: str, quicklook: bool = False, steps=None, precision="auto",
              threads=None) -> dict:
    """Process one field (in a worker): done, skipped, or failed with its one-line error.

    The catalogue of the field (if any) is checked before the map is computed; its outputs
    are remade when the map is or when they were made with another L_d or n_d.
    """
    from ._write import write_hdulist
    from .api import prepare_catalog, write_corrected
    from .inference import resolve_precision
    from .models import resolve_device
    from .pipeline import estimate
    from .units import parse_distance

    start = time.monotonic()
    if threads:
        import torch

        torch.set_num_threads(threads)  # this worker process's own setting
    out = Path(out_dir) / output_name(field)
    row = {"path": field["path"], "output": str(out), "status": "done", "error": "",
           "cores": ""}
    try:
        job = None
        if field["catalog"] is not None:
            job = prepare_catalog(field["catalog"], parse_distance(field["distance"]),
                                  ld=field["ld"], nd=field["nd"])
        estimator = _worker_model(model, device)
        hdul = None
        resolved = resolve_precision(precision, resolve_device(device))
        if _up_to_date(out, field, estimator, samples, seed, steps, resolved):
            row["status"] = "skipped"
        else:
            hdul = estimate(field["path"], distance=field["distance"],
                            species=field["species"], beam=field["beam"], hdu=field["hdu"],
                            model=estimator, samples=samples, seed=seed, device=device,
                            steps=steps, precision=precision,
                            command=f"nhpipe batch (field {field['path']})")
            write_hdulist(out, hdul, overwrite=True, inputs=[field["path"]])
        png = out.with_suffix(".png")
        if quicklook and (hdul is not None or not png.is_file()):
            from .quicklook import quicklook as draw

            with fits.open(out) as written:
                draw(written, png)
        if job is not None:
            prefix = out.with_suffix("").with_name(out.stem + "_cores")
            if hdul is not None or not _cores_up_to_date(prefix, job.options):
                write_corrected(job, out, prefix, overwrite=True, inputs=[field["catalog"]])
                row["status"] = "done"
            row["cores"] = f"{prefix}.ecsv"
    except InputError as exc:
        row.update(status="failed", error=str(exc), output="", cores="")
    row["seconds"] = round(time.monotonic() - start, 2)
    row["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return row


def _cores_up_to_date(prefix: Path, options) -> bool:
    """Whether PREFIX.ecsv exists and was made with the same L_d or n_d and distance."""
    path = Path(f"{prefix}.ecsv")
    if not path.is_file():
        return False
    try:
        meta = Table.read(path, format="ascii.ecsv").meta
    except Exception:  # unreadable: remake it
        return False
    recorded = (meta.get("l_d_pc"), meta.get("n_d_cm3"), meta.get("distance_pc"))
    wanted = (options.l_d_pc, options.n_d, options.distance_pc)
    return all((r in (None, "none") and w is None) or
               (w is not None and isinstance(r, (int, float)) and abs(r / w - 1) < 1e-9)
               for r, w in zip(recorded, wanted))


def run_batch(manifest, out_dir, *, workers: int = 2, scheduler: str | None = None,
              model: str = "unet", samples: int = 16, seed: int = 0, retries: int = 1,
              device: str = "auto", quicklook: bool = False, steps=None, precision="auto",
              threads=None, progress: bool = False) -> Table:
    """Run every field of ``manifest`` on a dask.distributed cluster; write the report.

    Returns
    -------
    astropy.table.Table
        The report (also written to ``out_dir/batch_report.ecsv``), one row per field in
        the manifest's order.
    """
    from distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    from ._write import atomic_path, check_output_path

    fields = read_manifest(manifest)
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        raise InputError(f"`out_dir` {out_dir}: its folder {out_dir.parent} does not exist")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"`out_dir` {out_dir} is not a folder")
    if workers < 1 or retries < 0 or samples < 1:
        raise InputError("`workers` and `samples` must be at least 1, `retries` at least 0")
    out_dir.mkdir(exist_ok=True)
    report_path = check_output_path(out_dir / REPORT, overwrite=True)
    cluster = None
    if scheduler is None:
        import dask

        # A field whose worker process dies (killed, out of memory) is run again on a
        # fresh worker up to `retries` times; task errors are retried by `retries` below.
        # A worker holds one field at a time (saturation 1.0, not dask's 1.1, which queues
        # a second field on each worker): a dying worker takes down only the field it ran.
        with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                              "distributed.scheduler.worker-saturation": 1.0}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    rows = [None] * len(fields)
    try:
        futures = {client.submit(run_field, field, out_dir=str(out_dir.resolve()), model=model,
                                 samples=samples, seed=seed, device=device, quicklook=quicklook,
                                 steps=steps, precision=precision,
                                 threads=threads or _threads_per_worker(workers, scheduler),
                                 retries=retries, pure=False): k for k, field in enumerate(fields)}
        with tqdm(total=len(fields), unit="field", disable=not progress, desc="batch") as bar:
            for future in as_completed(futures):
                k = futures[future]
                try:
                    rows[k] = future.result()
                except Exception as exc:  # the task failed, or its worker died, after retries
                    reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                    rows[k] = {"path": fields[k]["path"], "output": "", "status": "failed",
                               "cores": "",
                               "error": f"task failed ({type(exc).__name__}: {reason})",
                               "seconds": np.nan, "peak_memory_mb": np.nan}
                bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    columns = ("path", "status", "error", "output", "cores", "seconds", "peak_memory_mb")
    report = Table(rows=[[r[c] for c in columns] for r in rows], names=columns)
    report["seconds"].unit = "s"
    report["peak_memory_mb"].unit = "MB"
    report.meta["manifest"] = str(manifest)
    report.meta["model"] = model
    with atomic_path(report_path) as tmp:
        report.write(tmp, format="ascii.ecsv", overwrite=True)
    return report
