"""``palm-bayes forecast``: Bayesian PALM fit of every curve in INPUT, forecasts with intervals."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from palm_bayes import data
from palm_bayes.diagnostics import sampler_runs
from palm_bayes.discrepancy import DISCREPANCY, DRIFT
from palm_bayes.errors import InputError
from palm_bayes.families import FAMILIES
from palm_bayes.forecast import DEFAULT_FAMILIES, DEFAULT_POOLING, Forecaster, print_progress
from palm_bayes.model import GEOMETRIES, LIKELIHOODS
from palm_bayes.outputs import OutputDir
from palm_bayes.parallel import check_jobs
from palm_bayes.pooling import GROUP_SAMPLERS, POOLING
from palm_bayes.serialize import POSTERIOR_FILE, saved_posterior

OUTPUTS = ("forecast.csv", "params.csv", "diagnostics.csv", POSTERIOR_FILE, "forecast.png")
PRIOR_FIGURE = "prior_check.png"


def add_scale_flag(p) -> None:
    """``--scale``: state the scores' scale instead of detecting it (every command that reads curves)."""
    p.add_argument("--scale", choices=data.SCALES,
                   help="the scores' scale, fraction (0-1) or percent (0-100); default: read from the scores, "
                   "refusing runs and curves that do not share one scale")


def add_fitting_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by every command that samples (forecast, and later decide/report/backtest)."""
    g = p.add_argument_group("fitting")
    g.add_argument("--method", nargs="+", help="only these methods (default: all)")
    g.add_argument("--dataset", nargs="+", help="only these datasets (default: all)")
    g.add_argument("--model", nargs="+", help="only these models (default: all)")
    cut = g.add_mutually_exclusive_group()
    cut.add_argument("--max-points", type=int, help="fit only each curve's first K budgets")
    cut.add_argument("--upto", type=float, help="fit only budgets <= B")
    g.add_argument("--level", type=float, nargs="+", default=[0.9], help="interval level(s) (default 0.9)")
    g.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical outputs")
    g.add_argument("--draws", type=int, default=1000, help="posterior draws per chain (default 1000)")
    g.add_argument("--tune", type=int, default=300,
                   help="tuning steps per chain of a curve's first run (default 300; a retry tunes for 1000)")
    g.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    g.add_argument("--likelihood", choices=LIKELIHOODS, default="normal",
                   help="observation noise: normal (default) or student (robust to outlying episodes)")
    g.add_argument("--geometry", choices=GEOMETRIES, default="auto",
                   help="sampler coordinates (same posterior): auto (default: re-sample a curve that misses a "
                   "health threshold in the other coordinates, then in both with smaller steps; keep the healthiest "
                   "run), shape or levels")
    g.add_argument("--pooling", choices=POOLING, default=DEFAULT_POOLING,
                   help=f"share information between the methods of one dataset/model: ceiling (one joint model, "
                   f"A_max partially pooled), full (delta, alpha, beta pooled too) or none (every curve alone); "
                   f"default {DEFAULT_POOLING}")
    g.add_argument("--families", default=DEFAULT_FAMILIES, metavar="LIST",
                   help=f"curve families to forecast with, comma-separated, palm among them (from "
                   f"{', '.join(FAMILIES)}); the forecast mixes them with equal weights (default "
                   f"{DEFAULT_FAMILIES}: PALM alone)")
    g.add_argument("--group-sampler", choices=GROUP_SAMPLERS, default="two-stage",
                   help="how a pooled ceiling is sampled (same posterior): two-stage (default: each method alone, "
                   "then the group by importance resampling) or joint (one NUTS run over the group, the reference)")
    g.add_argument("--a-max-below", type=float, metavar="C",
                   help="a known ceiling of A_max, on the scores' scale (e.g. the accuracy of training on the whole "
                   "pool): every posterior draw stays below it")
    g.add_argument("--a-max-prior", type=float, nargs=2, metavar=("LO", "HI"),
                   help="your prior range for A_max on the scores' scale (its prior's 5%% and 95%% quantiles)")
    g.add_argument("--discrepancy", type=float, metavar="KAPPA",
                   help=f"scale of the extrapolation discrepancy beyond the last observed budget (default "
                   f"{DISCREPANCY:g}; 0: assume the PALM form holds exactly far beyond the data)")
    g.add_argument("--drift", type=float, metavar="D",
                   help=f"drift of that discrepancy: how far (logit units) the mean curve is carried up far beyond "
                   f"the data, half of it at twice the last budget; the fitted curves saturated too early on every "
                   f"development set (default {DRIFT:g}; 0: no drift)")
    g.add_argument("--jobs", type=int, default=0,
                   help="worker processes for the per-curve fits (default 0 = every core); same numbers for any N")
    g.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="run the per-curve fits on this Dask distributed scheduler (e.g. tcp://host:8786; needs "
                   "pip install 'palm-bayes[dask]')")
    add_scale_flag(g)
    g.add_argument("--budget-size", type=float, default=100.0,
                   help="labels per episode for PALM run folders without x values (default 100)")
    g.add_argument("--quiet", action="store_true", help="no progress or summary output")


def add_parser(sub) -> None:
    p = sub.add_parser("forecast", help="Bayesian forecast of accuracy at future budgets, with intervals",
                       description="Fit the Bayesian PALM model to every curve (dataset/model/method) in INPUT "
                       "and forecast accuracy at future budgets. Writes forecast.csv, params.csv, "
                       "diagnostics.csv, posterior.nc and forecast.png into --out.")
    p.add_argument("input", help="CSV (long or ALDA), PALM run folder(s), or a PALM.py output folder")
    at = p.add_mutually_exclusive_group()
    at.add_argument("--at", type=float, nargs="+", help="forecast exactly these budgets for every curve")
    at.add_argument("--horizon", type=float, help="largest budget of the default grid (default 2x the largest)")
    p.add_argument("--out", default="palm_bayes_out", help="output folder (default ./palm_bayes_out)")
    p.add_argument("--prior-check", action="store_true",
                   help=f"also write {PRIOR_FIGURE}: what the priors alone predict, with the observed runs on top")
    add_fitting_flags(p)
    p.set_defaults(run=run)


def check_sampling_flags(args: argparse.Namespace) -> None:
    if args.discrepancy is not None and not 0 <= args.discrepancy < 1:
        raise InputError(f"--discrepancy {args.discrepancy:g}: expected a scale between 0 and 1 (default "
                         f"{DISCREPANCY:g})")
    if args.drift is not None and not -1 < args.drift < 1:
        raise InputError(f"--drift {args.drift:g}: expected a drift between -1 and 1 (default {DRIFT:g})")
    for flag in ("draws", "chains"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag} {getattr(args, flag)}: expected a positive whole number")
    if args.tune < 0:
        raise InputError(f"--tune {args.tune}: expected 0 or more")
    for lv in args.level:
        if not 0 < lv < 1:
            raise InputError(f"--level {lv:g}: expected a level strictly between 0 and 1, e.g. 0.9")
    forecaster_from_args(args)  # the settings' own checks (families, pooling, ...) before any input is read


def load_input(args: argparse.Namespace):
    """Load, select and cut the input as the fitting flags say."""
    df = data.load_curves(args.input, scale=args.scale, budget_size=args.budget_size)
    df = data.select(df, dataset=args.dataset, model=args.model, method=args.method)
    return data.pilot(df, max_points=args.max_points, upto=args.upto)


def speaker(quiet: bool):
    """``say(...)``: a status line on standard error, or nothing with ``--quiet``."""
    return (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))


def forecaster_from_args(args: argparse.Namespace) -> Forecaster:
    """An unfitted :class:`Forecaster` with the fitting flags' settings (progress bar unless ``--quiet``)."""
    return Forecaster(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                      likelihood=args.likelihood, geometry=args.geometry, a_max_below=args.a_max_below,
                      discrepancy=DISCREPANCY if args.discrepancy is None else args.discrepancy,
                      drift=DRIFT if args.drift is None else args.drift,
                      a_max_range=args.a_max_prior, pooling=args.pooling,
                      group_sampler=args.group_sampler, jobs=check_jobs(args.jobs), families=args.families,
                      scheduler=args.dask_scheduler,
                      progress=None if args.quiet else print_progress)


def fit_curves(args: argparse.Namespace, df) -> Forecaster:
    """Fit every curve of ``df`` with the fitting flags; warnings about the user's prior knowledge (a ceiling
    below scores already observed) go to standard error even with ``--quiet``."""
    fc = forecaster_from_args(args).fit(df)
    warn(fc.notes.values())
    return fc


def warn(notes) -> None:
    """Warnings about the user's input on standard error, even with ``--quiet``."""
    for note in notes:
        print(f"palm-bayes: warning: {note}", file=sys.stderr)


def fit_or_load(args: argparse.Namespace, out: OutputDir, say, command: str, check_scale=None):
    """The forecaster a command works on: loaded from a saved posterior (``posterior.nc`` or the folder holding
    it, no sampling), or fitted on the input now and saved into ``out``. ``check_scale(scale)`` vets the
    command's own options against the data's score scale before any sampling. Returns (forecaster, the selected
    curve keys, notes on what was read)."""
    check_sampling_flags(args)
    saved = saved_posterior(args.input)
    if saved is not None:
        if args.max_points is not None or args.upto is not None:
            raise InputError(f"{args.input}: a saved posterior was fitted already; --max-points/--upto apply only "
                             "when fitting curves")
        fc = Forecaster.load(saved)
        if args.scale is not None and args.scale != fc.scale:
            raise InputError(f"{saved}: --scale {args.scale}, but the saved posterior was fitted on "
                             f"{data.SCALE_WORDS[fc.scale]}")
        if args.discrepancy is not None:
            fc.discrepancy = args.discrepancy
        if args.drift is not None:
            fc.drift = args.drift
        keys = [k for k in fc.keys() if (not args.dataset or k[0] in args.dataset)
                and (not args.model or k[1] in args.model) and (not args.method or k[2] in args.method)]
        if not keys:
            raise InputError(f"{saved}: no curve matches the --dataset/--model/--method selection")
        if check_scale:
            check_scale(fc.scale)
        say(f"palm-bayes {command}: {len(keys)} curve(s) from the saved posterior {saved} (no new sampling)")
        return fc, keys, [f"{saved}: saved posterior (fitted earlier; no new sampling)"]
    df = load_input(args)
    if check_scale:
        check_scale(df.attrs["scale"])
    out.check(POSTERIOR_FILE)
    say(f"palm-bayes {command}: fitting {len(data.curve_keys(df))} curve(s), scores as "
        f"{data.SCALE_WORDS[df.attrs['scale']]}; "
        f"{args.chains} chains x ({args.tune} tune + {args.draws} draws)")
    fc = fit_curves(args, df)
    fc.save(out)
    return fc, fc.keys(), list(df.attrs.get("notes", []))


def run(args: argparse.Namespace) -> int:
    check_sampling_flags(args)
    if args.at is not None and any(not np.isfinite(b) or b < 0 for b in args.at):
        raise InputError("--at: expected budgets >= 0")
    df = load_input(args)
    out = OutputDir(args.out)
    out.check(*OUTPUTS, *([PRIOR_FIGURE] if args.prior_check else []))
    say = speaker(args.quiet)
    n = len(data.curve_keys(df))
    say(f"palm-bayes forecast: {n} curve(s), scores as {data.SCALE_WORDS[df.attrs['scale']]}; "
        f"{args.chains} chains x ({args.tune} tune + {args.draws} draws)")
    fc = fit_curves(args, df)
    table = fc.predict(budgets=args.at, level=args.level, horizon=args.horizon)
    out.write_csv("forecast.csv", table)
    out.write_csv("params.csv", fc.params(level=args.level[0]))
    diag = fc.diagnostics()
    out.write_csv("diagnostics.csv", diag)
    fc.save(out)
    from palm_bayes.plot import plot_forecasts, plot_prior_predictive  # matplotlib only once there is a figure
    out.write_figure("forecast.png", plot_forecasts(fc, table, level=args.level[0]))
    if args.prior_check:
        prior = {}
        for key in fc.keys():
            seen = fc.observed(key)["budget"]
            top = max(seen.max(), *args.at) if args.at else fc.default_budgets(key, args.horizon).max()
            budgets = np.linspace(seen.min(), top, 60)
            prior[key] = (budgets, fc.prior_draws(key, budgets))
        out.write_figure(PRIOR_FIGURE, plot_prior_predictive(fc, prior, level=args.level[0]))
    for r in sampler_runs(diag).itertuples():  # one line per sampler run: a pooled group's methods share one
        if r.status != "ok":
            say(f"{r.status}: {r.label}: {r.message}")
    ok = int((diag.status == "ok").sum())
    say(f"{ok}/{n} curve(s) sampled cleanly, {int((diag.status == 'warning').sum())} with warnings, "
        f"{len(fc.failures)} failed → {out.path}")
    return 1 if len(fc.failures) == n else 0
