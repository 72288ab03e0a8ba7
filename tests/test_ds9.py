"""The outputs open in a real SAOImage DS9, headless under Xvfb."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

pytestmark = pytest.mark.skipif(
    not (shutil.which("ds9") and shutil.which("xvfb-run")),
    reason="needs SAOImage DS9 and Xvfb (Debian saods9, xvfb; .ci/run installs them)",
)


def test_output_opens_in_ds9(run_cli, write_map, tmp_path):
    import matplotlib.image

    out = tmp_path / "res.fits"
    status, _, err = run_cli("run", write_map((70, 90)), "--distance", "400pc", "--species",
                             "H2", "--out", out, "--quiet")
    assert status == 0, err
    env = dict(os.environ, XPA_METHOD="local")
    for hdu in ("MEAN", "STD", "NH"):
        png = tmp_path / f"{hdu}.png"
        # DS9 shows a modal dialog (and so never exits) when it cannot read a file.
        subprocess.run(["xvfb-run", "-a", "ds9", f"{out}[{hdu}]", "-export", "png", str(png),
                        "-exit"], env=env, timeout=60, check=True, capture_output=True)
        image = matplotlib.image.imread(png)
        assert image.shape[:2] == fits.getdata(out, hdu).shape
        assert np.ptp(image) > 0
