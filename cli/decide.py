"""``palm-bayes decide``: keep labelling or stop, and with which method — from the posterior and from ALDA's rules."""

from __future__ import annotations

import argparse
import sys

from palm_bayes.decision import PICK_RULES, DecisionSettings, check_settings, decide
from palm_bayes.outputs import OutputDir

from .forecast import add_fitting_flags, fit_or_load, speaker

OUTPUTS = ("decision.csv", "decision.json", "decision.png")


def add_parser(sub) -> None:
    p = sub.add_parser("decide", help="should I keep labelling, and with which method? (probabilities and ALDA)",
                       description="For a target accuracy, estimate per curve the probability of reaching it, the "
                       "labels needed, the deployment window, the value of the next labels and (with costs) the "
                       "budget worth buying; compare methods by ALDA's point rules and by a risk-aware Bayesian "
                       "pick. INPUT is any curve input (it is fitted first) or a saved posterior (posterior.nc, "
                       "or the forecast folder holding it) to decide again without sampling.")
    p.add_argument("input", help="curves (CSV, PALM run folders, PALM.py output) or a saved posterior.nc / folder")
    p.add_argument("--target", type=float, required=True, help="target accuracy τ, on the scale of the scores")
    p.add_argument("--delta-target", type=float, help="half-width Δτ of the deployment window (default 5 points)")
    p.add_argument("--eta", type=float, default=0.05, help="ALDA's cost tolerance η of the cost-competitive set")
    p.add_argument("--max-budget", type=float, help="budget limit for P(reach) (default 4x the largest observed)")
    p.add_argument("--next", type=float, dest="next_labels", help="size of the next batch (default one episode)")
    p.add_argument("--min-gain", type=float, help="gain worth having from the next batch (default 0.5 points)")
    p.add_argument("--cost-per-label", type=float, help="cost of one label (with --value-per-point)")
    p.add_argument("--value-per-point", type=float, help="value of one accuracy point (with --cost-per-label)")
    p.add_argument("--pick", choices=PICK_RULES, default="reach", dest="pick_rule",
                   help="the Bayesian pick: reach (default: the highest P(reach), near-ties to the lower expected "
                   "cost) or regret (the lowest expected label regret, i.e. labels to reach the target relative to "
                   "the cheapest method, over the joint draws)")
    p.add_argument("--out", default="palm_bayes_out", help="output folder (default ./palm_bayes_out)")
    add_fitting_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = DecisionSettings(target=args.target, delta_target=args.delta_target, eta=args.eta,
                                max_budget=args.max_budget, next_labels=args.next_labels, min_gain=args.min_gain,
                                cost_per_label=args.cost_per_label, value_per_point=args.value_per_point,
                                level=args.level[0], pick_rule=args.pick_rule)
    out = OutputDir(args.out)
    out.check(*OUTPUTS)
    say = speaker(args.quiet)
    fc, keys, _ = fit_or_load(args, out, say, "decide", lambda scale: check_settings(settings, scale))
    result = decide(fc, settings, keys)
    from palm_bayes.plot import plot_decision  # matplotlib only once there is something to draw
    out.write_csv("decision.csv", result.table)
    out.write_json("decision.json", result.to_dict())
    out.write_figure("decision.png", plot_decision(result))
    if not args.quiet:
        lines = iter(result.lines)
        for grp in result.groups:
            joint = " (one joint posterior: comparisons keep the correlation)" if grp["draws"] == "joint" else ""
            print(f"{grp['dataset']} · {grp['model']}{joint}:")
            n = int(((result.table.dataset == grp["dataset"]) & (result.table.model == grp["model"])).sum())
            for _ in range(n):
                print("  " + next(lines))
            print(f"  → pick: {grp['pick'] or 'none'} ({grp['pick_reason']}); ALDA's pick: {grp['alda_pick'] or 'none'}"
                  f" ({grp['alda_reason']})")
            if grp["why"]:
                print(f"  the two differ: {grp['why']}")
        print(f"→ {out.path}", file=sys.stderr)
    return 1 if result.table.status.eq("failed").all() else 0
