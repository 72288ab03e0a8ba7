import numpy as np
import pytest
import torch
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage

from nhpipe.models import load_model
from nhpipe.models.analytic import PowerLaw, PowerLawConfig, fit_powerlaw
from nhpipe.pipeline import infer_map
from nhpipe.regrid import model_grid, resample
from nhpipe.summarise import STATISTICS, half_sample_mode, histogram_entropy, summarise
from nhpipe.tiling import blend_window, coverage, fill_blanks, plan_tiles, stitch, tile
from nhpipe.units import PC_CM

from .conftest import make_header


class TestRegrid:
    @pytest.mark.parametrize("kind", ["plain", "rotated", "flipped", "galactic", "sip"])
    def test_model_pixel_and_mass(self, kind):
        shape = (120, 100)
        wcs = WCS(make_header(shape, kind=kind, pixel_arcsec=3.0))
        grid, grid_shape = model_grid(wcs, shape, pixel_pc=0.026, distance_pc=400.0)
        scale = proj_plane_pixel_scales(grid)
        np.testing.assert_allclose(scale, np.degrees(0.026 / 400.0), rtol=1e-6)
        assert grid.wcs.ctype[0].startswith("GLON" if kind == "galactic" else "RA")
        const, frac = resample(np.full(shape, 4e21), wcs, grid, grid_shape)
        inside = frac > 0.99
        assert inside.sum() > 0.4 * frac.size
        np.testing.assert_allclose(const[inside], 4e21, rtol=1e-9)
        # The area-weighted average conserves the total column (mass) of a compact source.
        y, x = np.mgrid[: shape[0], : shape[1]]
        data = 1e22 * np.exp(-((x - 50.3) ** 2 + (y - 61.7) ** 2) / (2 * 8.0**2))
        out, frac = resample(data, wcs, grid, grid_shape)
        area_ratio = (scale[0] / proj_plane_pixel_scales(wcs)[0]) ** 2
        total_in = data.sum()
        total_out = np.nansum(out * frac) * area_ratio
        assert total_out == pytest.approx(total_in, rel=0.01)

    def test_blanks_stay_masked(self):
        shape = (120, 120)
        wcs = WCS(make_header(shape, pixel_arcsec=3.0))
        data = np.full(shape, 1e21)
        data[:, :60] = np.nan
        grid, grid_shape = model_grid(wcs, shape, pixel_pc=0.026, distance_pc=400.0)
        out, frac = resample(data, wcs, grid, grid_shape)
        world = grid.pixel_to_world(*np.meshgrid(np.arange(grid_shape[1]),
                                                 np.arange(grid_shape[0])))
        x_in, _ = wcs.world_to_pixel(world)
        assert np.isnan(out[x_in < 50]).all()
        _, y_in = wcs.world_to_pixel(world)
        assert np.isfinite(out[(x_in > 70) & (x_in < 110) & (y_in > 10) & (y_in < 110)]).all()


class TestTile:
    @pytest.mark.parametrize("shape", [(20, 30), (128, 128), (300, 257)])
    def test_constant_and_identity(self, shape):
        tiling = plan_tiles(shape)
        const = stitch(tile(np.full(shape, 3.5), tiling), tiling)
        assert np.array_equal(const, np.full(shape, 3.5)) or np.allclose(const, 3.5, atol=0,
                                                                           rtol=1e-15)
        image = np.random.default_rng(1).normal(size=shape)
        np.testing.assert_allclose(stitch(tile(image, tiling), tiling), image, atol=1e-12)
        assert coverage(tiling).min() >= 1

    def test_equivariant_model_is_seamless(self):
        image = np.random.default_rng(2).normal(size=(300, 260))

        def model(x):  # a translation-equivariant "network": 5x5 smoothing
            return ndimage.uniform_filter(x, size=5, mode="reflect")

        tiling = plan_tiles(image.shape, stride=48)
        patches = np.stack([model(p) for p in tile(image, tiling)])
        stitched = stitch(patches, tiling)
        whole = model(image)
        np.testing.assert_allclose(stitched[3:-3, 3:-3], whole[3:-3, 3:-3], atol=1e-6)

    def test_window_zero_margin(self):
        w = blend_window(128, 16)
        assert (w[:16] == 0).all() and (w[:, -16:] == 0).all() and w[64, 64] > 0.99

    def test_stride_checked(self):
        with pytest.raises(ValueError, match="stride must be between 1 and 96"):
            plan_tiles((200, 200), stride=100)

    def test_fill_blanks(self):
        image = np.array([[1.0, np.nan, 3.0]])
        assert fill_blanks(image).tolist() == [[1.0, 1.0, 3.0]] or \
            fill_blanks(image).tolist() == [[1.0, 3.0, 3.0]]


class TestSummarise:
    def test_known_samples(self):
        samples = np.arange(101, dtype=float)[:, None] / 100.0  # uniform 0..1
        stats = dict(zip(STATISTICS, summarise(samples)[:, 0]))
        assert stats["MEAN"] == pytest.approx(0.5)
        assert stats["Q50"] == pytest.approx(0.5)
        assert stats["Q16"] == pytest.approx(0.16)
        assert stats["Q97_5"] == pytest.approx(0.975)
        assert stats["STD"] == pytest.approx(np.std(samples), rel=1e-6)

    def test_mode_finds_peak(self):
        rng = np.random.default_rng(3)
        samples = np.concatenate([rng.normal(2.0, 0.05, 48), rng.uniform(3, 6, 16)])
        assert half_sample_mode(samples[:, None])[0] == pytest.approx(2.0, abs=0.05)
        assert half_sample_mode(np.array([[5.0]]))[0] == 5.0

    def test_entropy(self):
        assert histogram_entropy(np.full((16, 1), 3.03))[0] == pytest.approx(1.0)
        four_bins = np.repeat([3.05, 3.15, 3.25, 3.35], 4)[:, None]
        assert histogram_entropy(four_bins)[0] == pytest.approx(4.0)
        # Uneven bins, out-of-range values in the end bins: exp(-sum p ln p) by hand.
        samples = np.array([3.01, 3.02, 3.03, 3.12, 3.13, 4.5, -7.0, 12.0])[:, None]
        p = np.array([3, 2, 1, 1, 1]) / 8
        assert histogram_entropy(samples[::-1])[0] == pytest.approx(np.exp(-np.sum(p * np.log(p))))

    def test_tensor_and_array_agree(self):
        """The pipeline summarises tensors where they were drawn (a GPU), tests and
        evaluations arrays: the same numbers, whatever the memory layout."""
        rng = np.random.default_rng(0)
        samples = rng.normal(3.0, 0.3, size=(24, 6, 5)).astype(np.float32)
        samples[:, 0, 0] = 4.0  # ties: every sample equal
        tensor = torch.from_numpy(samples.transpose(0, 2, 1).copy()).transpose(1, 2)
        assert not tensor.is_contiguous()
        np.testing.assert_array_equal(summarise(tensor), summarise(samples))
        assert summarise(samples).shape == (len(STATISTICS), 6, 5)


class TestModels:
    def test_width_exact(self):
        model = load_model("width")
        log_nh = torch.full((2, 1, 128, 128), 22.0)
        out = model.sample(log_nh, 3, torch.Generator().manual_seed(0))
        assert out.shape == (2, 3, 1, 128, 128)
        np.testing.assert_allclose(out.numpy(), 22.0 - np.log10(0.1 * PC_CM), rtol=1e-6)

    def test_powerlaw_shapes_and_seed(self):
        model = load_model("powerlaw")
        log_nh = torch.full((1, 1, 128, 128), 22.0)
        a = model.sample(log_nh, 8, torch.Generator().manual_seed(5))
        b = model.sample(log_nh, 8, torch.Generator().manual_seed(5))
        assert a.shape == (1, 8, 1, 128, 128) and torch.equal(a, b)
        c = model.config
        assert a.mean().item() == pytest.approx(c.a + 22.0 * c.b, abs=0.01)
        assert a.std().item() == pytest.approx(c.sigma, rel=0.02)

    def test_fit_powerlaw(self):
        x = np.linspace(20.5, 23, 50)
        cfg = fit_powerlaw(x, -20 + 1.1 * x)
        assert (cfg.a, cfg.b, cfg.sigma) == pytest.approx((-20, 1.1, 0), abs=1e-9)

    def test_infer_map_masks_blanks(self):
        log_nh = np.full((150, 140), 21.5)
        log_nh[:10] = np.nan
        model = PowerLaw(PowerLawConfig(sigma=0.0))
        model.checksum = "x"
        stats, count = infer_map(model, log_nh, n_samples=4,
                                 generator=torch.Generator().manual_seed(0))
        assert stats.shape == (len(STATISTICS), 150, 140)
        assert np.isnan(stats[:, :10]).all()
        np.testing.assert_allclose(stats[0, 10:], -29.5 + 1.5 * 21.5, rtol=1e-6)
        assert count.min() >= 1


def test_regrid_of_a_stack_equals_plane_by_plane():
    from astropy.wcs import WCS

    from nhpipe.regrid import resample

    from .conftest import make_header

    rng = np.random.default_rng(0)
    stack = rng.random((3, 50, 60)) + 1.0
    stack[:, 10:14, 20:30] = np.nan
    for fine, coarse in ((3.0, 10.0), (10.0, 3.0)):  # exact (down), interp (up)
        w_in = WCS(make_header((50, 60), pixel_arcsec=fine))
        w_out = WCS(make_header((40, 44), pixel_arcsec=coarse))
        together, frac = resample(stack, w_in, w_out, (40, 44))
        for k in range(3):
            alone, frac_k = resample(stack[k], w_in, w_out, (40, 44))
            np.testing.assert_allclose(together[k], alone, atol=1e-6, equal_nan=True)
            np.testing.assert_allclose(frac, frac_k)


@pytest.mark.parametrize("kind", ["plain", "rotated", "sip", "galactic"])
def test_blocked_interpolation_equals_reproject_interp(kind, monkeypatch):
    """The way back (model grid -> finer input grid): one mapping per block of rows, every
    plane through it, float32 out; the values of reproject_interp's bilinear to 1e-6."""
    from astropy.wcs import WCS
    from reproject import reproject_interp

    from nhpipe import regrid
    from nhpipe.regrid import interpolate, model_grid

    from .conftest import make_header

    monkeypatch.setattr(regrid, "BLOCK_ROWS", 7)  # several blocks, a ragged last one
    w_in = WCS(make_header((50, 60), kind=kind, pixel_arcsec=3.0))
    grid_wcs, grid_shape = model_grid(w_in, (50, 60), pixel_pc=0.026, distance_pc=400.0)
    rng = np.random.default_rng(1)
    planes = rng.random((3, *grid_shape)) + 1.0
    ours = interpolate(planes, grid_wcs, w_in, (50, 60))
    assert ours.dtype == np.float32 and ours.shape == (3, 50, 60)
    for k in range(3):
        theirs, _ = reproject_interp((planes[k], grid_wcs), w_in, shape_out=(50, 60))
        np.testing.assert_allclose(ours[k], theirs, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", ["plain", "rotated", "sip"])
def test_exact_regrid_in_strips_equals_one_call(kind, monkeypatch):
    """Overlap averages add up over strips of input rows: the strip-wise regrid (bounded
    memory) equals one reproject_exact call on the whole map, blanks included."""
    from reproject import reproject_exact

    from nhpipe import regrid

    from .conftest import make_header

    w_in = WCS(make_header((50, 60), kind=kind, pixel_arcsec=3.0))
    w_out = WCS(make_header((16, 18), pixel_arcsec=10.0))
    rng = np.random.default_rng(2)
    image = rng.random((50, 60)) + 1.0
    image[20:23, 5:40] = np.nan
    monkeypatch.setattr(regrid, "STRIP_ROWS", 7)
    ours, frac = regrid.resample(image, w_in, w_out, (16, 18))
    valid = np.isfinite(image)
    stack = np.stack([valid.astype(float), np.where(valid, image, 0.0)])
    whole, _ = reproject_exact((stack, w_in), w_out, shape_out=(16, 18))
    whole = np.nan_to_num(whole)
    np.testing.assert_allclose(frac, np.clip(whole[0], 0, 1), atol=1e-10)
    keep = whole[0] >= regrid.MIN_VALID_FRACTION
    np.testing.assert_allclose(ours[keep], whole[1][keep] / whole[0][keep], rtol=1e-10)
    assert np.isnan(ours[~keep]).all()
