"""Backtesting forecasts against what happened: cut every curve after its first K budgets, fit, forecast the rest.

In the spirit of Prophet's ``cross_validation`` and ``performance_metrics``:

* :func:`cutoff_budgets` turns ``--cutoffs K ...`` (a pilot = a curve's first K distinct budgets) or
  ``--cutoff-fractions F ...`` (K = F × the curve's number of distinct budgets, rounded half up) into a pilot
  size per curve and cutoff, and says in one line what is wrong with a bad request;
* :func:`cross_validation` fits a fresh :class:`~palm_bayes.forecast.Forecaster` on every cutoff's pilots (only
  those rows: later budgets never reach the fit) and forecasts every later budget, next to the truth (the mean
  over runs there), the no-change forecast and the share of runs inside the predictive band;
* :func:`performance_metrics` scores that table per cutoff and horizon (budget ÷ last pilot budget);
* :func:`final_budget_summary` and :func:`describe` give the per-cutoff numbers and sentences of the command line.

Every error, width and interval score is in the data's own score units (fractions 0–1 or percent 0–100, as
read); coverages are shares (0–1). Only :func:`cross_validation` samples; the rest are pure functions of tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from .data import CURVE_KEYS, MIN_BUDGETS, first_budgets, iter_curves, mean_curve
from .diagnostics import sampler_run_ids
from .errors import InputError
from .forecast import FORECAST_COLUMNS, Forecaster

Key = tuple[str, str, str]
#: Default pilot sizes when neither cutoffs nor fractions are given: a quarter, half and three quarters.
DEFAULT_FRACTIONS = (0.25, 0.5, 0.75)
#: Default horizon bins (budget ÷ last pilot budget), right-closed: (1, 1.5], (1.5, 2], (2, 3], (3, 5], (5, inf].
HORIZON_BINS = (1.0, 1.5, 2.0, 3.0, 5.0, np.inf)
#: Columns of :func:`cross_validation`'s table that precede and follow :data:`FORECAST_COLUMNS`.
LEAD_COLUMNS = ["cutoff", "pilot_budgets", "n_budgets", "last_pilot_budget", "horizon"]
TAIL_COLUMNS = ["truth", "n_truth_runs", "naive", "pred_cover", "status", "divergences", "sampler_run"]
BACKTEST_COLUMNS = [*LEAD_COLUMNS, *FORECAST_COLUMNS, *TAIL_COLUMNS]
METRIC_COLUMNS = ["cutoff", "horizon_bin", "horizon_lo", "horizon_hi", "level", "n", "mae_mean", "rmse_mean",
                  "mae_point", "rmse_point", "mae_naive", "rmse_naive", "coverage", "width", "pred_coverage",
                  "pred_width", "interval_score", "failed_curves", "divergences"]


# --------------------------------------------------------------------------------------------- cutoffs


def _name(key: Key) -> str:
    return "/".join(map(str, key))


def _n_budgets(df: pd.DataFrame) -> dict[Key, int]:
    """Number of distinct budgets of every curve, in table order."""
    return {key: int(g["budget"].nunique()) for key, g in iter_curves(df)}


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def cutoff_budgets(df: pd.DataFrame, cutoffs: Sequence[int] | None = None,
                   fractions: Sequence[float] | None = None) -> dict[str, dict[Key, int]]:
    """Pilot size K (a curve's first K distinct budgets) per cutoff and curve.

    Parameters
    ----------
    df : DataFrame
        The tidy table (:mod:`palm_bayes.data`).
    cutoffs : list of int, optional
        Pilot sizes K, the same for every curve (``--cutoffs``).
    fractions : list of float, optional
        Shares F in (0, 1) of each curve's distinct budgets; K = F × that number, rounded half up
        (``--cutoff-fractions``). Default when neither is given: :data:`DEFAULT_FRACTIONS`.

    Returns
    -------
    dict
        ``{label: {(dataset, model, method): K}}`` with labels ``"K=6"`` or ``"F=0.3"``, in the order given
        (repeated values once).

    Raises
    ------
    InputError
        One line naming the flag, the value and the curve: both kinds given, an empty list, K < 4, K not below a
        curve's number of distinct budgets (nothing left to forecast), a fraction outside (0, 1), or a fraction
        that leaves a pilot of fewer than 4 budgets.
    """
    if cutoffs is not None and fractions is not None:
        raise InputError("give either --cutoffs or --cutoff-fractions, not both")
    n_budgets = _n_budgets(df)
    plan: dict[str, dict[Key, int]] = {}
    if cutoffs is not None:
        if len(cutoffs) == 0:
            raise InputError("--cutoffs: expected at least one pilot size K, e.g. --cutoffs 6 10")
        for k in dict.fromkeys(cutoffs):
            if k != int(k) or k < MIN_BUDGETS:
                raise InputError(f"--cutoffs {k}: expected whole numbers of at least {MIN_BUDGETS} budgets "
                                 "per pilot (4 PALM parameters)")
            k = int(k)
            for key, n in n_budgets.items():
                if k >= n:
                    raise InputError(f"--cutoffs {k}: curve {_name(key)} has {n} distinct budgets, so nothing "
                                     f"would be left to forecast (expected K below {n})")
            plan[f"K={k}"] = dict.fromkeys(n_budgets, k)
        return plan
    default = fractions is None
    if default:
        fractions = DEFAULT_FRACTIONS
    if len(fractions) == 0:
        raise InputError("--cutoff-fractions: expected at least one fraction, e.g. --cutoff-fractions 0.25 0.5")
    for f in dict.fromkeys(float(v) for v in fractions):
        if not 0 < f < 1:
            raise InputError(f"--cutoff-fractions {f:g}: expected a fraction strictly between 0 and 1, e.g. 0.5")
        flag = f"--cutoff-fractions {f:g}" + (" (the default is " + " ".join(f"{v:g}" for v in DEFAULT_FRACTIONS)
                                              + ")" if default else "")
        sizes = {}
        for key, n in n_budgets.items():
            k = _round_half_up(f * n)
            if k < MIN_BUDGETS:
                raise InputError(f"{flag}: curve {_name(key)} has {n} distinct budgets, so its pilot would hold {k} "
                                 f"(expected at least {MIN_BUDGETS}; give a larger fraction or --cutoffs)")
            if k >= n:
                raise InputError(f"{flag}: curve {_name(key)} has {n} distinct budgets, so its pilot would hold all "
                                 "of them and nothing would be left to forecast (give a smaller fraction)")
            sizes[key] = k
        plan[f"F={f:g}"] = sizes
    return plan


# --------------------------------------------------------------------------------------------- cross-validation


def _truth(df: pd.DataFrame) -> pd.DataFrame:
    """Per curve and budget: mean score over runs (``truth``) and the number of runs (``n_truth_runs``)."""
    frames = []
    for key, g in iter_curves(df):
        m = mean_curve(g).rename(columns={"mean": "truth", "n_runs": "n_truth_runs"})
        frames.append(m.assign(**dict(zip(CURVE_KEYS, key, strict=True))))
    return pd.concat(frames, ignore_index=True)


def _pred_cover(df: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """Share of each row's individual run scores (at its curve and budget) inside [pred_lower, pred_upper]."""
    scores = df.merge(table[[*CURVE_KEYS, "budget", "pred_lower", "pred_upper"]], on=[*CURVE_KEYS, "budget"])
    inside = (scores.score >= scores.pred_lower) & (scores.score <= scores.pred_upper)
    unknown = scores.pred_lower.isna() | scores.pred_upper.isna()
    scores["inside"] = np.where(unknown, np.nan, inside.astype(float))
    share = scores.groupby([*CURVE_KEYS, "budget"])["inside"].mean().rename("pred_cover").reset_index()
    return table[[*CURVE_KEYS, "budget"]].merge(share, on=[*CURVE_KEYS, "budget"], how="left")["pred_cover"].to_numpy()


@dataclass
class CutoffFit:
    """One cutoff of a backtest: its label, the pilot size K of every curve, and the forecaster fitted on those
    pilots only (later budgets never reach it)."""

    label: str
    sizes: dict[Key, int]
    forecaster: Forecaster


def fit_cutoffs(df: pd.DataFrame, forecaster_factory: Callable[[], Forecaster],
                cutoffs: Sequence[int] | None = None, fractions: Sequence[float] | None = None,
                progress: Callable[[int, int, str], None] | None = None) -> list[CutoffFit]:
    """Fit a fresh forecaster on each cutoff's pilots (:func:`cutoff_budgets`); the forecast backtest
    (:func:`cross_validation`) and the decision backtest (:mod:`palm_bayes.decision_backtest`) score the same fits.

    ``progress(i, n, label)`` is called before cutoff ``i`` of ``n`` is fitted.
    """
    plan = cutoff_budgets(df, cutoffs, fractions)
    fits = []
    for i, (label, sizes) in enumerate(plan.items(), start=1):
        if progress:
            progress(i, len(plan), label)
        fits.append(CutoffFit(label, sizes, forecaster_factory().fit(first_budgets(df, sizes))))
    return fits


def cross_validation(df: pd.DataFrame, forecaster_factory: Callable[[], Forecaster] | None = None,
                     cutoffs: Sequence[int] | None = None, fractions: Sequence[float] | None = None,
                     level: float = 0.9, progress: Callable[[int, int, str], None] | None = None,
                     fits: Sequence[CutoffFit] | None = None) -> pd.DataFrame:
    """Fit on each cutoff's pilots and forecast every later budget of every curve.

    Parameters
    ----------
    df : DataFrame
        The tidy table with the full curves (:mod:`palm_bayes.data`).
    forecaster_factory : callable
        Returns a fresh, unfitted :class:`~palm_bayes.forecast.Forecaster` (called once per cutoff; all curves
        of a cutoff are fitted in one ``fit`` call, so the compiled model is re-used).
    cutoffs, fractions : list, optional
        Pilot sizes, see :func:`cutoff_budgets` (default: fractions 0.25, 0.5, 0.75).
    level : float
        Level of the mean-curve and predictive intervals.
    progress : callable, optional
        ``progress(i, n, label)`` before cutoff ``i`` of ``n`` is fitted.
    fits : list of CutoffFit, optional
        Fits made already by :func:`fit_cutoffs` on ``df`` (then ``forecaster_factory``, ``cutoffs`` and
        ``fractions`` are not used).

    Returns
    -------
    DataFrame
        One row per curve × cutoff × budget after the pilot, columns :data:`BACKTEST_COLUMNS`: ``cutoff``
        (label), ``pilot_budgets`` (K), ``n_budgets`` (the curve's distinct budgets), ``last_pilot_budget``,
        ``horizon`` (budget ÷ last pilot budget), the ``forecast.csv`` columns (:data:`FORECAST_COLUMNS`),
        ``truth`` (mean over runs at that budget in the full data), ``n_truth_runs``, ``naive`` (the pilot's
        mean over runs at its last budget: the no-change forecast), ``pred_cover`` (share of that budget's run
        scores inside [pred_lower, pred_upper]), and the curve fit's ``status`` (ok / warning / failed),
        ``divergences`` and ``sampler_run`` (the methods of a pooled group share one run and its divergences).
        Failed curves keep their rows, with NaN posterior forecasts. ``attrs`` holds ``scale``,
        ``level`` and ``notes`` (the forecasters' warnings about the user's prior knowledge, per cutoff).
    """
    if not 0 < level < 1:
        raise InputError(f"--level {level:g}: expected a level strictly between 0 and 1, e.g. 0.9")
    if fits is None:
        fits = fit_cutoffs(df, forecaster_factory, cutoffs, fractions, progress)
    truth = _truth(df)
    n_budgets = _n_budgets(df)
    frames, notes = [], {}
    for fit in fits:
        label, sizes, fc = fit.label, fit.sizes, fit.forecaster
        pilot = first_budgets(df, sizes)
        notes.update({f"{label}: {n}": None for n in fc.notes.values()})
        last = {key: float(g["budget"].max()) for key, g in iter_curves(pilot)}
        naive = {key: float(g.loc[g["budget"] == last[key], "score"].mean()) for key, g in iter_curves(pilot)}
        later = {key: np.sort(g.loc[g["budget"] > last[key], "budget"].unique()) for key, g in iter_curves(df)}
        table = fc.predict(budgets=later, level=level)[FORECAST_COLUMNS]
        keys = list(zip(table.dataset, table.model, table.method, strict=True))
        lead = pd.DataFrame({"cutoff": label, "pilot_budgets": [sizes[k] for k in keys],
                             "n_budgets": [n_budgets[k] for k in keys],
                             "last_pilot_budget": [last[k] for k in keys]})
        lead["horizon"] = table["budget"].to_numpy() / lead["last_pilot_budget"].to_numpy()
        out = pd.concat([lead, table.reset_index(drop=True)], axis=1)
        out = out.merge(truth, on=[*CURVE_KEYS, "budget"], how="left", validate="many_to_one")
        out["naive"] = [naive[k] for k in keys]
        out["pred_cover"] = _pred_cover(df, out)
        diag = fc.diagnostics()
        diag = diag.assign(sampler_run=sampler_run_ids(diag))[[*CURVE_KEYS, "status", "divergences", "sampler_run"]]
        out = out.merge(diag, on=CURVE_KEYS, how="left", validate="many_to_one")
        frames.append(out)
    bt = pd.concat(frames, ignore_index=True)[BACKTEST_COLUMNS]
    bt.attrs.update(scale=df.attrs.get("scale"), level=float(level), notes=list(notes))
    return bt


# --------------------------------------------------------------------------------------------- metrics


def interval_score(lower: np.ndarray, upper: np.ndarray, y: np.ndarray, level: float) -> np.ndarray:
    """Interval score of central ``level`` intervals (Gneiting & Raftery 2007, eq. 43; lower is better):
    ``(u − l) + (2/α)(l − y)·1{y < l} + (2/α)(y − u)·1{y > u}`` with α = 1 − level, in the scores' units."""
    lower, upper, y = (np.asarray(v, dtype=float) for v in (lower, upper, y))
    alpha = 1.0 - level
    return ((upper - lower) + (2 / alpha) * (lower - y) * (y < lower)
            + (2 / alpha) * (y - upper) * (y > upper))


def _bin_labels(edges: Sequence[float]) -> list[str]:
    return [f"({lo:g}, {hi:g}]" for lo, hi in pairwise(edges)]


def _failed(rows: pd.DataFrame) -> pd.Series:
    return rows["status"].eq("failed") | rows["mean"].isna()


def _divergences(rows: pd.DataFrame) -> int:
    """Divergent transitions of the sampler runs behind some backtest rows, each run counted once (the methods of
    a pooled group share a run and its count)."""
    runs = rows.drop_duplicates(["cutoff", *_run_keys(rows)])
    return int(np.nansum(runs["divergences"].to_numpy(dtype=float)))


def _run_keys(rows: pd.DataFrame) -> list[str]:
    """Columns naming a row's sampler run (tables built elsewhere may lack ``sampler_run``: one run per curve)."""
    return ["sampler_run"] if "sampler_run" in rows else CURVE_KEYS


def _score(rows: pd.DataFrame, level: float) -> dict:
    """Error, coverage and sampling metrics of one group of backtest rows."""
    failed = _failed(rows)
    ok = rows[~failed & rows["truth"].notna()]
    y = ok["truth"].to_numpy(dtype=float)
    m = {"n": len(ok)}
    for what in ("mean", "point", "naive"):
        err = ok[what].to_numpy(dtype=float) - y
        err = err[np.isfinite(err)]
        m[f"mae_{what}"] = float(np.mean(np.abs(err))) if err.size else np.nan
        m[f"rmse_{what}"] = float(np.sqrt(np.mean(err**2))) if err.size else np.nan
    lo, hi = ok["lower"].to_numpy(dtype=float), ok["upper"].to_numpy(dtype=float)
    m["coverage"] = float(np.mean((lo <= y) & (y <= hi))) if len(ok) else np.nan
    m["width"] = float(np.mean(hi - lo)) if len(ok) else np.nan
    w = ok["n_truth_runs"].to_numpy(dtype=float)
    pc = ok["pred_cover"].to_numpy(dtype=float)
    m["pred_coverage"] = float(np.sum(pc * w) / np.sum(w)) if np.sum(w) > 0 else np.nan
    m["pred_width"] = float(np.mean(ok["pred_upper"] - ok["pred_lower"])) if len(ok) else np.nan
    m["interval_score"] = float(np.mean(interval_score(lo, hi, y, level))) if len(ok) else np.nan
    curves = rows.assign(_failed=failed).drop_duplicates(CURVE_KEYS)
    m["failed_curves"] = int(curves["_failed"].sum())
    m["divergences"] = _divergences(rows)
    return m


def performance_metrics(bt: pd.DataFrame, level: float | None = None,
                        horizon_bins: Iterable[float] = HORIZON_BINS) -> pd.DataFrame:
    """Forecast accuracy and calibration per cutoff and horizon bin, plus one ``"all"`` row per cutoff.

    Parameters
    ----------
    bt : DataFrame
        :func:`cross_validation` output (or the same columns read back from ``backtest.csv``).
    level : float, optional
        Level of the intervals in ``bt`` (default ``bt.attrs["level"]``, else 0.9); sets α = 1 − level of the
        interval score.
    horizon_bins : list of float
        Increasing bin edges of the horizon (budget ÷ last pilot budget); bins are right-closed. Rows outside
        every bin count only in ``"all"``.

    Returns
    -------
    DataFrame
        Columns :data:`METRIC_COLUMNS`. ``n``: forecasts scored (rows of curves that sampled, with a truth).
        ``mae_*``/``rmse_*``: mean absolute and root-mean-square error against the truth of the posterior mean
        curve (``mean``), the least-squares fit (``point``) and the no-change forecast (``naive``), in the
        data's score units (fractions 0–1 or percent, as read). ``coverage``: share of truths inside
        [lower, upper]; ``width``: its mean width. ``pred_coverage``: share of individual run scores inside
        [pred_lower, pred_upper] (``pred_cover`` weighted by ``n_truth_runs``); ``pred_width``: its mean width.
        ``interval_score``: mean interval score of [lower, upper] (:func:`interval_score`). ``failed_curves``:
        curves of the group whose fit failed (their rows are left out of every other metric); ``divergences``:
        sum over the group's curves. Bins without any row are left out.
    """
    level = float(level if level is not None else bt.attrs.get("level", 0.9))
    if not 0 < level < 1:
        raise InputError(f"--level {level:g}: expected a level strictly between 0 and 1, e.g. 0.9")
    edges = [float(e) for e in horizon_bins]
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise InputError(f"horizon bins {edges}: expected at least two increasing edges")
    labels = _bin_labels(edges)
    binned = pd.cut(bt["horizon"].astype(float), edges, right=True, labels=labels)
    rows = []
    for label in dict.fromkeys(bt["cutoff"]):
        sel = bt["cutoff"] == label
        for j, name in enumerate(labels):
            grp = bt[sel & (binned == name)]
            if len(grp):
                rows.append({"cutoff": label, "horizon_bin": name, "horizon_lo": edges[j],
                             "horizon_hi": edges[j + 1], "level": level, **_score(grp, level)})
        rows.append({"cutoff": label, "horizon_bin": "all", "horizon_lo": np.nan, "horizon_hi": np.nan,
                     "level": level, **_score(bt[sel], level)})
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def final_budget_summary(bt: pd.DataFrame) -> pd.DataFrame:
    """Per cutoff: how the forecasts fared at each curve's final (largest) budget, and over all later budgets.

    Returns
    -------
    DataFrame
        One row per cutoff: ``cutoff``, ``curves``, ``pilot_min/pilot_max`` (K) and ``n_budgets_min/max``,
        ``scored`` (curves that sampled), ``mae_mean``, ``mae_point``, ``mae_naive`` (mean absolute error at the
        final budget, score units), ``covered_final`` (curves whose mean-curve interval held the truth at the
        final budget), ``coverage_final`` (their share), ``coverage`` (share over every later budget),
        ``forecasts`` (later budgets scored), ``failed_curves``, ``warning_curves`` and the sampler runs they
        came from (``warning_runs``: a pooled group is one run), ``divergences`` (counted once per run).
    """
    rows = []
    for label in dict.fromkeys(bt["cutoff"]):
        g = bt[bt["cutoff"] == label]
        final = g.sort_values("budget").groupby(CURVE_KEYS, sort=False).tail(1)
        failed = _failed(final)
        ok = final[~failed & final["truth"].notna()]
        every = g[~_failed(g) & g["truth"].notna()]
        y = ok["truth"].to_numpy(dtype=float)

        def mae(col: str, ok=ok, y=y) -> float:
            err = np.abs(ok[col].to_numpy(dtype=float) - y)
            err = err[np.isfinite(err)]
            return float(err.mean()) if err.size else np.nan

        covered = int(((ok["lower"] <= ok["truth"]) & (ok["truth"] <= ok["upper"])).sum())
        rows.append({
            "cutoff": label, "curves": len(final), "pilot_min": int(final.pilot_budgets.min()),
            "pilot_max": int(final.pilot_budgets.max()), "n_budgets_min": int(final.n_budgets.min()),
            "n_budgets_max": int(final.n_budgets.max()), "scored": len(ok), "mae_mean": mae("mean"),
            "mae_point": mae("point"), "mae_naive": mae("naive"), "covered_final": covered,
            "coverage_final": covered / len(ok) if len(ok) else np.nan,
            "coverage": float(((every.lower <= every.truth) & (every.truth <= every.upper)).mean())
            if len(every) else np.nan,
            "forecasts": len(every), "failed_curves": int(failed.sum()),
            "warning_curves": int(final["status"].eq("warning").sum()),
            "warning_runs": len(final.loc[final["status"].eq("warning"), _run_keys(final)].drop_duplicates()),
            "divergences": _divergences(final),
        })
    return pd.DataFrame(rows)


def _range(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def describe(summary: pd.DataFrame, scale: str, level: float = 0.9) -> list[str]:
    """One plain sentence per cutoff from :func:`final_budget_summary`; errors in accuracy points (fractions × 100,
    percent as they are)."""
    to_points = 100.0 if scale == "fraction" else 1.0
    pct = f"{level:.0%}"
    lines = []
    for r in summary.itertuples():
        head = f"{r.cutoff}: from {_range(r.pilot_min, r.pilot_max)} of {_range(r.n_budgets_min, r.n_budgets_max)}"
        head += " budgets"
        if r.scored == 0:
            lines.append(f"{head}: every fit failed ({r.failed_curves} curve(s)); nothing to score")
            continue
        s = (f"{head}: final-budget error {r.mae_mean * to_points:.1f} points (point fit "
             f"{r.mae_point * to_points:.1f}, no-change {r.mae_naive * to_points:.1f}); {pct} intervals held the "
             f"truth {r.coverage:.0%} of the time ({r.forecasts} later budgets; {r.covered_final} of {r.scored} "
             "curves at their final budget)")
        trouble = [f"{r.failed_curves} curve(s) failed"] if r.failed_curves else []
        runs = f" from {r.warning_runs} sampler run(s)" if r.warning_runs != r.warning_curves else ""
        trouble += [f"{r.warning_curves} curve(s) with sampler warnings{runs}"] if r.warning_curves else []
        trouble += [f"{r.divergences} divergences"] if r.divergences else []
        lines.append(s + (f"; {', '.join(trouble)}" if trouble else ""))
    return lines
