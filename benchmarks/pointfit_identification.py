"""Robust point fit on the dev sets' pilots: forecast error and identification, old rule against new rule.

For each dev set (needs ../shared/data and ../shared/tools beside the repo; not run in CI): cut every curve to its
official pilot with ../shared/tools/task.py, fit only the robust point fit (``palm_bayes.pointfit.fit_curve``) on
the pilot, predict the final budget and every later one, and score that as the forecast (``mean`` = ``point``)
with task.py's scorer. Prints, per selection rule, the final-budget MAE and the MAE over all later budgets
(accuracy points), the share of curves with a parameter the pilot does not identify (and per parameter), and
how far each rule's final forecasts move from the plain least-squares optimum's.

Rules (``--select``, see ``palm_bayes.pointfit.SELECT``): ``never`` = the least-squares optimum (the old rule);
``degenerate`` (the default of ``fit_curve``) = the most interpretable fit as good as it (within ``--tolerance``
noise variances) when the optimum has a parameter at a bound; ``flagged`` = the same whenever the optimum has an
unidentified parameter; ``always`` = for every curve. ``--pulled`` chooses which parameters "interpretable" pulls
towards PALM's neutral values. With several rules on both sets it also prints the rule that scores best on one
set and what it scores on the other (both directions).

    python benchmarks/pointfit_identification.py [--sets lcdb al] [--select never degenerate flagged]
        [--tolerance 0.5 1 2 4] [--pulled all delta,alpha,beta] [--ident-chi2 1.0] [--limit N] [--per-curve]
        [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from forecast_benchmark import SETS, dev_pilots, load_task  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tools-dir", default=str(ROOT.parent / "shared" / "tools"))
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--select", nargs="+", default=["never", "degenerate"],
                    choices=["never", "degenerate", "flagged", "always"])
    ap.add_argument("--tolerance", type=float, nargs="+", default=None,
                    help="pointfit.SSE_TOLERANCE values to try (noise variances; default: the module's)")
    ap.add_argument("--ident-chi2", type=float, default=None, help="pointfit.IDENT_CHI2 (default: the module's)")
    ap.add_argument("--pulled", nargs="+", default=None,
                    help="pointfit.PULLED sets to try: 'all' or comma lists such as delta,alpha,beta "
                    "(default: the module's)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N curves of each set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-curve", action="store_true", help="print every curve's parameters and errors")
    ap.add_argument("--out", default=None, help="write the per-curve table and the summary here (CSV + JSON)")
    return ap.parse_args(argv)


def run_rule(pilot, truth, targets, task, select: str, seed: int, label: str):
    """Point-fit every pilot with one rule; returns (score dict, per-curve table)."""
    from palm_bayes import data
    from palm_bayes.model import CurveData
    from palm_bayes.pointfit import fit_curve

    frames, rows_out = [], []
    t0 = time.perf_counter()
    for key, rows in data.iter_curves(pilot):
        b = CurveData.from_rows(rows, pilot.attrs["scale"]).b  # the b the Forecaster's point fit uses
        fit = fit_curve(rows, mode="robust", scale=pilot.attrs["scale"], b=b, seed=seed, select=select)
        B = targets[key]
        point = fit.predict(B)
        frames.append(pd.DataFrame({"dataset": key[0], "model": key[1], "method": key[2], "budget": B,
                                    "mean": point, "point": point}))
        rows_out.append(dict(curve="/".join(key), **{k: round(v, 6) for k, v in fit.params.items()},
                             final_budget=B[-1], final_point=point[-1], unidentified=",".join(fit.unidentified),
                             note=fit.note, at_bound="at bound" in fit.note,
                             moved=bool("least_squares_optimum" in fit.extra)))
    seconds = time.perf_counter() - t0
    table = pd.concat(frames, ignore_index=True)
    # task.score's keys: the truth table's (LCDB has no model column)
    table = table[[c for c in table.columns if c in task.keys(truth) or c in ("budget", "mean", "point")]]
    score = task.score(truth, table, label=label)
    per = pd.DataFrame(rows_out)
    fin = truth[truth.final].copy()
    fin["curve"] = ["/".join(str(r.get(c, "unknown")) for c in ("dataset", "model", "method"))
                    for r in fin.to_dict("records")]
    per = per.merge(fin[["curve", "true_mean"]], on="curve", how="left")
    per["final_abs_err"] = (per.final_point - per.true_mean).abs() * 100
    score.update(flagged_share=float((per.unidentified != "").mean()), at_bound_share=float(per.at_bound.mean()),
                 moved_share=float(per.moved.mean()), seconds=seconds,
                 **{f"flagged_{p}": float(per.unidentified.str.contains(p).mean())
                    for p in ("A_max", "delta", "alpha", "beta")})
    return score, per


def _cache_palm_py_reference(pf) -> None:
    """Compute each curve's PALM.py reference start (``fit_palm_py``, the slow part) once for all rules: the same
    numbers, only faster."""
    original, memo = pf.fit_palm_py, {}

    def cached(y_avg, options=None, budget_size=100.0):
        k = (np.asarray(y_avg, dtype=float).tobytes(), repr(options), float(budget_size))
        if k not in memo:
            memo[k] = original(y_avg, options, budget_size)
        return memo[k]

    pf.fit_palm_py = cached


def variants(a: argparse.Namespace, pf) -> list[dict]:
    """The rules to run: ``never`` once, then every (select, tolerance, pulled) combination asked for."""
    pulled = [tuple(pf.PARAM_NAMES if g == "all" else g.split(",")) for g in (a.pulled or [",".join(pf.PULLED)])]
    out = [dict(select="never", tolerance=np.nan, pulled=())] if "never" in a.select else []
    for select in (s for s in a.select if s != "never"):
        for tol in a.tolerance or [pf.SSE_TOLERANCE]:
            for pl in pulled:
                out.append(dict(select=select, tolerance=tol, pulled=pl))
    return out


def label_of(v: dict, pf) -> str:
    if v["select"] == "never":
        return "never (old rule)"
    pl = "all" if tuple(v["pulled"]) == tuple(pf.PARAM_NAMES) else "/".join(p[:2] for p in v["pulled"])
    return f"{v['select']} tol {v['tolerance']:g} pull {pl}"


def main() -> None:
    a = parse()
    warnings.simplefilter("ignore")
    import palm_bayes.pointfit as pf

    if a.ident_chi2 is not None:
        pf.IDENT_CHI2 = a.ident_chi2
    _cache_palm_py_reference(pf)
    defaults = (pf.SSE_TOLERANCE, pf.PULLED)
    task = load_task(a.tools_dir)
    summary, tables = [], []
    for name in a.sets:
        pilot, truth, targets = dev_pilots(a, name, task)
        print(f"\n=== {name} dev: robust point fit on the official pilots ('{SETS[name][1]}' rule, "
              f"{truth.groupby(task.keys(truth)).ngroups} curves) ===")
        print(f"  {'rule':34s} {'MAE final':>9s} {'median':>7s} {'MAE all':>8s} {'flagged':>8s} {'bound':>6s} "
              f"{'moved':>6s} {'A_max':>6s} {'delta':>6s} {'alpha':>6s} {'beta':>6s}  |Δfinal| vs old (max)")
        ref = None
        for v in variants(a, pf):
            pf.SSE_TOLERANCE = v["tolerance"] if v["select"] != "never" else defaults[0]
            pf.PULLED = tuple(v["pulled"]) if v["select"] != "never" else defaults[1]
            label = label_of(v, pf)
            score, per = run_rule(pilot, truth, targets, task, v["select"], a.seed, label)
            if v["select"] == "never":
                ref = per
            moved = (np.abs(per.final_point.to_numpy() - ref.final_point.to_numpy()) * 100
                     if ref is not None else np.full(len(per), np.nan))
            print(f"  {label:34s} {score['mae_final']:9.3f} {score['median_ae_final']:7.3f} "
                  f"{score['mae_all']:8.3f} {score['flagged_share']:8.0%} {score['at_bound_share']:6.0%} "
                  f"{score['moved_share']:6.0%} "
                  + " ".join(f"{score[f'flagged_{p}']:6.0%}" for p in ("A_max", "delta", "alpha", "beta"))
                  + f"  {np.nanmean(moved):6.2f} ({np.nanmax(moved):5.2f})")
            summary.append(dict(set=name, label=label, **v, ident_chi2=pf.IDENT_CHI2,
                                **{k: val for k, val in score.items() if k != "label"}))
            tables.append(per.assign(set=name, rule=label))
            if a.per_curve:
                print(per.round(4).to_string())
    pf.SSE_TOLERANCE, pf.PULLED = defaults
    table = pd.DataFrame(summary)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        pd.concat(tables).to_csv(out / "pointfit_identification.csv", index=False)
        (out / "pointfit_identification.json").write_text(json.dumps(summary, indent=1, default=str))
    if len(a.sets) == 2 and table["label"].nunique() > 2 and (table["select"] == "never").any():
        print("\n=== choosing the rule on one set, scored on the other (final-budget MAE) ===")
        for on, other in (a.sets, a.sets[::-1]):
            cand = table[(table["set"] == on) & (table["select"] != "never")]
            best = cand.loc[cand.mae_final.idxmin(), "label"]
            s_on = float(cand.loc[cand.label == best, "mae_final"].iloc[0])
            s_other = float(table[(table["set"] == other) & (table["label"] == best)].mae_final.iloc[0])
            old = table[table["select"] == "never"].set_index("set").mae_final
            print(f"  best on {on}: {best}  ->  {on} {old[on]:.3f} -> {s_on:.3f};  {other} {old[other]:.3f} -> "
                  f"{s_other:.3f}")


if __name__ == "__main__":
    main()
