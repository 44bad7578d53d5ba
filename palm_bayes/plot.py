"""Figures. Plotting only: every function takes computed results and returns a Matplotlib figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (and none on servers or CI)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


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
    fig.tight_layout()
    return fig
