import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nhpipe.data import load_split
from nhpipe.errors import InputError
from nhpipe.models import build_network, load_model
from nhpipe.models._common import Normaliser, save_network
from nhpipe.train import train

NORM = Normaliser(nh_mean=21.5, nh_std=0.7, a=-29.5, b=1.5, r_std=0.3)
TINY = {
    "unet": {"base": 8, "depth": 2},
    "cinn": {"cond_base": 8, "cond_depth": 2, "cond_channels": 4, "blocks": [2, 2],
             "hidden": 8},
    "ddpm": {"cond_base": 8, "cond_depth": 2, "cond_channels": 4, "den_base": 8,
             "den_depth": 1, "temb": 16, "steps": 4},
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from nhpipe.data import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "tiny.h5", n_cubes=4, seed=3,
                        family="v1")


@pytest.mark.parametrize("name", sorted(TINY))
class TestNetworks:
    def test_shapes_units_and_seed(self, name):
        model = build_network(name, TINY[name], NORM).eval()
        log_nh = torch.full((2, 1, 128, 128), 22.0)
        with torch.inference_mode():
            a = model.sample(log_nh, 3, torch.Generator().manual_seed(1))
            b = model.sample(log_nh, 3, torch.Generator().manual_seed(1))
        assert a.shape == (2, 3, 1, 128, 128)
        assert torch.equal(a, b)
        # An untrained network's residual is O(1): samples stay near the power law, in
        # log10 cm-3.
        centre = NORM.a + NORM.b * 22.0
        assert abs(a.mean().item() - centre) < 5 * NORM.r_std

    def test_training_lowers_loss(self, name, tiny_data, tmp_path):
        out = tmp_path / name
        card = train(name, tiny_data, out, epochs=8, batch_size=4, lr=3e-3, seed=0,
                     device="cpu", crop=32, config=TINY[name])
        trained = load_model(name, path=out)
        torch.manual_seed(0)  # train() builds its network right after this seed
        initial = build_network(name, TINY[name], trained.normaliser)
        log_nh, log_nm, _ = load_split(tiny_data, "train")
        x = torch.from_numpy(log_nh[:6])[:, None]
        y = torch.from_numpy(log_nm[:6])[:, None]

        def loss(model):
            norm = model.normaliser
            with torch.no_grad():
                return model.eval().loss(norm.inputs(x), norm.targets(y, x),
                                         torch.Generator().manual_seed(9)).item()

        assert loss(trained) < loss(initial)
        assert card["sha256"] and card["training"]["data_sha256"]
        for suffix in (".safetensors", ".json", ".png", ".ckpt"):
            assert out.with_suffix(suffix).exists()

    def test_weights_checked(self, name, tmp_path):
        model = build_network(name, TINY[name], NORM)
        card = save_network(model, tmp_path / name, {"name": name, **model.card()})
        loaded = load_model(name, path=tmp_path / name)
        assert loaded.checksum == card["sha256"]
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value)
        weights = tmp_path / f"{name}.safetensors"
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
        with pytest.raises(InputError, match="truncated or altered"):
            load_model(name, path=tmp_path / name)
        weights.write_bytes(bytes(data[: len(data) // 2]))
        with pytest.raises(InputError, match="truncated or altered"):
            load_model(name, path=tmp_path / name)


def test_cinn_inverse_round_trip():
    model = build_network("cinn", TINY["cinn"], NORM).eval()
    # Random (non-identity) coupling weights, so the test is not trivial.
    with torch.no_grad():
        for p in model.flow.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    x = torch.randn(2, 1, 128, 128)
    r = torch.randn(2, 1, 128, 128)
    with torch.no_grad():
        z, log_jac = model(r, x)
        back, _ = model(z, x, rev=True)
    assert torch.max(torch.abs(back - r)).item() < 1e-4
    assert torch.all(torch.isfinite(log_jac))


def test_resume_continues(tiny_data, tmp_path):
    out = tmp_path / "unet"
    train("unet", tiny_data, out, epochs=2, batch_size=4, seed=0, device="cpu", crop=32,
          config=TINY["unet"])
    first = json.loads(out.with_suffix(".json").read_text())["training"]["steps"]
    card = train("unet", tiny_data, out, epochs=4, batch_size=4, seed=0, device="cpu", crop=32,
                 config=TINY["unet"], resume=True)
    assert card["training"]["steps"] == 2 * first


def test_keep_best_ships_the_best_validation_epoch(tiny_data, tmp_path):
    """--keep-best ships the weights of the epoch with the lowest validation loss (their
    loss, recomputed from the shipped file, is that epoch's), also across a resume."""
    import csv

    from nhpipe.train import _validation_loss, _validation_split

    out = tmp_path / "unet"
    options = dict(batch_size=4, seed=0, device="cpu", crop=32, config=TINY["unet"],
                   lr=3e-2, keep_best=True)
    train("unet", tiny_data, out, epochs=3, **options)
    card = train("unet", tiny_data, out, epochs=6, resume=True, **options)
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    losses = [float(r["val_loss"]) for r in rows]
    kept = card["training"]["kept"]
    # Here the best epoch is the first run's last (3 of 6): kept through the resume.
    assert int(np.argmin(losses)) < len(losses) - 1
    assert len(rows) == 6 and kept["val_loss"] == pytest.approx(min(losses))
    assert kept["best_validation_epoch"] == \
        pytest.approx(float(rows[int(np.argmin(losses))]["epoch"]))
    shipped = load_model("unet", path=out)
    again = _validation_loss(shipped, None, _validation_split(tiny_data), torch.device("cpu"), 0)
    assert again == pytest.approx(kept["val_loss"], rel=1e-4)
    plain = train("unet", tiny_data, tmp_path / "last", epochs=1, **{**options,
                                                                    "keep_best": False})
    assert plain["training"]["kept"] == "last epoch"


def test_ema_option_for_the_unet(tiny_data, tmp_path):
    """--ema gives the U-Net (off by default) an EMA of its weights; a resume must keep
    the choice."""
    out = tmp_path / "unet"
    options = dict(batch_size=4, seed=0, device="cpu", crop=32, config=TINY["unet"])
    assert train("unet", tiny_data, out, epochs=1, ema=True, **options)["training"]["ema"]
    with pytest.raises(InputError, match="with an EMA"):
        train("unet", tiny_data, out, epochs=2, resume=True, **options)
    assert not train("unet", tiny_data, tmp_path / "plain", epochs=1,
                     **options)["training"]["ema"]


def test_unknown_network_name(tmp_path):
    with pytest.raises(InputError, match="unknown model"):
        load_model("resnet")
    with pytest.raises(InputError, match="nhpipe train"):
        load_model("unet", path=tmp_path / "unet")


def test_recalibrate():
    from nhpipe.models._common import recalibrate

    samples = torch.tensor([[1.0, 3.0], [2.0, 6.0]]).T[None]  # (1, S=2, 2)
    scaled = recalibrate(samples, 2.0)
    np.testing.assert_allclose(scaled.mean(dim=1), samples.mean(dim=1))
    np.testing.assert_allclose(scaled[0, :, 0], [0.0, 4.0])
    np.testing.assert_allclose(recalibrate(samples, 2.0, 0.5)[0, :, 0], [0.5, 4.5])
    assert torch.equal(recalibrate(samples[:, :1], 3.0), samples[:, :1])
    np.testing.assert_allclose(recalibrate(samples[:, :1], 3.0, -0.25), samples[:, :1] - 0.25)
    # (S, N) arrays of the evaluation, samples along axis 0
    np.testing.assert_allclose(recalibrate(samples[0].numpy(), 2.0, 1.0, axis=0)[:, 1],
                               [1.0, 9.0])
    # Factors by the samples' own spread: pixel 0 has std 1 (log10 0), pixel 1 std 2
    # (log10 0.30); an edge at 0.1 dex puts them in bins 0 and 1.
    binned = {"spread_edges": [0.1], "spread_factors": [3.0, 0.5]}
    for array, axis in ((samples, 1), (samples[0].numpy(), 0)):
        out = recalibrate(array, 2.0, 0.0, axis, **binned)
        out = out[0] if axis == 1 else out
        np.testing.assert_allclose(np.asarray(out)[:, 0], [2.0 - 6.0, 2.0 + 6.0])  # x 2 x 3
        np.testing.assert_allclose(np.asarray(out)[:, 1], [4.0 - 2.0, 4.0 + 2.0])  # x 2 x 0.5


def test_calibration_fixes_overconfidence_and_bias(tiny_data):
    from nhpipe.calibrate import fit_calibration

    model = build_network("unet", TINY["unet"], NORM).eval()
    log_nh, log_nm, _ = load_split(tiny_data, "val")
    # Truth = the model's own samples from a 3x wider distribution than it claims.
    with torch.inference_mode():
        x = torch.from_numpy(log_nh)[:, None]
        mean = model.sample(x, 64, torch.Generator().manual_seed(0)).mean(dim=1)[:, 0]
        draws = model.sample(x, 1, torch.Generator().manual_seed(1))[:, 0, 0]
    # and 0.3 dex higher than it says.
    truth = (mean + 0.3 + 3.0 * (draws - mean)).numpy()
    config, report = fit_calibration(model, log_nh, truth, samples=32)
    assert config["spread"] == 1.0 and len(config["spread_factors"]) == 4
    # About 3 in every bin; the narrowest bin a little more, as 32 samples' std scatters
    # about the true one and the narrowest bin collects those that came out low.
    assert all(2.5 < f < 4.2 for f in config["spread_factors"])
    assert 2.8 < float(np.exp(np.mean(np.log(config["spread_factors"])))) < 3.4
    assert abs(config["offset"] - 0.3) < 0.03
    assert abs(report["mean_error_before_dex"] + config["offset"]) < 1e-9
    assert report["coverage_68_before"] < 0.4 and abs(report["coverage_68_after"] - 0.68) < 0.05
    # Applied by the model itself (what `nhpipe run` draws), the mean error is gone.
    from dataclasses import replace
    model.config = replace(model.config, **config)
    with torch.inference_mode():
        recal = model.sample(x, 32, torch.Generator().manual_seed(2)).mean(dim=1)[:, 0]
    assert abs(float((recal.numpy() - truth).mean())) < 0.03


def test_weights_are_package_data():
    import tomllib

    import nhpipe
    from nhpipe.models import models_dir

    # Installed from a wheel: nhpipe/weights; from the repository: models/, which
    # pyproject ships as the package nhpipe.weights.
    root = Path(nhpipe.__file__).parent
    assert models_dir() in (root / "weights", root.parent / "models")
    project = root.parent / "pyproject.toml"
    if project.is_file():
        setup = tomllib.loads(project.read_text())["tool"]["setuptools"]
        assert setup["package-dir"]["nhpipe.weights"] == "models"
        assert "nhpipe.weights" in setup["packages"]
    for name in ("unet", "cinn", "ddpm", "powerlaw"):
        assert (models_dir() / f"{name}.json").is_file()


def test_no_card_no_model(tmp_path):
    for name in ("powerlaw", "unet"):
        with pytest.raises(InputError, match="no model card"):
            load_model(name, path=tmp_path / name)


def test_train_refuses_to_replace_weights(tiny_data, tmp_path):
    from nhpipe.train import train

    (tmp_path / "unet.safetensors").write_bytes(b"precious")
    with pytest.raises(InputError, match="`overwrite=True`"):
        train("unet", tiny_data, tmp_path / "unet", epochs=1, device="cpu")
    assert (tmp_path / "unet.safetensors").read_bytes() == b"precious"


class TestCards:
    """Cards are validated and checksummed: a tampered card is refused in one line."""

    @pytest.fixture
    def copy(self, tmp_path):
        import shutil

        from nhpipe.models import models_dir

        for suffix in (".json", ".safetensors"):
            shutil.copy(models_dir() / f"unet{suffix}", tmp_path / f"unet{suffix}")
        return tmp_path / "unet"

    def tamper(self, stem, edit, *, resign):
        from nhpipe.cards import write_card

        card = json.loads(stem.with_suffix(".json").read_text())
        edit(card)
        if resign:
            write_card(stem, card)
        else:
            stem.with_suffix(".json").write_text(json.dumps(card))

    def test_edited_card_refused(self, copy):
        self.tamper(copy, lambda c: c["config"].update(spread=0.5), resign=False)
        with pytest.raises(InputError, match="card_sha256"):
            load_model("unet", path=copy)

    @pytest.mark.parametrize("edit, match", [
        (lambda c: c["config"].update(base=100000), "base=100000"),
        (lambda c: c["config"].update(frobnicate=1), "unknown config keys"),
        (lambda c: c["config"].update(depth="5"), "depth='5'"),
        (lambda c: c.update(config=None), "no 'config'"),
        (lambda c: c.pop("sha256"), "sha256"),
        (lambda c: c.update(weights="../../etc/passwd"), "weights"),
        (lambda c: c["normaliser"].update(nh_std=0), "normaliser"),
        (lambda c: c.update(name="gpt"), "unknown model name"),
        (lambda c: c["config"].update(spread_factors=[1.5]), "one more value than"),
        (lambda c: c["config"].update(spread_edges=None), "one more value than"),
        (lambda c: c["config"].update(spread_edges=[0.2, 0.1, 0.3]), "spread_edges="),
        (lambda c: c.update(core_terms={"method": "A.3"}), "must be a list"),
        (lambda c: c["core_terms"][0].pop("method"), "'method' text"),
        (lambda c: c["core_terms"][0].update(scatter_dex=-0.1), "scatter_dex >= 0"),
        (lambda c: c["core_terms"][0].update(by_profile={
            "envelope_edges": [0.2], "contrast_edges": [1.0],
            "offset_dex": [[0.1, 0.1]], "scatter_dex": [[0.1, 0.1], [0.1, 0.1]]}),
         "one more row and column"),
        (lambda c: c["core_terms"][0].update(by_profile={
            "envelope_edges": [0.4, 0.2], "contrast_edges": [1.0],
            "offset_dex": [[0, 0]] * 3, "scatter_dex": [[0, 0]] * 3}), "ascending finite"),
        (lambda c: c["core_terms"][0].update(by_profile={
            "envelope_edges": [0.2], "contrast_edges": [1.0],
            "offset_dex": [[0, 0]] * 2, "scatter_dex": [[0, -0.1], [0, 0]]}), "scatter_dex >= 0"),
        (lambda c: c.update(error_correlation={"lag_px": [2, 1], "rho": [0.9, 0.8]}),
         "'error_correlation'"),
        (lambda c: c.update(error_correlation={"lag_px": [1, 2], "rho": [0.9]}),
         "'error_correlation'"),
        (lambda c: c.update(error_correlation={"lag_px": [1], "rho": [1.5]}),
         "'error_correlation'"),
        (lambda c: c["core_terms"][1].update(error_correlation="card"),
         "'error_correlation' must be a list"),
    ])
    def test_invalid_card_refused_before_building(self, copy, edit, match):
        # Re-checksummed, so only the schema can catch it.
        self.tamper(copy, edit, resign=True)
        with pytest.raises(InputError, match=match) as info:
            load_model("unet", path=copy)
        assert "\n" not in str(info.value)

    def test_not_json(self, copy):
        copy.with_suffix(".json").write_bytes(b"\xff\xfe not json")
        with pytest.raises(InputError, match="cannot be read"):
            load_model("unet", path=copy)

    def test_update_keeps_card_valid(self, copy):
        from nhpipe.cards import read_card, update_card

        update_card(copy, config={"spread": 1.5}, calibration={"note": "test"})
        card = read_card(copy)
        assert card["config"]["spread"] == 1.5 and card["config"]["base"] == 24
        assert load_model("unet", path=copy).config.spread == 1.5


def test_library_leaves_global_random_state_alone():
    np.random.seed(123)
    torch_state = torch.random.get_rng_state()
    load_model("cinn")
    assert np.random.randint(1 << 30) == np.random.RandomState(123).randint(1 << 30)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_calibrate_card_is_what_load_model_applies(tiny_data, tmp_path):
    from nhpipe.calibrate import calibrate_card
    from nhpipe.cards import read_card
    from nhpipe.cli import main

    train("unet", tiny_data, tmp_path / "unet", epochs=1, batch_size=4, device="cpu", crop=32,
          config=TINY["unet"])
    report = calibrate_card("unet", [tiny_data], stem=tmp_path / "unet", regions=2, samples=8,
                            device="cpu")
    card = read_card(tmp_path / "unet")
    for key in ("spread", "offset", "spread_edges", "spread_factors"):
        assert card["config"][key] == report[key] == card["calibration"][key]
        assert getattr(load_model("unet", path=tmp_path / "unet").config, key) == report[key]
    # The CLI goes through the same function: a second fit starts from the stored spread.
    assert main(["calibrate", "--model", "unet", "--data", str(tiny_data), "--path",
                 str(tmp_path / "unet"), "--regions", "2", "--samples", "8",
                 "--device", "cpu"]) == 0
    assert read_card(tmp_path / "unet")["calibration"]["data"] == ["tiny.h5"]


def test_train_from_a_trained_network(tiny_data, tmp_path):
    from nhpipe.cards import update_card

    first = tmp_path / "first"
    made = train("unet", tiny_data, first, epochs=1, batch_size=4, seed=0, device="cpu",
                 crop=32, config=TINY["unet"])
    made = update_card(first, config={"spread": 2.5})
    card = train("unet", tiny_data, tmp_path / "second", epochs=1, batch_size=4, seed=1,
                 device="cpu", crop=32, init=first)
    started = card["training"]["initialised_from"]
    assert started["sha256"] == made["sha256"] and started["stem"] == "first"
    assert started["data_recipe"] == made["training"]["data_recipe"]
    # Same architecture and normaliser; the spread awaits a new calibration.
    assert card["config"] == {**made["config"], "spread": 1.0}
    assert card["normaliser"] == made["normaliser"]
    assert card["training"]["total_time_s"] >= card["training"]["time_s"]
    # A third stage keeps the whole chain of stages in its card.
    third = train("unet", tiny_data, tmp_path / "stage3", epochs=1, batch_size=4, seed=1,
                  device="cpu", crop=32, init=tmp_path / "second")
    chain = third["training"]["initialised_from"]
    assert chain["stem"] == "second" and chain["initialised_from"] == started
    assert third["training"]["total_time_s"] == pytest.approx(
        card["training"]["total_time_s"] + third["training"]["time_s"], abs=0.2)
    with pytest.raises(InputError, match="keeps the config"):
        train("unet", tiny_data, tmp_path / "third", epochs=1, device="cpu", init=first,
              config=TINY["unet"])
    with pytest.raises(InputError, match="is a unet, not a cinn"):
        train("cinn", tiny_data, tmp_path / "third", epochs=1, device="cpu", init=first)
    with pytest.raises(InputError, match="fitted in closed form"):
        train("powerlaw", tiny_data, tmp_path / "third", init=first)
    # The same regions, said to be seen through 1-3 px beams the single-beam network never saw.
    import h5py

    beams = tmp_path / "beams.h5"
    shutil.copy(tiny_data, beams)
    with h5py.File(beams, "r+") as h5:
        h5.attrs["recipe"] = json.dumps({"observation": {"beam_px": [1.0, 3.0]}})
    with pytest.raises(InputError, match="trained on a single beam, .* holds beams of 1-3 px"):
        train("unet", beams, tmp_path / "third", epochs=1, device="cpu", init=first)
    with pytest.raises(InputError, match="missing.h5: cannot read the dataset"):
        train("unet", tmp_path / "missing.h5", tmp_path / "third", device="cpu", init=first)
