import numpy as np
import pytest

import nhpipe
from nhpipe.evaluate import evaluate, markdown_table
from nhpipe.metrics import (binned_metrics, clustered_se, coverage, crps, error_at_accuracy,
                            mse)
from nhpipe.models import load_model
from nhpipe.train import train

from .conftest import beam_hdu
from .test_models import TINY, tiny_data  # noqa: F401  (fixture)


def test_point_metrics():
    truth = np.zeros(5)
    pred = np.array([0.1, -0.2, 0.3, 0.0, 0.4])
    assert mse(pred, truth) == pytest.approx(np.mean(pred**2))
    assert error_at_accuracy(pred, truth) == pytest.approx(np.quantile(np.abs(pred), 0.8))


def test_calibrated_gaussian():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=20000)
    samples = rng.normal(size=(200, 20000))
    assert coverage(samples, truth, 0.68) == pytest.approx(0.68, abs=0.015)
    assert coverage(samples, truth, 0.95) == pytest.approx(0.95, abs=0.01)
    # CRPS of N(0, 1) forecasts for N(0, 1) truths: E = 1 / sqrt(pi).
    assert crps(samples, truth) == pytest.approx(1 / np.sqrt(np.pi), rel=0.02)


def test_clustered_standard_error():
    # One value per region: the textbook standard error of a mean, s / sqrt(N).
    x = np.random.default_rng(1).normal(size=50)
    assert clustered_se(x, np.arange(50)) == pytest.approx(np.std(x, ddof=1) / np.sqrt(50))
    # Two regions of two equal pixels each: the pixels add no information, so the error is
    # that of two values (+1 and -1), sqrt(2) / sqrt(2) = 1, not that of four.
    assert clustered_se([1.0, 1.0, -1.0, -1.0], [0, 0, 1, 1]) == pytest.approx(1.0)
    assert np.isnan(clustered_se([1.0, 2.0], [3, 3]))


def test_binned_metrics_give_standard_errors_over_regions():
    truth = np.zeros(6)
    draws = np.array([[0.1, 0.1, 0.3, 0.3, -0.1, -0.1]] * 2) + [[-1.0], [1.0]]
    groups = np.array([0, 0, 1, 1, 2, 2])
    result = binned_metrics(draws, truth, depth=np.array([1.0, 1.0, 5.0, 5.0, 5.0, 5.0]),
                            groups=groups)
    assert result["all"]["regions"] == 3 and result["depth 3-10 pc"]["regions"] == 2
    error = draws.mean(axis=0)
    assert result["all"]["mean_error_dex_se"] == pytest.approx(clustered_se(error, groups))
    assert result["all"]["mse_log10_se"] == pytest.approx(clustered_se(error**2, groups))
    # Every truth inside every interval: coverage 1 with no scatter between regions.
    assert result["all"]["coverage_68"] == 1 and result["all"]["coverage_68_se"] == 0
    assert "regions" not in binned_metrics(draws, truth)["all"]


def test_density_bins():
    truth = np.log10([50.0, 1e3, 1e5])
    result = binned_metrics(np.tile(truth, (4, 1)), truth)
    assert set(result) == {"all", "diffuse (<200)", "clumps (200-1e4)", "cores (>1e4)"}
    assert result["cores (>1e4)"]["pixels"] == 1 and result["all"]["mse_log10"] == 0


def test_depth_and_beam_bins():
    truth = np.log10([50.0, 1e3, 1e5, 1e3])
    draws = np.tile(truth, (3, 1)) + 0.1
    result = binned_metrics(draws, truth, depth=np.array([1.0, 5.0, 20.0, 20.0]),
                            beam=np.array([1.0, 1.0, 10.0, 3.0]))
    assert result["depth >10 pc"]["pixels"] == 2 and result["beam 2-6 px"]["pixels"] == 1
    assert result["all"]["mean_error_dex"] == pytest.approx(0.1)
    result = binned_metrics(draws, truth, contrast=np.array([0.05, 0.05, 0.2, 0.5]))
    assert [result[f"contrast {b}"]["pixels"] for b in ("<0.1 dex", "0.1-0.3 dex", ">0.3 dex")] \
        == [2, 1, 1]


def test_region_contrast_is_the_scatter_of_observed_log_nh():
    from nhpipe.evaluate import Family

    log_nh = np.full((2, 4, 4), 21.0)
    log_nh[1, :2] += 0.2  # half the pixels 0.2 dex higher: standard deviation 0.1 dex
    family = Family("fractal", "f.h5", "val", log_nh, log_nh, np.ones(2), np.ones(2))
    np.testing.assert_allclose(family.contrast_dex, [0.0, 0.1], atol=1e-12)


def test_evaluate_recomputes(tiny_data, tmp_path):  # noqa: F811
    import torch

    from nhpipe.data import load_split
    from nhpipe.evaluate import sample_regions

    train("unet", tiny_data, tmp_path / "unet", epochs=2, batch_size=4, device="cpu",
          crop=32, config=TINY["unet"])
    result = evaluate(["unet"], [tiny_data], samples=4, device="cpu", mdr=False,
                      precision="float32", model_paths={"unet": tmp_path / "unet"})
    assert result["families"] == [{"name": "v1", "data": "tiny.h5", "split": "test",
                                   "regions": 3, "validation": False}]
    unet = result["estimators"]["unet"]
    assert unet["parameters"] == sum(p.numel() for p in
                                     load_model("unet", path=tmp_path / "unet").parameters())
    # By hand: the same samples (same seed), then the definitions of the metrics.
    log_nh, log_nm, _ = load_split(tiny_data, "test")
    draws, _ = sample_regions(load_model("unet", path=tmp_path / "unet"), log_nh, 4,
                              torch.Generator().manual_seed(0))
    pred, truth = draws.mean(axis=0), log_nm.reshape(-1)
    m = unet["metrics"]["v1"]["all"]
    assert m["pixels"] == 3 * 128 * 128
    assert m["mse_log10"] == pytest.approx(np.mean((pred - truth) ** 2), rel=1e-6)
    assert m["mean_error_dex"] == pytest.approx(np.mean(pred - truth), rel=1e-6, abs=1e-9)
    assert m["regions"] == 3 and m["mean_error_dex_se"] == pytest.approx(
        clustered_se(pred - truth, np.repeat(np.arange(3), 128 * 128)), rel=1e-5)
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
    assert m["coverage_95"] == pytest.approx(np.mean((truth >= lo) & (truth <= hi)))
    assert "powerlaw" in result["estimators"]
    table = markdown_table(result)
    assert "| all |" in table and "unet" in table and "depth 3-10 pc" in table

    # --write-card: the bias spread between families goes into the card, and from there
    # into every output's header (SYSTDEX); a card without an evaluation writes none.
    from nhpipe.evaluate import raw_biases, store_in_card

    hdu = beam_hdu()
    plain = nhpipe.estimate(hdu, distance="400pc", species="H2", samples=2, device="cpu",
                            model=load_model("unet", path=tmp_path / "unet"))
    assert "SYSTDEX" not in plain[0].header
    other = {b: dict(v, mean_error_dex=v["mean_error_dex"] + 0.2)
             for b, v in unet["metrics"]["v1"].items()}
    unet["metrics"]["w"] = other  # a second family, 0.2 dex more biased
    store_in_card(result, "unet", tmp_path / "unet")
    model = load_model("unet", path=tmp_path / "unet")
    assert model.systematic_dex == pytest.approx(0.2 / np.sqrt(2))
    assert model.systematic_dex == raw_biases(result)["unet"]["between_families_dex"]
    stated = nhpipe.estimate(hdu, distance="400pc", species="H2", samples=2, model=model,
                             device="cpu")
    for h in (stated[0], stated["MEAN"]):
        assert h.header["SYSTDEX"] == pytest.approx(0.2 / np.sqrt(2), abs=1e-4)


def test_leave_one_family_out_calibration(tmp_path):
    from nhpipe.evaluate import Family, _leave_one_out

    rng = np.random.default_rng(0)
    families, draws = [], []
    for name, width, bias in (("a", 2.0, -0.3), ("b", 2.0, -0.3), ("c", 0.5, 0.4)):
        truth = rng.normal(size=(1, 20, 20))
        families.append(Family(name, name, "val", truth, truth, np.ones(1), np.ones(1)))
        # Samples 'width' times narrower than the truth's scatter about their mean,
        # which is 'bias' dex off the truth's (0).
        draws.append(bias + rng.normal(size=(200, 400)) / width)
    fitted = _leave_one_out(draws, families)
    # c is calibrated on a and b only, never on itself: their offset and spread (in every
    # bin of the samples' spread: a and b are alike throughout).
    assert fitted["c"]["spread_factors"] == pytest.approx([2.0] * 4, rel=0.2)
    assert fitted["c"]["offset"] == pytest.approx(0.3, abs=0.1)
    # a on b and c: the mean of their biases; c's samples, twice as wide as the truth's
    # scatter, fill the widest bins, which get factors below 1, b's the narrowest.
    assert fitted["a"]["offset"] == pytest.approx(-0.05, abs=0.1)
    factors = fitted["a"]["spread_factors"]
    assert factors[0] > 1.5 and factors[-1] < 0.75


def test_raw_bias_is_the_mean_error_before_the_offset():
    from nhpipe.evaluate import raw_biases

    def family(mean_error):
        return {"all": {"mean_error_dex": mean_error}}

    result = {"estimators": {
        "unet": {"lofo_calibration": {"a": {"offset": 0.15}, "b": {"offset": 0.05}},
                 "metrics": {"a": family(0.09), "b": family(-0.15)}},
        "mdr": {"lofo_calibration": {}, "metrics": {"a": family(0.5), "b": family(0.7)}}}}
    biases = raw_biases(result)
    assert biases["unet"]["families"] == pytest.approx({"a": -0.06, "b": -0.20})
    # Two values: the standard deviation (ddof 1) is their difference over sqrt(2).
    assert biases["unet"]["between_families_dex"] == pytest.approx(0.14 / np.sqrt(2))
    assert biases["mdr"]["families"] == pytest.approx({"a": 0.5, "b": 0.7})


def test_fitted_powerlaw_card(tiny_data, tmp_path):  # noqa: F811
    card = train("powerlaw", tiny_data, tmp_path / "powerlaw")
    model = load_model("powerlaw", path=tmp_path / "powerlaw")
    assert model.config.b == card["config"]["b"] and 0.5 < model.config.b < 2.5


def test_target_summary_counts_and_spells_out_misses():
    from nhpipe.evaluate import target_summary

    good = {"mean_error_dex": 0.01, "coverage_68": 0.70, "coverage_95": 0.95}
    # The mean error misses by 15 standard errors, the 95 % coverage by 1.25.
    bad = {"mean_error_dex": -0.20, "mean_error_dex_se": 0.01, "coverage_68": 0.70,
           "coverage_95": 0.85, "coverage_95_se": 0.04}
    result = {"families": [{"name": "fractal", "validation": True},
                           {"name": "clouds", "validation": False}],
              "estimators": {"unet": {"metrics": {
                  "fractal": {"all": good, "depth <3 pc": bad},
                  "clouds": {"all": bad}}},
                  "mdr": {"metrics": {"fractal": {"all": {"mean_error_dex": 0.5}}}}}}
    table = target_summary(result)
    row = [line for line in table.splitlines() if line.startswith("| unet")]
    # One row per validation family (the training family is not a target), none for an
    # estimator without intervals.
    assert len(row) == 1 and "| mdr" not in table
    assert "| 1 of 2 | 2 of 2 | 1 of 2 | 1 of 2 |" in row[0]
    assert "depth <3 pc: mean error -0.200 ± 0.010, 95 % 0.850 ± 0.040" in row[0]


def test_error_correlation_on_analytic_fields():
    """Errors a_i + b_j (a row term plus a column term, unit variances) are correlated
    0.5 with any pixel in the same row or column; a region-wide error, 1; white noise, 0."""
    from nhpipe.metrics import error_correlation

    rng = np.random.default_rng(0)
    n, size = 40, 64
    samples = np.stack([-np.ones((n, size, size)), np.ones((n, size, size))])  # mean 0, std 1
    rows_cols = rng.standard_normal((n, size, 1)) + rng.standard_normal((n, 1, size))
    np.testing.assert_allclose(error_correlation(samples, rows_cols, (1, 5, 20)), 0.5,
                               atol=0.03)
    region = np.broadcast_to(rng.standard_normal((n, 1, 1)), (n, size, size)) \
        + 1e-3 * rng.standard_normal((n, size, size))
    np.testing.assert_allclose(error_correlation(samples, region, (1, 8)), 1.0, atol=1e-4)
    noise = rng.standard_normal((n, size, size))
    np.testing.assert_allclose(error_correlation(samples, noise, (1, 8)), 0.0, atol=0.02)
    # The standardisation divides by each pixel's spread: doubling both changes nothing.
    np.testing.assert_allclose(error_correlation(2 * samples, 2 * rows_cols, (3,)),
                               error_correlation(samples, rows_cols, (3,)), rtol=1e-12)
