"""Decision backtest: outcomes from the finished runs, decisions from the pilots only, scores, command line; and the
measured P(reach) the decisions are scored on."""

import numpy as np
import pandas as pd
import pytest
from conftest import AL_CSV, simulate

from palm_bayes import data
from palm_bayes.backtest import fit_cutoffs
from palm_bayes.curve import budget_curve
from palm_bayes.decision import CurveDraws, measurement_budgets
from palm_bayes.decision_backtest import (
    DECISION_BACKTEST_COLUMNS,
    DECISION_SCORE_COLUMNS,
    REGRET_CAP,
    RELIABILITY_COLUMNS,
    decision_backtest,
    decision_scores,
    group_regrets,
    label_regret,
    reliability_table,
    true_costs,
)
from palm_bayes.forecast import Forecaster

FAST = dict(draws=200, tune=200, chains=2, seed=5, geometry="shape", pooling="none")
FAST_CLI = ["--draws", "200", "--tune", "200", "--chains", "2", "--seed", "5", "--geometry", "shape", "--jobs", "1",
            "--pooling", "none"]
#: Columns of the decision that must not depend on anything after the cutoff.
DECIDED = ["cutoff", "target_label", "dataset", "model", "method", "target", "final_budget", "p_reach", "p_feasible",
           "p_cheapest", "expected_cost", "expected_regret", "pick", "alda_pick", "alda_reach", "verdict", "status"]


def group(rows: dict[str, list[list[float]]], budgets: list[float]) -> pd.DataFrame:
    """A finished group: per method a list of runs' scores at ``budgets``."""
    frames = [pd.DataFrame({"dataset": "d", "model": "m", "method": method, "run": str(r), "budget": budgets,
                            "score": y}) for method, runs in rows.items() for r, y in enumerate(runs)]
    return data.validate(pd.concat(frames, ignore_index=True), "hand")


def test_true_costs_and_label_regret_by_hand():
    g = group({"fast": [[0.5, 0.8, 0.8, 0.8], [0.6, 0.8, 0.9, 0.9]],  # means 0.55 0.80 0.85 0.85
               "slow": [[0.4, 0.5, 0.7, 0.9], [0.4, 0.5, 0.8, 0.9]],  # means 0.40 0.50 0.75 0.90
               "flat": [[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]}, [10, 20, 30, 40])
    assert true_costs(g, 0.8) == {"fast": 20.0, "slow": 40.0, "flat": np.inf}
    costs = true_costs(g, 0.8)
    assert label_regret("fast", costs) == 1.0
    assert label_regret("slow", costs) == 2.0
    assert label_regret("flat", costs) == REGRET_CAP and label_regret("", costs) == REGRET_CAP
    assert np.isnan(label_regret("fast", true_costs(g, 0.95)))  # nobody reached it: nothing to regret
    assert label_regret("slow", {"fast": 20.0, "slow": 30.0}) == pytest.approx(1.5)


def test_measurement_budgets_continue_the_observed_spacing():
    np.testing.assert_array_equal(measurement_budgets([10, 20, 30], 70, 10), [40, 50, 60, 70])
    np.testing.assert_array_equal(measurement_budgets([10, 20, 30], 65, 10), [40, 50, 60, 65])
    geo = measurement_budgets([16, 32, 64], 600, 16)  # doubling anchors: 128, 256, 512, then the limit
    np.testing.assert_array_equal(geo, [128, 256, 512, 600])
    assert len(measurement_budgets([10, 20, 30], 30, 10)) == 0
    assert len(measurement_budgets(np.arange(1, 11) * 10.0, 1e6, 10)) <= 400


def test_measured_reach_matches_simulated_measurements():
    """With the parameters known exactly, P(reach) is the share of simulated measured means (R runs, noise sd σ
    at every later budget) that are at τ by the budget limit."""
    A, delta, alpha, beta, b, sigma, R = 0.80, 0.2, 0.5, 1.0, 10.0, 0.02, 3
    seen = np.arange(1, 7) * b
    n = 4000
    one = np.ones(n)
    d = CurveDraws(A * one, delta * one, alpha * one, beta * one, b=b, current_budget=seen[-1],
                   current_mean=float(budget_curve(seen[-1], A, delta, alpha, beta, b=b)), seed=11,
                   noise_sd=lambda B: np.full((n, len(B)), sigma), n_runs=R, observed_budgets=seen)
    target, limit = 0.785, 150.0
    reach, grid = d.measured_reach(target, limit)
    np.testing.assert_array_equal(grid, np.arange(70, 151, 10))
    p = float(np.mean(reach <= limit))
    rng = np.random.default_rng(0)
    mu = budget_curve(grid, A, delta, alpha, beta, b=b)
    sims = mu[None, :] + sigma * rng.standard_normal((20000, R, len(grid))).mean(axis=1)
    truth = float(np.mean((sims >= target).any(axis=1)))
    assert 0.05 < truth < 0.95  # a case where the noise decides
    assert p == pytest.approx(truth, abs=4 * np.sqrt(truth * (1 - truth) / n))
    assert float(budget_curve(limit, A, delta, alpha, beta, b=b)) < target  # the noise-free curve never gets there


@pytest.fixture(scope="module")
def finished():
    """Three simulated methods of one group, 12 budgets, decided from pilots of 5 budgets."""
    df, _ = simulate(3, seed=4, n_runs=3, n_budgets=12)
    fits = fit_cutoffs(df, lambda: Forecaster(**FAST), cutoffs=[5])
    return df, fits


def test_decision_backtest_rows_and_outcomes(finished):
    df, fits = finished
    top = float(df.groupby(["method", "budget"]).score.mean().groupby("method").last().max())
    t = decision_backtest(df, fits, targets=[0.8], target_fractions=[0.99, 1.0])
    assert list(t.columns) == DECISION_BACKTEST_COLUMNS
    assert len(t) == 3 * 3 and set(t.target_label) == {"target=0.8", "fraction=0.99", "fraction=1"}
    assert t.groupby("target_label").pick.sum().eq(1).all() and t.groupby("target_label").alda_pick.sum().eq(1).all()
    assert t.set_index("target_label").target.groupby(level=0).first()["fraction=1"] == pytest.approx(top)
    assert (t.final_budget == 120.0).all() and t.p_reach.between(0, 1).all()
    means = df.groupby(["method", "budget"]).score.mean()
    for r in t.itertuples():  # outcomes from the finished runs' mean curves
        m = means[r.method]
        hit = m[m >= r.target - 1e-12]
        assert r.true_cost == (hit.index.min() if len(hit) else np.inf)
        assert r.reached == float(len(hit) > 0)
    assert t[t.target_label == "fraction=1"].reached.sum() >= 1  # the best method reaches its own final mean


def test_scores_after_the_cutoff_cannot_change_a_decision(finished):
    df, fits = finished
    clean = decision_backtest(df, fits, targets=[0.75, 0.85])
    poisoned = df.copy()
    late = poisoned.budget > 50
    poisoned.loc[late, "score"] = np.where(poisoned.loc[late, "method"] == "c00", 0.0, 1.0)
    refit = fit_cutoffs(poisoned, lambda: Forecaster(**FAST), cutoffs=[5])
    again = decision_backtest(poisoned, refit, targets=[0.75, 0.85])
    pd.testing.assert_frame_equal(clean[DECIDED], again[DECIDED])
    assert (again.loc[again.method == "c00", "reached"] == (clean.loc[clean.method == "c00", "true_cost"] <= 50)
            ).all()  # the poison was there: c00 can only have reached a target inside its pilot
    assert (again.loc[again.method != "c00", "reached"] == 1).all()


def hand_decisions() -> pd.DataFrame:
    """Two groups, one target: g1 picks the cheapest (regret 1), ALDA a method twice as slow; in g2 nobody reaches."""
    rows = [("g1", "a", 0.9, True, False, 1.0, 20.0, 1.0, 0.7), ("g1", "b", 0.6, False, True, 1.0, 40.0, 1.0, 0.2),
            ("g1", "c", 0.2, False, False, 0.0, np.inf, 0.0, 0.1),
            ("g2", "a", 0.3, True, True, 0.0, np.inf, 0.0, 1.0), ("g2", "b", np.nan, False, False, 0.0, np.inf, 0.0,
                                                                   np.nan)]
    t = pd.DataFrame(rows, columns=["dataset", "method", "p_reach", "pick", "alda_pick", "alda_reach", "true_cost",
                                    "reached", "p_cheapest"])
    return t.assign(cutoff="K=5", target_label="target=0.8", model="m", target=0.8)


def test_scores_and_reliability_match_a_recomputation_by_hand():
    t = hand_decisions()
    r = group_regrets(t).set_index("dataset")
    assert r.loc["g1", ["hindsight_best", "pick", "alda_pick"]].tolist() == ["a", "a", "b"]
    assert r.loc["g1", "regret_bayes"] == 1.0 and r.loc["g1", "regret_alda"] == 2.0
    assert np.isnan(r.loc["g2", "regret_bayes"])
    s = decision_scores(t).iloc[0]
    assert list(decision_scores(t).columns) == DECISION_SCORE_COLUMNS
    assert (s.groups, s.scored_groups, s.curves) == (2, 1, 4)  # g2/b has no posterior
    p, y = np.array([0.9, 0.6, 0.2, 0.3]), np.array([1.0, 1.0, 0.0, 0.0])
    assert s.brier_bayes == pytest.approx(np.mean((p - y) ** 2))
    assert s.brier_alda == pytest.approx(np.mean((np.array([1.0, 1.0, 0.0, 0.0]) - y) ** 2))
    assert s.brier_base_rate == pytest.approx(0.25) and s.share_reached == 0.5 and s.agree == 0.5
    # P(cheapest) only where some method reached the target (g1): a won
    assert s.brier_cheapest == pytest.approx(0.3**2 + 0.2**2 + 0.1**2)
    assert s.brier_cheapest_uniform == pytest.approx((2 / 3) ** 2 + 2 * (1 / 3) ** 2)
    rel = reliability_table(t)
    assert list(rel.columns) == RELIABILITY_COLUMNS and rel.n.sum() == 4
    assert rel.set_index("bin").loc["[0.9, 1.0]", "share_reached"] == 1.0
    assert rel.set_index("bin").loc["[0.2, 0.3)", "n"] == 1 and rel.set_index("bin").loc["[0.3, 0.4)", "n"] == 1


@pytest.mark.parametrize("flags, words", [
    (["--target-fraction", "1.5"], "--target-fraction 1.5: expected a share of the best final mean accuracy in (0, 1]"),
    (["--target", "85"], "--target 85: the scores are fractions"),
    (["--target", "0.8", "--eta", "-1"], "--eta -1: expected 0 or more"),
])
def test_bad_targets_exit_2_with_one_line_before_sampling(cli, tmp_path, flags, words):
    code, out, err = cli("backtest", AL_CSV, "--method", "random", *flags, "--out", tmp_path / "o", *FAST_CLI)
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert not (tmp_path / "o").exists()


def test_cli_decision_backtest_writes_tables_figure_and_report(cli, tmp_path):
    code, _, err = cli("backtest", AL_CSV, "--method", "random", "margin_sampling", "--cutoffs", "6",
                       "--target-fraction", "0.98", "1", "--out", tmp_path, *FAST_CLI)
    assert code == 0, err
    t = pd.read_csv(tmp_path / "decisions.csv")
    assert list(t.columns) == DECISION_BACKTEST_COLUMNS and len(t) == 2 * 2
    scores = pd.read_csv(tmp_path / "decision_metrics.csv")
    assert list(scores.columns) == DECISION_SCORE_COLUMNS and scores.target_label.tolist() == ["fraction=0.98",
                                                                                                 "fraction=1"]
    assert len(pd.read_csv(tmp_path / "decision_groups.csv")) == 2
    assert pd.read_csv(tmp_path / "reliability.csv").n.sum() == 4
    assert (tmp_path / "backtest.png").read_bytes()[:4] == b"\x89PNG"
    html = (tmp_path / "backtest_report.html").read_text()
    assert "Decision backtest" in html and "Reliability of P(reach)" in html and "data:image/png;base64," in html
    assert (tmp_path / "backtest_report_backtest.png").exists()
    assert "backtest_report_backtest.png" in (tmp_path / "backtest_report.md").read_text()
    lines = [line for line in err.splitlines() if line.startswith("K=6, fraction=")]
    assert len(lines) == 2 and all("label regret of the pick" in s and "Brier score of P(reach)" in s for s in lines)
