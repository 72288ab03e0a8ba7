"""Mock maps of dense cores with known densities: two core profiles in three cloud families.

A mock is a simulated cloud seen like an HGBS map (3" pixels, 18.2" beam, 2 % noise,
N(H2) in cm-2), with cores added to its column density, and the
catalogue of those cores in the HGBS column layout (:class:`nhpipe.cores.CatalogueColumns`)
with their true mean density ``n_true_h`` (n_H inside the observed radius).

Two profile families (a catalogue does not say which one a core has):

- ``plummer``: n_0 / (1 + (r / a)^2) with a flat radius a = R_deconv / 2, truncated at
  2 R_obs (:mod:`nhpipe.sims.cores`; Whitworth & Ward-Thompson 2001);
- ``sphere``: a uniform sphere of radius R_deconv (the two-component model's own picture
  of a core, seen through the beam).

and three families of cloud around them, so that a term fitted in one cloud is tested in
the others:

- ``turbulent``: the turbulent cloud of the training generator (:mod:`nhpipe.sims.cloud`,
  its own cores removed), 3.33 pc deep;
- ``fractal``: a hierarchical clump cloud of the fractal validation family
  (:mod:`nhpipe.sims.fractal`, Elmegreen 1997), as deep;
- ``driven``: a box of driven isothermal supersonic turbulence (:mod:`nhpipe.sims.hydro`,
  :data:`DRIVEN_CELLS`^3 cells, rms Mach log-uniform in 4-16, run for each mock), as deep
  and at a Larson mean density with +-0.5 dex scatter, like the ``turb`` validation family.

Both profiles hold the catalogued mass inside R_obs (plummer) or in all (sphere), so the
true mean density inside R_obs is known exactly. Every core is added to the map; the
catalogue holds those an extraction would find (:func:`detected`). Cores come from a
catalogue (positions, radii and masses of real cores, e.g. Konyves et al. 2020) or are
drawn (:func:`draw_cores`) with HGBS-like radii and masses.

The case the two-component correction is meant for, a line of sight that holds more than
the core, is ``superposed``: an unrelated, less dense clump on each core's line of sight
(:func:`add_clumps`), which the catalogue's mass and density include and the truth does
not.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from ..grid import PIXEL_PC
from ..units import PC_CM
from .cores import mean_density, plummer_column, plummer_n0, plummer_square_column
from .observe import ARCSEC_PER_RAD

PROFILES = ("plummer", "sphere")
CLOUDS = ("turbulent", "fractal", "driven")
#: Observation of the mocks: HGBS high-resolution maps of a cloud at 400 pc.
DISTANCE_PC, PIXEL_ARCSEC, BEAM_ARCSEC = 400.0, 3.0, 18.2
#: A core is catalogued when its peak stands DETECTION_SNR times above the cloud's column
#: fluctuations on CORE_SCALE_PC (pc) (:func:`detected`).
DETECTION_SNR, CORE_SCALE_PC = 5.0, 0.1
#: Cells per side of the turbulence box of a ``driven`` cloud (~40 s a run at 64).
DRIVEN_CELLS = 64
#: A clump on a core's line of sight (``make_mock(superposed=True)``): a uniform sphere of
#: CLUMP_RADIUS x R_obs (inside the annulus 2R-3R where the background is measured, so an
#: extraction does not subtract it) holding a log-uniform fraction CLUMP_MASS of the
#: core's mass.
CLUMP_RADIUS, CLUMP_MASS = 1.5, (0.3, 1.0)
#: Where drawn cores go (``make_mock(placement=...)``): anywhere in the field, or on the
#: cloud's dense gas (:func:`dense_positions`).
PLACEMENTS = ("uniform", "dense")
#: Field margin kept free of drawn cores, as a fraction of the field's side.
FIELD_MARGIN = 0.05


def sphere_column(b_cm, *, n, r_cm):
    """N_H (cm-2) at impact parameter ``b_cm`` through a uniform sphere of density ``n``."""
    return 2.0 * n * np.sqrt(np.clip(r_cm**2 - np.asarray(b_cm, float) ** 2, 0.0, None))


def draw_cores(n: int, rng: np.random.Generator, *, centre=(85.5, -1.0),
               size_deg: float = 0.5) -> Table:
    """``n`` HGBS-like cores in a ``size_deg`` field.

    Radii and masses follow the Orion B catalogue of Konyves et al. (2020): deconvolved
    radii log-normal about 0.03 pc (0.15 dex, kept within 0.01-0.1 pc), masses log-normal
    about 0.2 Msun (0.7 dex; its 16/50/84 % are 0.04/0.17/1.2 Msun, radii 0.023/0.030/
    0.046 pc). Observed radii follow the HGBS convention, the deconvolved one and the
    beam's full width at half maximum combined in quadrature (R_obs^2 = R_deconv^2 +
    HPBW^2, as the catalogue's own columns satisfy).
    """
    hpbw_pc = BEAM_ARCSEC / ARCSEC_PER_RAD * DISTANCE_PC
    r_deconv = np.clip(10 ** rng.normal(np.log10(0.03), 0.15, n), 0.01, 0.1)
    margin = FIELD_MARGIN * size_deg
    dec = centre[1] + rng.uniform(-0.5, 0.5, n) * (size_deg - 2 * margin)
    ra = centre[0] + rng.uniform(-0.5, 0.5, n) * (size_deg - 2 * margin) / np.cos(
        np.radians(centre[1]))
    table = Table({"name": [f"mock{i:04d}" for i in range(n)], "ra": ra, "dec": dec,
                   "r_obs": np.hypot(r_deconv, hpbw_pc), "r_deconv": r_deconv,
                   "mass": 10 ** rng.normal(np.log10(0.2), 0.7, n),
                   "core_type": np.full(n, 2), "alpha_be": np.full(n, 1.0),
                   "comment": [""] * n})
    table["r_obs"].unit = table["r_deconv"].unit = "pc"
    table["mass"].unit = "Msun"
    return table


def dense_positions(cloud_nh: np.ndarray, wcs, n: int, rng: np.random.Generator):
    """RA and Dec (deg) of ``n`` cores placed on a cloud's dense gas: each in a pixel drawn
    with probability proportional to the square of the cloud's N_H there (anywhere in
    it, uniformly), the field's :data:`FIELD_MARGIN` left free as for uniform positions.

    Prestellar cores lie on the densest gas of their cloud, in the HGBS fields mostly on
    filaments above a column of ~7e21 cm-2 of H2 (Andre et al. 2010; Konyves et al.
    2015), so they crowd and sit on bright backgrounds more than uniform positions do.
    The squared column is a simple weighting with that property, not a law of star
    formation.
    """
    ny, nx = cloud_nh.shape
    weight = np.asarray(cloud_nh, dtype=np.float64) ** 2
    my, mx = int(round(FIELD_MARGIN * ny)), int(round(FIELD_MARGIN * nx))
    weight[:my], weight[ny - my:], weight[:, :mx], weight[:, nx - mx:] = 0.0, 0.0, 0.0, 0.0
    pixel = rng.choice(weight.size, size=n, p=weight.ravel() / weight.sum())
    y, x = np.unravel_index(pixel, weight.shape)
    sky = wcs.pixel_to_world(x + rng.uniform(-0.5, 0.5, n), y + rng.uniform(-0.5, 0.5, n))
    return sky.ra.deg, sky.dec.deg


def add_cores(nh: np.ndarray, wcs, cores: Table, profile: str, *,
              square: np.ndarray | None = None) -> np.ndarray:
    """Add the cores' column densities (cm-2) to an N_H map on ``wcs`` (at 400 pc), and
    their int n_H^2 dz (cm-5) to ``square`` when given; returns the boolean mask of the
    cores that fall inside the map."""
    from astropy.coordinates import SkyCoord

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    pixel_pc = PIXEL_ARCSEC / ARCSEC_PER_RAD * DISTANCE_PC
    x, y = wcs.world_to_pixel(SkyCoord(cores["ra"], cores["dec"], unit="deg"))
    inside = (x > 0) & (y > 0) & (x < nh.shape[1] - 1) & (y < nh.shape[0] - 1)
    for i in np.flatnonzero(inside):
        r_obs = float(cores["r_obs"][i]) * PC_CM
        r_dec = float(cores["r_deconv"][i]) * PC_CM
        mass = float(cores["mass"][i])
        r_out = 2.0 * r_obs if profile == "plummer" else r_dec
        reach = int(np.ceil(r_out / PC_CM / pixel_pc)) + 1
        cy, cx = int(round(y[i])), int(round(x[i]))
        # Clipped at both edges: mgrid would not clip a stop beyond the map as indexing does.
        box = (slice(max(cy - reach, 0), min(cy + reach + 1, nh.shape[0])),
               slice(max(cx - reach, 0), min(cx + reach + 1, nh.shape[1])))
        yy, xx = np.mgrid[box]
        b = np.hypot(xx - x[i], yy - y[i]) * pixel_pc * PC_CM
        if profile == "plummer":
            a = 0.5 * r_dec
            shape = {"n0": plummer_n0(mass, r_obs, a), "a_cm": a, "r_out_cm": r_out}
            nh[box] += plummer_column(b, **shape)
            if square is not None:
                square[box] += plummer_square_column(b, **shape)
        else:
            n = mean_density(mass, r_dec)
            nh[box] += sphere_column(b, n=n, r_cm=r_dec)
            if square is not None:  # uniform: n^2 over the chord
                square[box] += n * sphere_column(b, n=n, r_cm=r_dec)
    return inside


def add_clumps(nh: np.ndarray, wcs, cores: Table, rng: np.random.Generator, *,
               square: np.ndarray | None = None) -> np.ndarray:
    """Add an unrelated clump on each core's line of sight (:data:`CLUMP_RADIUS`,
    :data:`CLUMP_MASS`; centred on the core in projection, anywhere along the line of
    sight: a column map cannot tell where); their int n_H^2 dz to ``square`` when given.

    Returns
    -------
    ndarray, shape (len(cores),)
        Each clump's mass inside its core's aperture (M_sun): what an extraction adds to
        the core's mass. A uniform sphere of radius a holds 1 - (1 - r^2 / a^2)^(3/2) of
        its mass inside a cylinder of radius r < a.
    """
    fraction = 10 ** rng.uniform(*np.log10(CLUMP_MASS), len(cores))
    clumps = Table({"ra": cores["ra"], "dec": cores["dec"], "r_obs": cores["r_obs"],
                    "r_deconv": CLUMP_RADIUS * np.asarray(cores["r_obs"], float),
                    "mass": fraction * np.asarray(cores["mass"], float)})
    add_cores(nh, wcs, clumps, "sphere", square=square)
    return np.asarray(clumps["mass"]) * (1.0 - (1.0 - CLUMP_RADIUS**-2) ** 1.5)


def detected(cloud: np.ndarray, with_cores: np.ndarray, wcs, cores: Table, *,
             threshold: float = DETECTION_SNR) -> np.ndarray:
    """Which cores an extraction would find: those whose own peak column, seen through the
    beam, is at least ``threshold`` times the local fluctuation of the cloud's column on
    core scales.

    HGBS catalogues a core only when its column density peak stands out at >= 5 sigma
    of the local background fluctuations (Konyves et al. 2015, A&A 584, A91);
    here sigma is the local rms of the cloud's column (without cores, seen through the
    beam) minus its smoothing on :data:`CORE_SCALE_PC`, over that scale too. A core in a
    bright, structured cloud must be brighter to be catalogued, as on the sky.

    Parameters
    ----------
    cloud, with_cores : ndarray, shape (ny, nx)
        N_H (cm-2) of the cloud alone and with the cores added, on the mock's pixels.
    wcs : astropy.wcs.WCS
    cores : Table
        The cores (ra, dec in degrees).

    Returns
    -------
    ndarray of bool, shape (len(cores),)
    """
    from astropy.coordinates import SkyCoord
    from scipy import ndimage

    pixel_pc = PIXEL_ARCSEC / ARCSEC_PER_RAD * DISTANCE_PC
    beam = BEAM_ARCSEC / PIXEL_ARCSEC / np.sqrt(8 * np.log(2))
    scale = CORE_SCALE_PC / pixel_pc
    seen = ndimage.gaussian_filter(cloud, beam)
    fluctuation = seen - ndimage.gaussian_filter(seen, scale)
    sigma = np.sqrt(ndimage.gaussian_filter(fluctuation**2, scale))
    peaks = ndimage.gaussian_filter(with_cores - cloud, beam)
    x, y = wcs.world_to_pixel(SkyCoord(cores["ra"], cores["dec"], unit="deg"))
    iy = np.clip(np.round(y).astype(int), 0, cloud.shape[0] - 1)
    ix = np.clip(np.round(x).astype(int), 0, cloud.shape[1] - 1)
    return peaks[iy, ix] >= threshold * sigma[iy, ix]


def true_density(cores: Table) -> np.ndarray:
    """True mean n_H (cm-3) inside each core's observed radius: both profiles hold the
    whole catalogued mass there (the Plummer core by construction, the sphere because
    R_deconv < R_obs)."""
    return mean_density(np.asarray(cores["mass"], float),
                        np.asarray(cores["r_obs"], float) * PC_CM)


def make_mock(profile: str, *, seed: int = 0, cores: Table | None = None, n_cores: int = 300,
              size_deg: float = 0.5, centre=(85.5, -1.0), cloud: str = "turbulent",
              detect: bool = True, superposed: bool = False, true_nm: bool = False,
              placement: str = "uniform", cloud_only: bool = False):
    """A mock HGBS-like N(H2) map with cores of one profile family, and its catalogue.

    Parameters
    ----------
    profile : {'plummer', 'sphere'}
    cloud : {'turbulent', 'fractal', 'driven'}
        The cloud the cores sit in (module docstring).
    seed : int
        Seed of the cloud, the cores (when drawn) and the noise.
    cores : Table, optional
        Cores to place (HGBS columns ra, dec, r_obs, r_deconv in pc, mass in Msun); by
        default ``n_cores`` drawn by :func:`draw_cores`.
    size_deg : float
        Side of the map, in degrees (0.5 deg is 3.5 pc at 400 pc, 600 x 600 pixels).
    placement : {'uniform', 'dense'}
        Where the drawn cores go: uniformly over the field, or on the cloud's dense gas
        (:func:`dense_positions`; its own random stream, so the cloud, the cores' radii
        and masses, and the noise are those of the uniform mock). Only for drawn cores.
    detect : bool
        Catalogue only the cores an extraction would find (:func:`detected`); all of them
        are in the map either way.
    superposed : bool
        Put an unrelated, less dense clump on every core's line of sight
        (:func:`add_clumps`): the catalogue then holds the mass and density an extraction
        would measure (core and the clump's share of the aperture), ``n_true_h`` the
        core's own. The cloud, cores and noise are those of the mock without clumps.
    true_nm : bool
        Also return the true log10 <n_H>_m (cm-3) of every pixel, before the beam: the
        cloud's int n^2 dz (from its cube) plus the cores' and clumps' (exact), over the
        same sum of columns. Cross terms between the cloud and a core, 2 int n_cloud
        n_core dz, are left out (the cores are added to the column, not placed in the
        cube); they are small where the core is much denser than the cloud.

    Returns
    -------
    hdu : astropy.io.fits.PrimaryHDU
        N(H2) in cm-2 with a TAN WCS and the beam in BMAJ/BMIN.
    catalogue : astropy.table.Table
        The cores inside the map (and detected), in the HGBS layout, with ``n_h2_ave_obs`` (the true
        density as n(H2), 1e4 cm-3, as HGBS gives it) and ``n_true_h`` (cm-3).
    log_nm : ndarray, shape of the map
        With ``true_nm`` only: the true log10 <n_H>_m.
    cloud_hdu : astropy.io.fits.PrimaryHDU
        With ``cloud_only`` only (last): the cloud's N(H2) in cm-2, same WCS and beam.
    """
    from .observe import herschel_like_hdu, tan_wcs, upsample
    from .project import project

    if profile not in PROFILES or cloud not in CLOUDS:
        raise ValueError(f"profile must be one of {PROFILES} and cloud one of {CLOUDS}")
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    if placement != "uniform" and cores is not None:
        raise ValueError("placement applies to drawn cores; given cores keep their positions")
    key = [seed, PROFILES.index(profile), CLOUDS.index(cloud)]
    rng = np.random.default_rng(key)
    if cores is None:
        cores = draw_cores(n_cores, rng, centre=centre, size_deg=size_deg)
    cells = int(round(np.radians(size_deg) * DISTANCE_PC / PIXEL_PC))
    cell_nh, cell_nm = project(_cloud_cube(cloud, rng, cells), axis=0, cell_pc=PIXEL_PC)
    pixel_pc = PIXEL_ARCSEC / ARCSEC_PER_RAD * DISTANCE_PC
    nh = upsample(cell_nh, cell_pc=PIXEL_PC, pixel_pc=pixel_pc)
    square = upsample(cell_nh * cell_nm, cell_pc=PIXEL_PC, pixel_pc=pixel_pc) \
        if true_nm else None
    wcs = tan_wcs(nh.shape, pixel_arcsec=PIXEL_ARCSEC, centre=centre)
    cloud_only_nh = nh.copy()
    if placement == "dense":  # their own random stream, as the clumps'
        cores = Table(cores, copy=True)
        cores["ra"], cores["dec"] = dense_positions(cloud_only_nh, wcs, len(cores),
                                                    np.random.default_rng(key + [2]))
    inside = add_cores(nh, wcs, cores, profile, square=square)
    extra = np.zeros(len(cores))
    if superposed:  # their own random stream: the rest of the mock is unchanged
        extra = add_clumps(nh, wcs, cores, np.random.default_rng(key + [1]), square=square)
    # Every core is in the map; only those an extraction would find are catalogued.
    if detect:
        inside[inside] = detected(cloud_only_nh, nh, wcs, cores[inside])
    hdu = herschel_like_hdu(nh, distance_pc=DISTANCE_PC, pixel_arcsec=PIXEL_ARCSEC,
                            beam_arcsec=BEAM_ARCSEC, centre=centre, rng=rng)
    catalogue = Table(cores[inside], copy=True)
    catalogue["n_true_h"] = true_density(catalogue)
    catalogue["n_true_h"].unit = "cm-3"
    catalogue["mass"] = np.asarray(catalogue["mass"], float) + extra[inside]
    catalogue["mass"].unit = "Msun"
    catalogue["n_h2_ave_obs"] = true_density(catalogue) / 2 / 1e4
    catalogue["n_h2_ave_obs"].unit = "1e4 cm-3"
    catalogue.meta.update({"mock": f"{profile} cores in a {cloud} cloud, seed {seed}"
                           + (", each with a clump on its line of sight" if superposed else "")
                           + (", placed on its dense gas" if placement == "dense" else ""),
                           "profile": profile, "cloud": cloud, "seed": seed,
                           "superposed": superposed, "placement": placement})
    out = (hdu, catalogue) + ((np.log10(square / nh),) if true_nm else ())
    if cloud_only:
        out += (herschel_like_hdu(cloud_only_nh, distance_pc=DISTANCE_PC,
                                  pixel_arcsec=PIXEL_ARCSEC, beam_arcsec=BEAM_ARCSEC,
                                  centre=centre, noise=0.0),)
    return out


def _cloud_cube(cloud: str, rng: np.random.Generator, cells: int) -> np.ndarray:
    """n_H (cm-3) of a 3.33 pc deep cloud ``cells`` wide, without cores of its own (they
    would have no catalogue entry)."""
    depth = 128
    depth_pc = depth * PIXEL_PC
    if cloud == "fractal":
        from .fractal import FractalRanges, fractal_cube

        cube, _ = fractal_cube(rng, FractalRanges(los_depth_pc=(depth_pc, depth_pc)),
                               width=cells)
        return cube
    if cloud == "driven":
        from .families import MHDRanges
        from .fractal import larson_density
        from .hydro import TurbulenceConfig, TurbulenceRanges, turbulence_cube
        from .observe import loguniform
        from .readers import DensityCube

        mach = loguniform(rng, TurbulenceRanges.mach)
        box = DRIVEN_CELLS
        rho, _ = turbulence_cube(rng, TurbulenceConfig(n=box, mach=mach))
        # The periodic box spans the map across and the cloud's depth along the line of
        # sight, resampled to the model's cells like a simulation read from disk.
        width_pc = cells * PIXEL_PC
        rho = DensityCube(rho, (depth_pc / box, width_pc / box, width_pc / box)) \
            .resampled(PIXEL_PC).n
        n_mean = larson_density(depth_pc) * 10 ** rng.uniform(*MHDRanges.larson_scatter_dex)
        return (n_mean * rho / rho.mean(dtype=np.float64)).astype(np.float32)
    from .cloud import draw_params, make_cube

    params = draw_params(rng)
    params.cores = []
    return make_cube(params, rng, shape=(depth, cells, cells))
