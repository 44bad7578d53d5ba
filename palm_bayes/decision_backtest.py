"""Backtesting decisions: would the advice from the first budgets have paid off on the runs that followed?

For every cutoff of a backtest (the fits of :func:`palm_bayes.backtest.fit_cutoffs`), every (dataset, model)
group and every target τ, :func:`decision_backtest` decides as ``palm-bayes decide`` would from the pilots
alone (:func:`palm_bayes.decision.decide`, with the budget limit set to the group's final budget) and sets the
decision beside what the finished runs did:

* a method's **true cost** is the first budget at which its mean curve over runs reaches τ (``inf`` if never,
  :func:`true_costs`); it **reached** τ if that is within the group's final budget;
* **label regret** of a pick = its true cost ÷ the cheapest method's, capped at :data:`REGRET_CAP` (a pick that
  never reaches τ scores the cap; :func:`label_regret`), for the Bayesian pick and for ALDA's;
* the **Brier score** of P(reach τ by the final budget) against ``reached``, beside ALDA's implicit 0/1 forecast
  (feasible with B_abs within the budget) and the base rate known in hindsight (the share of methods that reached
  τ, the same for every method);
* a **reliability table** (:func:`reliability_table`): P(reach) binned against the share that reached τ.

Targets are absolute (``targets``: the same τ for every group) or relative (``target_fractions``: τ = f × the best
final mean accuracy over the group's methods, so f = 1 asks for the best method's final accuracy). A relative
target is set from the finished runs, as a scenario; the decision itself sees only the pilots, τ and the budget
plan (the group's final budget), so scores after the cutoff cannot change it (the test suite checks this).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .backtest import CutoffFit
from .data import CURVE_KEYS, mean_curve
from .decision import REGRET_CAP, DecisionSettings, check_settings, decide
from .errors import InputError

#: Equal-width bins of P(reach) in the reliability table.
RELIABILITY_BINS = 10
#: Columns of :func:`decision_backtest`'s table (one row per cutoff, target, curve).
DECISION_BACKTEST_COLUMNS = ["cutoff", "target_label", *CURVE_KEYS, "target", "final_budget", "p_reach", "p_feasible",
                             "p_cheapest", "expected_cost", "expected_regret", "pick", "alda_pick", "alda_reach",
                             "verdict", "true_cost", "reached", "status"]
#: Columns of :func:`decision_scores`.
DECISION_SCORE_COLUMNS = ["cutoff", "target_label", "groups", "scored_groups", "curves", "regret_bayes",
                          "regret_alda", "agree", "brier_bayes", "brier_alda", "brier_base_rate", "share_reached",
                          "mean_p_reach", "brier_cheapest", "brier_cheapest_uniform"]
#: Columns of :func:`reliability_table`.
RELIABILITY_COLUMNS = ["cutoff", "bin", "p_lo", "p_hi", "n", "mean_p_reach", "share_reached"]


def true_costs(group: pd.DataFrame, target: float) -> dict[str, float]:
    """First budget at which each method's mean over runs reaches ``target`` (``inf`` if it never does).

    ``group`` holds the finished runs of one (dataset, model): columns ``method, run, budget, score``.
    """
    out = {}
    for method, g in group.groupby("method", sort=True):
        m = mean_curve(g)
        hit = m.loc[m["mean"] >= target - 1e-12, "budget"]
        out[str(method)] = float(hit.min()) if len(hit) else np.inf
    return out


def label_regret(pick: str, costs: dict[str, float], cap: float = REGRET_CAP) -> float:
    """True cost of ``pick`` over the cheapest method's, capped at ``cap``; ``nan`` when no method reached τ (there
    is nothing to regret) and ``cap`` for a pick that never reached it (or no pick)."""
    best = min(costs.values(), default=np.inf)
    if not np.isfinite(best):
        return np.nan
    cost = costs.get(pick, np.inf) if pick else np.inf
    return float(min(cost / max(best, 1e-12), cap)) if np.isfinite(cost) else float(cap)


def final_means(group: pd.DataFrame) -> pd.Series:
    """Each method's mean score over runs at its largest budget."""
    last = group[group["budget"] == group.groupby("method")["budget"].transform("max")]
    return last.groupby("method")["score"].mean()


def check_targets(targets: Sequence[float] | None, target_fractions: Sequence[float] | None, scale: str) -> None:
    """One line for a bad target: absolute ones must fit the score scale, fractions lie in (0, 1]."""
    if not targets and not target_fractions:
        raise InputError("the decision backtest needs --target TAU or --target-fraction F")
    for t in targets or ():
        check_settings(DecisionSettings(target=float(t)), scale)
    for f in target_fractions or ():
        if not np.isfinite(f) or not 0 < f <= 1:
            raise InputError(f"--target-fraction {f:g}: expected a share of the best final mean accuracy in (0, 1], "
                             "e.g. 0.99")


def _targets(group: pd.DataFrame, targets, target_fractions) -> list[tuple[str, float]]:
    out = [(f"target={t:g}", float(t)) for t in dict.fromkeys(targets or ())]
    best = float(final_means(group).max())
    out += [(f"fraction={f:g}", float(f) * best) for f in dict.fromkeys(target_fractions or ())]
    return out


def decision_backtest(df: pd.DataFrame, fits: Sequence[CutoffFit], targets: Sequence[float] | None = None,
                      target_fractions: Sequence[float] | None = None, eta: float = 0.05,
                      level: float = 0.9, pick_rule: str = "reach") -> pd.DataFrame:
    """Decide from every cutoff's pilots and set each decision beside what the finished runs did.

    Parameters
    ----------
    df : DataFrame
        The tidy table of the finished runs (:mod:`palm_bayes.data`).
    fits : list of CutoffFit
        :func:`palm_bayes.backtest.fit_cutoffs` on ``df``.
    targets : list of float, optional
        Absolute targets τ on the scores' scale.
    target_fractions : list of float, optional
        Relative targets: τ = f × the best final mean accuracy over the group's methods.
    eta, level, pick_rule
        ALDA's cost tolerance, the intervals' level and the Bayesian pick's rule, as in
        :class:`~palm_bayes.decision.DecisionSettings`.

    Returns
    -------
    DataFrame
        Columns :data:`DECISION_BACKTEST_COLUMNS`, one row per cutoff × target × curve: the pilot decision
        (``p_reach`` = P(reach τ by ``final_budget``), ``p_feasible``, ``p_cheapest``, ``expected_cost``, the
        Bayesian ``pick`` and ``alda_pick`` of the group, ``alda_reach`` = ALDA's 0/1 forecast of reaching τ by
        the final budget) and the outcome (``true_cost``, ``reached`` as 0/1). ``status`` is the fit's.
    """
    scale = df.attrs.get("scale", "fraction")
    check_targets(targets, target_fractions, scale)
    rows = []
    for fit in fits:
        for (dataset, model), group in df.groupby(["dataset", "model"], sort=False):
            keys = [(dataset, model, m) for m in sorted(group["method"].unique())]
            final_budget = float(group["budget"].max())
            for label, target in _targets(group, targets, target_fractions):
                costs = true_costs(group, target)
                settings = DecisionSettings(target=target, max_budget=final_budget, eta=eta, level=level,
                                            pick_rule=pick_rule)
                t = decide(fit.forecaster, settings, keys=keys).table.set_index("method")
                for m in t.index:
                    r = t.loc[m]
                    rows.append({"cutoff": fit.label, "target_label": label, "dataset": dataset, "model": model,
                                 "method": m, "target": target, "final_budget": final_budget,
                                 "p_reach": r.p_reach, "p_feasible": r.p_feasible, "p_cheapest": r.p_cheapest,
                                 "expected_cost": r.expected_cost, "expected_regret": r.expected_regret,
                                 "pick": bool(r.pick),
                                 "alda_pick": bool(r.alda_pick),
                                 "alda_reach": float(bool(r.feasible) and r.b_abs <= final_budget),
                                 "verdict": r.verdict,
                                 "true_cost": costs[m], "reached": float(costs[m] <= final_budget),
                                 "status": r.status})
    out = pd.DataFrame(rows, columns=DECISION_BACKTEST_COLUMNS)
    out.attrs.update(scale=scale, level=float(level))
    return out


def _picked(g: pd.DataFrame, col: str) -> str:
    chosen = g.loc[g[col].astype(bool), "method"]
    return str(chosen.iloc[0]) if len(chosen) else ""


def group_regrets(table: pd.DataFrame) -> pd.DataFrame:
    """Per cutoff, target and group: the hindsight-cheapest method, both picks and their label regrets."""
    rows = []
    for (cutoff, label, dataset, model), g in table.groupby(["cutoff", "target_label", "dataset", "model"],
                                                            sort=False):
        costs = dict(zip(g["method"], g["true_cost"].astype(float), strict=True))
        pick, alda = _picked(g, "pick"), _picked(g, "alda_pick")
        best = min(costs, key=costs.get) if np.isfinite(min(costs.values())) else ""
        rows.append({"cutoff": cutoff, "target_label": label, "dataset": dataset, "model": model,
                     "target": float(g["target"].iloc[0]), "hindsight_best": best, "pick": pick, "alda_pick": alda,
                     "regret_bayes": label_regret(pick, costs), "regret_alda": label_regret(alda, costs)})
    return pd.DataFrame(rows)


def cheapest_brier(g: pd.DataFrame) -> tuple[float, float]:
    """Multi-category Brier score of one group's ``p_cheapest`` against the hindsight-cheapest method (methods tied
    at the lowest true cost share the outcome), and that of the uniform forecast 1 / methods; ``nan`` when no
    method reached τ or a fit failed."""
    cost = g["true_cost"].to_numpy(float)
    p = g["p_cheapest"].to_numpy(float)
    if not np.isfinite(cost.min()) or np.isnan(p).any():
        return np.nan, np.nan
    won = (cost == cost.min()) / np.sum(cost == cost.min())
    return float(np.sum((p - won) ** 2)), float(np.sum((1 / len(g) - won) ** 2))


def decision_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per cutoff and target: mean label regret of both picks (over groups where some method reached τ), how often
    they agree, and the Brier scores of P(reach), of ALDA's 0/1 forecast and of the hindsight base rate.

    Returns
    -------
    DataFrame
        Columns :data:`DECISION_SCORE_COLUMNS`; curves whose fit failed (no ``p_reach``) are left out of the
        Brier scores and counted in neither ``curves`` nor ``mean_p_reach``. ``brier_cheapest`` is the mean over
        groups of :func:`cheapest_brier` (P(cheapest) against the hindsight-cheapest method), beside
        ``brier_cheapest_uniform``, the same for the forecast 1 / methods.
    """
    regrets = group_regrets(table)
    rows = []
    for (cutoff, label), g in table.groupby(["cutoff", "target_label"], sort=False):
        cheap = np.array([cheapest_brier(grp) for _, grp in g.groupby(["dataset", "model"], sort=False)])
        r = regrets[(regrets.cutoff == cutoff) & (regrets.target_label == label)]
        scored = r[r.regret_bayes.notna()]
        ok = g[g["p_reach"].notna()]
        y, p = ok["reached"].to_numpy(float), ok["p_reach"].to_numpy(float)
        rows.append({"cutoff": cutoff, "target_label": label, "groups": len(r), "scored_groups": len(scored),
                     "curves": len(ok), "regret_bayes": scored.regret_bayes.mean(),
                     "regret_alda": scored.regret_alda.mean(), "agree": float((r.pick == r.alda_pick).mean()),
                     "brier_bayes": float(np.mean((p - y) ** 2)) if len(ok) else np.nan,
                     "brier_alda": float(np.mean((ok["alda_reach"].to_numpy(float) - y) ** 2)) if len(ok) else np.nan,
                     "brier_base_rate": float(np.mean((y.mean() - y) ** 2)) if len(ok) else np.nan,
                     "share_reached": float(y.mean()) if len(ok) else np.nan,
                     "mean_p_reach": float(p.mean()) if len(ok) else np.nan,
                     "brier_cheapest": _nanmean(cheap[:, 0]), "brier_cheapest_uniform": _nanmean(cheap[:, 1])})
    return pd.DataFrame(rows, columns=DECISION_SCORE_COLUMNS)


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else np.nan


def reliability_table(table: pd.DataFrame, bins: int = RELIABILITY_BINS) -> pd.DataFrame:
    """P(reach) binned into ``bins`` equal-width bins of [0, 1] (the last one closed) against the share of those
    curves that reached τ, per cutoff over all targets; empty bins are left out."""
    edges = np.round(np.linspace(0.0, 1.0, bins + 1), 10)
    rows = []
    for cutoff, g in table[table["p_reach"].notna()].groupby("cutoff", sort=False):
        p = g["p_reach"].to_numpy(float)
        idx = np.clip(np.floor(p * bins + 1e-9).astype(int), 0, bins - 1)  # 0.3 is in [0.3, 0.4) despite rounding
        for i in range(bins):
            sel = idx == i
            if sel.any():
                rows.append({"cutoff": cutoff, "bin": f"[{edges[i]:.1f}, {edges[i + 1]:.1f}"
                             + ("]" if i == bins - 1 else ")"), "p_lo": edges[i], "p_hi": edges[i + 1],
                             "n": int(sel.sum()), "mean_p_reach": float(p[sel].mean()),
                             "share_reached": float(g["reached"].to_numpy(float)[sel].mean())})
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


def verdict_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per cutoff and verdict (:func:`palm_bayes.decision.verdict`): how many curves got it and the share of them
    that reached the target by the final budget (a good "keep labelling" reaches, a good "stop" does not)."""
    out = (table.groupby(["cutoff", "verdict"], sort=False)
           .agg(n=("reached", "size"), share_reached=("reached", "mean"), mean_p_reach=("p_reach", "mean"))
           .reset_index())
    return out


def describe_decisions(scores: pd.DataFrame) -> list[str]:
    """One plain sentence per cutoff and target from :func:`decision_scores`."""
    lines = []
    for r in scores.itertuples():
        head = f"{r.cutoff}, {r.target_label}: "
        if not r.curves:
            lines.append(head + "every fit failed; nothing to score")
            continue
        regret = (f"label regret of the pick {r.regret_bayes:.2f} (ALDA's {r.regret_alda:.2f}; 1 = the cheapest "
                  f"method in hindsight) over {r.scored_groups} group(s)" if r.scored_groups
                  else "no method reached the target in any group (no regret to score)")
        lines.append(head + regret + f"; Brier score of P(reach) {r.brier_bayes:.3f} (ALDA's 0/1 "
                     f"{r.brier_alda:.3f}, base rate in hindsight {r.brier_base_rate:.3f}); "
                     f"{r.share_reached:.0%} of {r.curves} curves reached it, mean P(reach) {r.mean_p_reach:.2f}")
    return lines
