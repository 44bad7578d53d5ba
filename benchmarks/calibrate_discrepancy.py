"""Set the extrapolation discrepancy κ on the dev sets, and check it on the other set (needs ../shared/data).

Reads the posteriors that ``forecast_benchmark.py`` saved (``--run-dir``, one ``posterior.nc`` per dev set),
re-predicts every held-out budget for each κ of a grid (no new sampling: the discrepancy is added to the
posterior draws of the mean curve), and scores the forecasts with ../shared/tools/task.py. Prints, per set and κ,
the coverage and width of the 90 % mean-curve and predictive intervals, then the κ that brings each set's
mean-curve coverage closest to 0.90 and what that κ gives on the *other* set (a held-out check: κ fitted on
LCDB curves, scored on AL runs, and vice versa).

    python benchmarks/forecast_benchmark.py --discrepancy 0 --out benchmarks/out/no_disc
    python benchmarks/calibrate_discrepancy.py --run-dir benchmarks/out/no_disc
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

GRID = (0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tools-dir", default=str(ROOT.parent / "shared" / "tools"))
    ap.add_argument("--run-dir", default=str(ROOT / "benchmarks" / "out" / "no_disc"))
    ap.add_argument("--grid", type=float, nargs="+", default=list(GRID))
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    from palm_bayes.forecast import Forecaster

    task = load_task(a.tools_dir)
    rows = []
    for name, (fname, rule) in SETS.items():
        full = pd.read_csv(Path(a.data_dir) / fname)
        _, truth = task.split(full, rule)
        fc = Forecaster.load(Path(a.run_dir) / name / "posterior.nc")
        budgets = targets_of(fc, truth, task)
        for kappa in a.grid:
            fc.discrepancy = kappa
            s = task.score(truth, fc.predict(budgets=budgets, level=0.9), label=name)
            rows.append({"set": name, "kappa": kappa, "mae_final": s["mae_final"], "cover_mean": s["cover_mean"],
                         "cover_mean_final": s["cover_mean_final"], "width_mean": s["width_mean"],
                         "iscore_mean": s["iscore_mean"], "cover_pred": s["cover_pred"],
                         "width_pred": s["width_pred"]})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200):
        print(table.round(3).to_string(index=False))
    best = {n: float(g.loc[(g.cover_mean - 0.9).abs().idxmin(), "kappa"]) for n, g in table.groupby("set")}
    pooled = table.groupby("kappa").apply(lambda g: abs(g.cover_mean.mean() - 0.9), include_groups=False).idxmin()
    for name, kappa in best.items():
        other = next(n for n in SETS if n != name)
        r = table[(table.set == other) & (table.kappa == kappa)].iloc[0]
        print(f"kappa fitted on {name}: {kappa:g} -> held-out {other}: mean-curve coverage {r.cover_mean:.3f} "
              f"(width {r.width_mean:.2f}), predictive {r.cover_pred:.3f}, final MAE {r.mae_final:.2f}")
    print(f"kappa closest to 0.90 on both sets on average: {pooled:g}")


if __name__ == "__main__":
    main()
