"""Core densities on mocks with known truth: bias, interval coverage, and the model-error
term of the core correction fitted in one cloud family and tested in the others.

For each mock family of :mod:`nhpipe.sims.coremock` (Plummer-like and uniform-sphere cores,
each in a turbulent, a fractal and a driven-turbulence cloud; HGBS-like maps at 400 pc)
and each seed, nhpipe estimates <n_H>_m once and the cores are corrected by two methods,
each with the model-error term switched off: A.3 with L_d = 10 pc (the poster's) and A.4
with the n_d of each core's surroundings (``--nd local``), both with the default priors;
log10(n_c / n_true) is scored. The term (an offset and a log-normal scatter added to every
Monte-Carlo draw) is then fitted on the cores of one cloud family, both profiles pooled
(a catalogue does not say which profile a core has), so that its 68 % intervals hold 68 %
of the true densities; the stored term does this in each tercile of the cores' envelope
ratio, split at a contrast of 1
(:func:`nhpipe.cores.core_profile`, both measured on the map: the ratio tells an
extended Plummer-like core from a sharp-edged sphere, which one pooled term cannot centre
both; the contrast a faint core on a bright background, read too dense, from a bright
one), with the pooled term for cores without them. Its coverage
is measured on each profile in the other clouds, and by the ``blended`` flag (another
catalogued core's centre inside the aperture). The cards get each method's term.
``--blended-term`` gives the blended cores a term of their own (tried, not adopted:
README, "Cores on dense gas").

A network-free baseline is scored on the same cores: the background-subtracted aperture
column over L_c (N_H in the aperture minus the median in the annulus 2R-3R, L_c drawn
from the same prior), with its own terms fitted the same way. It is the kind of density
a catalogue gives, and the mocks' true density is of that kind.

    python benchmarks/core_mocks.py --seeds 0 1 2 --out docs/core_mocks --write-card
"""

import argparse
import functools
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

import nhpipe
from nhpipe.cores import LOCAL, LOW_CONTRAST, CatalogueColumns, CorrectionOptions, \
    core_radius_pc, correct_catalog, profile_term, profile_width, term_method
from nhpipe.cores._correct import spread_about_median
from nhpipe.sims.coremock import CLOUDS, PLACEMENTS, PROFILES, make_mock
from nhpipe.units import PC_CM

from _report import report  # benchmarks/ is the script's folder

#: Edges of the contrast bins of the contrast table (the first is nhpipe's flag, chosen
#: from a first look at the residuals of the U-Net's mocks by contrast: they rise below
#: ~0.2).
CONTRAST_EDGES = (LOW_CONTRAST, 1.0)
#: Bins of the stored term: terciles of the fitted cores' envelope ratio (chosen after 2,
#: 3, 4 and 6 bins were looked at on two cloud families, earlier mocks), each split at a
#: contrast of 1 (the core's column equal to its background's; the upper edge of the
#: contrast table, fixed before the split was tried).
ENVELOPE_BINS, TERM_CONTRAST_EDGES = 3, (1.0,)
#: A bin with fewer fitted cores gets the pooled term.
MIN_BIN_CORES = 30
#: Bootstrap resamples of the cores for the median's standard error.
BOOTSTRAP = 200
#: The row label of the network-free baseline.
BASELINE = "no network: (N_ap - N_around) / L_c"
#: Targets of the issue, for the cells-met summary: 68 % coverage and |median| (dex).
COVERAGE_TARGET, MEDIAN_TARGET = (0.60, 0.76), 0.1
#: How each placement of the mock cores (``--placement``) is said in the reports.
PLACED = {"uniform": "placed uniformly in their clouds",
          "dense": "placed on their clouds' dense gas (drawn as N_H squared)"}
#: Flags of ``nhpipe catalog``'s table that the cores can be split by.
FLAGS = {"blended": "another catalogued core's centre inside the aperture",
         "neighbour_dominated": "the catalogued neighbours account for over 90 % of the "
                                "aperture's excess"}
#: ``--fit-on`` value for leaving each cloud family out in turn (:func:`evaluate_method`).
LEAVE_ONE_OUT = "others"


@functools.cache
def _mock(profile, seed, cloud, placement):
    # Made once for all the networks: a driven cloud is a turbulence run of ~40 s.
    return make_mock(profile, seed=seed, cloud=cloud, placement=placement)


def methods(l_d_pc, card_term=False, lc_spread=CorrectionOptions.lc_spread):
    """The two corrections scored, as CorrectionOptions without a term (or, with
    ``card_term``, with the term of the map's card, as ``nhpipe catalog`` applies it),
    with the prior L_c / R uniform in 2 x [1 - ``lc_spread``, 1 + ``lc_spread``]."""
    base = {"distance_pc": 400.0, "lc_spread": lc_spread}
    if not card_term:
        base.update(model_offset_dex=0.0, model_scatter_dex=0.0)
    return [CorrectionOptions(l_d_pc=l_d_pc, **base), CorrectionOptions(n_d=LOCAL, **base)]


def score_family(cloud, profile, seeds, model, samples, options_list, folder,
                 placement="uniform", flag="blended"):
    """For each method, then the baseline: log10 draws of n_c (n_draws, n_cores), log10
    n_true, envelope ratios, contrasts and ``flag`` (a column of :data:`FLAGS`, n_cores)
    of the cores each solves, in the mocks of ``placement``
    (:data:`nhpipe.sims.coremock.PLACEMENTS`)."""
    scored = [[] for _ in range(len(options_list) + 1)]
    for seed in seeds:
        hdu, cores = _mock(profile, seed, cloud, placement)
        hdul = nhpipe.estimate(hdu, distance="400pc", species="H2", model=model,
                               samples=samples, seed=seed)
        path = Path(folder) / f"{model}_{cloud}_{profile}_{placement}_{seed}.fits"
        hdul.writeto(path, overwrite=True)
        truth = np.log10(np.asarray(cores["n_true_h"], float))
        for k, options in enumerate(options_list):
            table, nc = correct_catalog(cores, path, options)
            ok = np.asarray(table["status"]) == "ok"
            with np.errstate(divide="ignore", invalid="ignore"):
                scored[k].append((np.log10(nc[:, ok]), truth[ok],
                                  *_flags(table, ok, flag)))
        scored[-1].append(_baseline(table, truth, options_list[0], flag=flag))
    return [tuple(np.concatenate([s[i] for s in rows], axis=-1) for i in range(5))
            for rows in scored]


def _flags(table, pick, flag="blended"):
    """Envelope ratio, contrast and the ``flag`` column of the cores ``pick`` of a
    table."""
    return (np.asarray(table["envelope"], float)[pick],
            np.asarray(table["contrast"], float)[pick],
            np.asarray(table[flag], bool)[pick])


def aperture_excess(table):
    """N_H in each core's aperture minus its background (cm-2), from a corrected table."""
    return np.asarray(table["nh_ap"], float) - np.asarray(table["nh_background"], float)


def _baseline(table, truth, options, excess=None, flag="blended"):
    """The network-free estimate on the cores of one corrected table (its aperture and
    background N_H, or the given aperture ``excess`` over the background, cm-2), with L_c
    drawn from the correction's prior."""
    if excess is None:
        excess = aperture_excess(table)
    radius = core_radius_pc(table, options.radius, CatalogueColumns())
    ok = np.isin(np.asarray(table["status"]), ["ok", "inconsistent"]) & (excess > 0)
    rng = np.random.default_rng(options.seed)
    l_c = options.lc_factor * radius[ok] * PC_CM * rng.uniform(
        1 - options.lc_spread, 1 + options.lc_spread, (options.n_draws, int(ok.sum())))
    return (np.log10(excess[ok] / l_c), truth[ok], *_flags(table, ok, flag))


def coverage(log_draws, log_truth, offset=0.0, scatter=0.0, width=1.0, seed=0):
    """68 % and 95 % coverage, and the median residual, with a model-error term
    (``offset`` and ``scatter`` in dex, ``width`` a factor on the draws' spread about
    their median, as :func:`nhpipe.cores.profile_width` applies it: numbers, or one per
    core).

    Standard errors treat the cores as independent (binomial for the coverages, a
    bootstrap over cores for the median): a lower bound, since the cores of one map share
    its cloud and the network's errors there.
    """
    noise = np.random.default_rng(seed).standard_normal(log_draws.shape)
    widened = spread_about_median(log_draws, width) + offset + scatter * noise
    q = np.nanpercentile(widened, [2.5, 16, 50, 84, 97.5], axis=0)
    inside68 = (q[1] <= log_truth) & (log_truth <= q[3])
    inside95 = (q[0] <= log_truth) & (log_truth <= q[4])
    residual = q[2] - log_truth
    n = int(log_truth.size)
    resamples = np.random.default_rng(seed + 1).integers(n, size=(BOOTSTRAP, n))
    return {"cores": n, "coverage_68": float(inside68.mean()),
            "coverage_68_se": float(np.sqrt(inside68.mean() * (1 - inside68.mean()) / n)),
            "coverage_95": float(inside95.mean()),
            "median_dex": float(np.median(residual)),
            "median_se_dex": float(np.std(np.median(residual[resamples], axis=1))),
            "p16_dex": float(np.percentile(residual, 16)),
            "p84_dex": float(np.percentile(residual, 84))}


def fit_term(log_draws, log_truth, narrow=False):
    """The offset (minus the median residual) and the scatter (dex) that make the 68 %
    intervals hold 68 % of the truths, by bisection; with ``narrow``, where they hold more
    without a scatter, the width factor below 1 that brings them to 68 % instead (else
    1): ``(offset, scatter, width)``."""
    offset = -coverage(log_draws, log_truth)["median_dex"]
    if narrow and coverage(log_draws, log_truth, offset)["coverage_68"] > 0.68:
        width = _bisect(lambda w: coverage(log_draws, log_truth, offset, 0.0, w)
                        ["coverage_68"] < 0.68, 0.0, 1.0)
        return round(offset, 3), 0.0, round(width, 3)
    scatter = _bisect(lambda s: coverage(log_draws, log_truth, offset, s)["coverage_68"]
                      < 0.68, 0.0, 2.0)
    return round(offset, 3), round(scatter, 3), 1.0


def _bisect(too_narrow, lo, hi, steps=30):
    """The least value in [lo, hi] at which ``too_narrow`` turns false (it must turn
    once, as coverage grows with the value)."""
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if too_narrow(mid) else (lo, mid)
    return hi


class TermKind(NamedTuple):
    """What the binned term may do beyond the stored one (experiments, README: tried,
    not adopted): ``blended``, give blended cores a term of their own, the bins fitted
    on the others; ``narrow``, fit a width factor below 1 where the priors alone make
    the intervals too wide (:func:`fit_term`)."""

    blended: bool = False
    narrow: bool = False


def fit_by_profile(log_draws, log_truth, envelope, contrast, blended, pooled,
                   kind=TermKind()):
    """The term of :func:`fit_term` in each bin of envelope ratio (:data:`ENVELOPE_BINS`
    quantile bins) and contrast (:data:`TERM_CONTRAST_EDGES`), fitted on the cores that
    have both (with ``kind.blended``, those that are not blended, and one term fitted on
    the blended cores; with ``kind.narrow``, each with its width factor); the ``pooled``
    (offset, scatter, width) where fewer than :data:`MIN_BIN_CORES` cores are to fit; as
    stored in a card (:func:`nhpipe.cores.profile_term`)."""
    known = np.isfinite(envelope) & np.isfinite(contrast) & ~(blended & kind.blended)
    edges = np.percentile(envelope[known], np.linspace(0, 100, ENVELOPE_BINS + 1)[1:-1])
    rows = np.digitize(envelope, edges)
    columns = np.digitize(contrast, TERM_CONTRAST_EDGES)

    def fit(pick):
        return (fit_term(log_draws[:, pick], log_truth[pick], kind.narrow)
                if pick.sum() >= MIN_BIN_CORES else pooled)

    fits = [[fit(known & (rows == row) & (columns == column))
             for column in range(len(TERM_CONTRAST_EDGES) + 1)]
            for row in range(ENVELOPE_BINS)]
    term = {"envelope_edges": np.round(edges, 4).tolist(),
            "contrast_edges": list(TERM_CONTRAST_EDGES),
            "offset_dex": [[float(f[0]) for f in row] for row in fits],
            "scatter_dex": [[float(f[1]) for f in row] for row in fits]}
    if kind.narrow:
        term["width"] = [[float(f[2]) for f in row] for row in fits]
    if kind.blended:
        offset, scatter, width = fit(blended)
        term["blended"] = {"offset_dex": float(offset), "scatter_dex": float(scatter),
                           **({"width": float(width)} if kind.narrow else {})}
    return term


def _cells(row) -> str:
    """Median ± s.e., 68 % range, 68 % coverage ± s.e., 95 % coverage: table cells."""
    return (f"{row['median_dex']:+.3f} ± {row['median_se_dex']:.3f} | "
            f"[{row['p16_dex']:+.3f}, {row['p84_dex']:+.3f}] | "
            f"{row['coverage_68']:.2f} ± {row['coverage_68_se']:.2f} | "
            f"{row['coverage_95']:.2f}")


def _met(row) -> tuple[bool, bool]:
    lo, hi = COVERAGE_TARGET
    return lo <= row["coverage_68"] <= hi, abs(row["median_dex"]) <= MEDIAN_TARGET


def fit_terms(scored, clouds, kind=TermKind()):
    """The pooled (offset, scatter) and the term by envelope and contrast, fitted on the
    cores of ``clouds``, both profiles pooled."""
    cells = [scored[(cloud, p)] for cloud in clouds for p in PROFILES]
    fit_data = [np.concatenate([f[i] for f in cells], axis=-1) for i in range(5)]
    offset, scatter, _ = fit_term(*fit_data[:2])
    return offset, scatter, fit_by_profile(*fit_data, pooled=(offset, scatter, 1.0),
                                           kind=kind)


def evaluate_method(scored, fit_on, kind=TermKind()):
    """Fit the pooled and the profile terms and score every (cloud, profile) cell without
    a term, with the pooled one and with the profile one.

    ``scored`` maps (cloud, profile) to (log draws, log truth, envelope, contrast,
    blended).
    ``fit_on`` is a cloud family (its term scores every cell, its own included) or
    :data:`LEAVE_ONE_OUT` (each cloud's cells are scored with the terms fitted on the
    other clouds; the stored term is fitted on all of them). ``kind``: see
    :class:`TermKind`.
    """
    stored = fit_terms(scored, CLOUDS if fit_on == LEAVE_ONE_OUT else [fit_on], kind)
    by_cloud = {cloud: fit_terms(scored, [c for c in CLOUDS if c != cloud], kind)
                if fit_on == LEAVE_ONE_OUT else stored for cloud in CLOUDS}
    rows = {}
    for (cloud, profile), (draws, truth, *flags) in scored.items():
        offset, scatter, _ = by_cloud[cloud]
        rows[f"{profile} in {cloud}"] = {
            "without_term": coverage(draws, truth),
            "pooled_term": coverage(draws, truth, offset, scatter),
            "profile_term": coverage(draws, truth, *_term(flags, by_cloud[cloud]))}
    offset, scatter, binned = stored
    return {"offset_dex": offset, "scatter_dex": scatter, "by_profile": binned,
            "terms_by_cloud": by_cloud, **rows}


def _term(flags, fitted):
    """Each core's (offset, scatter, width) from its (envelope, contrast, blended)
    ``flags`` and the (pooled offset, pooled scatter, binned term) ``fitted``."""
    envelope, contrast, blended = flags
    offset, scatter, binned = fitted
    return (*profile_term(envelope, contrast, binned, offset, scatter, blended),
            profile_width(envelope, contrast, binned, blended))


def by_split(scored, fitted, flag="blended"):
    """Cells of the profile term each cloud is scored with, by the cores' contrast and by
    the ``flag`` column (``--flag``), profiles pooled: ``{"by_contrast": ..., "by_flag":
    ...}``, keys ``"<cloud>, contrast <bin>"`` and ``"<cloud>, <flag> yes|no"``."""
    out = {"by_contrast": {}, "by_flag": {}}
    lo, hi = CONTRAST_EDGES
    names = [f"< {lo:g}", f"{lo:g}-{hi:g}", f"> {hi:g}"]
    for cloud in CLOUDS:
        draws, truth, *flags = (np.concatenate([scored[(cloud, p)][i] for p in PROFILES],
                                               axis=-1) for i in range(5))
        term = _term(flags, fitted["terms_by_cloud"][cloud])
        contrast, flagged = flags[1], flags[2]
        bins = np.digitize(np.nan_to_num(contrast, nan=-1.0), CONTRAST_EDGES)
        picks = {("by_contrast", f"{cloud}, contrast {name}"):
                 (bins == b) & np.isfinite(contrast) for b, name in enumerate(names)}
        picks.update({("by_flag", f"{cloud}, {flag} {'yes' if value else 'no'}"):
                      flagged == value for value in (True, False)})
        for (split, key), pick in picks.items():
            if pick.any():
                out[split][key] = coverage(draws[:, pick], truth[pick],
                                           *(part[pick] for part in term))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet", "cinn", "ddpm"])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--ld", type=float, default=10.0, help="A.3's diffuse depth L_d (pc)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fit-on", default="turbulent", choices=[*CLOUDS, LEAVE_ONE_OUT],
                        help="the cloud family the terms are fitted in (the others test them); "
                        f"{LEAVE_ONE_OUT}: each family's cells scored with terms fitted on the "
                        "other families, the stored term fitted on all")
    parser.add_argument("--placement", default="uniform", choices=PLACEMENTS,
                        help="where the mock cores are placed in their cloud "
                        "(nhpipe.sims.coremock.make_mock)")
    parser.add_argument("--blended-term", action="store_true",
                        help="give blended cores a term of their own, the bins fitted on "
                        "the others (an experiment, README: tried, not adopted)")
    parser.add_argument("--flag", default="blended", choices=FLAGS,
                        help="the column whose cores --blended-term gives a term of their "
                        "own, and the split of the last table")
    parser.add_argument("--narrow-term", action="store_true",
                        help="let each bin's term narrow the intervals by a width factor "
                        "where the priors alone make them too wide (an experiment, README: "
                        "tried, not adopted)")
    parser.add_argument("--cache", default=None,
                        help="a folder that keeps each network's scored draws (NPZ), so "
                        "that a rerun with other terms skips the networks")
    parser.add_argument("--lc-spread", type=float, default=CorrectionOptions.lc_spread,
                        help="the prior's spread of L_c / R (nhpipe catalog --lc-spread)")
    parser.add_argument("--write-card", action="store_true",
                        help="store each method's term fitted in --fit-on in each network's "
                        "card")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    others = [c for c in CLOUDS if c != args.fit_on]  # the tested clouds
    lofo = args.fit_on == LEAVE_ONE_OUT
    fitted_in = ("the other two cloud families for each tested family (the term a card "
                 "stores is fitted on all three)" if lofo else f"the {args.fit_on} clouds")
    term_used = ("the envelope-and-contrast term fitted on the other clouds" if lofo
                 else "the stored term")
    options_list = methods(args.ld, lc_spread=args.lc_spread)
    names = [term_method(o)["method"] for o in options_list]
    result = {"samples": args.samples, "seeds": args.seeds, "fit_on": args.fit_on,
              "placement": args.placement, "flag": args.flag,  # by_flag splits by it
              "methods": names, "models": {}}
    head = ("| model | method | cores | term | n | median log10(n_c/n_true) | 68 % range | "
            "68 % coverage | 95 % coverage |")
    placed = "" if args.placement == "uniform" else f", {PLACED[args.placement]}"
    lc = CorrectionOptions.lc_factor
    priors = ("default priors" if args.lc_spread == CorrectionOptions.lc_spread else
              f"default priors but L_c / R in {lc * (1 - args.lc_spread):g}-"
              f"{lc * (1 + args.lc_spread):g}")
    lines = [f"Cores of mock HGBS maps{placed} (400 pc, 18.2\"; radii and masses as in "
             f"Konyves et al. "
             f"2020, catalogued when they stand 5 sigma above the cloud's fluctuations), "
             f"{args.samples} samples, {priors}, seeds {args.seeds}. Methods: "
             f"{' and '.join(names)} (n_d from the <n_H>_m around each core), and a "
             f"network-free baseline ({BASELINE}). The model-error terms are fitted on the "
             f"cores of {fitted_in}, both profiles pooled: one pooled term, "
             "and the kind a card stores, "
             + (f"one for the cores flagged `{args.flag}` in the output table "
                f"({FLAGS[args.flag]}) and, for the others, "
                if args.blended_term else "")
             + "one by terciles of the envelope ratio, each split at a "
             f"contrast of {TERM_CONTRAST_EDGES[0]:g}"
             + (" (each with a width factor on the draws' spread about their median, "
                "below 1 where the priors alone are too wide: 'xW' in the term's column)"
                if args.narrow_term else "")
             + f"; tested in the "
             f"{' and '.join(others)} clouds. ± is a standard error that treats the cores "
             "as independent (binomial for the coverage, a bootstrap over cores for the "
             "median): a lower bound, since the cores of one map share its cloud.", "",
             f"Cells of the tested clouds ({len(others)} clouds x 2 profiles) that meet the "
             "targets "
             f"(68 % coverage in {COVERAGE_TARGET[0]:.2f}-{COVERAGE_TARGET[1]:.2f}, "
             f"|median| <= {MEDIAN_TARGET:g} dex), with {term_used}:", "",
             "| model | method | coverage met | median met |", "|---|---|---|---|"]
    rows_lines = ["", head, "|---|---|---|---|---|---|---|---|---|"]
    contrast_lines = [
        "", "By the cores' contrast (background-subtracted mean N_H inside R over the "
        "background's, `contrast` in the output table), both profiles pooled, with "
        f"{term_used}:", "",
        "| model | method | cloud | contrast | n | median log10(n_c/n_true) | 68 % range | "
        "68 % coverage | 95 % coverage |", "|---|---|---|---|---|---|---|---|---|"]
    blending_lines = [
        "", f"By the cores' `{args.flag}` flag, both profiles pooled, with "
        f"{term_used}:", "",
        f"| model | method | cloud | {args.flag} | n | median log10(n_c/n_true) | 68 % range | "
        "68 % coverage | 95 % coverage |", "|---|---|---|---|---|---|---|---|---|"]
    baseline_done = False
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            scored = _scored(model, args, options_list, folder)
            entries = [(model, name, k) for k, name in enumerate(names)]
            if not baseline_done:  # the same for every network: the map's N_H only
                entries.append(("-", BASELINE, len(names)))
                baseline_done = True
            for label, name, k in entries:
                per_cell = {key: value[k] for key, value in scored.items()}
                fitted = evaluate_method(per_cell, args.fit_on,
                                         TermKind(args.blended_term, args.narrow_term))
                fitted.update(by_split(per_cell, fitted, args.flag))
                by_cloud = fitted.pop("terms_by_cloud")
                if args.fit_on == LEAVE_ONE_OUT:  # each cloud's own terms, kept in the JSON
                    fitted["terms_by_cloud"] = by_cloud
                result["models"].setdefault(label, {})[name] = fitted
                term_labels = {cloud: _term_labels(*by_cloud[cloud], args.fit_on)
                               for cloud in CLOUDS}
                met = [0, 0]
                for cloud in CLOUDS:
                    for profile in PROFILES:
                        cell = fitted[f"{profile} in {cloud}"]
                        role = "fitted" if cloud == args.fit_on else "tested"
                        for term, row in cell.items():
                            rows_lines.append(
                                f"| {label} | {name} | {profile} in {cloud} ({role}) | "
                                f"{term_labels[cloud][term]} | {row['cores']} | "
                                f"{_cells(row)} |")
                        if role == "tested":
                            met = [m + ok for m, ok in zip(met, _met(cell["profile_term"]))]
                fitted["tested_cells_met"] = {"coverage": met[0], "median": met[1],
                                              "of": 2 * len(others)}
                lines.append(f"| {label} | {name} | {met[0]} of {2 * len(others)} | "
                             f"{met[1]} of {2 * len(others)} |")
                for key, row in fitted["by_contrast"].items():
                    cloud, contrast = key.split(", contrast ")
                    contrast_lines.append(f"| {label} | {name} | {cloud} | {contrast} | "
                                          f"{row['cores']} | {_cells(row)} |")
                for key, row in fitted["by_flag"].items():
                    cloud, value = key.split(f", {args.flag} ")
                    blending_lines.append(f"| {label} | {name} | {cloud} | {value} | "
                                          f"{row['cores']} | {_cells(row)} |")
            if args.write_card:
                _write_card(model, result["models"][model], options_list, names, args, others)
    report("\n".join(lines + rows_lines + contrast_lines + blending_lines), result, args.out)


def _scored(model, args, options_list, folder):
    """``score_family`` of every (cloud, profile) cell, kept in (or read from) the
    ``--cache`` folder when one is given."""
    def run():
        return {(c, p): score_family(c, p, args.seeds, model, args.samples, options_list,
                                     folder, placement=args.placement, flag=args.flag)
                for c in CLOUDS for p in PROFILES}

    if args.cache is None:
        return run()
    seeds = "-".join(map(str, args.seeds))
    flag = "" if args.flag == "blended" else f"_{args.flag}"
    path = (Path(args.cache) / f"{model}_{args.placement}_{args.samples}_{seeds}_"
            f"ld{args.ld:g}_lc{args.lc_spread:g}{flag}.npz")
    if path.exists():
        with np.load(path) as kept:
            return {(c, p): [tuple(kept[f"{c}|{p}|{k}|{i}"] for i in range(5))
                             for k in range(len(options_list) + 1)]
                    for c in CLOUDS for p in PROFILES}
    scored = run()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{c}|{p}|{k}|{i}": part for (c, p), rows in scored.items()
                      for k, row in enumerate(rows) for i, part in enumerate(row)})
    return scored


def _term_labels(offset, scatter, binned, fit_on):
    """The table's names of the three terms a cell is scored with."""
    profile = ("by envelope and contrast, fitted on the other clouds"
               if fit_on == LEAVE_ONE_OUT else "by envelope and contrast (stored)")
    blended = binned.get("blended")
    if blended:
        profile += (f", blended cores {blended['offset_dex']:+.2f}/"
                    f"{blended['scatter_dex']:.2f}"
                    + (f" x{blended['width']:.2f}" if "width" in blended else "")
                    + ", the others")
    widths = binned.get("width", [[None] * len(row) for row in binned["offset_dex"]])
    return {"without_term": "none",
            "pooled_term": f"pooled {offset:+.2f} dex, scatter {scatter:.2f}",
            "profile_term": profile + " " + ", ".join(
                f"{o:+.2f}/{s:.2f}" + ("" if w is None else f" x{w:.2f}")
                for orow, srow, wrow in zip(binned["offset_dex"], binned["scatter_dex"],
                                            widths)
                for o, s, w in zip(orow, srow, wrow))}


def _write_card(model, fits, options_list, names, args, others):
    """Store each method's term (pooled and by profile) in the model's card."""
    from nhpipe.cards import read_card, update_card
    from nhpipe.models import load_model, models_dir
    from nhpipe.models._common import calibration_of

    # The recalibration the maps were drawn with: the terms hold for it only.
    calibration = calibration_of(load_model(model).config)
    card = read_card(models_dir() / model)
    terms = []
    for options, name in zip(options_list, names):
        fitted = fits[name]
        tested = "; ".join(
            f"{p} in {c}: 68 % interval holds {h['coverage_68']:.2f}, median "
            f"{h['median_dex']:+.3f} dex" for c in others for p in PROFILES
            for h in [fitted[f"{p} in {c}"]["profile_term"]])
        terms.append({
            **term_method(options), "offset_dex": fitted["offset_dex"],
            "scatter_dex": fitted["scatter_dex"], "by_profile": fitted["by_profile"],
            "map_calibration": calibration,
            # The correlation its draws used (n_d local): the term holds for it only.
            **({"error_correlation": card["error_correlation"]["rho"]}
               if term_method(options)["priors"]["nd_correlation"] == "card" else {}),
            "fitted_on": f"Plummer and sphere mock cores ({args.placement} placement) in "
                         f"{' and '.join(CLOUDS) if args.fit_on == LEAVE_ONE_OUT else args.fit_on}"
                         " clouds "
                         f"(nhpipe.sims.coremock, seeds {args.seeds}, {args.samples} "
                         "samples)",
            "tested_on": ("each cloud family with the terms fitted on the other two: "
                          if args.fit_on == LEAVE_ONE_OUT else "")
                         + f"mock cores in {' and '.join(others)} clouds: {tested}"})
    update_card(models_dir() / model, core_terms=terms)


if __name__ == "__main__":
    main()
