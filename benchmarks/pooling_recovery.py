"""Pooling on simulated groups: does the joint model narrow A_max and keep its 90% intervals honest?

Simulates ``--groups`` (dataset, model) groups of ``--methods`` methods from known PALM parameters, each method
observed for 8 episodes (5 runs, run offsets and noise as in the test suite). Two scenarios:

* ``shared``: every method of a group heads for one ceiling (drawn per group from U(0.70, 0.95)); half of the
  methods are fast (δ ~ U(0.2, 0.35), near the ceiling within the pilot), half slow (δ ~ U(0.02, 0.05));
* ``apart``: the same, but each method has its own ceiling from U(0.60, 0.95).

For ``--pooling`` none / ceiling / full it prints the coverage and mean width of the 90% intervals of A_max (slow
and fast methods apart), of the mean accuracy at 4× the last pilot budget, the MAE of that forecast, health and
time. Not run in CI (minutes):

    python benchmarks/pooling_recovery.py [--groups 12] [--methods 4] [--pooling none ceiling full]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def simulate_groups(n_groups: int, n_methods: int, scenario: str, seed: int, n_runs: int = 5,
                    n_budgets: int = 8, b: float = 10.0) -> tuple[pd.DataFrame, dict]:
    """Tidy table of the groups' pilots and ``{key: (params, slow)}``."""
    from palm_bayes import data
    from palm_bayes.curve import budget_curve

    rng = np.random.default_rng(seed)
    frames, truth = [], {}
    B = np.arange(1, n_budgets + 1) * b
    for g in range(n_groups):
        ceiling = rng.uniform(0.70, 0.95)
        for m in range(n_methods):
            slow = m >= n_methods // 2
            p = dict(A_max=ceiling if scenario == "shared" else rng.uniform(0.60, 0.95),
                     delta=rng.uniform(0.02, 0.05) if slow else rng.uniform(0.2, 0.35),
                     alpha=rng.uniform(0.0, 1.5), beta=rng.uniform(0.8, 1.2))
            mu = budget_curve(B, b=b, **p)
            for r in range(n_runs):
                y = mu + 0.008 * rng.standard_normal() + 0.01 * rng.standard_normal(len(B))
                frames.append(pd.DataFrame({"dataset": f"g{g:02d}", "model": "m", "method": f"c{m}", "run": str(r),
                                            "budget": B, "score": np.clip(y, 0, 1)}))
            truth[(f"g{g:02d}", "m", f"c{m}")] = (p, slow)
    return data.validate(pd.concat(frames, ignore_index=True), "simulated"), truth


def score(fc, truth: dict, horizon: float, b: float = 10.0) -> dict:
    from palm_bayes.curve import budget_curve

    params = fc.params(level=0.9)
    a = params[params.param == "A_max"].set_index(["dataset", "method"])
    table = fc.predict(budgets=[horizon], level=0.9).set_index(["dataset", "method"])
    rows = []
    for key, (p, slow) in truth.items():
        r, t = a.loc[(key[0], key[2])], table.loc[(key[0], key[2])]
        true_mean = float(budget_curve(np.array([horizon]), b=b, **p)[0])
        rows.append({"slow": slow, "a_cover": r.lower <= p["A_max"] <= r.upper, "a_width": r.upper - r.lower,
                     "f_cover": t.lower <= true_mean <= t.upper, "f_width": t.upper - t.lower,
                     "f_err": abs(t["mean"] - true_mean)})
    df = pd.DataFrame(rows)
    diag = fc.diagnostics()
    out = {}
    for name, part in (("all", df), ("slow", df[df.slow]), ("fast", df[~df.slow])):
        out.update({f"A_max cover {name}": part.a_cover.mean(), f"A_max width {name}": part.a_width.mean() * 100})
    out.update({"4x cover": df.f_cover.mean(), "4x width": df.f_width.mean() * 100, "4x MAE": df.f_err.mean() * 100,
                "healthy": float((diag.status == "ok").mean())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=12)
    ap.add_argument("--methods", type=int, default=4)
    ap.add_argument("--pooling", nargs="+", default=["none", "ceiling", "full"])
    ap.add_argument("--scenarios", nargs="+", default=["shared", "apart"])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=300, help="tuning steps of a first run (the library default)")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    from palm_bayes.forecast import Forecaster

    results = {}
    for scenario in a.scenarios:
        df, truth = simulate_groups(a.groups, a.methods, scenario, seed=a.seed + 1)
        for pooling in a.pooling:
            t0 = time.perf_counter()
            fc = Forecaster(draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed, pooling=pooling).fit(df)
            res = score(fc, truth, horizon=4 * float(df.budget.max()))
            res["seconds"] = time.perf_counter() - t0
            results[(scenario, pooling)] = res
            print(f"{scenario:7s} {pooling:8s} " + ", ".join(f"{k} {v:.3g}" for k, v in res.items()), flush=True)
    table = pd.DataFrame(results).T
    table.index.names = ["scenario", "pooling"]
    print(f"\n{a.groups} groups x {a.methods} methods per scenario; 90% intervals; widths and MAE in points")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
