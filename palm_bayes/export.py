"""PALM.py-compatible output folders: ``palm_params.json``, ``palm_params.csv``, ``y_avg.npy``, ``y_fit.npy``,
``palm_fit.png`` — what PALM.py writes and what ALDA's advisor reads back."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import __version__
from .data import mean_curve
from .outputs import OutputDir
from .plot import plot_point_fit
from .pointfit import PointFit, palm_py_average

#: PALM.py's ``palm_params.csv`` columns, in its order.
PALM_PY_CSV_COLUMNS = ["dataset", "model", "method", "episodes", "mode", "budget_size",
                       "A_max", "delta", "alpha", "beta"]
OUTPUT_FILES = ("palm_params.json", "palm_params.csv", "y_avg.npy", "y_fit.npy", "palm_fit.png")


def mode_label(fit: PointFit, x_mode: str = "episodes") -> str:
    """PALM.py's ``mode`` string for a fit (palm-bayes' own wording for robust fits)."""
    if fit.mode == "palm.py":
        return "PALM (episodes)" if x_mode == "episodes" else f"PALM (cumulative-normalized, b={fit.b:g})"
    return f"PALM robust multistart (x = B/b, b={fit.b:g})"


def fitted_average(rows: pd.DataFrame, fit: PointFit, num_samples: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The average a fit describes, and where the fit evaluates it: PALM.py's ``y_avg`` at episode k ↔ k·b for
    ``palm.py`` fits (so ``fit.predict`` gives the curve at PALM.py's x = k), the per-budget mean over all runs
    at its budgets for ``robust`` fits."""
    if fit.mode == "palm.py":
        y = palm_py_average(rows, num_samples)
        return np.arange(1, len(y) + 1) * fit.b, y
    mc = mean_curve(rows)
    return mc["budget"].to_numpy(dtype=float), mc["mean"].to_numpy(dtype=float)


def episode_budgets(rows: pd.DataFrame, n: int) -> np.ndarray:
    """The labels behind each of the first ``n`` episodes PALM.py averages: per episode, the mean over runs of
    each run's k-th budget (PALM.py averages by position; runs with the same budgets give those budgets)."""
    runs = [g.sort_values("budget")["budget"].to_numpy(dtype=float)[:n] for _, g in rows.groupby("run", sort=False)]
    return np.stack(runs).mean(axis=0)


def measured_budgets(rows: pd.DataFrame, fit: PointFit, fit_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(budgets in labels, x the fit used) of each entry of ``y_avg``/``y_fit``, from where
    :func:`fitted_average` evaluates the fit (``fit_at``): for ``palm.py`` fits the runs' budgets at episodes
    1..N and x = 1..N; for ``robust`` fits the distinct budgets and x = B/b."""
    if fit.mode == "palm.py":
        return episode_budgets(rows, len(fit_at)), np.arange(1, len(fit_at) + 1, dtype=float)
    return fit_at, fit_at / fit.b


def point_fit_figure(key: tuple[str, str, str], rows: pd.DataFrame, fit: PointFit, *, scale: str,
                     num_samples: int | None, x_mode: str = "episodes",
                     average: tuple[np.ndarray, np.ndarray] | None = None):
    """``palm_fit.png``: the runs, the fitted average and the fit, all at the labels actually spent.

    A ``palm.py`` fit lives on PALM.py's episode index 1..N, not on the budget axis; its average and its curve
    are drawn at the budget of each episode (the curve between episodes k and k+1 between their budgets), so
    they sit on the runs whatever ``--budget_size`` says. ``average`` is :func:`fitted_average`'s result when
    the caller has it already.
    """
    fit_at, y_avg = average if average is not None else fitted_average(rows, fit, num_samples)
    budgets, x = measured_budgets(rows, fit, fit_at)
    t = np.linspace(x.min(), x.max(), 200)  # the fit's own x
    where = np.interp(t, x, budgets)  # ... placed at the budgets those x stand for
    title = f"{key[0]} · {key[1]} · {key[2]}\n{mode_label(fit, x_mode)}"
    if fit.mode == "palm.py":
        title += " · fitted on episode 1..N, drawn at each episode's budget"
    return plot_point_fit(rows, where, fit.predict(t * fit.b), avg=(budgets, y_avg), scale=scale, title=title)


def params_record(key: tuple[str, str, str], fit: PointFit, episodes: int, x_mode: str = "episodes") -> dict:
    """One ``palm_params.csv`` row (PALM.py's columns)."""
    dataset, model, method = key
    return {"dataset": dataset, "model": model, "method": method, "episodes": episodes,
            "mode": mode_label(fit, x_mode), "budget_size": fit.b, **fit.params}


def write_palm_py_folder(
    out: OutputDir,
    prefix: str,
    key: tuple[str, str, str],
    rows: pd.DataFrame,
    fit: PointFit,
    *,
    scale: str,
    run_files: list[str],
    num_samples: int | None,
    x_mode: str = "episodes",
) -> dict:
    """Write the five PALM.py output files for one curve under ``out/prefix`` and return the JSON record."""
    fit_at, y_avg = fitted_average(rows, fit, num_samples)
    y_fit = fit.predict(fit_at)
    budgets, x = measured_budgets(rows, fit, fit_at)
    rec = params_record(key, fit, len(y_avg), x_mode)
    meta = {
        **{k: rec[k] for k in ("dataset", "model", "method", "episodes", "mode", "budget_size")},
        **fit.params,
        "run_files": run_files,
        # palm-bayes extras (PALM.py's readers ignore unknown keys)
        "fit_mode": fit.mode,
        "x_axis": "episode index 1..N" if fit.axis == "episode_index" else "B / b",
        # labels spent at each y_avg / y_fit entry, and the x the fit evaluated there (y_fit = curve(x))
        "budgets": budgets.tolist(),
        "x": x.tolist(),
        "score_scale": scale,
        "runs": int(rows["run"].nunique()),
        "sse": fit.sse,
        "rmse": fit.rmse,
        "converged": fit.success,
        "optimizer_message": fit.message,
        # parameters the data do not identify (at a bound of the fit, or flat): read the curve, not these numbers
        "unidentified": list(fit.unidentified or []),
        "identification_note": fit.note,
        "palm_bayes_version": __version__,
    }
    p = f"{prefix}/" if prefix else ""
    out.write_json(f"{p}palm_params.json", meta)
    out.write_csv(f"{p}palm_params.csv", pd.DataFrame([rec])[PALM_PY_CSV_COLUMNS])
    out.write_npy(f"{p}y_avg.npy", y_avg)
    out.write_npy(f"{p}y_fit.npy", y_fit)
    fig = point_fit_figure(key, rows, fit, scale=scale, num_samples=num_samples, x_mode=x_mode,
                           average=(fit_at, y_avg))
    out.write_figure(f"{p}palm_fit.png", fig)
    return meta
