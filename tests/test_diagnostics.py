"""Sampler health per sampler run: a pooled group's methods share one run, so one warning and one count."""

import numpy as np
import pandas as pd
from conftest import AL_CSV

from palm_bayes import diagnostics
from palm_bayes.backtest import final_budget_summary, performance_metrics


def _diag() -> pd.DataFrame:
    shared = "27 divergent transition(s): the posterior may be biased; raise --tune or inspect the curve"
    return pd.DataFrame({
        "dataset": ["D"] * 4, "model": ["M", "M", "M", "N"], "method": ["a", "b", "c", "a"],
        "status": ["warning", "warning", "warning", "ok"], "divergences": [27, 27, 27, 0],
        "pooling": ["ceiling", "ceiling", "ceiling", "none"], "max_r_hat": [1.002, 1.03, 1.001, 1.0],
        "min_ess_bulk": [900.0, 350.0, 1200.0, 2000.0],
        "message": [shared, f"{shared}; --a-max-below 0.7 is below the best observed mean", shared, ""]})


def test_a_pooled_group_is_one_sampler_run_with_one_message():
    runs = diagnostics.sampler_runs(_diag())
    assert runs["sampler_run"].tolist() == ["D/M (pooled)", "D/N/a"]
    group = runs.iloc[0]
    assert group.methods == "a, b, c" and group.curves == 3 and group.divergences == 27
    assert group.label == "D/M (one joint fit of a, b, c)" and group.status == "warning"
    assert group.message.count("27 divergent") == 1
    assert "R-hat > 1.01 for the group's parameters (1.030)" in group.message and "(350)" in group.message
    assert runs.iloc[1].status == "ok" and runs.iloc[1].label == "D/N/a"


def test_backtest_counts_a_groups_divergences_once():
    diag = _diag()
    rows = diag.assign(sampler_run=diagnostics.sampler_run_ids(diag), cutoff="K=5", budget=100.0, horizon=2.0,
                       pilot_budgets=5, n_budgets=9, truth=0.8, n_truth_runs=3, mean=0.79, point=0.78,
                       naive=0.75, lower=0.7, upper=0.9, pred_lower=0.6, pred_upper=0.95, pred_cover=1.0)
    summary = final_budget_summary(rows).iloc[0]
    assert summary.divergences == 27 and summary.warning_curves == 3 and summary.warning_runs == 1
    metrics = performance_metrics(rows, level=0.9)
    assert (metrics["divergences"] == 27).all()


def test_forecast_prints_one_warning_line_per_pooled_group(cli, tmp_path, monkeypatch):
    """Every run misses an (impossible) ESS threshold: the joint fit of two methods warns once, naming both."""
    monkeypatch.setattr(diagnostics, "ESS_MIN", 10**9)
    code, _, err = cli("forecast", AL_CSV, "--method", "random", "entropy", "--max-points", "6",
                       "--pooling", "ceiling", "--geometry", "shape", "--draws", "100", "--tune", "150",
                       "--chains", "2", "--out", tmp_path)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert "one joint fit of" in warnings[0] and "random" in warnings[0] and "entropy" in warnings[0]
    assert warnings[0].count("ESS_bulk < ") == 1
    diag = pd.read_csv(tmp_path / "diagnostics.csv")
    assert (diag.status == "warning").sum() == 2 and np.all(diag.pooling == "ceiling")
