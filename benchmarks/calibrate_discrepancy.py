"""Set the extrapolation discrepancy (κ and its drift) on the dev sets, and check it on the other sets (needs
../shared/data).

Reads saved posteriors of pilot fits (``--run-dir``: one ``posterior.nc`` per dev set, as ``forecast_benchmark.py``
writes them; ``--extra NAME=POSTERIOR.nc=FULL.csv`` adds a set of AL runs, e.g. the al_more posterior that
``decision_benchmark.py`` saves), re-predicts every held-out budget for each (κ, drift) of a grid (no new
sampling: the discrepancy is applied to the posterior draws of the mean curve), and scores the forecasts with
../shared/tools/task.py. Prints, per set, κ and drift, the final-budget MAE and signed error, the coverage and
width of the 90 % mean-curve and predictive intervals; then, per set, the κ that brings its mean-curve coverage
closest to 0.90 and the drift with the lowest final-budget MAE, each with what it gives on the *other* sets (a
held-out check: chosen on LCDB curves, scored on AL runs, and the other way round).

    python benchmarks/forecast_benchmark.py --out benchmarks/out/dev
    python benchmarks/calibrate_discrepancy.py --run-dir benchmarks/out/dev --kappa 0.02 \\
        --drift 0 0.02 0.03 0.04 0.06 \\
        --extra al_more=benchmarks/out/decision/al_more/posterior.nc=benchmarks/data/al_more/al_curves.csv
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_benchmark import ROOT, SETS, load_task

KAPPAS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04)


def targets_of(fc, truth: pd.DataFrame, task) -> dict:
    """Held-out budgets of every fitted curve."""
    from palm_bayes.data import CURVE_KEYS

    out = {}
    for key in fc.keys():
        named = dict(zip(CURVE_KEYS, key, strict=True))
        m = np.ones(len(truth), bool)
        for c in task.keys(truth):
            m &= truth[c].astype(str).to_numpy() == named[c]
        out[key] = truth.loc[m, "budget"].to_numpy(dtype=float)
    return out


def signed_final(forecast: pd.DataFrame, truth: pd.DataFrame, task) -> float:
    """Mean of (forecast − mean over runs) at each curve's final budget, accuracy points (scores as fractions)."""
    keys = task.keys(truth)
    final = truth[truth["final"]].astype({k: str for k in keys})
    m = final.merge(forecast.astype({k: str for k in keys}), on=[*keys, "budget"])
    return float((m["mean"] - m["true_mean"]).mean() * 100)


def held_out(table: pd.DataFrame, chosen: dict, column: str) -> None:
    """Print what the setting chosen on each set gives on every other set."""
    for name, value in chosen.items():
        for other in table.set.unique():
            if other == name:
                continue
            r = table[(table.set == other) & (table[column] == value)].iloc[0]
            print(f"{column} chosen on {name}: {value:g} -> {other}: final MAE {r.mae_final:.3f} (signed "
                  f"{r.signed_final:+.2f}), coverage mean {r.cover_mean:.3f} / predictive {r.cover_pred:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tools-dir", default=str(ROOT.parent / "shared" / "tools"))
    ap.add_argument("--run-dir", default=str(ROOT / "benchmarks" / "out" / "dev"))
    ap.add_argument("--kappa", type=float, nargs="+", default=list(KAPPAS))
    ap.add_argument("--drift", type=float, nargs="+", default=[0.0])
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=POSTERIOR=FULL_CSV",
                    help="a further set of AL runs (official AL pilot rule)")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    from palm_bayes.forecast import Forecaster

    task = load_task(a.tools_dir)
    sets = {name: (Path(a.run_dir) / name / "posterior.nc", Path(a.data_dir) / fname, rule)
            for name, (fname, rule) in SETS.items()}
    for spec in a.extra:
        name, post, full = spec.split("=")
        sets[name] = (Path(post), Path(full), "al")
    rows = []
    for name, (post, fname, rule) in sets.items():
        _, truth = task.split(pd.read_csv(fname), rule)
        fc = Forecaster.load(post)
        budgets = targets_of(fc, truth, task)
        for kappa in a.kappa:
            for drift in a.drift:
                fc.discrepancy, fc.drift = kappa, drift
                f = fc.predict(budgets=budgets, level=0.9)
                s = task.score(truth, f, label=name)
                rows.append({"set": name, "kappa": kappa, "drift": drift, "mae_final": s["mae_final"],
                             "signed_final": signed_final(f, truth, task), "mae_all": s["mae_all"],
                             "cover_mean": s["cover_mean"], "cover_mean_final": s["cover_mean_final"],
                             "width_mean": s["width_mean"], "cover_pred": s["cover_pred"],
                             "width_pred": s["width_pred"]})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200):
        print(table.round(3).to_string(index=False))
    if len(a.kappa) > 1:
        held_out(table, {n: float(g.loc[(g.cover_mean - 0.9).abs().idxmin(), "kappa"])
                         for n, g in table.groupby("set")}, "kappa")
    if len(a.drift) > 1:
        held_out(table, {n: float(g.loc[g.mae_final.idxmin(), "drift"]) for n, g in table.groupby("set")}, "drift")


if __name__ == "__main__":
    main()
