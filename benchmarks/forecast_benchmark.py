"""Forecast benchmark on the development sets (needs ../shared/data beside the repo; not run in CI).

For each dev set: cut every curve to its pilot with the official rule, fit the Bayesian model on the pilot only,
forecast every later budget, write forecast.csv, and score it with ../shared/tools/task.py (the same rules as
../shared/tools/score_forecast.py). Prints final-budget MAE of ``mean`` and ``point`` (accuracy points), MAE over
all later budgets, coverage and width of the mean-curve and predictive intervals, sampling health, time, memory.

    python benchmarks/forecast_benchmark.py [--sets lcdb al] [--limit N] [--draws 1000 --tune 300 --chains 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SETS = {"lcdb": ("lcdb_dev.csv", "lcdb"), "al": ("al_dev/al_curves.csv", "al")}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tools-dir", default=str(ROOT.parent / "shared" / "tools"))
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--limit", type=int, default=None, help="only the first N curves of each set")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=300, help="tuning steps of a first run (the library default)")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--likelihood", default="normal")
    ap.add_argument("--target-accept", type=float, default=None,
                    help="of a first run (default: the library's, per geometry)")
    ap.add_argument("--no-noise-trend", action="store_true", help="constant observation noise")
    ap.add_argument("--no-low-rank", action="store_true", help="diagonal mass matrix only")
    ap.add_argument("--misfit", action="store_true", help="per-budget misfit term")
    ap.add_argument("--geometry", default="auto", help="sampler coordinates: shape, levels or auto")
    ap.add_argument("--ladder", default=None,
                    help="the retry ladder: geometry[:target_accept][:long],..., e.g. levels,shape:0.99:long")
    ap.add_argument("--ar1", action="store_true", help="AR(1) run deviations across budgets")
    ap.add_argument("--discrepancy", type=float, default=None,
                    help="scale of the extrapolation discrepancy (default: the model's)")
    ap.add_argument("--pooling", default=None, help="none, ceiling or full (default: the Forecaster's)")
    ap.add_argument("--families", default=None, help="curve families to mix, e.g. palm,mmf4 (default: the "
                    "Forecaster's)")
    ap.add_argument("--jobs", type=int, default=1, help="local worker processes for the per-curve fits")
    ap.add_argument("--dask-workers", type=int, default=0,
                    help="run the fits on a Dask LocalCluster with this many worker processes")
    ap.add_argument("--latent-runs", action="store_true", help="sample one offset per run (not integrated out)")
    ap.add_argument("--loo", action="store_true", help="also PSIS-LOO of the pilot points per curve (ArviZ)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    return ap.parse_args(argv)


def load_task(tools_dir: str):
    """The official pilot rule and scorer from ../shared/tools/task.py."""
    sys.path.insert(0, tools_dir)
    import task

    return task


def dev_pilots(a: argparse.Namespace, name: str, task):
    """(pilot tidy table, truth table, {key: later budgets to forecast, sorted}) of one dev set (its first
    ``a.limit`` curves if set), cut with the official rule."""
    from palm_bayes import data

    fname, rule = SETS[name]
    full = pd.read_csv(Path(a.data_dir) / fname)
    if a.limit:
        k = task.keys(full)
        full = full.merge(full[k].drop_duplicates().head(a.limit), on=k)
    pilot_rows, truth = task.split(full, rule)
    with tempfile.TemporaryDirectory() as tmp:
        pilot_rows.to_csv(Path(tmp) / "pilot.csv", index=False)
        pilot = data.load_curves(Path(tmp) / "pilot.csv")
    targets = {}
    for key, _ in data.iter_curves(pilot):
        kk = dict(zip(data.CURVE_KEYS, key, strict=True))
        m = np.ones(len(truth), bool)
        for c in task.keys(truth):
            m &= truth[c].astype(str).to_numpy() == kk[c]
        targets[key] = np.sort(truth.loc[m, "budget"].to_numpy(dtype=float))
    return pilot, truth, targets


def run_set(a: argparse.Namespace, name: str, task, variant: dict | None = None):
    """Fit one dev set's pilots, forecast its later budgets and score them. Returns (score dict, forecaster)."""
    from palm_bayes.forecast import Forecaster

    pilot, truth, targets = dev_pilots(a, name, task)
    settings = dict(draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed, likelihood=a.likelihood,
                    target_accept=a.target_accept, noise_trend=not a.no_noise_trend, low_rank=not a.no_low_rank,
                    misfit=a.misfit, loo=a.loo, geometry=a.geometry, ar1=a.ar1,
                    marginal_runs=not a.latent_runs)
    if a.discrepancy is not None:
        settings["discrepancy"] = a.discrepancy
    if a.pooling is not None:
        settings["pooling"] = a.pooling
    if a.families is not None:
        settings["families"] = a.families
    settings.update(variant or {})
    t0 = time.perf_counter()
    if a.dask_workers:
        from distributed import LocalCluster

        with LocalCluster(n_workers=a.dask_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            fc = Forecaster(scheduler=cluster.scheduler_address, **settings).fit(pilot)
    else:
        fc = Forecaster(jobs=a.jobs, **settings).fit(pilot)
    fit_s = time.perf_counter() - t0
    table = fc.predict(budgets=targets, level=0.9)
    out = Path(a.out) / name
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "forecast.csv", index=False)
    diag = fc.diagnostics()
    diag.to_csv(out / "diagnostics.csv", index=False)
    (out / "posterior.nc").unlink(missing_ok=True)
    fc.save(out)  # benchmarks/calibrate_discrepancy.py re-predicts from it
    score = task.score(truth, table, label=name)
    ok = diag[diag.status != "failed"]
    score.update(
        curves_fitted=len(diag), failures=int((diag.status == "failed").sum()),
        curves_with_divergences=int((ok.divergences > 0).sum()), divergences_total=int(ok.divergences.sum()),
        curves_rhat_gt_1_01=int((ok.max_r_hat > 1.01).sum()),
        curves_ess_bulk_lt_400=int((ok.min_ess_bulk < 400).sum()),
        healthy_fraction=float(((ok.divergences == 0) & (ok.max_r_hat <= 1.01) & (ok.min_ess_bulk >= 400)).mean()),
        healthy_every_family=float((ok.status == "ok").mean()),  # PALM's run and every other family's
        wall_s_total=fit_s, wall_s_per_curve=fit_s / len(diag), sampling_s_per_curve=ok.seconds.sum() / max(len(ok), 1),
    )
    if a.loo:
        loo = fc.loo()
        loo.to_csv(out / "loo.csv", index=False)
        score.update(elpd_loo_sum=float(loo.elpd_loo.sum()), loo_points_k_gt_0_7=int(loo.n_bad_k.sum()))
    err = (table.merge(truth[[*task.keys(truth), "budget", "true_mean", "final"]].assign(
        **{c: truth[c].astype(str) for c in task.keys(truth)}), on=[*task.keys(truth), "budget"]))
    fin = err[err.final]
    score["per_curve_final_abs_err"] = ((fin["mean"] - fin.true_mean).abs() * 100).round(2).tolist()
    return score, fc


def main() -> None:
    a = parse()
    warnings.simplefilter("ignore")
    if a.ladder:
        from palm_bayes import engine

        engine.LADDER = engine.parse_ladder(a.ladder)
    task = load_task(a.tools_dir)
    results = {}
    t_start = time.perf_counter()
    for name in a.sets:
        score, _ = run_set(a, name, task)
        results[name] = score
        per_curve = score["per_curve_final_abs_err"]
        print(f"\n=== {name} dev ({score['curves']} curves, pilot rule '{SETS[name][1]}') ===")
        for k, v in score.items():
            if k != "per_curve_final_abs_err":
                print(f"  {k:28s} {v:.4g}" if isinstance(v, float) else f"  {k:28s} {v}")
        print(f"  per-curve final |error| (points): {sorted(per_curve, reverse=True)[:8]} ... (largest 8)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest finished child process
    workers = f", {worker:.0f} MiB in the largest worker process" if a.jobs > 1 or a.dask_workers else ""
    print(f"\ntotal wall time {time.perf_counter() - t_start:.1f} s; peak memory {peak:.0f} MiB in this process"
          + workers)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "results.json").write_text(json.dumps(
        {"results": results, "peak_mib": peak, "worker_peak_mib": worker, "settings": vars(a)}, indent=1, default=str))


if __name__ == "__main__":
    main()
