"""Curve families side by side, and ways to weight them (issue 14; not run in CI).

For every curve of a dev set (official pilots, ``../shared/tools/task.py``) and every family of
``palm_bayes.families``, this samples the family's posterior on the whole pilot and again on the pilot without
its last ``--holdout`` budgets (leave-future-out, LFO), and keeps, per family:

- draws of the mean curve (with the extrapolation discrepancy of ``palm_bayes.discrepancy``) and of one new run at
  the budgets to forecast, thinned to ``--keep`` draws;
- the LFO log score: the log predictive density of the held-out budgets' mean scores (mean over runs) under the
  fit without them (each draw: mean curve + discrepancy, Normal noise of the run mean, sd² = (σ(B)² + τ²) / runs).

Then it scores, with the task's scorer, each family alone and mixtures of them:

- ``equal``: every family the same weight;
- ``lfo-bma``: per curve, weights ∝ exp(LFO log score) (pseudo-BMA);
- ``lfo-stack``: per curve, the weights on the simplex that maximise the LFO log score of the mixture (stacking,
  Yao et al. 2018, on the curve's held-out budgets);
- ``best-lfo``: per curve, the family with the best LFO log score alone.

Draws are saved under ``--out`` (``draws_<set>.npz``) so that weights can be re-scored without refitting
(``--rescore``).

The methods of one (dataset, model) group share their ceiling as in the default forecast (``pooling="ceiling"``,
two stages: ``palm_bayes.ensemble.sample_family_group``); ``--no-pooling`` fits every curve alone.

    python benchmarks/family_benchmark.py --sets lcdb al [--families palm,palm_log,wbl4,pow4,mmf4]
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
from scipy.special import logsumexp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import forecast_benchmark as fb  # noqa: E402

from palm_bayes import data as pdata  # noqa: E402
from palm_bayes.curve import on_scale  # noqa: E402
from palm_bayes.discrepancy import DISCREPANCY, with_discrepancy  # noqa: E402
from palm_bayes.engine import PalmSampler, SamplerSettings, curve_seed  # noqa: E402
from palm_bayes.ensemble import sample_family, sample_family_group  # noqa: E402
from palm_bayes.families import FAMILIES  # noqa: E402
from palm_bayes.forecast import new_run_scores  # noqa: E402
from palm_bayes.model import CurveData  # noqa: E402


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["lcdb", "al"], choices=["lcdb", "al"])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--holdout", type=int, default=2, help="pilot budgets held out for the LFO score")
    ap.add_argument("--keep", type=int, default=1000, help="draws kept per family and curve")
    ap.add_argument("--kappa", type=float, default=DISCREPANCY)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tools-dir", default=str(ROOT.parent / "shared" / "tools"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "families"))
    ap.add_argument("--rescore", action="store_true", help="score the saved draws again, no fitting")
    ap.add_argument("--no-pooling", dest="pooling", action="store_false",
                    help="fit every curve alone (default: the methods of a group share their ceiling, two stages)")
    return ap.parse_args(argv)


def lfo_score(post, rows: pd.DataFrame, held: np.ndarray, last: float, kappa: float, rng) -> np.ndarray:
    """Per draw and held-out budget (draws × budgets), the log density of that budget's run mean (see the module
    docstring)."""
    obs = rows[rows.budget.isin(held)].groupby("budget").score.agg(["mean", "size"])
    B = obs.index.to_numpy(dtype=float)
    mu = with_discrepancy(post.mean_curve(B), B, last, kappa, rng)
    sd = np.sqrt((post.noise_sd(B) ** 2 + post.draws["tau"].reshape(-1)[:, None] ** 2) / obs["size"].to_numpy())
    z = (obs["mean"].to_numpy() - mu) / sd
    return -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def fit_members(sampler, curves: list, family: str, keys: list[tuple], pooling: bool) -> list:
    """One family's posteriors for the curves of one group: their ceiling pooled, or each curve alone."""
    if pooling:
        return sample_family_group(sampler, curves, family, keys)
    return [sample_family(sampler, c, family, k) for c, k in zip(curves, keys, strict=True)]


def fit_set(a, name: str, task, families: list[str]) -> dict:
    pilot, truth, targets = fb.dev_pilots(a, name, task)
    scale = pilot.attrs.get("scale") or pdata.check_scale(pilot, "pilot")
    sampler = PalmSampler(SamplerSettings(seed=a.seed))
    out = {"keys": [], "budgets": {}, "mean": {}, "pred": {}, "lfo": {}, "health": []}
    t_all = time.perf_counter()
    curves = {}
    for key, r in pdata.iter_curves(pilot):
        rows = r[["run", "budget", "score"]].reset_index(drop=True)
        rows["score"] = rows["score"] / pdata.scale_max(scale)
        budgets = np.sort(rows.budget.unique())
        held, kept = budgets[-a.holdout:], budgets[:-a.holdout]
        cd = CurveData.from_rows(rows, "fraction")
        cd_lfo = CurveData.from_rows(rows[rows.budget.isin(kept)].reset_index(drop=True), "fraction", b=cd.b)
        curves.setdefault(key[:2], []).append((key, rows, budgets, held, kept, cd, cd_lfo))
    # the methods of one (dataset, model) group share their ceiling (two stages), as the default forecast does
    for g, members in enumerate(curves.values()):
        keys = [m[0] for m in members]
        for fam in families:
            t0 = time.perf_counter()
            posts = fit_members(sampler, [m[5] for m in members], fam, keys, a.pooling)
            lfos = fit_members(sampler, [m[6] for m in members], fam, [(*k, "lfo") for k in keys], a.pooling)
            secs = (time.perf_counter() - t0) / len(members)
            for (key, rows, budgets, held, kept, _, _), post, lfo in zip(members, posts, lfos, strict=True):
                k = "/".join(key)
                B = targets[key]
                rng = np.random.default_rng(curve_seed(a.seed, (*key, fam)))
                mu = with_discrepancy(post.mean_curve(B), B, float(budgets[-1]), a.kappa, rng)
                n = mu.shape[0]
                pred = new_run_scores(mu, post.draws["tau"].reshape(-1), post.noise_sd(B), rng)
                pick = np.linspace(0, n - 1, a.keep).round().astype(int)
                out["budgets"][k] = B
                out["mean"][(k, fam)] = on_scale(mu[pick]).astype(np.float32)
                out["pred"][(k, fam)] = on_scale(pred[pick]).astype(np.float32)
                out["lfo"][(k, fam)] = lfo_score(lfo, rows, held, float(kept[-1]), a.kappa, rng)
                out["health"].append(dict(key=k, family=fam, seconds=secs, healthy=not post.warnings,
                                          healthy_lfo=not lfo.warnings, divergences=post.divergences,
                                          r_hat=float(post.diagnostics.r_hat.max()),
                                          ess=float(post.diagnostics.ess_bulk.min())))
        out["keys"] += ["/".join(k) for k in keys]
        print(f"  {name} group {g + 1}/{len(curves)}: {'/'.join(keys[0][:2])}, {len(keys)} curve(s) "
              f"({time.perf_counter() - t_all:.0f} s)", flush=True)
    out["scale"] = scale
    out["truth"], out["targets"] = truth, targets
    return out


def log_mean_exp(v: np.ndarray, axis: int = 0) -> np.ndarray:
    """log of the mean of exp(v) along ``axis``."""
    return logsumexp(v, axis=axis) - np.log(v.shape[axis])


def stacking_weights(lp: np.ndarray, steps: int = 200) -> np.ndarray:
    """Weights on the simplex maximising Σ_i log Σ_k w_k exp(lp[k, i]) (lp: families × held-out points, each the
    log predictive density of one point), by exponentiated-gradient ascent."""
    K = lp.shape[0]
    w = np.full(K, 1.0 / K)
    p = np.exp(lp - lp.max(axis=0, keepdims=True))
    for _ in range(steps):
        mix = w @ p
        grad = (p / mix).sum(axis=1)
        w = w * np.exp(0.1 * grad / p.shape[1])
        w /= w.sum()
    return w


def weights(out: dict, k: str, families: list[str], rule: str) -> np.ndarray:
    K = len(families)
    if rule == "equal":
        return np.full(K, 1.0 / K)
    if rule in FAMILIES:
        return np.array([1.0 if f == rule else 0.0 for f in families])
    # pointwise elpd of the held-out budgets (families × budgets): each budget's density averaged over draws
    pointwise = np.array([log_mean_exp(out["lfo"][(k, f)], axis=0) for f in families])
    elpd = pointwise.sum(axis=1)
    if rule == "lfo-bma":
        w = np.exp(elpd - elpd.max())
        return w / w.sum()
    if rule == "best-lfo":
        return (np.arange(K) == np.argmax(elpd)).astype(float)
    if rule == "lfo-stack":
        return stacking_weights(pointwise)
    raise ValueError(rule)


def mixture_table(out: dict, families: list[str], rule: str, seed: int = 0) -> pd.DataFrame:
    """The forecast table of one weighting rule: each curve's draws are a weighted mixture of the families'."""
    rows = []
    top = pdata.scale_max(out["scale"])
    for k in out["keys"]:
        w = weights(out, k, families, rule)
        rng = np.random.default_rng(seed)
        keep = out["mean"][(k, families[0])].shape[0]
        counts = rng.multinomial(keep, w)
        mu = np.concatenate([out["mean"][(k, f)][:c] for f, c in zip(families, counts, strict=True)])
        pred = np.concatenate([out["pred"][(k, f)][:c] for f, c in zip(families, counts, strict=True)])
        parts = k.split("/")
        lo, hi = np.quantile(mu, [0.05, 0.95], axis=0)
        plo, phi = np.quantile(pred, [0.05, 0.95], axis=0)
        rows.append(pd.DataFrame({"dataset": parts[0], "model": parts[1], "method": parts[2],
                                  "budget": out["budgets"][k], "mean": mu.mean(0) * top, "lower": lo * top,
                                  "upper": hi * top, "pred_lower": plo * top, "pred_upper": phi * top}))
    return pd.concat(rows, ignore_index=True)


def score_rules(out: dict, name: str, task, families: list[str], rules: list[str], outdir: Path) -> pd.DataFrame:
    rows = []
    truth = out["truth"]
    per_curve = {}
    for rule in rules:
        table = mixture_table(out, families, rule)
        if "model" not in task.keys(truth):
            table = table.drop(columns="model")
        table.to_csv(outdir / f"forecast_{name}_{rule}.csv", index=False)
        s = task.score(truth, table, label=f"{name}/{rule}")
        keys = task.keys(truth)
        fin = table.merge(truth[truth.final][[*keys, "budget", "true_mean"]].assign(
            **{c: truth[truth.final][c].astype(str) for c in keys}), on=[*keys, "budget"])
        per_curve[rule] = (fin["mean"] - fin.true_mean * pdata.scale_max(out["scale"])).abs().to_numpy() * (
            100 / pdata.scale_max(out["scale"]))
        rows.append({"set": name, "rule": rule, "mae_final": s["mae_final"],
                     "median_final": float(np.median(per_curve[rule])),
                     "cover_mean": s.get("cover_mean"), "cover_pred": s.get("cover_pred")})
    table = pd.DataFrame(rows)
    best_single = np.min(np.vstack([per_curve[f] for f in families]), axis=0)
    table["within_1.2x_best_family"] = [float(np.mean(per_curve[r] <= np.maximum(1.2 * best_single, best_single
                                                                                 + 0.1))) for r in rules]
    return table


def save(out: dict, path: Path) -> None:
    arrays = {}
    for kind in ("mean", "pred"):
        for (k, f), v in out[kind].items():
            arrays[f"{kind}|{k}|{f}"] = v
    for (k, f), v in out["lfo"].items():
        arrays[f"lfo|{k}|{f}"] = v
    for k, v in out["budgets"].items():
        arrays[f"budgets|{k}"] = v
    np.savez_compressed(path, **arrays)
    path.with_suffix(".json").write_text(json.dumps({"keys": out["keys"], "scale": out["scale"]}))
    pd.DataFrame(out["health"]).to_csv(path.with_suffix(".health.csv"), index=False)


def load(path: Path) -> dict:
    meta = json.loads(path.with_suffix(".json").read_text())
    out = {"keys": meta["keys"], "scale": meta["scale"], "mean": {}, "pred": {}, "lfo": {}, "budgets": {}}
    with np.load(path) as z:
        for name in z.files:
            kind, *rest = name.split("|")
            if kind == "budgets":
                out["budgets"][rest[0]] = z[name]
            else:
                out[kind][(rest[0], rest[1])] = z[name]
    out["health"] = pd.read_csv(path.with_suffix(".health.csv")).to_dict("records")
    return out


def main() -> None:
    a = parse()
    warnings.simplefilter("ignore")
    families = a.families.split(",")
    task = fb.load_task(a.tools_dir)
    outdir = Path(a.out)
    outdir.mkdir(parents=True, exist_ok=True)
    rules = [*families, "equal", "lfo-bma", "lfo-stack", "best-lfo"]
    tables = []
    for name in a.sets:
        path = outdir / f"draws_{name}.npz"
        if a.rescore:
            out = load(path)
            _, out["truth"], out["targets"] = fb.dev_pilots(a, name, task)
        else:
            t0 = time.perf_counter()
            out = fit_set(a, name, task, families)
            print(f"{name}: fitted in {time.perf_counter() - t0:.0f} s")
            save(out, path)
        health = pd.DataFrame(out["health"])
        print(health.groupby("family")[["healthy", "healthy_lfo", "seconds"]].mean().round(3).to_string())
        tables.append(score_rules(out, name, task, families, rules, outdir))
    result = pd.concat(tables, ignore_index=True)
    print(result.round(3).to_string(index=False))
    result.to_csv(outdir / "scores.csv", index=False)


if __name__ == "__main__":
    main()
