"""Backtest: pilots cut before the fit, one row per curve x cutoff x later budget, metrics, command line."""

import numpy as np
import pandas as pd
import pytest
from conftest import AL_CSV, simulate

from palm_bayes import data
from palm_bayes.backtest import (
    BACKTEST_COLUMNS,
    METRIC_COLUMNS,
    cross_validation,
    cutoff_budgets,
    describe,
    final_budget_summary,
    interval_score,
    performance_metrics,
)
from palm_bayes.errors import InputError
from palm_bayes.forecast import FORECAST_COLUMNS, Forecaster

# "shape": one compiled model for the whole file ("auto" would compile a second one for the low-draw warnings)
FAST = dict(draws=200, tune=200, chains=2, seed=5, geometry="shape")
FAST_CLI = ["--draws", "200", "--tune", "200", "--chains", "2", "--seed", "5", "--geometry", "shape", "--jobs", "1"]


def short_sim() -> pd.DataFrame:
    """Two simulated curves, budgets 10, 20, ...: c00 has 10 distinct budgets, c01 only 8."""
    df, _ = simulate(2, seed=3, n_runs=3, n_budgets=10)
    return data.validate(df[~((df.method == "c01") & (df.budget > 80))].reset_index(drop=True), "simulated")


@pytest.fixture(scope="module")
def sim():
    df = short_sim()
    made = []

    def factory():
        made.append(Forecaster(**FAST))
        return made[-1]

    return df, cross_validation(df, factory, cutoffs=[5, 7], level=0.9), made


def test_one_row_per_curve_cutoff_and_later_budget(sim):
    df, bt, made = sim
    assert list(bt.columns) == BACKTEST_COLUMNS
    assert BACKTEST_COLUMNS[5:5 + len(FORECAST_COLUMNS)] == FORECAST_COLUMNS
    assert len(made) == 2  # one fresh forecaster per cutoff, every curve in one fit
    assert len(bt) == (10 - 5) + (8 - 5) + (10 - 7) + (8 - 7)
    sizes = bt.groupby(["cutoff", "method"]).size().to_dict()
    assert sizes == {("K=5", "c00"): 5, ("K=5", "c01"): 3, ("K=7", "c00"): 3, ("K=7", "c01"): 1}
    assert (bt.last_pilot_budget == bt.pilot_budgets * 10.0).all()
    assert (bt.budget > bt.last_pilot_budget).all() and not bt.observed.any()
    np.testing.assert_allclose(bt.horizon, bt.budget / bt.last_pilot_budget)
    assert bt.set_index("method").n_budgets.groupby(level=0).first().to_dict() == {"c00": 10, "c01": 8}
    # truth: mean over runs in the full data; naive: the pilot's mean at its last budget
    means = df.groupby(["method", "budget"]).score.mean()
    np.testing.assert_allclose(bt.truth, [means[(m, b)] for m, b in zip(bt.method, bt.budget, strict=True)])
    np.testing.assert_allclose(bt.naive, [means[(m, b)] for m, b in zip(bt.method, bt.last_pilot_budget,
                                                                        strict=True)])
    assert (bt.n_truth_runs == 3).all()
    r = bt.iloc[-1]
    runs = df[(df.method == r.method) & (df.budget == r.budget)].score
    assert r.pred_cover == pytest.approx(((runs >= r.pred_lower) & (runs <= r.pred_upper)).mean())
    assert bt.status.isin(["ok", "warning"]).all() and (bt.divergences >= 0).all()


def test_no_leakage_from_budgets_after_the_cutoff(sim):
    df, bt, made = sim
    # the K=5 forecaster saw exactly each curve's first 5 budgets, nothing later
    seen = made[0].history
    assert seen.budget.max() == 50.0
    assert len(seen) == len(df[df.budget <= 50]) == 2 * 3 * 5
    # poison everything after the cutoff (0 for one curve, 1 for the other): same seed, identical forecasts
    poisoned = df.copy()
    late = poisoned.budget > 50
    poisoned.loc[late, "score"] = np.where(poisoned.loc[late, "method"] == "c00", 0.0, 1.0)
    again = cross_validation(poisoned, lambda: Forecaster(**FAST), cutoffs=[5], level=0.9)
    same = [c for c in BACKTEST_COLUMNS if c not in ("truth", "pred_cover")]
    clean = bt[bt.cutoff == "K=5"].reset_index(drop=True)
    pd.testing.assert_frame_equal(clean[same], again[same])
    assert set(again.truth) == {0.0, 1.0} and not np.allclose(clean.truth, again.truth)  # the poison was there


def hand_table() -> pd.DataFrame:
    """A small backtest table: K=5 with curve A (3 divergences) and a failed curve B; K=7 with curve A."""
    nan = np.nan
    cols = ["cutoff", "method", "horizon", "truth", "mean", "point", "naive", "lower", "upper", "pred_lower",
            "pred_upper", "pred_cover", "n_truth_runs", "status", "divergences"]
    rows = [
        ("K=5", "A", 1.2, 0.70, 0.72, 0.75, 0.68, 0.69, 0.75, 0.65, 0.80, 1.0, 5, "ok", 3),
        ("K=5", "A", 1.4, 0.74, 0.71, 0.70, 0.68, 0.70, 0.73, 0.66, 0.78, 0.5, 4, "ok", 3),
        ("K=5", "A", 2.5, 0.60, 0.66, 0.64, 0.68, 0.62, 0.70, 0.61, 0.75, 0.0, 2, "ok", 3),
        ("K=5", "A", 6.0, 0.80, 0.78, 0.79, 0.68, 0.74, 0.82, 0.70, 0.88, 1.0, 5, "ok", 3),
        ("K=5", "B", 1.2, 0.70, nan, 0.50, 0.60, nan, nan, nan, nan, nan, 5, "failed", nan),
        ("K=5", "B", 2.5, 0.71, nan, 0.50, 0.60, nan, nan, nan, nan, nan, 5, "failed", nan),
        ("K=7", "A", 1.1, 0.75, 0.76, 0.74, 0.73, 0.72, 0.79, 0.70, 0.82, 0.8, 5, "ok", 0),
        ("K=7", "A", 1.8, 0.77, 0.75, 0.78, 0.73, 0.71, 0.80, 0.69, 0.84, 0.6, 5, "ok", 0),
    ]
    bt = pd.DataFrame(rows, columns=cols).assign(dataset="d", model="m", last_pilot_budget=100.0, n_budgets=20)
    bt["budget"] = bt.horizon * 100.0
    bt["pilot_budgets"] = bt.cutoff.str[2:].astype(int)
    return bt


def test_metrics_match_a_recomputation_by_hand():
    bt = hand_table()
    m = performance_metrics(bt, level=0.9).set_index(["cutoff", "horizon_bin"])
    assert list(m.reset_index().columns) == METRIC_COLUMNS
    assert list(m.index) == [("K=5", "(1, 1.5]"), ("K=5", "(2, 3]"), ("K=5", "(5, inf]"), ("K=5", "all"),
                             ("K=7", "(1, 1.5]"), ("K=7", "(1.5, 2]"), ("K=7", "all")]
    # K=5, horizons (1, 1.5]: curve A's first two rows; B's row is a failure, not an error of 0.5
    r = m.loc[("K=5", "(1, 1.5]")]
    assert r.n == 2 and r.failed_curves == 1 and r.divergences == 3  # divergences once per curve, not per row
    np.testing.assert_allclose(
        [r.mae_mean, r.rmse_mean, r.mae_point, r.rmse_point, r.mae_naive, r.rmse_naive],
        [(0.02 + 0.03) / 2, np.sqrt((0.02**2 + 0.03**2) / 2), (0.05 + 0.04) / 2, np.sqrt((0.05**2 + 0.04**2) / 2),
         (0.02 + 0.06) / 2, np.sqrt((0.02**2 + 0.06**2) / 2)])
    assert r.coverage == 0.5  # 0.70 in [0.69, 0.75]; 0.74 above 0.73
    np.testing.assert_allclose([r.width, r.pred_width], [(0.06 + 0.03) / 2, (0.15 + 0.12) / 2])
    np.testing.assert_allclose(r.pred_coverage, (1.0 * 5 + 0.5 * 4) / 9)
    np.testing.assert_allclose(r.interval_score, (0.06 + (0.03 + 20 * 0.01)) / 2)  # 2/α = 20
    r = m.loc[("K=5", "(2, 3]")]  # truth 0.02 below the interval
    assert r.n == 1 and r.failed_curves == 1 and r.coverage == 0.0
    np.testing.assert_allclose([r.mae_mean, r.interval_score], [0.06, 0.08 + 20 * 0.02])
    r = m.loc[("K=5", "all")]
    assert r.n == 4 and r.failed_curves == 1 and r.divergences == 3 and r.coverage == 0.5
    np.testing.assert_allclose([r.mae_mean, r.mae_naive], [np.mean([0.02, 0.03, 0.06, 0.02]),
                                                           np.mean([0.02, 0.06, 0.08, 0.12])])
    np.testing.assert_allclose(r.pred_coverage, (5 * 1.0 + 4 * 0.5 + 2 * 0.0 + 5 * 1.0) / 16)
    np.testing.assert_allclose(r.interval_score, np.mean([0.06, 0.03 + 0.2, 0.08 + 0.4, 0.08]))
    r = m.loc[("K=7", "all")]
    assert r.n == 2 and r.failed_curves == 0 and r.divergences == 0 and r.coverage == 1.0
    np.testing.assert_allclose(r.rmse_point, np.sqrt((0.01**2 + 0.01**2) / 2))
    np.testing.assert_allclose(interval_score([0.2, 0.2, 0.2], [0.4, 0.4, 0.4], [0.1, 0.3, 0.5], 0.5),
                               [0.2 + 4 * 0.1, 0.2, 0.2 + 4 * 0.1])
    # the final budget of each curve, and the sentence (errors in accuracy points)
    s = final_budget_summary(bt).set_index("cutoff")
    assert s.loc["K=5", "scored"] == 1 and s.loc["K=5", "failed_curves"] == 1
    np.testing.assert_allclose(s.loc["K=5", ["mae_mean", "mae_point", "mae_naive"]].astype(float),
                               [0.02, 0.01, 0.12])
    line = describe(final_budget_summary(bt), "fraction", 0.9)[0]
    assert line.startswith("K=5: from 5 of 20 budgets: final-budget error 2.0 points (point fit 1.0, no-change 12.0)")
    assert "90% intervals held the truth 50% of the time" in line and "1 curve(s) failed" in line


def test_cutoff_budgets_per_curve_and_errors():
    df = short_sim()  # 10 and 8 distinct budgets
    plan = cutoff_budgets(df, fractions=[0.5, 0.45])
    assert list(plan) == ["F=0.5", "F=0.45"]
    assert list(plan["F=0.5"].values()) == [5, 4] and list(plan["F=0.45"].values()) == [5, 4]  # half rounds up
    assert set(cutoff_budgets(df, cutoffs=[6, 4, 6])) == {"K=6", "K=4"}
    for kwargs, words in [
        (dict(cutoffs=[3]), "--cutoffs 3"),
        (dict(cutoffs=[8]), "--cutoffs 8: curve sim/m/c01 has 8 distinct budgets, so nothing would be left"),
        (dict(fractions=[0.4]), "--cutoff-fractions 0.4: curve sim/m/c01 has 8 distinct budgets, so its pilot "
                                "would hold 3"),
        (dict(), r"--cutoff-fractions 0.25 \(the default is 0.25 0.5 0.75\): curve sim/m/c00"),
        (dict(fractions=[0.97]), "would hold all of them"),
        (dict(fractions=[1.0]), "--cutoff-fractions 1: expected a fraction"),
        (dict(cutoffs=[5], fractions=[0.5]), "not both"),
    ]:
        with pytest.raises(InputError, match=words):
            cutoff_budgets(df, **kwargs)


@pytest.mark.parametrize("flags, words", [
    (["--cutoffs", "3"], "--cutoffs 3: expected whole numbers of at least 4"),
    (["--cutoffs", "6", "20"], "--cutoffs 20: curve Yeast/SVC_RBF/random has 20 distinct budgets"),
    (["--cutoff-fractions", "0"], "--cutoff-fractions 0: expected a fraction strictly between 0 and 1"),
    (["--cutoff-fractions", "1.2"], "--cutoff-fractions 1.2: expected a fraction"),
    (["--cutoff-fractions", "0.1"], "so its pilot would hold 2 (expected at least 4"),
    (["--cutoffs", "6", "--cutoff-fractions", "0.5"], "not both"),
    (["--max-points", "6"], "--max-points 6: backtest chooses the pilots itself"),
    (["--upto", "100"], "--upto 100: backtest chooses the pilots itself"),
    (["--level", "0.9", "0.5"], "backtest scores one interval level"),
])
def test_bad_cutoffs_exit_2_with_one_line(cli, tmp_path, flags, words):
    code, out, err = cli("backtest", AL_CSV, "--method", "random", *flags, "--out", tmp_path / "o", *FAST_CLI)
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert not (tmp_path / "o").exists()  # stopped before creating outputs, let alone sampling


def test_cli_refuses_to_clobber_before_sampling(cli, tmp_path):
    (tmp_path / "metrics.csv").write_text("mine\n")
    code, _, err = cli("backtest", AL_CSV, "--method", "random", "--out", tmp_path, *FAST_CLI)
    assert code == 2 and "metrics.csv: exists and was not written by palm-bayes" in err
    assert (tmp_path / "metrics.csv").read_text() == "mine\n" and not (tmp_path / "backtest.csv").exists()


def test_cli_writes_three_files_and_one_sentence_per_cutoff(cli, tmp_path):
    code, out, err = cli("backtest", AL_CSV, "--method", "random", "--cutoff-fractions", "0.25", "0.4",
                         "--out", tmp_path, *FAST_CLI)
    assert code == 0, err
    bt = pd.read_csv(tmp_path / "backtest.csv")
    assert list(bt.columns) == BACKTEST_COLUMNS
    assert len(bt) == (20 - 5) + (20 - 8)  # 0.25 and 0.4 of 20 budgets: pilots of 5 and 8
    assert bt.groupby("cutoff").pilot_budgets.first().to_dict() == {"F=0.25": 5, "F=0.4": 8}
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics.columns) == METRIC_COLUMNS
    assert metrics[metrics.horizon_bin == "all"].cutoff.tolist() == ["F=0.25", "F=0.4"]
    assert (metrics[metrics.horizon_bin == "all"].n == [15, 12]).all()
    assert (tmp_path / "backtest.png").read_bytes()[:4] == b"\x89PNG"
    sentences = [line for line in err.splitlines() if line.startswith(("F=0.25:", "F=0.4:"))]
    assert len(sentences) == 2, err
    assert sentences[0].startswith("F=0.25: from 5 of 20 budgets: final-budget error ")
    assert all(" points (point fit " in s and "90% intervals held the truth" in s for s in sentences)
    assert out == ""
    code, _, err = cli("backtest", AL_CSV, "--method", "random", "--cutoffs", "5", "--out", tmp_path, "--quiet",
                       *FAST_CLI)
    assert code == 0 and err == ""  # our own files are rewritten; --quiet prints nothing
    assert len(pd.read_csv(tmp_path / "backtest.csv")) == 15
