"""Generator v5: lines of sight as deep and as layered as the sky's, seen by any survey.

The first generator (:mod:`nhpipe.sims.cloud` alone) made 128^3 cubes: every line of
sight was 3.33 pc deep, held one cloud and was seen through one beam. Networks trained on
it learned that depth (Ribeiro & Hily-Blant: the same N_H comes from a thin dense or a
deep diffuse column, and only a training set that spans both can teach the difference).
Here one line of sight is made of:

- a main cloud (the turbulent cloud of :mod:`nhpipe.sims.cloud`, with filaments and
  cores) in a box 128 x 128 cells wide and ``N_z`` cells deep at the same 0.026 pc cells,
  N_z = L / 0.026 pc for a depth L drawn log-uniform in 1-30 pc (a clump or filament is
  ~1 pc deep, a giant molecular cloud tens of pc; the poster's appendix takes a diffuse
  depth L_d = 10 pc). Its envelope density follows Larson's (1981, MNRAS 194, 809)
  density-size relation n ~ L^-1 from the first generator's range at 3.33 pc, so that a
  deep cloud is a diffuse one and column densities stay those of real clouds;
- in 40 % of the clouds, smooth gas: a Mach number of 0.3-2 (subsonic to transonic, as in
  the quiescent, coherent parts of clouds; Goodman et al. 1998, ApJ 504, 223) and an
  envelope filling 90-100 % of the box. Without them a smooth map was always a deep,
  diffuse one, and the networks read depth from contrast; maps of low contrast at every
  depth (as in the ``mhd`` family) were then read too deep (docs/accuracy.md,
  "Smooth clouds at every depth", has the diagnostic and the measured effect);
- in 25 % of the lines of sight, one quiescent cloud alone (:func:`quiescent_component`:
  Mach 0.2-0.6, filling its box, no filaments, cores or self-gravity tail, turbulence
  driven at the cloud's own size), at any depth. Its map is smooth however deep it is,
  so contrast does not tell the depth, which is true of the sky and of the ``mhd``
  family; with generator v4's clouds alone a
  smooth map was nearly always a deep one (of 145 training regions shallower than 3 pc,
  1 had a scatter of log10 N_H below 0.1 dex) and the networks read smooth, shallow
  lines of sight as deep and diffuse (``docs/experiments/quiescent_clouds.md``);
- in half of the clouds, self-gravity: the turbulent density PDF gets a power-law tail
  (:mod:`nhpipe.sims.gravity`; Kritsuk et al. 2011, Federrath & Klessen 2013);
- in half of the lines of sight, 1 or 2 more unrelated components along the same line of
  sight (in the Galactic plane several clouds share one): a diffuse foreground sheet
  (cold/warm neutral medium, 2-50 cm-3, transonic, 2-30 pc deep; Heiles & Troland 2003,
  ApJ 586, 1067) and/or a second cloud drawn like the first at its own depth. Components
  do not overlap in space, so they add exactly (:func:`nhpipe.sims.project.combine`);
- the observation is added by the caller, the same for every family
  (:class:`nhpipe.sims.observe.ObservationRanges`).

Time and memory per line of sight, measured on one core of the 2-core development machine:
a 30 pc main cloud (128 x 128 x 1153 cells, float32) takes about 9 s and peaks at 1.4 GB
(the distance transform of the filaments and the float64 projection dominate); the
average line of sight (cloud depths log-uniform in 1-30 pc, 1.7 components on average)
takes about 1.7 s. ``nhpipe make-dataset --family clouds --n-cubes 1200 --workers 2``
takes about 20 minutes (quiescent lines of sight are cheap; the README has the measured
figure).

Generator v4 is this one without the quiescent lines of sight
(``SkyRanges(quiescent_fraction=0)``, the same random stream), and generator v2 is v4
without the smooth clouds (``smooth_fraction=0`` too); v3 (structures no wider than the
cloud is deep) was tried and reverted (``docs/experiments/generator_v3.md``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..grid import PATCH
from .cloud import CELL_PC, CloudRanges, draw_params, gaussian_field, make_cube
from .observe import loguniform
from .project import combine, project

#: Side of a training region in model pixels, and its width on the sky in pc.
REGION = PATCH
REGION_PC = REGION * CELL_PC


@dataclass(frozen=True)
class SkyRanges:
    """Ranges of generator v5 (log-uniform where marked *log*); see the module docstring
    for the physics and references of each.

    cloud : the turbulent cloud's own ranges (the first generator's, unchanged).
    los_depth_pc : depth of a cloud along the line of sight in pc, log.
    larson_index : the envelope density of the cloud range (given at 3.33 pc) scales as
        (L / 3.33 pc)^-index (Larson 1981: n ~ L^-1.1; Solomon et al. 1987: L^-1).
    self_gravity_fraction : fraction of clouds with a power-law PDF tail.
    tail_slope : alpha of the tail p(s) ~ exp(-alpha s).
    tail_start : the tail starts this many sigma above the log-normal peak.
    component_weights : probability of 1, 2 and 3 components on a line of sight.
    sheet_density : cm-3, mean density of the diffuse foreground sheet, log.
    sheet_depth_pc : its depth in pc, log.
    sheet_mach : its sonic Mach number (transonic cold neutral medium).
    smooth_fraction : fraction of clouds drawn smooth: their Mach number from
        ``smooth_mach`` (log) and their envelope filling fraction from ``smooth_fill``
        instead of the cloud range's.
    quiescent_fraction : fraction of lines of sight that hold one quiescent cloud and
        nothing else: Mach number from ``quiescent_mach`` (log), an envelope filling the
        whole box, no filaments, no cores, no self-gravity tail.
    """

    cloud: CloudRanges = CloudRanges()
    los_depth_pc: tuple = (1.0, 30.0)
    larson_index: float = 1.0
    self_gravity_fraction: float = 0.5
    tail_slope: tuple = (1.5, 2.5)
    tail_start: tuple = (0.5, 2.0)
    component_weights: tuple = (0.5, 0.3, 0.2)
    sheet_density: tuple = (2.0, 50.0)
    sheet_depth_pc: tuple = (2.0, 30.0)
    sheet_mach: tuple = (0.5, 2.0)
    smooth_fraction: float = 0.4
    smooth_mach: tuple = (0.3, 2.0)
    smooth_fill: tuple = (0.9, 1.0)
    quiescent_fraction: float = 0.25
    quiescent_mach: tuple = (0.2, 0.6)

    def to_dict(self) -> dict:
        return asdict(self)


def cloud_component(rng: np.random.Generator, ranges: SkyRanges, *, width: int = REGION):
    """One turbulent cloud of random depth: its projection and its parameters.

    Returns
    -------
    (nh, n_m) : ndarrays, shape (width, width), cm-2 and cm-3
    params : dict (``kind``, ``depth_pc``, ``self_gravity``, the cloud's parameters)
    """
    nz, params = _cloud_params(rng, ranges)
    # With smooth_fraction 0 no number is drawn, so the random stream, and every cloud, is
    # generator v2's (the data the first stage of the shipped networks trained on).
    if ranges.smooth_fraction and rng.random() < ranges.smooth_fraction:
        # Without these, a smooth map was always a deep one, and the networks read depth
        # from contrast (docs/accuracy.md, "Smooth clouds at every depth").
        params.mach = loguniform(rng, ranges.smooth_mach)
        params.fill = float(rng.uniform(*ranges.smooth_fill))
    tail = None
    if rng.random() < ranges.self_gravity_fraction:
        tail = {"slope": float(rng.uniform(*ranges.tail_slope)),
                "start": float(rng.uniform(*ranges.tail_start))}
    cube = make_cube(params, rng, shape=(nz, width, width), k_floor=1.0 / width, tail=tail)
    columns = project(cube, axis=0, cell_pc=CELL_PC)
    return columns, {"kind": "cloud", "depth_pc": nz * CELL_PC, "self_gravity": tail,
                     **params.to_dict()}


def _cloud_params(rng: np.random.Generator, ranges: SkyRanges):
    """Depth (cells) and parameters of one cloud, its envelope density on Larson's
    relation for that depth."""
    nz = max(8, int(round(loguniform(rng, ranges.los_depth_pc) / CELL_PC)))
    params = draw_params(rng, ranges.cloud)
    params.n_envelope *= (REGION_PC / (nz * CELL_PC)) ** ranges.larson_index
    return nz, params


def quiescent_component(rng: np.random.Generator, ranges: SkyRanges, *,
                        width: int = REGION):
    """A quiescent cloud: subsonic, filling its box, without filaments, cores or a
    self-gravity tail, of any depth (1-30 pc like the others), its turbulence driven at
    the cloud's own size: the spectra of its density and envelope flatten beyond an
    outer scale of its depth or the region's width, whichever is smaller (Brunt, Heyer
    & Mac Low 2009, A&A 504, 883: molecular-cloud turbulence is driven on the cloud's
    scale).

    Such a cloud's map is smooth (scatter of log10 N_H ~0.05-0.1 dex) whatever its depth,
    so its contrast does not say how deep it is (the scale of its structure does), and a
    network trained with it stops reading every smooth map as a deep one. Subsonic,
    coherent gas is observed in the quiescent parts of clouds and in dense cores (Goodman
    et al. 1998, ApJ 504, 223; Pineda et al. 2010, ApJ 712, L116).

    Returns
    -------
    (nh, n_m) : ndarrays, shape (width, width), cm-2 and cm-3
    params : dict (``kind`` 'quiescent', ``depth_pc``, the cloud's parameters)
    """
    nz, params = _cloud_params(rng, ranges)
    params.mach = loguniform(rng, ranges.quiescent_mach)
    params.fill = 1.0
    params.filaments, params.cores = [], []
    # No eddy wider than the cloud is deep: a thin quiescent cloud is structured on the
    # scale of its depth across the region, a deep one on the region's scale.
    k_outer = 1.0 / min(nz, width)
    cube = make_cube(params, rng, shape=(nz, width, width), k_floor=k_outer,
                     turb_k_floor=k_outer)
    columns = project(cube, axis=0, cell_pc=CELL_PC)
    return columns, {"kind": "quiescent", "depth_pc": nz * CELL_PC, "self_gravity": None,
                     **params.to_dict()}


def sheet_component(rng: np.random.Generator, ranges: SkyRanges, *, width: int = REGION):
    """A diffuse, transonic log-normal sheet (foreground or background atomic gas).

    Its cells are 4 times deeper than wide (the sheet has no structure finer than that
    along the line of sight that matters for N_H and <n>_m at 1-10 % precision, and the
    projection stays exact for the cube as built).
    """
    aspect = 4
    depth = loguniform(rng, ranges.sheet_depth_pc)
    nz = max(2, int(round(depth / (aspect * CELL_PC))))
    density = loguniform(rng, ranges.sheet_density)
    mach = float(rng.uniform(*ranges.sheet_mach))
    sigma = float(np.sqrt(np.log1p((0.5 * mach) ** 2)))
    g = gaussian_field((nz, width, width), 11.0 / 3.0, rng, spacing=(aspect, 1, 1))
    cube = density * np.exp(sigma * g - 0.5 * sigma**2)
    columns = project(cube, axis=0, cell_pc=aspect * CELL_PC)
    return columns, {"kind": "sheet", "depth_pc": nz * aspect * CELL_PC, "density": density,
                     "mach": mach}


def simulate_sightline(rng: np.random.Generator, ranges: SkyRanges = SkyRanges(), *,
                       width: int = REGION) -> dict:
    """The true column of one line of sight of generator v5, with what is recorded about it.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness: a seed reproduces the line of sight exactly.
    ranges : SkyRanges
    width : int
        Region side in pixels (128; smaller in tests).

    Returns
    -------
    dict
        ``nh`` (cm-2) and ``n_m`` (cm-3), shape (width, width); ``meta``: los_depth_pc
        (total depth of gas), cloud_depth_pc (main cloud), n_components; ``params``
        (every component's parameters).
    """
    # With quiescent_fraction 0 no number is drawn: generator v4's random stream.
    if ranges.quiescent_fraction and rng.random() < ranges.quiescent_fraction:
        n_comp, kinds = 1, ["quiescent"]
    else:
        n_comp = 1 + int(rng.choice(3, p=np.asarray(ranges.component_weights)))
        kinds = ["cloud"]
    if n_comp == 2:
        kinds.append("sheet" if rng.random() < 0.5 else "cloud")
    elif n_comp == 3:
        kinds += ["sheet", "cloud"]
    columns, components = [], []
    for kind in kinds:
        make = {"cloud": cloud_component, "sheet": sheet_component,
                "quiescent": quiescent_component}[kind]
        column, params = make(rng, ranges, width=width)
        columns.append(column)
        components.append(params)
    nh, n_m = combine(columns)
    meta = {"los_depth_pc": float(sum(c["depth_pc"] for c in components)),
            "cloud_depth_pc": components[0]["depth_pc"], "n_components": n_comp}
    return {"nh": nh, "n_m": n_m, "meta": meta, "params": {"components": components}}
