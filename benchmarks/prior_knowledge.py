"""What a known ceiling does to the forecasts, on AL dev curves (needs ../shared/data; not run in CI).

For every curve of one (dataset, model) group of the AL dev set, fit the official pilot twice: with the default
prior and with ``a_max_below`` = a known ceiling. As a stand-in for the accuracy of training on the whole pool
(what a user would measure and pass), the ceiling is the best final mean accuracy any method of the group reached
plus ``--margin`` points. Prints the A_max interval and the final-budget forecast (mean and interval) before and
after, next to the truth.

    python benchmarks/prior_knowledge.py [--group Yeast SVC_RBF] [--margin 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_benchmark import ROOT, load_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tools-dir", default=str(ROOT.parent / "shared" / "tools"))
    ap.add_argument("--group", nargs=2, default=["Yeast", "SVC_RBF"], metavar=("DATASET", "MODEL"))
    ap.add_argument("--margin", type=float, default=1.0, help="points added to the best final mean (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    from palm_bayes import data
    from palm_bayes.forecast import Forecaster

    task = load_task(a.tools_dir)
    full = pd.read_csv(Path(a.data_dir) / "al_dev" / "al_curves.csv")
    full = full[(full.dataset == a.group[0]) & (full.model == a.group[1])]
    pilot_rows, truth = task.split(full, "al")
    with tempfile.TemporaryDirectory() as tmp:
        pilot_rows.to_csv(Path(tmp) / "pilot.csv", index=False)
        pilot = data.load_curves(Path(tmp) / "pilot.csv")
    final = truth[truth.final].set_index("method")
    ceiling = float(final.true_mean.max()) + a.margin / 100
    last = {m: float(final.loc[m, "budget"]) for m in final.index}
    print(f"{a.group[0]}/{a.group[1]}: known ceiling = best final mean {final.true_mean.max():.4f} + "
          f"{a.margin:g} points = {ceiling:.4f}")
    fits = {name: Forecaster(seed=a.seed, **kw).fit(pilot)
            for name, kw in (("default", {}), ("ceiling", {"a_max_below": ceiling}))}
    rows = []
    for key in fits["default"].keys():
        m = key[2]
        r = {"method": m, "truth_final": final.loc[m, "true_mean"]}
        for name, fc in fits.items():
            params = fc.params(level=0.9)
            p = params[(params.method == m) & (params.param == "A_max")].iloc[0]
            f = fc.predict(budgets={key: [last[m]]}, level=0.9).iloc[0]
            r.update({f"{name}_A_max": f"{p['median']:.3f} [{p.lower:.3f}, {p.upper:.3f}]",
                      f"{name}_final": f"{f['mean']:.3f} [{f.lower:.3f}, {f.upper:.3f}]",
                      f"{name}_width": 100 * (f.upper - f.lower),
                      f"{name}_err": 100 * abs(f["mean"] - r["truth_final"])})
        rows.append(r)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.round(2).to_string(index=False))
    print(f"mean final |error| (points): default {table.default_err.mean():.2f}, ceiling "
          f"{table.ceiling_err.mean():.2f}; mean interval width: default {table.default_width.mean():.2f}, "
          f"ceiling {table.ceiling_width.mean():.2f}")
    print("fraction of A_max draws below the ceiling:", {n: float(np.mean(np.concatenate(
        [p.draws["A_max"].reshape(-1) for p in fc.posteriors.values()]) < ceiling)) for n, fc in fits.items()})


if __name__ == "__main__":
    main()
