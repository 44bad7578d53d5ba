"""``palm-bayes backtest``: how good would the forecasts have been? Cut each curve after its first budgets, fit,
forecast the budgets it went on to observe, and score the forecasts against them."""

from __future__ import annotations

import argparse

from palm_bayes import data
from palm_bayes.backtest import (
    cross_validation,
    cutoff_budgets,
    describe,
    final_budget_summary,
    performance_metrics,
)
from palm_bayes.errors import InputError
from palm_bayes.outputs import OutputDir

from .forecast import add_fitting_flags, check_sampling_flags, forecaster_from_args, load_input, speaker, warn

OUTPUTS = ("backtest.csv", "metrics.csv", "backtest.png")


def add_parser(sub) -> None:
    p = sub.add_parser("backtest", help="score forecasts from the first budgets of each curve against the rest",
                       description="For every cutoff, fit each curve (dataset/model/method) in INPUT on its first "
                       "budgets only, forecast every later budget and compare with what the runs reached there "
                       "(their mean). Writes backtest.csv (one row per curve, cutoff and later budget), "
                       "metrics.csv (errors and interval coverage per cutoff and horizon, in the scores' units) "
                       "and backtest.png into --out.")
    p.add_argument("input", help="CSV (long or ALDA), PALM run folder(s), or a PALM.py output folder")
    p.add_argument("--cutoffs", type=int, nargs="+", metavar="K",
                   help="pilot sizes: fit each curve on its first K distinct budgets (K >= 4)")
    p.add_argument("--cutoff-fractions", type=float, nargs="+", metavar="F",
                   help="pilot sizes as shares of each curve's distinct budgets, 0 < F < 1 "
                   "(default 0.25 0.5 0.75)")
    p.add_argument("--out", default="palm_bayes_backtest", help="output folder (default ./palm_bayes_backtest)")
    add_fitting_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for flag, value in (("--max-points", args.max_points), ("--upto", args.upto)):
        if value is not None:
            raise InputError(f"{flag} {value:g}: backtest chooses the pilots itself; give --cutoffs or "
                             "--cutoff-fractions instead")
    check_sampling_flags(args)
    if len(args.level) != 1:
        raise InputError(f"--level {' '.join(f'{lv:g}' for lv in args.level)}: backtest scores one interval "
                         "level (e.g. --level 0.9)")
    level = args.level[0]
    df = load_input(args)
    plan = cutoff_budgets(df, args.cutoffs, args.cutoff_fractions)  # bad cutoffs stop here, before any sampling
    out = OutputDir(args.out)
    out.check(*OUTPUTS)
    say = speaker(args.quiet)
    n = len(data.curve_keys(df))
    say(f"palm-bayes backtest: {n} curve(s) x {len(plan)} cutoff(s) ({', '.join(plan)}), scores as "
        f"{data.SCALE_WORDS[df.attrs['scale']]}; {args.chains} chains x ({args.tune} tune + {args.draws} draws)")
    bt = cross_validation(df, lambda: forecaster_from_args(args), args.cutoffs, args.cutoff_fractions, level=level,
                          progress=lambda i, k, label: say(f"cutoff {label} ({i}/{k}): fitting the pilots"))
    warn(bt.attrs["notes"])
    metrics = performance_metrics(bt, level=level)
    out.write_csv("backtest.csv", bt)
    out.write_csv("metrics.csv", metrics)
    from palm_bayes.plot import plot_backtest  # matplotlib only once there is something to draw
    out.write_figure("backtest.png", plot_backtest(metrics, scale=df.attrs["scale"], level=level))
    summary = final_budget_summary(bt)
    for line in describe(summary, df.attrs["scale"], level):
        say(line)
    say(f"→ {out.path}")
    return 1 if bt["status"].eq("failed").all() else 0
