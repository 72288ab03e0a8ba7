import numpy as np
import pytest

from nhpipe.evaluate import evaluate, markdown_table
from nhpipe.metrics import binned_metrics, coverage, crps, error_at_accuracy, mse
from nhpipe.models import load_model
from nhpipe.train import train

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


def test_density_bins():
    truth = np.log10([50.0, 1e3, 1e5])
    result = binned_metrics(np.tile(truth, (4, 1)), truth)
    assert set(result) == {"all", "diffuse (<200)", "clumps (200-1e4)", "cores (>1e4)"}
    assert result["cores (>1e4)"]["pixels"] == 1 and result["all"]["mse_log10"] == 0


def test_evaluate_recomputes(tiny_data, tmp_path):  # noqa: F811
    train("unet", tiny_data, tmp_path / "unet", epochs=2, batch_size=4, device="cpu",
          crop=32, config=TINY["unet"])
    result = evaluate("unet", tiny_data, split="test", samples=4, device="cpu",
                      model_path=tmp_path / "unet")
    assert result["regions"] == 3 and result["samples"] == 4
    assert result["parameters"] == sum(p.numel() for p in
                                       load_model("unet", path=tmp_path / "unet").parameters())
    m = result["metrics"]["all"]
    assert m["pixels"] == 3 * 128 * 128 and m["mse_log10"] > 0
    assert 0 <= m["coverage_95"] <= 1
    assert "MSE (log10)" in markdown_table([result])


def test_fitted_powerlaw_card(tiny_data, tmp_path):  # noqa: F811
    card = train("powerlaw", tiny_data, tmp_path / "powerlaw")
    model = load_model("powerlaw", path=tmp_path / "powerlaw")
    assert model.config.b == card["config"]["b"] and 0.5 < model.config.b < 2.5
