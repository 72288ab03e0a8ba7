"""Survey batches on dask.distributed: a LocalCluster of 2 workers on tiny maps."""

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
    assert report.colnames == ["path", "status", "error", "output", "seconds",
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
