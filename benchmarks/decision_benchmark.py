"""Decision benchmark on AL sets of finished runs (needs ../shared beside the repo for the official pilot rule;
not run in CI).

Each set is cut to its pilots with the forecast task's AL rule (../shared/tools/task.py: the first
max(5, round(0.28 × episodes)) episodes), fitted once (or a saved ``posterior.nc`` of those pilots is loaded), and
decided by :func:`palm_bayes.decision_backtest.decision_backtest` for targets τ = f × the best final mean over each
group's methods, f ∈ {0.98, 0.99, 1.00}, with the group's final budget as the budget limit. Per set and pick rule
(:data:`palm_bayes.decision.PICK_RULES`) it prints the label regret of the Bayesian and of ALDA's pick (capped at
2), the Brier score of P(reach) beside ALDA's 0/1 forecast and the hindsight base rate, and the reliability table.
With two or more sets, the pick rule is also chosen on each set (lowest mean regret) and scored on the others.

    python benchmarks/decision_benchmark.py --set al_dev=../shared/data/al_dev/al_curves.csv \\
        --set al_more=benchmarks/data/al_more/al_curves.csv [--posterior al_dev=PATH.nc] [--pooling none] \\
        [--out benchmarks/out/decision]

Each set's posterior is saved as OUT/<set>/posterior.nc, so a second run with ``--posterior`` skips the fits.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.98, 0.99, 1.00)
#: Verdict thresholds looked at (the defaults are KEEP_P = 0.75 and STOP_P = 0.25 in palm_bayes.decision).
KEEP_GRID = (0.6, 0.7, 0.75, 0.8, 0.9)
STOP_GRID = (0.4, 0.3, 0.25, 0.2, 0.1)
SCORES = ["regret_bayes", "regret_alda", "brier_bayes", "brier_alda", "brier_base_rate", "brier_cheapest",
          "brier_cheapest_uniform"]


def named(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep:
            raise SystemExit(f"{flag} {v}: expected NAME=PATH")
        out[name] = path
    return out


def pilot_fit(name: str, path: str, posterior: str | None, a, task):
    """(full tidy table, CutoffFit of its official AL pilots, seconds spent fitting)."""
    from palm_bayes import data
    from palm_bayes.backtest import CutoffFit
    from palm_bayes.forecast import Forecaster

    full_rows = pd.read_csv(path)
    pilot_rows, _ = task.split(full_rows, "al")
    with tempfile.TemporaryDirectory() as tmp:
        pilot_rows.to_csv(Path(tmp) / "pilot.csv", index=False)
        pilot = data.load_curves(Path(tmp) / "pilot.csv")
    full = data.load_curves(path)
    t0 = time.perf_counter()
    if posterior:
        fc = Forecaster.load(posterior)
        assert sorted(fc.keys()) == sorted(data.curve_keys(pilot)), f"{posterior} is not of the {name} pilots"
    else:
        fc = Forecaster(draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed,
                        **({"pooling": a.pooling} if a.pooling else {}),
                        **({"families": a.families} if a.families else {})).fit(pilot)
        (Path(a.out) / name).mkdir(parents=True, exist_ok=True)
        fc.save(Path(a.out) / name)
    if a.discrepancy is not None:
        fc.discrepancy = a.discrepancy
    if a.drift is not None:
        fc.drift = a.drift
    sizes = {k: int(g.budget.nunique()) for k, g in pilot.groupby(["dataset", "model", "method"])}
    return full, CutoffFit("AL pilot", sizes, fc), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", required=True, metavar="NAME=CSV", help="a set of finished AL runs")
    ap.add_argument("--posterior", action="append", metavar="NAME=NC", help="a saved posterior of a set's pilots")
    ap.add_argument("--tools-dir", default=str(ROOT.parent / "shared" / "tools"))
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=300, help="tuning steps of a first run (the library default)")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pooling", default=None, help="none, ceiling or full when fitting (default: the Forecaster's)")
    ap.add_argument("--families", default=None, help="curve families when fitting, e.g. palm,mmf4 (default: the "
                    "Forecaster's)")
    ap.add_argument("--discrepancy", type=float, default=None, help="decide with this extrapolation discrepancy")
    ap.add_argument("--drift", type=float, default=None, help="decide with this drift of the discrepancy (default: "
                    "the saved posterior's, the library's when fitting)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "decision"))
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    sys.path.insert(0, a.tools_dir)
    import task  # the official pilot rule

    from palm_bayes.decision import PICK_RULES
    from palm_bayes.decision_backtest import (
        decision_backtest,
        decision_scores,
        group_regrets,
        reliability_table,
        verdict_table,
    )

    sets, posteriors = named(a.set, "--set"), named(a.posterior, "--posterior")
    pd.set_option("display.width", 200)
    results, summary = {}, []
    for name, path in sets.items():
        full, fit, fit_s = pilot_fit(name, path, posteriors.get(name), a, task)
        groups = full.groupby(["dataset", "model"]).ngroups
        print(f"\n##### {name}: {groups} groups, {len(fit.forecaster.keys())} curves; fit {fit_s:.0f} s")
        for rule in PICK_RULES:
            t0 = time.perf_counter()
            table = decision_backtest(full, [fit], target_fractions=FRACTIONS, pick_rule=rule)
            scores = decision_scores(table)
            mean = scores[SCORES].mean()
            results[(name, rule)] = mean
            summary.append({"set": name, "rule": rule, "groups": groups, **mean.round(4).to_dict(),
                            "decide_s": round(time.perf_counter() - t0, 1)})
            print(f"\n-- pick rule {rule!r}")
            print(scores.drop(columns=["cutoff"]).round(3).to_string(index=False))
            print("mean over targets: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))
            out = Path(a.out) / name / rule
            out.mkdir(parents=True, exist_ok=True)
            table.to_csv(out / "decisions.csv", index=False)
            scores.to_csv(out / "decision_metrics.csv", index=False)
            group_regrets(table).to_csv(out / "decision_groups.csv", index=False)
            rel = reliability_table(table)
            rel.to_csv(out / "reliability.csv", index=False)
        print("\nreliability of P(reach) (the same for every rule):")
        print(rel.drop(columns=["cutoff"]).round(3).to_string(index=False))
        print("\nverdicts (share of the curves given each verdict that reached the target):")
        print(verdict_table(table).drop(columns=["cutoff"]).round(3).to_string(index=False))
        print("verdict thresholds: 'keep labelling' at P >= K is right (reached) / 'stop' at P < S is right (not "
              "reached), share of curves not already at the target:")
        sweep = table[table.verdict != "already reached"]
        for k, s_ in zip(KEEP_GRID, STOP_GRID, strict=True):
            keep, stop = sweep[sweep.p_reach >= k], sweep[sweep.p_reach < s_]
            print(f"  K={k:.2f}: right {keep.reached.mean():.3f} of {len(keep)}; "
                  f"S={s_:.2f}: right {1 - stop.reached.mean():.3f} of {len(stop)}")
    print("\n##### summary (mean over the targets)")
    print(pd.DataFrame(summary).to_string(index=False))
    if len(sets) > 1:
        print("\n##### the pick rule chosen on one set (lowest Bayesian regret), scored on the others")
        for chosen_on in sets:
            rule = min(PICK_RULES, key=lambda r: results[(chosen_on, r)]["regret_bayes"])
            for scored_on in sets:
                if scored_on != chosen_on:
                    s = results[(scored_on, rule)]
                    print(f"chosen on {chosen_on}: {rule!r} -> on {scored_on}: regret {s.regret_bayes:.3f} "
                          f"(ALDA {s.regret_alda:.3f}), Brier {s.brier_bayes:.3f}")
    (Path(a.out) / "summary.json").write_text(json.dumps({"summary": summary, "settings": vars(a)}, indent=1))


if __name__ == "__main__":
    main()
