"""``palm-bayes backtest``: how good would the forecasts — and with a target, the decisions — have been? Cut each
curve after its first budgets, fit, forecast the budgets it went on to observe (and decide), and score against what
the runs did."""

from __future__ import annotations

import argparse

from palm_bayes import data
from palm_bayes.backtest import (
    cross_validation,
    cutoff_budgets,
    describe,
    final_budget_summary,
    fit_cutoffs,
    performance_metrics,
)
from palm_bayes.decision import PICK_RULES
from palm_bayes.decision_backtest import (
    check_targets,
    decision_backtest,
    decision_scores,
    describe_decisions,
    group_regrets,
    reliability_table,
)
from palm_bayes.errors import InputError
from palm_bayes.outputs import OutputDir

from .forecast import add_fitting_flags, check_sampling_flags, forecaster_from_args, load_input, speaker, warn

OUTPUTS = ("backtest.csv", "metrics.csv", "backtest.png", "backtest_report.html", "backtest_report.md",
           "backtest_report_backtest.png")
DECISION_OUTPUTS = ("decisions.csv", "decision_metrics.csv", "decision_groups.csv", "reliability.csv")


def add_parser(sub) -> None:
    p = sub.add_parser("backtest", help="score forecasts (and decisions) from the first budgets of each curve "
                       "against the rest",
                       description="For every cutoff, fit each curve (dataset/model/method) in INPUT on its first "
                       "budgets only, forecast every later budget and compare with what the runs reached there "
                       "(their mean). Writes backtest.csv (one row per curve, cutoff and later budget), "
                       "metrics.csv (errors and interval coverage per cutoff and horizon, in the scores' units), "
                       "backtest.png and backtest_report.html/.md into --out. With --target or --target-fraction "
                       "it also decides every (dataset, model) group from the pilots, as `decide` would with the "
                       "group's final budget as the limit, and scores the decisions against the finished runs: "
                       "decisions.csv (per curve), decision_groups.csv (both picks and their label regret), "
                       "decision_metrics.csv (regret, Brier scores) and reliability.csv (P(reach) binned against "
                       "the share that reached), with a reliability diagram in backtest.png and the report.")
    p.add_argument("input", help="CSV (long or ALDA), PALM run folder(s), or a PALM.py output folder")
    p.add_argument("--cutoffs", type=int, nargs="+", metavar="K",
                   help="pilot sizes: fit each curve on its first K distinct budgets (K >= 4)")
    p.add_argument("--cutoff-fractions", type=float, nargs="+", metavar="F",
                   help="pilot sizes as shares of each curve's distinct budgets, 0 < F < 1 "
                   "(default 0.25 0.5 0.75)")
    p.add_argument("--target", type=float, nargs="+", metavar="TAU",
                   help="also backtest decisions for these target accuracies (the scores' scale)")
    p.add_argument("--target-fraction", type=float, nargs="+", metavar="F",
                   help="also backtest decisions for targets F x the best final mean accuracy of each group's "
                   "methods, 0 < F <= 1 (e.g. 0.98 0.99 1)")
    p.add_argument("--eta", type=float, default=0.05, help="ALDA's cost tolerance η of the cost-competitive set")
    p.add_argument("--pick", choices=PICK_RULES, default="reach", dest="pick_rule",
                   help="the Bayesian pick's rule, as for decide (default reach)")
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
    if args.eta < 0:
        raise InputError(f"--eta {args.eta:g}: expected 0 or more")
    level = args.level[0]
    df = load_input(args)
    decisions = args.target is not None or args.target_fraction is not None
    if decisions:  # bad targets stop here, before any sampling
        check_targets(args.target, args.target_fraction, df.attrs["scale"])
    plan = cutoff_budgets(df, args.cutoffs, args.cutoff_fractions)  # bad cutoffs stop here, before any sampling
    out = OutputDir(args.out)
    out.check(*OUTPUTS, *(DECISION_OUTPUTS if decisions else ()))
    say = speaker(args.quiet)
    n = len(data.curve_keys(df))
    say(f"palm-bayes backtest: {n} curve(s) x {len(plan)} cutoff(s) ({', '.join(plan)}), scores as "
        f"{data.SCALE_WORDS[df.attrs['scale']]}; {args.chains} chains x ({args.tune} tune + {args.draws} draws)")
    fits = fit_cutoffs(df, lambda: forecaster_from_args(args), args.cutoffs, args.cutoff_fractions,
                       progress=lambda i, k, label: say(f"cutoff {label} ({i}/{k}): fitting the pilots"))
    bt = cross_validation(df, level=level, fits=fits)
    warn(bt.attrs["notes"])
    metrics = performance_metrics(bt, level=level)
    summary = final_budget_summary(bt)
    lines = describe(summary, df.attrs["scale"], level)
    tables = {}
    if decisions:
        table = decision_backtest(df, fits, args.target, args.target_fraction, eta=args.eta, level=level,
                                  pick_rule=args.pick_rule)
        tables = {"decisions": table, "scores": decision_scores(table), "regrets": group_regrets(table),
                  "reliability": reliability_table(table)}
    out.write_csv("backtest.csv", bt)
    out.write_csv("metrics.csv", metrics)
    from palm_bayes.plot import plot_backtest  # matplotlib only once there is something to draw
    from palm_bayes.report import build_backtest_report, render_html, render_markdown

    figure = plot_backtest(metrics, scale=df.attrs["scale"], level=level, reliability=tables.get("reliability"))
    png = out.write_figure("backtest.png", figure).read_bytes()  # drawn once: the report shows the same image
    if decisions:
        out.write_csv("decisions.csv", tables["decisions"])
        out.write_csv("decision_metrics.csv", tables["scores"])
        out.write_csv("decision_groups.csv", tables["regrets"])
        out.write_csv("reliability.csv", tables["reliability"])
    decision_lines = describe_decisions(tables["scores"]) if decisions else []
    report = build_backtest_report(summary, metrics, lines, png, scores=tables.get("scores"),
                                   regrets=tables.get("regrets"), reliability=tables.get("reliability"),
                                   decision_lines=decision_lines, notes=bt.attrs["notes"])
    text, figures = render_markdown(report, prefix="backtest_report_")
    for name, png in figures.items():
        out.write_bytes(name, png)
    out.write_text("backtest_report.md", text)
    out.write_text("backtest_report.html", render_html(report))
    for line in lines + decision_lines:
        say(line)
    say(f"→ {out.path}")
    return 1 if bt["status"].eq("failed").all() else 0
