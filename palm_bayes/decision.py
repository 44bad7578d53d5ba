"""Should I keep labelling? Decisions from the PALM posterior, next to ALDA's point-fit rules.

For every curve (dataset, model, method) and a target accuracy τ:

* **feasibility** ``P(A_max ≥ τ)``;
* **labels to reach τ** ``B_abs(τ)`` per posterior draw (the inverse of the PALM curve, rounded up to whole
  episodes; a draw whose ceiling is below τ never reaches it and counts as ``inf``), its median and interval;
* **P(reach τ by B)** as a function of B: the probability that the accuracy *as measured* — the mean over the
  curve's runs, evaluated at the budgets the runs would be evaluated at (:func:`measurement_budgets`) — is at τ
  by budget B. Each posterior draw's mean curve gets the measurement noise of a mean over the runs (the fitted
  noise sd at each budget ÷ √runs) and the first budget where it is at τ counts (:meth:`CurveDraws.measured_reach`).
  That is the event a user sees and a backtest can check; without the noise a curve whose ceiling sits just
  below τ would "never" reach what its measured mean crosses half of the time (on the AL dev set the Brier score of
  P(reach) fell from 0.214 to 0.184 with it). ``p_reach_curve`` keeps the noise-free probability of the mean curve
  itself;
* **deployment window** ``W = B_abs(τ + Δτ) − B_abs(τ − Δτ)``: how many labels the curve needs to cross the band
  around τ (a flat curve near τ makes the budget to reach τ a gamble);
* **value of the next labels**: the gain in mean accuracy from the next k labels, and ``P(gain ≥ ε)``;
* **economics** (with a cost per label and a value per accuracy point): expected net value of labelling up to
  each budget, the budget that maximises it, and the expected net value of the next batch.

Within a (dataset, model), methods are compared twice: ALDA's point decision (feasible if A_max ≥ τ; cost-
competitive set C_η = methods whose B_abs is within η of the cheapest; pick the smallest W in it; if none is
feasible, the highest A_max) and a risk-aware Bayesian pick (the highest probability of reaching τ within the
budget; near-ties, within Monte Carlo error, go to the lower expected cost).

Everything here is pure computation on posterior draws and point fits; :func:`decide` runs it over a fitted
:class:`~palm_bayes.forecast.Forecaster`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .curve import budget_curve, budget_to_reach
from .data import CURVE_KEYS, scale_max
from .discrepancy import with_discrepancy
from .engine import curve_seed
from .errors import InputError

#: ALDA's safeguard: the upper end of the window stays this many accuracy points below A_max.
WINDOW_CEILING_MARGIN_POINTS = 0.5
#: Reach probabilities closer than two Monte Carlo standard errors of their difference count as a tie in the
#: Bayesian pick; the standard error of each uses the curve's smallest bulk ESS, and the tie margin is at least this.
P_REACH_TIE = 0.02
#: Verdict thresholds on P(reach τ within the budget): keep labelling above the first, stop below the second,
#: "uncertain" between (a coin flip is not advice).
KEEP_P, STOP_P = 0.75, 0.25
#: At most this many budgets on the grid of P(reach τ by B) and of the economics.
GRID_POINTS = 400
#: Label regret (a method's labels to reach τ ÷ the cheapest method's) is capped here; a method that does not
#: reach τ within the budget scores the cap.
REGRET_CAP = 2.0
#: Rules of the Bayesian pick: ``"reach"`` (the default) — the highest P(reach τ within the budget), near-ties to
#: the lower expected cost; ``"regret"`` — the lowest expected label regret over the joint draws. Chosen on each
#: AL dev set and scored on the other, "reach" won both ways with the default pooling (docs/benchmarks.md).
PICK_RULES = ("reach", "regret")

#: ``decision.csv`` starts with exactly these columns.
DECISION_COLUMNS = [*CURVE_KEYS, "a_max", "feasible", "b_abs", "deployment_window", "cost_competitive", "risky",
                    "alda_pick", "p_feasible", "b_abs_median", "b_abs_lower", "b_abs_upper", "p_reach", "p_cheapest",
                    "pick", "verdict"]
#: ... followed by these.
DETAIL_COLUMNS = ["target", "current_budget", "current_mean", "max_budget", "p_reach_se", "p_reach_curve",
                  "more_labels_median",
                  "expected_cost", "expected_regret",
                  "window_median", "window_lower", "window_upper", "next_labels", "gain_mean", "gain_lower",
                  "gain_upper", "p_gain", "best_budget", "best_budget_lower", "best_budget_upper", "net_value_best",
                  "net_value_next", "status", "note"]


@dataclass(frozen=True)
class DecisionSettings:
    """What to decide about. Accuracy quantities are on the input's score scale (fraction or percent).

    Parameters
    ----------
    target : float
        Target accuracy τ.
    delta_target : float, optional
        Half-width Δτ of the deployment window (default 5 accuracy points: 0.05 or 5).
    eta : float
        Cost tolerance of ALDA's cost-competitive set C_η (relative to the cheapest method).
    max_budget : float, optional
        Budget limit for ``p_reach`` and the economics (default: 4 × the largest observed budget of each curve).
    next_labels : float, optional
        Size k of the next batch (default: one episode, ``b`` labels).
    min_gain : float, optional
        Gain ε worth having from the next batch (default 0.5 accuracy points).
    cost_per_label, value_per_point : float, optional
        Cost of one label and value of one accuracy point (percentage point), in any one currency; both are
        needed for the economics.
    level : float
        Level of the equal-tailed intervals.
    pick_rule : str
        How the Bayesian pick compares methods, one of :data:`PICK_RULES`.
    """

    target: float
    delta_target: float | None = None
    eta: float = 0.05
    max_budget: float | None = None
    next_labels: float | None = None
    min_gain: float | None = None
    cost_per_label: float | None = None
    value_per_point: float | None = None
    level: float = 0.9
    pick_rule: str = "reach"

    @property
    def economics(self) -> bool:
        return self.cost_per_label is not None and self.value_per_point is not None

    def window_half_width(self, scale: str) -> float:
        """Δτ on the data's scale (default 5 accuracy points)."""
        return self.delta_target if self.delta_target is not None else 5 * point_size(scale)

    def gain_threshold(self, scale: str) -> float:
        """ε on the data's scale (default 0.5 accuracy points)."""
        return self.min_gain if self.min_gain is not None else 0.5 * point_size(scale)


def point_size(scale: str) -> float:
    """One accuracy point (percentage point) on a score scale: 0.01 for fractions, 1 for percent."""
    return scale_max(scale) / 100.0


def check_settings(s: DecisionSettings, scale: str) -> None:
    """Reject a target or option that does not fit the data's score scale, naming the scale."""
    top = scale_max(scale)
    example = "0.85" if scale == "fraction" else "85"
    if not np.isfinite(s.target) or not 0 < s.target <= top:
        raise InputError(f"--target {s.target:g}: the scores are {scale}s (0–{top:g}); give a target in (0, {top:g}], "
                         f"e.g. {example}")
    if scale == "percent" and s.target <= 1:
        raise InputError(f"--target {s.target:g}: the scores are percent (0–100) and this looks like a fraction; "
                         f"give e.g. {example}")
    for name in ("delta_target", "min_gain"):
        v = getattr(s, name)
        if v is not None and (not np.isfinite(v) or not 0 <= v < top):
            raise InputError(f"--{name.replace('_', '-')} {v:g}: expected a value in [0, {top:g}) on the {scale} "
                             "scale of the scores")
    for name in ("max_budget", "next_labels", "cost_per_label", "value_per_point"):
        v = getattr(s, name)
        if v is not None and (not np.isfinite(v) or v <= 0):
            raise InputError(f"--{name.replace('_', '-').replace('next-labels', 'next')} {v:g}: expected a "
                             "positive number")
    if s.eta < 0:
        raise InputError(f"--eta {s.eta:g}: expected 0 or more")
    if (s.cost_per_label is None) != (s.value_per_point is None):
        raise InputError("--cost-per-label and --value-per-point go together (the economics need both)")
    if not 0 < s.level < 1:
        raise InputError(f"--level {s.level:g}: expected a level strictly between 0 and 1, e.g. 0.9")
    if s.pick_rule not in PICK_RULES:
        raise InputError(f"--pick {s.pick_rule}: expected one of {', '.join(PICK_RULES)}")


# ---------------------------------------------------------------------------------------------- ALDA (point fit)


def alda_budget(target: float, A_max: float, delta: float, alpha: float, beta: float, b: float) -> float:
    """ALDA's B_abs(τ) from one point fit: the PALM inverse rounded up to whole episodes, 0 for τ ≤ 0.

    A target equal to A_max is read just below it (as ALDA does), so a feasible target has a finite budget.
    """
    if target <= 0:
        return 0.0
    safe = min(float(target), float(A_max) * (1 - 1e-10))
    return float(budget_to_reach(safe, A_max, delta, alpha, beta, b))


def alda_window(target: float, delta_target: float, A_max: float, delta: float, alpha: float, beta: float, b: float,
                margin: float) -> float:
    """ALDA's deployment window W = B_abs(τ_hi) − B_abs(τ_lo), τ_lo = max(0, τ − Δτ), τ_hi = min(τ + Δτ,
    A_max − margin); ``nan`` when τ_hi < τ_lo (no window below the ceiling)."""
    lo, hi = max(0.0, target - delta_target), min(target + delta_target, A_max - margin)
    if hi < lo:
        return float("nan")
    return max(0.0, alda_budget(hi, A_max, delta, alpha, beta, b) - alda_budget(lo, A_max, delta, alpha, beta, b))


def alda_select(rows: pd.DataFrame, eta: float) -> pd.DataFrame:
    """ALDA's selection within one group of methods.

    ``rows`` holds ``method, a_max, feasible, b_abs, deployment_window`` (NaN a_max = no point fit). Adds
    ``cost_competitive`` (feasible with B_abs ≤ (1 + η) · the cheapest), ``alda_pick`` (the smallest W in C_η, then
    the smaller B_abs, then the first name alphabetically; if no method is feasible, the highest A_max), ``risky``
    (a feasible method whose window is wider than the pick's: its B_abs is the less certain) and ``alda_reason``.
    """
    out = rows.sort_values("method").copy()
    out["cost_competitive"] = False
    out["alda_pick"] = False
    out["risky"] = False
    cand = out[out.feasible & np.isfinite(out.b_abs) & np.isfinite(out.deployment_window)]
    if len(cand):
        b_min = cand.b_abs.min()
        cc = (cand.b_abs - b_min) / max(b_min, 1e-8) <= eta + 1e-8
        out.loc[cc[cc].index, "cost_competitive"] = True
        chosen = cand[cc].sort_values(["deployment_window", "b_abs", "method"], kind="stable").index[0]
        out.loc[chosen, "alda_pick"] = True
        out["risky"] = out.index.isin(cand.index) & (out.deployment_window > out.loc[chosen, "deployment_window"])
        out["alda_reason"] = "smallest deployment window within the cost-competitive set"
    elif out.a_max.notna().any():
        out.loc[out.a_max.idxmax(), "alda_pick"] = True
        out["alda_reason"] = "no method feasible: highest estimated ceiling"
    else:
        out["alda_reason"] = "no successful point fit"
    return out


# ---------------------------------------------------------------------------------------------- Bayesian


@dataclass
class CurveDraws:
    """Posterior draws of one curve's PALM parameters (flat arrays, the input's score scale) and its data.

    ``noise_sd(budgets)`` gives the fitted observation-noise sd per draw and budget (score scale; ``None``: no
    noise), ``n_runs`` the number of runs the measured mean averages, ``observed_budgets`` the budgets seen so
    far (their spacing is continued by :func:`measurement_budgets`) and ``observed_means`` the mean over runs at
    each of them. With ``discrepancy`` κ > 0 each draw's mean curve strays from the PALM form beyond
    ``current_budget`` (the last observed budget) by a Brownian motion in log budget
    (:func:`palm_bayes.discrepancy.extrapolation_discrepancy`), with ``drift`` carrying it up
    (:func:`palm_bayes.discrepancy.drifted`), as in the forecast bands; ``seed`` fixes its paths and the
    measurement noise.
    """

    A_max: np.ndarray
    delta: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    b: float
    current_budget: float
    current_mean: float
    ess: float = np.inf
    discrepancy: float = 0.0
    drift: float = 0.0
    #: a known ceiling of A_max on the score scale (``--a-max-below``): the drift carries no draw above it
    ceiling: float | None = None
    scale_top: float = 1.0
    seed: int = 0
    noise_sd: Callable[[np.ndarray], np.ndarray] | None = None
    n_runs: int = 1
    observed_budgets: np.ndarray | None = None
    observed_means: np.ndarray | None = None
    #: the mean curve per draw (rows) and budget (columns) on the score scale, for draws of a mixture of curve
    #: families (:class:`palm_bayes.ensemble.CurveMixture`); None: the PALM form of (A_max, delta, alpha, beta)
    curve: Callable[[np.ndarray], np.ndarray] | None = None
    _paths: dict = field(default_factory=dict, init=False, repr=False)  # per horizon: (grid, mean-curve paths)

    def mean_curve(self, budgets: np.ndarray) -> np.ndarray:
        """A(B) per draw (rows) and budget (columns), with the extrapolation discrepancy beyond the data."""
        B = np.asarray(budgets, dtype=float)
        if self.curve is not None:
            mu = self.curve(B)
        else:
            mu = budget_curve(B[None, :], self.A_max[:, None], self.delta[:, None], self.alpha[:, None],
                              self.beta[:, None], b=self.b)
        if self.discrepancy <= 0 and self.drift == 0:
            return mu
        rng = np.random.default_rng(self.seed)  # the same paths for the same budgets, call after call
        return with_discrepancy(mu, B, self.current_budget, self.discrepancy, rng, top=self.scale_top,
                                drift=self.drift, ceiling=self.ceiling)

    def budget_to_reach(self, target: float, horizon: float | None = None) -> np.ndarray:
        """B_abs(τ) per draw, whole episodes, ``inf`` where the draw never reaches τ.

        Without the discrepancy this is the PALM inverse (for a mean curve given as ``curve``, which has none, the
        first whole-episode budget where its path reaches τ). With it, a draw whose PALM curve reaches τ by the last
        observed budget keeps that answer (the discrepancy starts there); the others follow their mean-curve
        path on a whole-episode grid up to ``horizon`` (default 4 × the last observed budget; at most
        :data:`GRID_POINTS` budgets) and count as ``inf`` if it never reaches τ there.
        """
        if target <= 0:
            return np.zeros_like(self.A_max)
        if self.curve is not None:
            # no closed-form inverse: up to the last observed budget, the first whole-episode budget at τ; beyond
            # it, the mean-curve path below (without the discrepancy when κ = 0)
            grid = budget_grid(self.b, max(self.current_budget, self.b), self.b)
            exact = first_passage(self.curve(grid) >= target, grid)
        else:
            exact = np.asarray(budget_to_reach(target, self.A_max, self.delta, self.alpha, self.beta, self.b))
            if self.discrepancy <= 0 and self.drift == 0:
                return exact
        top = float(horizon) if horizon is not None else 4 * self.current_budget
        if top not in self._paths:
            grid = budget_grid(self.current_budget, max(top, self.current_budget), self.b)
            self._paths[top] = (grid, self.mean_curve(grid))
        grid, path = self._paths[top]
        return np.where(exact <= self.current_budget, exact, first_passage(path >= target, grid))

    def measured_reach(self, target: float, max_budget: float) -> tuple[np.ndarray, np.ndarray]:
        """Per draw, the first budget at which the *measured* mean over the runs is at ``target`` (``inf`` if not
        by ``max_budget``), and the measurement budgets looked at.

        The measured mean at budget B is the draw's mean curve (with the extrapolation discrepancy) plus Normal
        noise of sd ``noise_sd(B) / √n_runs``, independent between budgets; the budgets are the observed
        spacing continued up to ``max_budget`` (:func:`measurement_budgets`). A curve whose observed mean was at τ
        already reached it at the first budget where it was (the current one if only ``current_mean`` is known).
        """
        seen = self.observed_budgets if self.observed_budgets is not None else np.array([self.current_budget])
        if self.observed_means is not None:
            seen_at, means = np.asarray(seen, dtype=float), np.asarray(self.observed_means, dtype=float)
        else:
            seen_at, means = np.array([self.current_budget]), np.array([self.current_mean])
        if (means >= target).any():
            first = float(seen_at[np.argmax(means >= target)])
            return np.full(len(self.A_max), first), np.array([first])
        grid = measurement_budgets(seen, max_budget, self.b)
        if not len(grid):
            return np.full(len(self.A_max), np.inf), grid
        mu = self.mean_curve(grid)
        if self.noise_sd is not None:
            rng = np.random.default_rng(self.seed + 7)  # the same noise for the same budgets, call after call
            mu = mu + self.noise_sd(grid) / np.sqrt(self.n_runs) * rng.standard_normal(mu.shape)
        return first_passage(mu >= target, grid), grid


def first_passage(hit: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per draw (row of ``hit``, draws × budgets of ``grid``), the first budget where ``hit`` holds; ``inf`` if
    none."""
    return np.where(hit.any(axis=1), grid[np.argmax(hit, axis=1)], np.inf)


def measurement_budgets(observed: np.ndarray, stop: float, b: float, n_max: int = GRID_POINTS) -> np.ndarray:
    """The budgets after the last observed one, up to ``stop``, at which the runs would be evaluated: the observed
    spacing continued. Regular steps (AL episodes of ``b`` labels: the last steps equal) continue in steps of the
    last step; irregular (e.g. LCDB's geometric anchors) continue geometrically with the ratio of the last two
    budgets. At most ``n_max`` budgets (evenly thinned), ``stop`` itself included when it is beyond the last.
    """
    seen = np.unique(np.asarray(observed, dtype=float))
    last = float(seen[-1])
    if stop <= last:
        return np.array([])
    steps = np.diff(seen)
    if len(steps) >= 2 and np.isclose(steps[-1], steps[-2], rtol=1e-6):
        grid = last + steps[-1] * np.arange(1, int(np.floor(round((stop - last) / steps[-1], 9))) + 1)
    elif len(seen) >= 2 and seen[-2] > 0:
        ratio = max(last / seen[-2], 1.0 + 1e-3)
        grid = last * ratio ** np.arange(1, int(np.floor(np.log(stop / last) / np.log(ratio) + 1e-9)) + 1)
        grid = np.ceil(np.round(grid, 6))
    else:
        grid = last + b * np.arange(1, int(np.floor(round((stop - last) / b, 9))) + 1)
    grid = np.unique(np.concatenate([grid[grid < stop], [stop]]))
    if len(grid) > n_max:
        grid = grid[np.unique(np.linspace(0, len(grid) - 1, n_max).round().astype(int))]
    return grid


def quantiles(x: np.ndarray, level: float) -> tuple[float, float, float]:
    """Median and equal-tailed interval of draws that may hold ``inf`` (order statistics, no interpolation)."""
    q = [0.5, (1 - level) / 2, 1 - (1 - level) / 2]
    med, lo, hi = np.quantile(np.asarray(x, dtype=float), q, method="inverted_cdf")
    return float(med), float(lo), float(hi)


def p_reach_by(b_abs: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """P(reach τ by B) for each budget B: the share of draws whose B_abs ≤ B (non-decreasing in B)."""
    s = np.sort(np.asarray(b_abs, dtype=float))
    return np.searchsorted(s, np.asarray(budgets, dtype=float), side="right") / len(s)


def budget_grid(start: float, stop: float, b: float, n_max: int = GRID_POINTS) -> np.ndarray:
    """Whole-episode budgets from ``start`` to ``stop`` (at most ``n_max``; evenly thinned beyond that)."""
    first = np.ceil(round(start / b, 9)) * b
    steps = int(np.floor(round((stop - first) / b, 9))) + 1 if stop >= first else 1
    grid = first + b * np.arange(max(steps, 1))
    if len(grid) > n_max:
        grid = grid[np.unique(np.linspace(0, len(grid) - 1, n_max).round().astype(int))]
    return np.unique(np.concatenate([[start], grid]))


def economics(mu: np.ndarray, grid: np.ndarray, cost_per_label: float, value_per_point: float, point: float,
              level: float) -> dict[str, float]:
    """Net value of labelling from ``grid[0]`` (now) up to each budget of ``grid``.

    ``net(B) = value_per_point · (A(B) − A(now)) / point − cost_per_label · (B − now)`` per draw. Returns the budget
    maximising the expected net value, an interval of the per-draw best budget, and the expected net value there.
    """
    gain_points = (mu - mu[:, :1]) / point
    net = value_per_point * gain_points - cost_per_label * (grid - grid[0])[None, :]
    expected = net.mean(0)
    best = int(np.argmax(expected))
    _, lo, hi = quantiles(grid[np.argmax(net, axis=1)], level)
    return {"best_budget": float(grid[best]), "best_budget_lower": lo, "best_budget_upper": hi,
            "net_value_best": float(expected[best])}


def curve_decision(d: CurveDraws, s: DecisionSettings, scale: str, max_budget: float) -> tuple[dict, np.ndarray,
                                                                                                 np.ndarray]:
    """Bayesian decision quantities of one curve. Returns (row, measured first-passage budgets per draw
    (:meth:`CurveDraws.measured_reach`), budgets of the reach grid)."""
    point = point_size(scale)
    dt, eps = s.window_half_width(scale), s.gain_threshold(scale)
    k = s.next_labels if s.next_labels is not None else d.b
    horizon = 2 * max(max_budget, d.current_budget)  # beyond the budget asked about, for B_abs's interval
    b_abs = d.budget_to_reach(s.target, horizon)
    reach, _ = d.measured_reach(s.target, max_budget)
    p_reach = float(np.mean(reach <= max_budget))
    with np.errstate(invalid="ignore"):
        w = d.budget_to_reach(s.target + dt, horizon) - d.budget_to_reach(max(0.0, s.target - dt), horizon)
    w = np.where(np.isnan(w), np.inf, w)  # inf − inf: the whole band is out of reach
    med, lo, hi = quantiles(b_abs, s.level)
    wmed, wlo, whi = quantiles(w, s.level)
    now = d.current_budget
    mu_gain = d.mean_curve(np.array([now, now + k]))
    gain = mu_gain[:, 1] - mu_gain[:, 0]
    _, glo, ghi = quantiles(gain, s.level)
    row = {"target": s.target, "current_budget": now, "current_mean": d.current_mean, "max_budget": max_budget,
           "p_feasible": float(np.mean(d.A_max >= s.target)), "b_abs_median": med, "b_abs_lower": lo,
           "b_abs_upper": hi, "p_reach": p_reach,
           "p_reach_se": float(np.sqrt(p_reach * (1 - p_reach) / min(d.ess, len(b_abs)))),
           "p_reach_curve": float(np.mean(b_abs <= max_budget)),
           "more_labels_median": max(0.0, med - now) if np.isfinite(med) else np.inf,
           "expected_cost": float(np.mean(np.minimum(reach, max_budget))),
           "window_median": wmed, "window_lower": wlo, "window_upper": whi, "next_labels": k,
           "gain_mean": float(gain.mean()), "gain_lower": glo, "gain_upper": ghi,
           "p_gain": float(np.mean(gain >= eps))}
    grid = budget_grid(min(now, max_budget), max(max_budget, now), d.b)
    if s.economics:
        row.update(economics(d.mean_curve(grid), grid, s.cost_per_label, s.value_per_point, point, s.level))
        # the next batch is the --next labels (k), whatever the grid's spacing
        row["net_value_next"] = float(s.value_per_point * gain.mean() / point - s.cost_per_label * k)
    else:
        row.update(dict.fromkeys(("best_budget", "best_budget_lower", "best_budget_upper", "net_value_best",
                                  "net_value_next"), np.nan))
    return row, reach, grid


def p_cheapest(b_abs: np.ndarray) -> np.ndarray:
    """P(each method needs the fewest labels to reach τ) from B_abs draws shaped (methods, draws).

    Draws are paired by index: for a pooled group (one joint posterior, :mod:`palm_bayes.pooling`) draw i of every
    method is one joint draw, so the correlations the shared ceiling induces are kept; for curves fitted alone the
    posteriors are independent, and pairing them by index is a joint draw as well. Methods tied at the minimum
    share the draw; a draw in which no method reaches τ counts for none.
    """
    m = b_abs.min(axis=0)
    winners = (b_abs == m[None, :]) & np.isfinite(m)[None, :]
    share = winners / np.maximum(winners.sum(axis=0), 1)[None, :]
    return share.mean(axis=1)


def p_first(b_abs: np.ndarray) -> np.ndarray:
    """P(method i reaches τ with fewer labels than method j), a (methods × methods) matrix from B_abs draws shaped
    (methods, draws) paired by index as in :func:`p_cheapest`; a draw in which i never reaches τ counts against
    i, and ties count for neither."""
    return (b_abs[:, None, :] < b_abs[None, :, :]).mean(axis=2)


def expected_regret(reach: np.ndarray, cap: float = REGRET_CAP) -> np.ndarray:
    """Posterior expected label regret of each method from first-passage budgets shaped (methods, draws), paired
    by index as in :func:`p_cheapest`: per draw, a method's budget ÷ the cheapest method's, capped at ``cap``
    (a method that does not reach τ scores the cap). Draws in which no method reaches τ carry no regret and are
    left out; ``nan`` for every method if there is no other draw."""
    best = reach.min(axis=0)
    some = np.isfinite(best)
    if not some.any():
        return np.full(reach.shape[0], np.nan)
    r = reach[:, some] / np.maximum(best[some], 1e-12)[None, :]
    return np.where(np.isfinite(r), np.minimum(r, cap), cap).mean(axis=1)


def bayes_select(rows: pd.DataFrame, tie: float = P_REACH_TIE, rule: str = "reach") -> pd.DataFrame:
    """The Bayesian pick within one group.

    ``rule="regret"``: the lowest ``expected_regret`` (:func:`expected_regret`), ties to the higher ``p_reach``,
    then the name. ``rule="reach"``: the highest ``p_reach``; methods whose ``p_reach`` is within Monte Carlo
    error of the best (two standard errors of the difference, from ``p_reach_se`` when present, and at least
    ``tie``) are tied, and the tie goes to the lower ``expected_cost``, then the name. Under either rule, if no
    method can reach τ within the budget, the highest ``p_feasible``."""
    out = rows.sort_values("method").copy()
    out["pick"] = False
    ok = out[out.p_reach.notna()]
    if not len(ok):
        out["pick_reason"] = "no posterior"
        return out
    lead = ok.p_reach.idxmax()
    best = ok.p_reach[lead]
    if best > 0 and rule == "regret" and "expected_regret" in ok and ok.expected_regret.notna().any():
        ranked = ok.assign(_neg_p=-ok.p_reach).sort_values(["expected_regret", "_neg_p", "method"], kind="stable")
        chosen = ranked.index[0]
        out["pick_reason"] = ("lowest expected label regret (labels to reach the target relative to the cheapest "
                              "method, over the joint draws)")
    elif best > 0:
        se = ok.p_reach_se if "p_reach_se" in ok else pd.Series(0.0, index=ok.index)
        margin = np.maximum(tie, 2 * np.sqrt(se**2 + se[lead] ** 2))
        tied = ok[ok.p_reach >= best - margin]
        chosen = tied.sort_values(["expected_cost", "method"], kind="stable").index[0]
        out["pick_reason"] = "highest probability of reaching the target within the budget"
    else:
        chosen = ok.sort_values(["p_feasible", "method"], ascending=[False, True], kind="stable").index[0]
        out["pick_reason"] = "no method reaches the target within the budget: highest P(A_max >= target)"
    out.loc[chosen, "pick"] = True
    return out


def verdict(r: pd.Series | dict) -> str:
    """One plain-language verdict: ``already reached`` (the observed mean is at τ), ``keep labelling``
    (P(reach τ within the budget) ≥ :data:`KEEP_P`), ``stop`` (< :data:`STOP_P`) or ``uncertain``."""
    if r["current_mean"] >= r["target"]:
        return "already reached"
    if not np.isfinite(r["p_reach"]):
        return "no posterior"
    if r["p_reach"] >= KEEP_P:
        return "keep labelling"
    return "stop" if r["p_reach"] < STOP_P else "uncertain"


def _num(x: float, scale: str | None = None) -> str:
    if not np.isfinite(x):
        return "never" if x > 0 else "n/a"
    if scale is not None:
        return f"{x:.2f}" if scale == "fraction" else f"{x:.1f}"
    return f"{x:,.0f}"


def verdict_line(r: pd.Series | dict, scale: str, level: float) -> str:
    """The terminal line of one curve, e.g. ``typiclust: keep labelling — P(reach 0.85) = 0.93, median 1,400 more
    labels (90%: 900–2,600)``."""
    t = _num(r["target"], scale)
    head = f"{r['method']}: {r['verdict']}"
    if r["verdict"] == "already reached":
        return f"{head} — observed mean {_num(r['current_mean'], scale)} ≥ {t} at {_num(r['current_budget'])} labels"
    if r["verdict"] == "no posterior":
        return f"{head} — sampling failed ({r.get('note', '')})"
    more = [max(0.0, v - r["current_budget"]) if np.isfinite(v) else np.inf
            for v in (r["b_abs_median"], r["b_abs_lower"], r["b_abs_upper"])]
    line = (f"{head} — P(reach {t} within {_num(r['max_budget'])} labels) = {r['p_reach']:.2f}, "
            f"P(A_max ≥ {t}) = {r['p_feasible']:.2f}")
    if r["verdict"] == "keep labelling":
        line = (f"{head} — P(reach {t}) = {r['p_reach']:.2f}, median {_num(more[0])} more labels "
                f"({level:.0%}: {_num(more[1])}–{_num(more[2])})")
    if np.isfinite(r.get("best_budget", np.nan)):
        if r["best_budget"] > r["current_budget"]:
            line += (f"; economics: label up to {_num(r['best_budget'])} "
                     f"(expected net value {r['net_value_best']:+,.2f}, next batch {r['net_value_next']:+,.2f})")
        else:
            line += f"; economics: more labels do not pay (next batch {r['net_value_next']:+,.2f} expected)"
    return line


@dataclass
class Decision:
    """Result of :func:`decide`: the per-curve table, P(reach τ by B) per curve, and per-group picks."""

    table: pd.DataFrame
    reach: dict[tuple, tuple[np.ndarray, np.ndarray]]
    groups: list[dict]
    settings: DecisionSettings
    scale: str
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready summary (settings, groups, rows, and the P(reach) curves)."""
        rows = self.table.replace({np.inf: "inf", -np.inf: "-inf"}).astype(object)
        rows = rows.where(pd.notna(rows), None).to_dict(orient="records")
        return {"settings": asdict(self.settings), "scale": self.scale, "groups": self.groups, "curves": rows,
                "p_reach_by_budget": [{"dataset": k[0], "model": k[1], "method": k[2], "budget": g.tolist(),
                                       "p_reach": p.tolist()} for k, (g, p) in self.reach.items()]}


def decide(fc, settings: DecisionSettings, keys: list[tuple] | None = None) -> Decision:
    """Decisions for every curve of a fitted :class:`~palm_bayes.forecast.Forecaster`.

    Parameters
    ----------
    fc : Forecaster
        Fitted (or loaded) forecaster: its posteriors, point fits and observed data.
    settings : DecisionSettings
        Target and options.
    keys : list of (dataset, model, method), optional
        Only these curves (default: all).

    Returns
    -------
    Decision
        ``table`` has :data:`DECISION_COLUMNS` then :data:`DETAIL_COLUMNS` (one row per curve).
    """
    check_settings(settings, fc.scale)
    s, scale = settings, fc.scale
    point = point_size(scale)
    dt = s.window_half_width(scale)
    keys = [k for k in fc.keys() if keys is None or k in keys]
    rows, passage_draws, reach = [], {}, {}
    top = scale_max(scale)
    for key in keys:
        seen = fc.observed(key)
        means = seen.groupby("budget")["score"].mean().sort_index()
        now, current = float(means.index[-1]), float(means.iloc[-1])
        max_budget = s.max_budget if s.max_budget is not None else 4 * now
        r = dict(zip(CURVE_KEYS, key, strict=True))
        fit = fc.point_fits.get(key)
        if fit is not None and np.isfinite(fit.A_max):
            feasible = bool(fit.A_max >= s.target)
            p = (fit.A_max, fit.delta, fit.alpha, fit.beta)
            r.update(a_max=fit.A_max, feasible=feasible,
                     b_abs=alda_budget(s.target, *p, fit.b) if feasible else np.nan,
                     deployment_window=alda_window(s.target, dt, *p, fit.b, WINDOW_CEILING_MARGIN_POINTS * point)
                     if feasible else np.nan)
        else:
            r.update(a_max=np.nan, feasible=False, b_abs=np.nan, deployment_window=np.nan)
        post = fc.posteriors.get(key)
        if post is None:
            r.update(target=s.target, current_budget=now, current_mean=current, max_budget=max_budget,
                     p_reach=np.nan, status="failed", note=fc.failures.get(key, ""))
        else:
            mix = fc.mixture(key)
            if mix is None:
                flat = {n: post.draws[n].reshape(-1) for n in ("A_max", "delta", "alpha", "beta")}
                curve, source = None, post
            else:  # a mixture of curve families: its mean curve, no PALM parameters per draw
                a_max = mix.flat("A_max")
                flat = {"A_max": a_max, **dict.fromkeys(("delta", "alpha", "beta"), np.full_like(a_max, np.nan))}
                curve, source = (lambda B, mix=mix: mix.mean_curve(B) * top), mix
            draws = CurveDraws(flat["A_max"] * top, flat["delta"], flat["alpha"], flat["beta"],
                               b=post.b, current_budget=now, current_mean=current,
                               ess=float(post.diagnostics.ess_bulk.min()), discrepancy=fc.discrepancy,
                               drift=fc.drift, ceiling=fc.a_max_below, scale_top=top,
                               seed=curve_seed(fc.settings.seed, key) + 5,
                               noise_sd=lambda B, source=source: source.noise_sd(B) * top, curve=curve,
                               n_runs=int(seen["run"].nunique()), observed_budgets=means.index.to_numpy(),
                               observed_means=means.to_numpy())
            row, passage, grid = curve_decision(draws, s, scale, max_budget)
            warns = fc.curve_warnings(key)
            r.update(row, status="warning" if warns else "ok", note="; ".join(warns))
            passage_draws[key] = passage  # first passage of the measured mean, per draw
            reach[key] = (grid, p_reach_by(passage, grid))
        rows.append(r)
    table = pd.DataFrame(rows)
    for c in DECISION_COLUMNS + DETAIL_COLUMNS:
        if c not in table.columns:
            table[c] = np.nan
    table["verdict"] = [verdict(r) for r in table.to_dict("records")]
    frames, groups = [], []
    for (dataset, model), g in table.groupby(["dataset", "model"], sort=False):
        g = alda_select(g, s.eta)
        have = [k for k in zip(g.dataset, g.model, g.method, strict=True) if k in passage_draws]
        share, regret = {}, {}
        if have:
            n = min(len(passage_draws[k]) for k in have)  # same draw count unless curves came from different fits
            stacked = np.stack([passage_draws[k][:n] for k in have])
            share = dict(zip([k[2] for k in have], p_cheapest(stacked), strict=True))
            regret = dict(zip([k[2] for k in have], expected_regret(stacked), strict=True))
            first = p_first(stacked)
        g["p_cheapest"] = g.method.map(share).astype(float)
        g["expected_regret"] = g.method.map(regret).astype(float)
        g = bayes_select(g, rule=s.pick_rule)
        summary = _group_summary(dataset, model, g)
        summary["draws"] = "joint" if (dataset, model) in fc.groups else "independent"
        summary["p_first"] = ({a[2]: {b[2]: float(first[i, j]) for j, b in enumerate(have) if j != i}
                               for i, a in enumerate(have)} if have else {})
        groups.append(summary)
        frames.append(g)
    table = pd.concat(frames, ignore_index=True)
    table = table[DECISION_COLUMNS + DETAIL_COLUMNS]
    lines = [verdict_line(r, scale, s.level) for r in table.to_dict("records")]
    return Decision(table=table, reach=reach, groups=groups, settings=s, scale=scale, lines=lines)


def _group_summary(dataset: str, model: str, g: pd.DataFrame) -> dict:
    """Both picks of one group, and in words why they differ when they do."""
    pick = g.loc[g.pick, "method"].tolist()
    alda = g.loc[g.alda_pick, "method"].tolist()
    pick, alda = (pick[0] if pick else ""), (alda[0] if alda else "")
    out = {"dataset": dataset, "model": model, "pick": pick, "pick_reason": g.pick_reason.iloc[0],
           "alda_pick": alda, "alda_reason": g.alda_reason.iloc[0], "agree": pick == alda, "why": ""}
    if pick and alda and pick != alda:
        p = g.set_index("method")
        pr = {m: p.at[m, "p_reach"] for m in (pick, alda)}
        cost = {m: _num(p.at[m, "expected_cost"]) for m in (pick, alda)}
        alda_side = (f"ALDA picks {alda} ({g.alda_reason.iloc[0]}; its point fit gives B_abs "
                     f"{_num(p.at[alda, 'b_abs'])}, W {_num(p.at[alda, 'deployment_window'])})")
        if pr[alda] >= pr[pick] - max(P_REACH_TIE, 2 * np.hypot(p.at[pick, "p_reach_se"], p.at[alda, "p_reach_se"])):
            out["why"] = (f"{alda_side}; the posterior rates both alike (P(reach) {pr[alda]:.2f} vs {pr[pick]:.2f}) "
                          f"and breaks the tie by expected cost ({cost[pick]} vs {cost[alda]} labels)")
        else:
            out["why"] = (f"{alda_side}; the posterior gives {alda} P(reach) {pr[alda]:.2f} against {pr[pick]:.2f} "
                          f"for {pick}: the point fit does not see how unsure each curve's extrapolation is")
    return out
