"""The uncertainty report: what was observed, what is forecast, how sure, and whether the sampler can be trusted.

:func:`build_report` assembles sections (text, tables, figures) from a fitted
:class:`~palm_bayes.forecast.Forecaster`; :func:`render_html` writes one self-contained page (figures embedded as
PNG data, no network) and :func:`render_markdown` the same content as Markdown with the figures as PNG files.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import __version__
from .curve import PARAMETERS
from .data import CURVE_KEYS
from .diagnostics import ESS_MIN, RHAT_MAX, sampler_runs
from .forecast import GROUP_ROW
from .plot import plot_comparison, plot_forecasts, plot_forest, plot_ppc

#: Section ids, in order (``decision`` only with a target).
SECTIONS = ("data", "curves", "comparison", "diagnostics", "decision")

NOISE_MEANINGS = {
    "sigma": "observation noise sd at the first budget (score scale)",
    "tau": "sd of the run-to-run offset: how far one repetition sits above or below the others (score scale)",
    "gamma": "noise trend: the noise sd scales as (x / x₁)^(−γ); γ > 0 means less scatter at larger budgets",
    "omega": "sd of the per-budget misfit of the mean curve from the PALM form (score scale)",
    "nu": "Student-t degrees of freedom (small = heavy-tailed, outlying episodes)",
}


@dataclass
class Figure:
    name: str
    caption: str
    png: bytes


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)  # ("p" | "warn" | "h3", text), ("table", DataFrame), ("figure", Figure)

    def text(self, s: str, kind: str = "p") -> None:
        self.blocks.append((kind, s))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def figure(self, name: str, fig, caption: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        self.blocks.append(("figure", Figure(name, caption, buf.getvalue())))


@dataclass
class Report:
    title: str
    sections: list[Section]

    def figures(self) -> list[Figure]:
        return [b[1] for s in self.sections for b in s.blocks if b[0] == "figure"]


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(parts)).strip("_")


def _fmt(df: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Round floats for display (keeps ints, strings and inf)."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}")
    return out


def pit_values(fc, keys: list, level: float = 0.9) -> tuple[np.ndarray, pd.Series]:
    """PIT of every observed score under the predictive distribution of one new run, and per curve the share of
    observed scores inside the ``level`` predictive band (for the posterior predictive check)."""
    pits, cover = [], {}
    for key in keys:
        if key not in fc.posteriors:
            continue
        rows = fc.observed(key)
        budgets = np.sort(rows.budget.unique())
        pred = fc.curve_draws(key, budgets, predictive=True)
        col = {b: j for j, b in enumerate(budgets)}
        j = rows.budget.map(col).to_numpy()
        draws = pred[:, j]
        y = rows.score.to_numpy()
        pits.append((draws <= y[None, :]).mean(0))
        lo, hi = np.quantile(pred, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
        cover["/".join(key[1:]) if len({k[0] for k in keys}) == 1 else "/".join(key)] = float(
            ((lo[j] <= y) & (y <= hi[j])).mean())
    return (np.concatenate(pits) if pits else np.array([])), pd.Series(cover, dtype=float)


def build_report(fc, table: pd.DataFrame, *, level: float = 0.9, decision=None, notes: list[str] | None = None,
                 keys: list | None = None, max_curves: int = 60) -> Report:
    """Assemble the report's sections from a fitted forecaster and its ``predict`` table.

    Parameters
    ----------
    fc : Forecaster
        Fitted or loaded.
    table : DataFrame
        ``fc.predict(...)`` output (the fan charts and comparison charts draw it).
    level : float
        Interval level of the tables and bands.
    decision : Decision, optional
        Output of :func:`palm_bayes.decision.decide`; adds the decision section.
    notes : list of str, optional
        What was read, dropped or repaired (the loader's notes).
    keys : list of (dataset, model, method), optional
        Only these curves (default: all).
    max_curves : int
        Per-curve figures for at most this many curves (all curves stay in the tables).
    """
    keys = keys if keys is not None else fc.keys()

    def chosen(df: pd.DataFrame) -> pd.DataFrame:
        return df[df[CURVE_KEYS].apply(tuple, axis=1).isin(keys)]

    all_params = fc.params(level=level)
    h, params, diag = chosen(fc.history), chosen(all_params), chosen(fc.diagnostics())
    sections = []

    data = Section("data", "Data")
    data.text(f"{len(keys)} curve(s): {h.dataset.nunique()} dataset(s), {h.model.nunique()} model(s), "
              f"{h.method.nunique()} method(s); scores are {fc.scale}s.")
    per = (h.groupby(CURVE_KEYS, sort=False)
           .agg(runs=("run", "nunique"), budgets=("budget", "nunique"), first_budget=("budget", "min"),
                last_budget=("budget", "max"), observations=("score", "size")).reset_index())
    data.table(per)
    for n in notes or []:
        data.text(n, "li")
    sections.append(data)

    curves = Section("curves", "Per curve: forecast and parameters")
    meanings = pd.DataFrame({"parameter": list(PARAMETERS) + list(NOISE_MEANINGS),
                             "meaning": list(PARAMETERS.values()) + list(NOISE_MEANINGS.values())})
    curves.text(f"Bands are equal-tailed {level:.0%} intervals: the darker one for the mean curve A(B), the lighter "
                "one for the score of one new run. δ, α and β are on the episode axis x = B / b.")
    curves.table(meanings)
    for key in keys:
        curves.text(" · ".join(key), "h3")
        if key in fc.failures:
            curves.text(f"sampling failed: {fc.failures[key]}", "warn")
        if len(keys) <= max_curves:
            curves.figure(_slug("fan", *key), plot_forecasts(fc, table, level=level, keys=[key]),
                          f"{' · '.join(key)}: runs, point fit, posterior median, {level:.0%} bands")
        p = params[(params.dataset == key[0]) & (params.model == key[1]) & (params.method == key[2])]
        cols = [c for c in ("param", "point", "mean", "sd", "median", "lower", "upper", "r_hat", "ess_bulk")
                if c in p.columns]
        curves.table(_fmt(p[cols].rename(columns={"lower": f"lower {level:.0%}", "upper": f"upper {level:.0%}"})))
        note = p["point_note"].iloc[0] if "point_note" in p.columns and len(p) else ""
        if note:
            curves.text(f"point fit: {note} (the posterior intervals say how far the data leave them free)", "warn")
    sections.append(curves)

    comp = Section("comparison", "Comparison of methods")
    for dataset, model in h[["dataset", "model"]].drop_duplicates().itertuples(index=False):
        comp.text(f"{dataset} · {model}", "h3")
        if (dataset, model) in fc.groups:
            comp.text(f"One joint model for these methods (pooling: {fc.pooling}): their ceilings share the group's "
                      "ceiling A_max_group, spread by pool_sd_A_max (logit units) as much as the data say; draws "
                      "are joint, so comparisons keep the correlation.")
            g = all_params[(all_params.dataset == dataset) & (all_params.model == model)
                           & (all_params.method == GROUP_ROW)]
            comp.table(_fmt(g[["param", "mean", "median", "lower", "upper", "r_hat", "ess_bulk"]].rename(
                columns={"lower": f"lower {level:.0%}", "upper": f"upper {level:.0%}"})))
        comp.figure(_slug("compare", dataset, model), plot_comparison(fc, table, dataset, model, level=level),
                    f"{dataset} · {model}: every method's posterior median and {level:.0%} mean-curve band")
        comp.figure(_slug("forest", dataset, model), plot_forest(params, dataset, model, level=level),
                    f"{dataset} · {model}: A_max, δ, α, β per method (posterior median, {level:.0%} interval, "
                    "point fit)")
    sections.append(comp)

    dg = Section("diagnostics", "Sampler diagnostics")
    dg.text(f"Thresholds: R-hat ≤ {RHAT_MAX}, bulk ESS ≥ {ESS_MIN}, no divergent transitions. A curve that misses "
            "one has a posterior that may be biased or imprecise: re-run with more --tune/--draws (or another "
            "--seed) and compare; persistent divergences mean the data fit the PALM form poorly (look at the fan "
            "chart).")
    dg.table(_fmt(diag))
    bad = sampler_runs(diag).query("status != 'ok'")  # a pooled group's methods share one run: one warning
    if len(bad):
        for r in bad.itertuples():
            dg.text(f"{r.label}: {r.message}", "warn")
    else:
        dg.text("Every curve passed every threshold.")
    pit, cover = pit_values(fc, keys, level=0.9)
    if len(pit):
        dg.figure("ppc", plot_ppc(pit, cover, level=0.9),
                  "Posterior predictive check: observed scores against the predictive distribution of one new run")
    sections.append(dg)

    if decision is not None:
        dec = Section("decision", f"Decision: target {decision.settings.target:g}")
        for line in decision.lines:
            dec.text(line, "li")
        for g in decision.groups:
            dec.text(f"{g['dataset']} · {g['model']}: pick {g['pick'] or 'none'} ({g['pick_reason']}); ALDA's pick "
                     f"{g['alda_pick'] or 'none'} ({g['alda_reason']})." + (f" {g['why']}." if g["why"] else ""))
        cols = ["method", "p_feasible", "p_reach", "b_abs_median", "b_abs_lower", "b_abs_upper", "p_cheapest", "pick",
                "alda_pick", "verdict"]
        dec.table(_fmt(decision.table[cols]))
        sections.append(dec)
    return Report(title=f"palm-bayes uncertainty report ({__version__})", sections=sections)


def build_backtest_report(summary: pd.DataFrame, metrics: pd.DataFrame, lines: list[str], figure_png: bytes, *,
                          scores: pd.DataFrame | None = None,
                          regrets: pd.DataFrame | None = None, reliability: pd.DataFrame | None = None,
                          decision_lines: list[str] | None = None, notes: list[str] | None = None) -> Report:
    """The backtest's report: the forecast backtest (per-cutoff summary, metrics by horizon, the figure) and, with
    a target, the decision backtest (scores per cutoff and target, the picks per group, the reliability table).

    ``figure_png`` is :func:`palm_bayes.plot.plot_backtest` as PNG (``backtest.png``, with its reliability panel
    when there are decisions); the tables come from :mod:`palm_bayes.backtest` and
    :mod:`palm_bayes.decision_backtest`.
    """
    fore = Section("forecasts", "Forecast backtest")
    for line in lines:
        fore.text(line, "li")
    for n in notes or []:
        fore.text(n, "warn")
    fore.table(_fmt(summary))
    fore.table(_fmt(metrics))
    caption = "Forecast error and coverage against the horizon" + (
        "; reliability of P(reach)" if reliability is not None else "")
    fore.blocks.append(("figure", Figure("backtest", caption, figure_png)))
    sections = [fore]
    if scores is not None:
        dec = Section("decisions", "Decision backtest")
        dec.text("Each group was decided from its pilots alone (budget limit: the group's final budget) and scored "
                 "on the finished runs: label regret = the pick's true cost to reach the target ÷ the cheapest "
                 "method's (capped at 2; a pick that never reached it scores 2); Brier score of P(reach the target "
                 "by the final budget) against whether the mean over runs did, beside ALDA's 0/1 forecast and the "
                 "base rate known in hindsight.")
        for line in decision_lines or []:
            dec.text(line, "li")
        dec.table(_fmt(scores))
        if regrets is not None:
            dec.text("Picks per group", "h3")
            dec.table(_fmt(regrets))
        if reliability is not None:
            dec.text("Reliability of P(reach)", "h3")
            dec.table(_fmt(reliability))
        sections.append(dec)
    return Report(title=f"palm-bayes backtest report ({__version__})", sections=sections)


# ---------------------------------------------------------------------------------------------- renderers

#: Tables sit in a ``.table-wrap`` box as wide as the page: long cells wrap at spaces (and, for long words such as
#: paths, anywhere), and a table that still does not fit scrolls sideways inside its box instead of widening the page.
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.table-wrap{max-width:100%;overflow-x:auto;margin:.6em 0}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:left;vertical-align:top;overflow-wrap:break-word}td{max-width:32em}th{background:#f3f3f3}
img{max-width:100%;height:auto}.warn{color:#8a4b00;background:#fff4e0;
padding:2px 6px}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}"""


def render_html(report: Report) -> str:
    """One self-contained HTML page: figures embedded as base64 PNG, no external resources."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(report.title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{e(report.title)}</h1>", "<nav><ul>"]
    out += [f'<li><a href="#{s.id}">{e(s.title)}</a></li>' for s in report.sections]
    out.append("</ul></nav>")
    for s in report.sections:
        out.append(f'<section id="{s.id}"><h2>{e(s.title)}</h2>')
        for kind, obj in s.blocks:
            if kind == "table":
                out.append(f'<div class="table-wrap">{obj.to_html(index=False, border=0, na_rep="")}</div>')
            elif kind == "figure":
                data = base64.b64encode(obj.png).decode()
                out.append(f'<figure><img alt="{e(obj.caption)}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{e(obj.caption)}</figcaption></figure>")
            elif kind == "h3":
                out.append(f"<h3>{e(obj)}</h3>")
            elif kind == "warn":
                out.append(f'<p class="warn">⚠ {e(obj)}</p>')
            elif kind == "li":
                out.append(f"<ul><li>{e(obj)}</li></ul>")
            else:
                out.append(f"<p>{e(obj)}</p>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def _md_table(df: pd.DataFrame) -> str:
    cells = df.astype(str).map(lambda v: v.replace("|", "\\|")) if len(df) else df.astype(str)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(report: Report, prefix: str = "report_") -> tuple[str, dict[str, bytes]]:
    """The same content as Markdown; returns (text, {png file name: bytes}) with the figures beside it."""
    out, files = [f"# {report.title}", ""], {}
    out += [f"- [{s.title}](#{s.id})" for s in report.sections] + [""]
    for s in report.sections:
        out += [f'<a id="{s.id}"></a>', f"## {s.title}", ""]
        for kind, obj in s.blocks:
            if kind == "table":
                out += [_md_table(obj.fillna("")), ""]
            elif kind == "figure":
                name = f"{prefix}{obj.name}.png"
                files[name] = obj.png
                out += [f"![{obj.caption}]({name})", "", f"*{obj.caption}*", ""]
            elif kind == "h3":
                out += [f"### {obj}", ""]
            elif kind == "warn":
                out += [f"> ⚠ {obj}", ""]
            elif kind == "li":
                out += [f"- {obj}"]
            else:
                out += [obj, ""]
        out.append("")
    return "\n".join(out), files
