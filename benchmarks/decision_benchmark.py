"""Decision benchmark on the AL dev set (needs ../shared/data beside the repo; not run in CI).

For each (dataset, model) and each f in {0.98, 0.99, 1.00}: τ = f × the best final mean accuracy over its methods;
a method's true cost is the first budget where its full mean curve (over runs) reaches τ (∞ if never). The
posterior is fitted once on the pilots (the forecast task's pilot rule) and every decision reuses it, with
``max_budget`` = the group's final budget. Prints, per f and on average:

* label regret = true cost of the pick / true cost of the hindsight-best method (capped at 2), for the Bayesian
  risk-aware pick and for ALDA's pick;
* Brier score of ``p_reach`` against whether each method truly reaches τ by the final budget, and of ALDA's
  implicit 0/1 forecast (feasible and B_abs ≤ the final budget);
* the ``p_cheapest`` the posterior gave the method that was in hindsight the cheapest (higher is better).

With ``--posterior`` of a pooled fit (forecast_benchmark.py --pooling ceiling) the decisions come from the joint
draws of each group.

    python benchmarks/decision_benchmark.py [--draws 1000 --tune 1000 --chains 4] [--out benchmarks/out/decision]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.98, 0.99, 1.00)
REGRET_CAP = 2.0


def true_costs(full: pd.DataFrame, target: float) -> dict[str, float]:
    """First budget at which each method's mean over runs reaches ``target`` (inf if never)."""
    out = {}
    for method, g in full.groupby("method"):
        m = g.groupby("budget").score.mean().sort_index()
        hit = m[m >= target - 1e-12]
        out[method] = float(hit.index[0]) if len(hit) else np.inf
    return out


def regret(pick: str, costs: dict[str, float]) -> float:
    """True cost of the pick over the hindsight best, capped (a pick that never reaches τ scores the cap)."""
    best = min(costs.values())
    if not pick or not np.isfinite(costs.get(pick, np.inf)):
        return REGRET_CAP
    return min(costs[pick] / best, REGRET_CAP)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "al_dev" / "al_curves.csv"))
    ap.add_argument("--tools-dir", default=str(ROOT.parent / "shared" / "tools"))
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--posterior", help="reuse this posterior.nc of the AL pilots (forecast_benchmark.py saves one) "
                    "instead of fitting them again")
    ap.add_argument("--discrepancy", type=float, nargs="+", default=[None],
                    help="extrapolation discrepancy scale(s) to decide with (default: the model's)")
    ap.add_argument("--pooling", default=None, help="none, ceiling or full when fitting (default: the Forecaster's)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "decision"))
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    sys.path.insert(0, a.tools_dir)
    import task  # the official pilot rule

    from palm_bayes import data
    from palm_bayes.forecast import Forecaster

    full = pd.read_csv(a.data)
    pilot_rows, _ = task.split(full, "al")
    with tempfile.TemporaryDirectory() as tmp:
        pilot_rows.to_csv(Path(tmp) / "pilot.csv", index=False)
        pilot = data.load_curves(Path(tmp) / "pilot.csv")
    t0 = time.perf_counter()
    if a.posterior:
        fc = Forecaster.load(a.posterior)
        assert sorted(fc.keys()) == sorted(data.curve_keys(pilot)), "the posterior is not of the AL pilots"
    else:
        fc = Forecaster(draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed,
                        **({"pooling": a.pooling} if a.pooling else {})).fit(pilot)
    fit_s = time.perf_counter() - t0
    for kappa in a.discrepancy:
        if kappa is not None:
            fc.discrepancy = kappa
        print(f"\n##### extrapolation discrepancy {fc.discrepancy:g}")
        run_decisions(a, fc, full, fit_s, Path(a.out) / f"kappa_{fc.discrepancy:g}")


def run_decisions(a, fc, full: pd.DataFrame, fit_s: float, out: Path) -> None:
    """Every decision of the benchmark from one fitted forecaster; prints and writes the scores."""
    from palm_bayes.decision import DecisionSettings, decide

    records, briers = [], []
    t1 = time.perf_counter()
    for (dataset, model), g in full.groupby(["dataset", "model"]):
        final_mean = g[g.budget == g.groupby("method").budget.transform("max")].groupby("method").score.mean()
        final_budget = float(g.budget.max())
        keys = [(dataset, model, m) for m in sorted(g.method.unique())]
        for f in FRACTIONS:
            target = f * float(final_mean.max())
            costs = true_costs(g, target)
            res = decide(fc, DecisionSettings(target=target, max_budget=final_budget), keys=keys)
            t = res.table.set_index("method")
            pick = t.index[t.pick].tolist()
            alda = t.index[t.alda_pick].tolist()
            reached = pd.Series({m: float(np.isfinite(c) and c <= final_budget) for m, c in costs.items()})
            alda_says = (t.feasible.astype(bool) & (t.b_abs <= final_budget)).astype(float)
            briers.append(pd.DataFrame({"f": f, "dataset": dataset, "model": model, "method": t.index,
                                        "p_reach": t.p_reach.values, "alda_reach": alda_says.values,
                                        "reached": reached.reindex(t.index).values}))
            records.append({"f": f, "dataset": dataset, "model": model, "target": target,
                            "hindsight_best": min(costs, key=costs.get), "pick": pick[0] if pick else "",
                            "alda_pick": alda[0] if alda else "",
                            "regret_bayes": regret(pick[0] if pick else "", costs),
                            "regret_alda": regret(alda[0] if alda else "", costs),
                            "p_cheapest_best": float(t.p_cheapest.get(min(costs, key=costs.get), np.nan))})
    decide_s = time.perf_counter() - t1
    rec = pd.DataFrame(records)
    br = pd.concat(briers, ignore_index=True)
    br["brier_bayes"] = (br.p_reach - br.reached) ** 2
    br["brier_alda"] = (br.alda_reach - br.reached) ** 2
    per_f = rec.groupby("f")[["regret_bayes", "regret_alda", "p_cheapest_best"]].mean().join(
        br.groupby("f")[["brier_bayes", "brier_alda"]].mean()).join(br.groupby("f").reached.mean().rename("share"))
    per_f["brier_hindsight_share"] = br.groupby("f").apply(
        lambda d: float(((d.reached.mean() - d.reached) ** 2).mean()), include_groups=False)
    print(rec.round(3).to_string(index=False))
    print("\nper f (regret capped at 2; Brier of P(reach τ by the final budget)):")
    print(per_f.round(3).to_string())
    mean = per_f.mean()
    print(f"\nmean: regret Bayes {mean.regret_bayes:.3f}, ALDA {mean.regret_alda:.3f}; Brier Bayes "
          f"{mean.brier_bayes:.3f}, ALDA {mean.brier_alda:.3f}, hindsight share {mean.brier_hindsight_share:.3f}; "
          f"P(cheapest) of the hindsight-best method {mean.p_cheapest_best:.3f}")
    print(f"fit {fit_s:.0f} s for {len(fc.keys())} curves; {len(rec)} decisions from the saved fit in {decide_s:.1f} s")
    out.mkdir(parents=True, exist_ok=True)
    rec.to_csv(out / "decisions.csv", index=False)
    br.to_csv(out / "brier.csv", index=False)
    (out / "results.json").write_text(json.dumps({"per_f": per_f.reset_index().to_dict("records"),
                                                  "mean": mean.to_dict(), "fit_s": fit_s, "decide_s": decide_s,
                                                  "discrepancy": fc.discrepancy, "settings": vars(a)}, indent=1))


if __name__ == "__main__":
    main()
