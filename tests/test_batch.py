"""Survey batches on dask.distributed: a LocalCluster of 2 workers on tiny maps."""

import os

import pytest
from astropy.table import Table

pytest.importorskip("distributed")


def _manifest(tmp_path, write_map, broken=True):
    rows = []
    for name in ("a.fits", "b.fits"):
        rows.append([str(write_map((48, 40), name=name)), "400pc", "H2"])
    if broken:
        bad = tmp_path / "broken.fits"
        bad.write_text("not a FITS file")
        rows.append([str(bad), "400pc", "H2"])
    path = tmp_path / "fields.csv"
    Table(rows=rows, names=("path", "distance", "species")).write(path, format="ascii.csv")
    return path


def test_batch_isolates_failures_and_resumes(run_cli, write_map, tmp_path):
    manifest = _manifest(tmp_path, write_map)
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    args = ("batch", manifest, "--out-dir", out_dir, "--workers", "2", "--model", "powerlaw",
            "--samples", "2", "--quiet")
    status, out, err = run_cli(*args)
    assert status == 1, err
    report = Table.read(out_dir / "batch_report.ecsv")
    assert report.colnames == ["path", "status", "error", "output", "cores", "seconds",
                               "peak_memory_mb"]
    assert list(report["status"]) == ["done", "done", "failed"]
    assert "not a readable FITS file" in report["error"][2]
    assert (out_dir / "a_nhpipe.fits").is_file() and (out_dir / "b_nhpipe.fits").is_file()
    assert "2 done, 0 skipped, 1 failed" in out
    # Run again: nothing left to do but the broken field.
    status, out, _ = run_cli(*args)
    report = Table.read(out_dir / "batch_report.ecsv")
    assert list(report["status"]) == ["skipped", "skipped", "failed"] and status == 1


def test_bad_manifest_names_row_and_column(run_cli, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,distance,species\na.fits,,H2\n")
    out_dir = tmp_path / "r"
    out_dir.mkdir()
    status, _, err = run_cli("batch", path, "--out-dir", out_dir)
    assert status == 2 and "row 1, column 'distance'" in err
    path.write_text("path,species\na.fits,H2\n")
    status, _, err = run_cli("batch", path, "--out-dir", out_dir)
    assert status == 2 and "no column 'distance'" in err


def test_catalogue_and_quicklook_per_field(run_cli, write_map, tmp_path):
    """A field with a catalogue gets OUT_cores.* and, with --quicklook, OUT.png; rerun
    with another L_d remakes only the cores."""
    from .test_catalog import _cores

    catalogue = tmp_path / "cores.ecsv"
    _cores([85.5, 85.501], [-1.0, -1.0]).write(catalogue)
    path = write_map((48, 40), name="a.fits")
    manifest = tmp_path / "fields.csv"
    manifest.write_text(f"path,distance,species,catalog,ld\n{path},400pc,H2,{catalogue},10pc\n")
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    args = ["batch", manifest, "--out-dir", out_dir, "--workers", "1", "--model", "powerlaw",
            "--samples", "2", "--quiet", "--quicklook"]
    status, _, err = run_cli(*args)
    assert status == 0, err
    assert (out_dir / "a_nhpipe.png").stat().st_size > 0
    cores = Table.read(out_dir / "a_nhpipe_cores.ecsv")
    assert list(cores["status"]) == ["ok", "ok"] and cores.meta["l_d_pc"] == 10.0
    assert Table.read(out_dir / "batch_report.ecsv")["cores"][0].endswith("a_nhpipe_cores.ecsv")
    manifest.write_text(f"path,distance,species,catalog,ld\n{path},400pc,H2,{catalogue},5pc\n")
    map_time = (out_dir / "a_nhpipe.fits").stat().st_mtime_ns
    assert run_cli(*args)[0] == 0
    assert Table.read(out_dir / "a_nhpipe_cores.ecsv").meta["l_d_pc"] == 5.0
    assert (out_dir / "a_nhpipe.fits").stat().st_mtime_ns == map_time


_KILL_ONCE = """
import os
from pathlib import Path

from distributed import WorkerPlugin

MARKER = Path({marker!r})


class KillOnce(WorkerPlugin):
    \"\"\"Kill this worker process the first time any task starts executing.\"\"\"

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing":
            return
        try:  # atomic: of two workers starting at once, only one dies
            os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(1)


async def dask_setup(worker):
    await worker.plugin_add(KillOnce(), name="kill-once")
"""


def test_worker_killed_mid_field_is_retried(run_cli, write_map, tmp_path):
    """A worker process that dies while it runs a field: the field runs again on a fresh
    worker (--retries 1), the batch completes, and no partial output is left."""
    import dask

    marker = tmp_path / "killed"
    preload = tmp_path / "kill_once.py"
    preload.write_text(_KILL_ONCE.format(marker=str(marker)))
    manifest = _manifest(tmp_path, write_map, broken=False)

    def batch_with_a_death(out_dir, retries):
        out_dir.mkdir()
        # The nanny hands this configuration to the worker processes it starts.
        with dask.config.set({"distributed.worker.preload": [str(preload)]}):
            return run_cli("batch", manifest, "--out-dir", out_dir, "--workers", "2",
                           "--model", "powerlaw", "--samples", "2", "--quiet",
                           "--retries", str(retries))

    out_dir = tmp_path / "results"
    status, out, err = batch_with_a_death(out_dir, retries=1)
    assert marker.exists(), "no worker was killed: the test did not test anything"
    assert status == 0, (out, err)
    report = Table.read(out_dir / "batch_report.ecsv")
    assert list(report["status"]) == ["done", "done"]
    assert sorted(os.listdir(out_dir)) == ["a_nhpipe.fits", "b_nhpipe.fits",
                                           "batch_report.ecsv"]
    # Without retries the field whose worker died is reported failed; the other is done.
    marker.unlink()
    out_dir = tmp_path / "no_retry"
    status, _, _ = batch_with_a_death(out_dir, retries=0)
    report = Table.read(out_dir / "batch_report.ecsv")
    assert status == 1 and sorted(report["status"]) == ["done", "failed"]
    assert "KilledWorker" in " ".join(str(e) for e in report["error"])
