"""Sampling health: R-hat, effective sample sizes and divergences, and the plain-language warnings they give."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _compat

#: Convergence thresholds that trigger a warning.
RHAT_MAX, ESS_MIN = 1.01, 400


def diagnostics_table(draws: dict[str, np.ndarray]) -> pd.DataFrame:
    """R-hat and bulk/tail ESS per parameter from draws shaped (chain, draw)."""
    rows = []
    for name, d in draws.items():
        rows.append({"param": name, "r_hat": _compat.rhat(d), "ess_bulk": _compat.ess(d, "bulk"),
                     "ess_tail": _compat.ess(d, "tail")})
    return pd.DataFrame(rows)


def health_warnings(diag: pd.DataFrame, n_divergences: int) -> list[str]:
    """Plain-language warnings when R-hat > 1.01, ESS_bulk < 400 or any divergence occurred."""
    out = []
    if n_divergences:
        out.append(f"{n_divergences} divergent transition(s): the posterior may be biased; "
                   "raise --tune or inspect the curve")
    bad = diag[diag.r_hat > RHAT_MAX]
    if len(bad):
        out.append("R-hat > 1.01 for " + ", ".join(f"{r.param} ({r.r_hat:.3f})" for r in bad.itertuples())
                   + ": chains disagree; raise --tune/--draws")
    low = diag[diag.ess_bulk < ESS_MIN]
    if len(low):
        out.append("ESS_bulk < 400 for " + ", ".join(f"{r.param} ({r.ess_bulk:.0f})" for r in low.itertuples())
                   + ": intervals are imprecise; raise --draws")
    return out


def sampler_run_ids(diag: pd.DataFrame) -> pd.Series:
    """Which sampler run fitted each curve of a per-curve diagnostics table (``dataset, model, method, pooling``):
    the methods of a pooled dataset/model share one run (``"dataset/model (pooled)"``), any other curve has its
    own (``"dataset/model/method"``)."""
    pooled = diag["pooling"].fillna("none").ne("none") if "pooling" in diag else pd.Series(False, index=diag.index)
    group = diag["dataset"].astype(str) + "/" + diag["model"].astype(str)
    return (group + " (pooled)").where(pooled, group + "/" + diag["method"].astype(str)).rename("sampler_run")


def sampler_runs(diag: pd.DataFrame) -> pd.DataFrame:
    """The per-curve diagnostics table with one row per sampler run.

    A pooled group's methods share one run: its divergences are the group's, so the group becomes one row that
    names its methods (``methods``), counts its divergences once and says in one message how the run missed the
    thresholds (the worst R-hat and smallest ESS over its curves; ``diagnostics.csv`` keeps them per curve).
    Columns: ``sampler_run, label, dataset, model,
    methods, curves, status, divergences, message``, in table order; ``label`` names the run for people
    (``"D/M (one joint fit of a, b)"`` or ``"D/M/a"``).
    """
    d = diag.assign(sampler_run=sampler_run_ids(diag))
    order = {"failed": 2, "warning": 1, "ok": 0}
    rows = []
    for run, g in d.groupby("sampler_run", sort=False):
        message = _group_message(g) if len(g) > 1 else str(g["message"].fillna("").iloc[0])
        methods = ", ".join(map(str, g["method"]))
        label = f"{run.removesuffix(' (pooled)')} (one joint fit of {methods})" if run.endswith("(pooled)") else run
        rows.append({"sampler_run": run, "label": label, "dataset": g["dataset"].iloc[0],
                     "model": g["model"].iloc[0], "methods": methods, "curves": len(g),
                     "status": max(g["status"], key=lambda s: order.get(s, 0)),
                     "divergences": g["divergences"].iloc[0], "message": message})
    return pd.DataFrame(rows, columns=["sampler_run", "label", "dataset", "model", "methods", "curves", "status",
                                       "divergences", "message"])


def _group_message(g: pd.DataFrame) -> str:
    """One message for the curves of one joint sampler run, from their worst numbers."""
    if g["status"].eq("failed").any():
        return "; ".join(dict.fromkeys(str(m) for m in g["message"].fillna("") if m))
    parts = health_warnings(pd.DataFrame({"param": ["the group's parameters"], "r_hat": [g["max_r_hat"].max()],
                                          "ess_bulk": [g["min_ess_bulk"].min()]}), int(g["divergences"].iloc[0]))
    return "; ".join(parts)
