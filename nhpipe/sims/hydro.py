"""Driven isothermal supersonic turbulence: a density field made by solving fluid equations.

The third validation family, ``turb``, is neither a statistical generator (like the
training clouds of :mod:`nhpipe.sims.sky`) nor a clump recipe (like
:mod:`nhpipe.sims.fractal`): its density comes out of the isothermal Euler equations in a
periodic box stirred at large scales, the standard numerical model of the supersonic
turbulence of molecular clouds (e.g. Padoan & Nordlund 1999, ApJ 526, 279; Federrath et
al. 2010, A&A 512, A81). Its sheets, filaments and shock-compressed voids are made by the
flow, so how its maps show their depth is not a rule that anybody here wrote.

Numerics (code units: box side 1, sound speed 1, mean density 1):

- finite volumes on an ``n``-cube, periodic; second order in space (piecewise-linear
  primitive variables, van Leer's limiter, which keeps every face value between its two
  neighbours' and so keeps the density positive) and time (the two-stage strong-stability-
  preserving Runge-Kutta of Shu & Osher 1988, J. Comput. Phys. 77, 439);
- HLL fluxes (Harten, Lax & van Leer 1983, SIAM Rev. 25, 35) with the isothermal wave
  speeds v -+ c_s (Toro 2009, *Riemann Solvers and Numerical Methods for Fluid Dynamics*,
  Sect. 10.3);
- a solenoidal acceleration on wavenumbers 1 <= |k| L / 2 pi <= 3, peaked at 2, whose
  Fourier amplitudes follow an Ornstein-Uhlenbeck process with the correlation time of
  one turnover (Eswaran & Pope 1988, Comput. Fluids 16, 257; the driving of Federrath et
  al. 2010); its amplitude follows the measured rms Mach number towards the target, and
  its mass-weighted mean is removed, so the box's momentum stays zero.

Mass is conserved to rounding (fluxes cancel in pairs on the periodic grid); the tests
check that, a uniform state at rest, and the speed of a sound wave.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Courant number of the time step, taken per axis (:func:`time_step`); an unsplit 3-D
#: second-order scheme needs it at or below 0.5 (the rule of Athena++'s van Leer
#: integrator, Stone et al. 2020, ApJS 249, 4).
CFL = 0.4


@dataclass(frozen=True)
class TurbulenceConfig:
    """One driven-turbulence run.

    Attributes
    ----------
    n : int
        Cells per side.
    mach : float
        Target rms Mach number of the driven flow (molecular clouds: 3-20 at the scales
        of a few pc; Larson 1981).
    turnovers : float
        Run length in turnover times L / (2 mach c_s); statistically steady turbulence
        is reached after about two (Federrath et al. 2010, Sect. 2.3).
    """

    n: int = 64
    mach: float = 6.0
    turnovers: float = 3.0

    def to_dict(self) -> dict:
        return asdict(self)


def _limited_slope(q: np.ndarray, axis: int) -> np.ndarray:
    """Van Leer's harmonic slope of ``q`` along ``axis`` (0 at extrema)."""
    back = q - np.roll(q, 1, axis)
    fwd = np.roll(q, -1, axis) - q
    prod = back * fwd
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(prod > 0, 2.0 * prod / (back + fwd), 0.0)
    return slope.astype(q.dtype, copy=False)


def _hll_flux(rho_l, v_l, rho_r, v_r, axis):
    """HLL flux of (rho, m_0, m_1, m_2) through faces normal to ``axis``.

    ``v_l`` and ``v_r`` are lists of the three velocity components on the left and the
    right of each face; the sound speed is 1.
    """
    un_l, un_r = v_l[axis], v_r[axis]
    s_l = np.minimum(np.minimum(un_l, un_r) - 1.0, 0.0)
    s_r = np.maximum(np.maximum(un_l, un_r) + 1.0, 0.0)
    inv = 1.0 / (s_r - s_l)
    mass_l, mass_r = rho_l * un_l, rho_r * un_r
    fluxes = [(s_r * mass_l - s_l * mass_r + s_l * s_r * (rho_r - rho_l)) * inv]
    for c in range(3):
        f_l = mass_l * v_l[c] + (rho_l if c == axis else 0.0)
        f_r = mass_r * v_r[c] + (rho_r if c == axis else 0.0)
        u_l, u_r = rho_l * v_l[c], rho_r * v_r[c]
        fluxes.append((s_r * f_l - s_l * f_r + s_l * s_r * (u_r - u_l)) * inv)
    return fluxes


def _rate(state: np.ndarray, dx: float) -> np.ndarray:
    """d(state)/dt of the isothermal Euler equations, state = (rho, m_0, m_1, m_2)."""
    rho = state[0]
    v = [state[1 + c] / rho for c in range(3)]
    out = np.zeros_like(state)
    for axis in range(3):
        prims = [rho, *v]
        slopes = [_limited_slope(q, axis) for q in prims]
        left = [q + 0.5 * s for q, s in zip(prims, slopes)]          # cell i, face i+1/2
        right = [np.roll(q - 0.5 * s, -1, axis) for q, s in zip(prims, slopes)]  # cell i+1
        fluxes = _hll_flux(left[0], left[1:], right[0], right[1:], axis)
        for k, flux in enumerate(fluxes):
            out[k] -= (flux - np.roll(flux, 1, axis)) / dx
    return out


def step(state: np.ndarray, dt: float, dx: float) -> np.ndarray:
    """One SSP-RK2 step of the unforced equations (state = (rho, m_0, m_1, m_2), periodic)."""
    first = state + dt * _rate(state, dx)
    return 0.5 * state + 0.5 * (first + dt * _rate(first, dx))


def time_step(state: np.ndarray, dx: float) -> float:
    """The Courant-limited time step: CFL dx / max(|v| + c_s) over cells and axes."""
    rho = state[0]
    speed = max(float(np.max(np.abs(state[1 + c] / rho))) for c in range(3)) + 1.0
    return CFL * dx / speed


class _Driving:
    """Solenoidal Ornstein-Uhlenbeck forcing on 1 <= |k| <= 3 (in units of 2 pi / L)."""

    def __init__(self, n: int, rng: np.random.Generator, correlation_time: float):
        k = np.fft.fftfreq(n, 1.0 / n)
        kz, ky, kx = np.meshgrid(k, k, np.fft.rfftfreq(n, 1.0 / n), indexing="ij")
        kk = np.sqrt(kx**2 + ky**2 + kz**2)
        self.mask = (kk >= 1) & (kk <= 3)
        self.k = np.stack([kz, ky, kx])[:, self.mask]              # (3, modes)
        self.knorm2 = np.sum(self.k**2, axis=0)
        # Power peaked at |k| = 2 and vanishing at 1 and 3 (Federrath et al. 2010).
        kmod = np.sqrt(self.knorm2)
        self.amp = np.clip(1.0 - (kmod - 2.0) ** 2, 0.0, None) ** 0.5
        self.n, self.rng, self.t_corr = n, rng, correlation_time
        self.modes = self._noise()

    def _noise(self):
        shape = self.k.shape
        z = self.rng.standard_normal(shape) + 1j * self.rng.standard_normal(shape)
        return self._solenoidal(z * self.amp)

    def _solenoidal(self, f):
        return f - self.k * np.sum(self.k * f, axis=0) / self.knorm2

    def advance(self, dt: float) -> None:
        decay = np.exp(-dt / self.t_corr)
        self.modes = decay * self.modes + np.sqrt(1.0 - decay**2) * self._noise()

    def field(self) -> np.ndarray:
        """The acceleration, shape (3, n, n, n), rms 1 (float32)."""
        spec = np.zeros((3, self.n, self.n, self.n // 2 + 1), complex)
        spec[:, self.mask] = self.modes
        acc = np.fft.irfftn(spec, s=(self.n,) * 3, axes=(1, 2, 3))
        return (acc / np.sqrt(np.mean(np.sum(acc**2, axis=0)))).astype(np.float32)


def turbulence_cube(rng: np.random.Generator, config: TurbulenceConfig = TurbulenceConfig(),
                    *, progress=None) -> tuple[np.ndarray, dict]:
    """Run driven isothermal turbulence from rest and return the final density.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the driving's random phases (the run is otherwise deterministic).
    config : TurbulenceConfig
    progress : callable, optional
        Called as ``progress(t, t_end)`` after each step.

    Returns
    -------
    density : ndarray, shape (n, n, n), float32
        rho / <rho> (dimensionless, mean 1), periodic on every axis.
    info : dict
        ``config``, ``mach_rms`` (the mass-weighted rms Mach number at the end),
        ``steps``, ``t_end`` (code units, box crossing at c_s = 1) and ``sigma_s`` (the
        standard deviation of ln rho, which Padoan et al. 1997 relate to the Mach number).
    """
    n = config.n
    dx = 1.0 / n
    turnover = 1.0 / (2.0 * config.mach)
    t_end = config.turnovers * turnover
    state = np.zeros((4, n, n, n), np.float32)
    state[0] = 1.0
    driving = _Driving(n, rng, correlation_time=turnover)
    # Amplitude of a steady flow of rms speed M stirred at half the box: M^2 / (L / 2).
    amplitude = 2.0 * config.mach**2
    t, steps = 0.0, 0
    while t < t_end:
        dt = min(time_step(state, dx), t_end - t)
        state = step(state, dt, dx)
        if not np.all(state[0] > 0):
            raise FloatingPointError(f"turbulence run lost positivity at t = {t:.4g}")
        acc = driving.field()
        rho = state[0]
        mean_acc = np.sum(rho * acc, axis=(1, 2, 3)) / np.sum(rho)  # keeps momentum at 0
        state[1:] += dt * amplitude * rho * (acc - mean_acc[:, None, None, None])
        driving.advance(dt)
        mach = _mach_rms(state)
        # Slow feedback on the amplitude (one turnover) towards the target Mach number.
        amplitude *= (config.mach / max(mach, 1e-3)) ** min(dt / turnover, 1.0)
        t += dt
        steps += 1
        if progress is not None:
            progress(t, t_end)
    rho = state[0]
    info = {"config": config.to_dict(), "mach_rms": round(_mach_rms(state), 4), "steps": steps,
            "t_end": t_end, "sigma_s": round(float(np.std(np.log(rho / rho.mean()))), 4)}
    return (rho / rho.mean()).astype(np.float32), info


def _mach_rms(state: np.ndarray) -> float:
    """Mass-weighted rms Mach number (c_s = 1)."""
    rho = state[0]
    return float(np.sqrt(np.sum(np.sum(state[1:] ** 2, axis=0) / rho) / np.sum(rho)))


@dataclass(frozen=True)
class TurbulenceRanges:
    """The snapshots of the ``turb`` family: ``n_snapshots`` runs of ``n``^3 cells whose
    target Mach numbers are log-uniform in ``mach`` (each run its own driving phases), each
    kept after ``turnovers`` turnover times.

    The Mach number is drawn independently of the box each region is given (the
    line-of-sight depth, :class:`~nhpipe.sims.families.MHDRanges`): Larson's linewidth
    relation would tie them, but then the texture of a map would tell its depth by a
    rule of ours again.
    """

    n: int = 96
    n_snapshots: int = 8
    mach: tuple = (4.0, 16.0)
    turnovers: float = 3.0


def snapshot_dir(root, seed: int) -> Path:
    """Where the snapshots of the ``turb`` family made with ``seed`` live under ``root``."""
    return Path(root) / f"turb_seed{seed}"


def _snapshot_job(job):
    path, seed, k, config = job
    from astropy.io import fits

    from .._write import write_hdulist

    rng = np.random.default_rng([seed, 5, 10_000 + k])
    rho, info = turbulence_cube(rng, config)
    header = fits.Header()
    header["BUNIT"] = ("", "rho / <rho>: dimensionless")
    for axis in (1, 2, 3):
        header[f"CDELT{axis}"] = (1.0 / config.n, "cell size in box units")
    header["MACH"] = (info["mach_rms"], "mass-weighted rms Mach number at the end")
    header["MACHGOAL"] = (config.mach, "target rms Mach number of the driving")
    header["SIGMAS"] = (info["sigma_s"], "std of ln(rho / <rho>)")
    header["TURNOVR"] = (config.turnovers, "run length in turnover times L / (2 M c_s)")
    header["NSTEPS"] = (info["steps"], "time steps")
    header["SEED"] = (seed, "seed of the family's snapshots")
    header["SNAPSHOT"] = (k, "index of this snapshot")
    header["ORIGIN"] = "nhpipe.sims.hydro.turbulence_cube"
    write_hdulist(path, fits.HDUList([fits.PrimaryHDU(rho, header)]))
    return path, info


def make_snapshots(root, *, seed: int, ranges: TurbulenceRanges = TurbulenceRanges(),
                   workers: int = 1, progress: bool = False) -> list[Path]:
    """Run the ``turb`` family's turbulence boxes that are not yet on disk.

    Each snapshot is a FITS cube (rho / <rho>, header MACH, SIGMAS, SEED, ...) in
    :func:`snapshot_dir`; one that exists is reused, so a second data set of the same
    seed costs nothing and a killed run resumes with the snapshots it had finished (its
    header, not ``ranges``, says how it was made: :func:`snapshot_headers`).

    Returns
    -------
    list of Path
        The snapshots' paths, in order of their index.
    """
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from ..errors import InputError
    from .observe import loguniform

    folder = snapshot_dir(root, seed)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot keep the turbulence snapshots in {root}: "
                         f"{exc.strerror or exc}") from None
    rng = np.random.default_rng([seed, 5, 9_999])
    machs = [loguniform(rng, ranges.mach) for _ in range(ranges.n_snapshots)]
    paths = [folder / f"snapshot_{k:02d}.fits" for k in range(ranges.n_snapshots)]
    jobs = [(path, seed, k, TurbulenceConfig(n=ranges.n, mach=round(float(m), 3),
                                             turnovers=ranges.turnovers))
            for k, (path, m) in enumerate(zip(paths, machs)) if not path.exists()]
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) > 1 else None
    mapper = pool.map(_snapshot_job, jobs) if pool else map(_snapshot_job, jobs)
    try:
        for _ in tqdm(mapper, total=len(jobs), unit="run", disable=not progress,
                      desc="driving turbulence"):
            pass
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return paths


def snapshot_headers(folder) -> list[dict]:
    """How each snapshot in ``folder`` was made (its FITS header's run keywords)."""
    from astropy.io import fits

    keys = ("NAXIS1", "MACHGOAL", "MACH", "SIGMAS", "TURNOVR", "NSTEPS", "SEED", "SNAPSHOT")
    return [{key.lower(): fits.getheader(path)[key] for key in keys}
            for path in sorted(Path(folder).glob("snapshot_*.fits"))]


def read_snapshot(path) -> tuple[np.ndarray, tuple]:
    """A snapshot's rho / <rho> and its cell sizes in box units."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        rho = np.asarray(hdul[0].data, np.float32)
        cells = tuple(float(hdul[0].header[f"CDELT{a}"]) for a in (3, 2, 1))
    return rho / rho.mean(), cells

