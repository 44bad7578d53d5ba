"""Figures. Plotting only: every function takes computed results and returns a Matplotlib figure.

Names come from the user's data (method names with emoji, say), and the fonts Matplotlib finds may lack some of
their characters. Rather than let Matplotlib warn and draw an empty box, every figure's texts are checked against
the fonts they will be drawn with (``font.family`` and its fallbacks, as configured) before layout, and each
character none of them has is written as its Unicode name in brackets (``margin 🚀`` → ``margin [ROCKET]``); see
:func:`readable`. Warning filters are left alone.
"""

from __future__ import annotations

import sys
import unicodedata
from functools import lru_cache

import matplotlib

if "ipykernel" not in sys.modules:  # in Jupyter, keep its inline backend so figures show in the notebook
    matplotlib.use("Agg")  # files only; no display needed (and none on servers or CI)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib.text import Text

from .data import scale_max

#: Two curves on one chart closer than this share of the chart's value range everywhere are drawn on top of each
#: other (identical runs, say): the legend says which coincide.
COINCIDE = 0.005
#: Line styles and markers cycled per method on shared axes, so a curve drawn over another stays visible.
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def _font_files(prop: font_manager.FontProperties) -> tuple:
    """The font files Matplotlib draws ``prop`` with: one per family of its fallback list, as the renderer does
    (Matplotlib caches the look-ups, keyed by the current rcParams)."""
    find = getattr(font_manager.fontManager, "_find_fonts_by_props", None)  # Matplotlib >= 3.6
    return tuple(find(prop)) if find is not None else (font_manager.findfont(prop),)


@lru_cache(maxsize=4096)
def _has_glyph(files: tuple, ch: str) -> bool:
    return any(font_manager.get_font(f).get_char_index(ord(ch)) for f in files)


def readable(text: str, prop: font_manager.FontProperties | None = None) -> str:
    """``text`` with every character that no font of ``prop`` (default: the rcParams font) can draw replaced by
    its Unicode name in brackets, e.g. ``"margin 🚀"`` → ``"margin [ROCKET]"``; invisible modifiers the fonts
    lack (variation selectors, zero-width joiners) are dropped. Control characters (line breaks) are kept."""
    files = _font_files(prop.copy() if prop is not None else font_manager.FontProperties())
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cc" or _has_glyph(files, ch):
            out.append(ch)
        elif cat not in ("Mn", "Me", "Cf"):
            out.append(f"[{unicodedata.name(ch, f'U+{ord(ch):04X}')}]")
    return "".join(out)


def _readable(fig) -> None:
    """Make every text of ``fig`` drawable by its fonts (:func:`readable`): titles, axis labels, legends, notes.
    Called before layout, which already draws text. Tick labels are made again from the axis formatter at each
    draw, so names used as tick labels go through :func:`readable` where the ticks are set."""
    for t in fig.findobj(Text):
        s = t.get_text()
        if s and not s.isascii() and (r := readable(s, t.get_fontproperties())) != s:
            t.set_text(r)


def _layout(fig, **kw) -> None:
    """Readable texts, then ``tight_layout``."""
    _readable(fig)
    fig.tight_layout(**kw)


def _coinciding(curves: list, span: float) -> dict[int, int]:
    """``{i: j}`` for each curve ``i`` that lies within ``COINCIDE × span`` of an earlier curve ``j`` at every
    shared x (at least two). ``curves`` are ``(x, y)`` pairs."""
    out = {}
    tol = COINCIDE * (span if span > 0 else 1.0)
    for i, (xi, yi) in enumerate(curves):
        for j in range(i):
            xj, yj = curves[j]
            common, ii, jj = np.intersect1d(np.asarray(xi), np.asarray(xj), return_indices=True)
            if len(common) >= 2 and np.all(np.abs(np.asarray(yi)[ii] - np.asarray(yj)[jj]) <= tol):
                out[i] = out.get(j, j)
                break
    return out


def _same_as(label: str, other: str) -> str:
    return f"{label} (same curve as {other})"


def score_label(scale: str) -> str:
    """Y-axis label for a score scale."""
    return "Accuracy (%)" if scale == "percent" else "Accuracy (fraction, 0–1)"


def plot_point_fit(
    rows: pd.DataFrame,
    budgets: np.ndarray,
    fitted: np.ndarray,
    *,
    title: str,
    scale: str,
    label: str = "PALM fit",
    avg: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Runs as faint points, their average, and a fitted curve, on the cumulative-budget axis.

    Parameters
    ----------
    rows : DataFrame
        One curve's tidy rows (``run, budget, score``).
    budgets, fitted : array
        Where the fitted curve is drawn and its values.
    title : str
        Figure title.
    scale : str
        ``"fraction"`` or ``"percent"`` (y-axis label).
    label : str
        Legend label of the curve.
    avg : (budgets, values), optional
        The average that was fitted (default: the per-budget mean of ``rows``).
    """
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for i, (_, g) in enumerate(rows.groupby("run", sort=False)):
        ax.plot(g["budget"], g["score"], ".", color="0.6", ms=4, alpha=0.7, label="single runs" if i == 0 else None)
    if avg is None:
        m = rows.groupby("budget")["score"].mean()
        avg = (m.index.to_numpy(), m.to_numpy())
    ax.plot(avg[0], avg[1], "o", color="C0", ms=5, label="average over runs")
    ax.plot(budgets, fitted, "-", color="C3", lw=2, label=label)
    ax.set_xlabel("Cumulative budget (labels)")
    ax.set_ylabel(score_label(scale))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    _layout(fig)
    return fig


def plot_forecasts(fc, table: pd.DataFrame, *, level: float = 0.9, max_curves: int = 24, keys: list | None = None):
    """Per curve: runs as points, point fit, posterior median, mean-curve band and predictive band.

    Parameters
    ----------
    fc : Forecaster
        A fitted forecaster (for the observed runs).
    table : DataFrame
        Its ``predict`` output.
    level : float
        Level of the bands (for the legend).
    max_curves : int
        At most this many panels (the first curves); the title says when some were left out.
    keys : list of (dataset, model, method), optional
        Only these curves (default: all).
    """
    keys = keys if keys is not None else fc.keys()
    fig, axes, shown = _panels(keys, max_curves)
    pct = f"{level:.0%}"
    for ax, key in zip(axes.flat, shown, strict=False):
        t = table[(table.dataset == key[0]) & (table.model == key[1]) & (table.method == key[2])].sort_values("budget")
        rows = fc.observed(key)
        ax.fill_between(t.budget, t.pred_lower, t.pred_upper, color="C0", alpha=0.15, lw=0,
                        label=f"{pct} predictive band (one new run)")
        ax.fill_between(t.budget, t.lower, t.upper, color="C0", alpha=0.35, lw=0, label=f"{pct} band of the mean curve")
        ax.plot(t.budget, t["median"], color="C0", lw=2, label="posterior median")
        ax.plot(t.budget, t.point, color="C3", lw=1.3, ls="--", label="point fit")
        mix = fc.mixture(key)
        if mix is not None:  # each family's own median curve, its weight in the label
            for j, (f, draws) in enumerate(mix.family_curves(t.budget.to_numpy()).items()):
                ax.plot(t.budget, np.median(draws, 0) * scale_max(fc.scale), color=f"C{4 + j}", lw=1, ls=":",
                        label=f"{f} (weight {mix.weights[f]:.2f})")
        _observed(ax, key, rows, fc.scale)
    _finish(fig, axes, keys, shown, "forecast.csv")
    return fig


def plot_prior_predictive(fc, prior: dict, *, level: float = 0.9, max_curves: int = 24):
    """Prior predictive check: per curve, what the priors alone expect, with the observed runs on top.

    Parameters
    ----------
    fc : Forecaster
        A fitted forecaster (for the observed runs).
    prior : dict
        ``{key: (budgets, {"mean": draws, "run": draws})}`` from :meth:`Forecaster.prior_draws`.
    level : float
        Level of the bands.
    max_curves : int
        At most this many panels.
    """
    keys = [k for k in fc.keys() if k in prior]
    fig, axes, shown = _panels(keys, max_curves)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    pct = f"{level:.0%}"
    for ax, key in zip(axes.flat, shown, strict=False):
        budgets, draws = prior[key]
        lo, hi = np.quantile(draws["run"], q, axis=0)
        ax.fill_between(budgets, lo, hi, color="C2", alpha=0.15, lw=0, label=f"prior {pct} band of one run")
        lo, hi = np.quantile(draws["mean"], q, axis=0)
        ax.fill_between(budgets, lo, hi, color="C2", alpha=0.35, lw=0, label=f"prior {pct} band of the mean curve")
        for j, d in enumerate(draws["mean"][:12]):
            ax.plot(budgets, d, color="C2", lw=0.7, alpha=0.8,
                    label="prior draws of the mean curve" if j == 0 else None)
        _observed(ax, key, fc.observed(key), fc.scale)
    _finish(fig, axes, keys, shown, "the outputs")
    return fig


def _panels(keys: list, max_curves: int):
    """A grid of at most ``max_curves`` panels, three per row."""
    shown = keys[:max_curves]
    ncol = max(1, min(3, len(shown)))
    nrow = max(1, int(np.ceil(len(shown) / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.6 * nrow), squeeze=False)
    return fig, axes, shown


def _observed(ax, key: tuple, rows: pd.DataFrame, scale: str) -> None:
    """The fitted runs, the last fitted budget, title and axis labels of one panel."""
    ax.plot(rows.budget, rows.score, ".", color="0.3", ms=3, label="observed runs")
    ax.axvline(rows.budget.max(), color="0.5", lw=0.8, ls=":", label="last observed budget")
    ax.set_title(" · ".join(key), fontsize=9)
    ax.set_xlabel("Cumulative budget (labels)")
    ax.set_ylabel(score_label(scale))
    ax.grid(True, alpha=0.3)


def _hide_unused(fig, axes, keys: list, shown: list, what: str, where: str) -> None:
    """Hide the grid's unused panels and say when some ``what`` (curves, groups) were left out."""
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    if len(keys) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(keys)} {what} (all are in {where})", fontsize=10)


def _finish(fig, axes, keys: list, shown: list, where: str) -> None:
    """Hide unused panels, one legend below, and say when curves were left out."""
    _hide_unused(fig, axes, keys, shown, "curves", where)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    ncol = 2 if axes.shape[1] == 1 else 3  # a single narrow panel has room for two legend columns
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    rows = -(-len(labels) // ncol)
    inches = fig.get_size_inches()[1]
    _layout(fig, rect=(0, min(0.45, (0.2 * rows + 0.1) / inches), 1, 0.97))


def plot_decision(decision, *, max_groups: int = 12):
    """P(reach the target by B) against the budget B: one panel per (dataset, model), one line per method.

    Parameters
    ----------
    decision : Decision
        Output of :func:`palm_bayes.decision.decide`.
    max_groups : int
        At most this many panels.
    """
    t = decision.table
    groups = list(t[["dataset", "model"]].drop_duplicates().itertuples(index=False, name=None))
    fig, axes, shown = _panels(groups, max_groups)
    target = t.target.iloc[0]
    for ax, (dataset, model) in zip(axes.flat, shown, strict=False):
        g = t[(t.dataset == dataset) & (t.model == model)]
        rows = [(i, r) for i, r in enumerate(g.itertuples()) if (dataset, model, r.method) in decision.reach]
        curves = [decision.reach[(dataset, model, r.method)] for _, r in rows]
        same = _coinciding(curves, 1.0)
        for n, ((i, r), (budgets, p)) in enumerate(zip(rows, curves, strict=True)):
            tags = [tag for tag, on in (("pick", r.pick), ("ALDA pick", r.alda_pick)) if on]
            label = r.method + (f" ({', '.join(tags)})" if tags else "")
            label = _same_as(label, rows[same[n]][1].method) if n in same else label
            ax.step(budgets, p, where="post", color=f"C{i % 10}", lw=2.2 if r.pick else 1.3,
                    ls=LINESTYLES[n % len(LINESTYLES)], label=label)
        ax.axvline(g.current_budget.max(), color="0.4", lw=0.9, ls=":", label="observed budget")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{dataset} · {model}: target {target:g}", fontsize=9)
        ax.set_xlabel("Cumulative budget B (labels)")
        ax.set_ylabel("P(reach target by B)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    _hide_unused(fig, axes, groups, shown, "groups", "decision.csv")
    _layout(fig)
    return fig


def plot_comparison(fc, table: pd.DataFrame, dataset: str, model: str, *, level: float = 0.9):
    """All methods of one (dataset, model) on one chart: posterior median and mean-curve band of each, observed
    means as points, the last observed budget marked. The methods are those of ``table``.

    Each method has its own colour, line style and marker (markers staggered along the line), so a curve drawn
    on top of another stays visible; methods whose medians coincide (within ``COINCIDE`` of the chart's range,
    e.g. identical runs) say so in the legend."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    keys = [k for k in table[["dataset", "model", "method"]].drop_duplicates().itertuples(index=False, name=None)
            if k[0] == dataset and k[1] == model]
    ts = [table[(table.dataset == k[0]) & (table.model == k[1]) & (table.method == k[2])].sort_values("budget")
          for k in keys]
    values = np.concatenate([t[c].to_numpy(float) for t in ts for c in ("median", "lower", "upper")] or [[0.0]])
    same = _coinciding([(t.budget.to_numpy(), t["median"].to_numpy(float)) for t in ts],
                       float(np.nanmax(values) - np.nanmin(values)))
    for i, (key, t) in enumerate(zip(keys, ts, strict=True)):
        color, marker = f"C{i % 10}", MARKERS[i % len(MARKERS)]
        step = max(1, len(t) // 8)
        label = _same_as(key[2], keys[same[i]][2]) if i in same else key[2]
        ax.fill_between(t.budget, t.lower, t.upper, color=color, alpha=0.18, lw=0)
        ax.plot(t.budget, t["median"], color=color, lw=1.8, ls=LINESTYLES[i % len(LINESTYLES)], marker=marker,
                ms=5, mfc="none", markevery=((i * max(1, step // max(2, len(keys)))) % step, step), label=label)
        m = fc.observed(key).groupby("budget").score.mean()
        ax.plot(m.index, m.values, marker, color=color, ms=3.5, mfc="none", mew=0.9)
    last = max(fc.observed(k).budget.max() for k in keys)
    ax.axvline(last, color="0.5", lw=0.8, ls=":", label="last observed budget")
    ax.set_title(f"{dataset} · {model}: posterior median and {level:.0%} band of the mean curve; "
                 "points = observed means", fontsize=9)
    ax.set_xlabel("Cumulative budget (labels)")
    ax.set_ylabel(score_label(fc.scale))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _layout(fig)
    return fig


def plot_forest(params: pd.DataFrame, dataset: str, model: str, *, names=("A_max", "delta", "alpha", "beta"),
                level: float = 0.9):
    """Forest plot: each PALM parameter across the methods of one (dataset, model): posterior median with its
    interval, and the point fit as a cross. ``params`` is :meth:`Forecaster.params` output."""
    p = params[(params.dataset == dataset) & (params.model == model)]
    methods = list(dict.fromkeys(p.method))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 0.45 * len(methods) + 1.6), sharey=True,
                             squeeze=False)
    y = np.arange(len(methods))
    for ax, name in zip(axes[0], names, strict=True):
        q = p[p.param == name].set_index("method").reindex(methods)
        ax.hlines(y, q.lower, q.upper, color="C0", lw=2, label=f"{level:.0%} interval")
        ax.plot(q["median"], y, "o", color="C0", ms=5, label="posterior median")
        ax.plot(q["point"], y, "x", color="C3", ms=6, label="point fit")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(name + (" (score scale)" if name == "A_max" else ""))
        ax.grid(True, axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, [readable(str(m)) for m in methods])
    axes[0][0].invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"{dataset} · {model}", fontsize=10)
    _layout(fig, rect=(0, 0.12, 1, 0.95))
    return fig


def plot_ppc(pit: np.ndarray, coverage: pd.Series, *, level: float = 0.9):
    """Posterior predictive check: histogram of the PIT values of every observed score (uniform if the
    predictive distribution fits) and, per curve, the share of observed scores inside the predictive interval.

    Parameters
    ----------
    pit : array
        P(predicted score ≤ observed score) for each observation.
    coverage : Series
        Per curve label → share of its observed scores inside the ``level`` predictive interval.
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, max(3.6, 0.28 * len(coverage) + 1.5)),
                               gridspec_kw={"width_ratios": [1, 1.3]})
    a.hist(pit, bins=10, range=(0, 1), density=True, color="C0", alpha=0.7, label="observed scores")
    a.axhline(1.0, color="C3", ls="--", label="uniform (calibrated)")
    a.set_xlabel("PIT: P(one new run's predicted score ≤ the observed score)")
    a.set_ylabel("Density")
    a.set_title("PIT histogram (U-shape: bands too narrow; hump: too wide)", fontsize=9)
    a.legend(fontsize=8)
    y = np.arange(len(coverage))
    b.barh(y, coverage.values, color="C0", alpha=0.7, label="observed share inside")
    b.axvline(level, color="C3", ls="--", label=f"nominal {level:.0%}")
    b.set_yticks(y, [readable(str(c)) for c in coverage.index], fontsize=7)
    b.invert_yaxis()
    b.set_xlim(0, 1.02)
    b.set_xlabel(f"Share of observed scores inside the {level:.0%} predictive band")
    b.legend(fontsize=8, loc="lower left")
    _layout(fig)
    return fig


def plot_backtest(metrics: pd.DataFrame, *, scale: str = "fraction", level: float | None = None,
                  reliability: pd.DataFrame | None = None):
    """Backtest: forecast error and interval coverage against the horizon, one colour per cutoff.

    Left: mean absolute error in accuracy points (fractions × 100) of the posterior mean curve (solid), the
    point fit (dashed) and the no-change forecast (dotted). Middle: share of truths inside the mean-curve
    interval, with the nominal level as a horizontal line. With ``reliability`` (the decision backtest's
    :func:`palm_bayes.decision_backtest.reliability_table`) a third panel: the reliability diagram of P(reach).

    Parameters
    ----------
    metrics : DataFrame
        :func:`palm_bayes.backtest.performance_metrics` output (its ``"all"`` rows are not drawn).
    scale : str
        ``"fraction"`` or ``"percent"``: the scores' scale (errors are shown in accuracy points either way).
    level : float, optional
        Nominal interval level (default: the table's ``level`` column).
    """
    from matplotlib.lines import Line2D

    m = metrics[metrics.horizon_bin != "all"]
    level = float(level if level is not None else metrics.level.iloc[0])
    bins = m[["horizon_bin", "horizon_lo", "horizon_hi"]].drop_duplicates("horizon_bin").sort_values("horizon_lo")
    pos = {b: i for i, b in enumerate(bins.horizon_bin)}
    ticks = [f">{lo:g}×" if not np.isfinite(hi) else f"{lo:g}–{hi:g}×"
             for lo, hi in zip(bins.horizon_lo, bins.horizon_hi, strict=True)]
    to_points = 100.0 if scale == "fraction" else 1.0
    if reliability is None:
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.4))
    else:
        fig, (a, b, rel_ax) = plt.subplots(1, 3, figsize=(15.5, 4.4))
    cutoffs = list(dict.fromkeys(m.cutoff))
    styles = (("mae_mean", "-", "o", "posterior mean"), ("mae_point", "--", "s", "point fit"),
              ("mae_naive", ":", "^", "no change (last pilot mean)"))
    for i, c in enumerate(cutoffs):
        g = m[m.cutoff == c]
        x = g.horizon_bin.map(pos).to_numpy()
        color = f"C{i % 10}"
        for col, ls, marker, _ in styles:
            a.plot(x, g[col] * to_points, ls=ls, marker=marker, ms=4, color=color, lw=1.8 if col == "mae_mean" else 1.1)
        dx = 0.05 * (i - (len(cutoffs) - 1) / 2)  # coverages often coincide (e.g. 100%): keep each cutoff visible
        b.plot(x + dx, g.coverage, "-o", ms=4, color=color, lw=1.8)
    a.set_ylabel("Mean absolute error (accuracy points)")
    a.set_title("Forecast error against the truth (mean over runs)", fontsize=9)
    a.set_ylim(bottom=0)
    b.axhline(level, color="0.3", ls="--", lw=1)
    b.set_ylim(-0.02, 1.05)
    b.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    b.set_ylabel(f"Truths inside the {level:.0%} interval")
    b.set_title(f"Coverage of the {level:.0%} mean-curve interval (dashed: nominal)", fontsize=9)
    for ax in (a, b):
        ax.set_xticks(range(len(ticks)), ticks)
        ax.set_xlim(-0.3, len(ticks) - 0.7)
        ax.set_xlabel("Horizon: forecast budget ÷ last pilot budget")
        ax.grid(True, alpha=0.3)
    if reliability is not None:
        colors = {cut: f"C{i % 10}" for i, cut in enumerate(cutoffs)}
        _reliability_panel(rel_ax, reliability, colors)
    handles = [Line2D([], [], color=f"C{i % 10}", lw=2, label=f"cutoff {c}") for i, c in enumerate(cutoffs)]
    handles += [Line2D([], [], color="0.2", ls=ls, marker=mk, ms=4, label=lab) for _, ls, mk, lab in styles]
    handles += [Line2D([], [], color="0.3", ls="--", lw=1, label=f"nominal {level:.0%}")]
    ncol = min(len(handles), 4)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    rows = -(-len(handles) // ncol)
    _layout(fig, rect=(0, min(0.4, (0.17 * rows + 0.05) / fig.get_size_inches()[1]), 1, 1))
    return fig


def _reliability_panel(ax, reliability: pd.DataFrame, colors: dict) -> None:
    """Reliability diagram of P(reach): per bin, the mean forecast probability against the share that reached the
    target, marker area ∝ the curves in the bin; the diagonal is perfect calibration."""
    ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1)
    n_max = max(int(reliability["n"].max()), 1) if len(reliability) else 1
    for cutoff, g in reliability.groupby("cutoff", sort=False):
        color = colors.get(cutoff, "C0")
        ax.plot(g.mean_p_reach, g.share_reached, "-", color=color, lw=1.2)
        ax.scatter(g.mean_p_reach, g.share_reached, s=15 + 120 * g.n / n_max, color=color, zorder=3)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("P(reach the target by the final budget), binned")
    ax.set_ylabel("Share that reached it")
    ax.set_title("Reliability of P(reach) (dashed: calibrated; marker area: curves)", fontsize=9)
    ax.grid(True, alpha=0.3)
