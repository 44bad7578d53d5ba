"""``palm-bayes report``: one self-contained uncertainty report (HTML, and Markdown with PNG figures)."""

from __future__ import annotations

import argparse

from palm_bayes.decision import DecisionSettings, check_settings, decide
from palm_bayes.outputs import OutputDir

from .forecast import add_fitting_flags, fit_or_load, speaker


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="uncertainty report: data, forecasts, parameters, diagnostics (HTML + Markdown)",
                       description="Write DIR/report.html (self-contained: figures embedded, no network) and "
                       "DIR/report.md with its figures as PNG files beside it. INPUT is any curve input (fitted "
                       "first) or a saved posterior (posterior.nc, or the forecast folder holding it).")
    p.add_argument("input", help="curves (CSV, PALM run folders, PALM.py output) or a saved posterior.nc / folder")
    p.add_argument("--target", type=float, help="also a decision section for this target accuracy")
    p.add_argument("--horizon", type=float, help="largest budget of the fan charts (default 2x the largest)")
    p.add_argument("--out", default="palm_bayes_out", help="output folder (default ./palm_bayes_out)")
    add_fitting_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    level = args.level[0]
    settings = DecisionSettings(target=args.target, level=level) if args.target is not None else None
    out = OutputDir(args.out)
    out.check("report.html", "report.md")
    say = speaker(args.quiet)
    fc, keys, notes = fit_or_load(args, out, say, "report",
                                  (lambda scale: check_settings(settings, scale)) if settings else None)
    from palm_bayes.report import build_report, render_html, render_markdown  # matplotlib: after the input is read

    table = fc.predict(level=level, horizon=args.horizon)
    table = table[table[["dataset", "model", "method"]].apply(tuple, axis=1).isin(keys)]
    decision = decide(fc, settings, keys) if settings else None
    report = build_report(fc, table, level=level, decision=decision, notes=notes, keys=keys)
    text, figures = render_markdown(report)
    out.check(*figures)
    for name, png in figures.items():
        out.write_bytes(name, png)
    out.write_text("report.md", text)
    out.write_text("report.html", render_html(report))
    say(f"palm-bayes report: {len(keys)} curve(s), {len(figures)} figure(s) → {out.path / 'report.html'}")
    return 0
