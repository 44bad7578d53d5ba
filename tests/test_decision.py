"""Decisions: ALDA's point rules on hand-checked cases, and the Bayesian quantities on known curves."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import AL_CSV, simulate

from palm_bayes.curve import budget_curve
from palm_bayes.decision import (
    DECISION_COLUMNS,
    DETAIL_COLUMNS,
    CurveDraws,
    DecisionSettings,
    alda_budget,
    alda_select,
    alda_window,
    bayes_select,
    curve_decision,
    decide,
    expected_regret,
    p_cheapest,
    p_reach_by,
)
from palm_bayes.forecast import Forecaster

FAST = dict(draws=300, tune=400, chains=2, geometry="shape")


# ---------------------------------------------------------------------------------------------- ALDA's formulas


def test_alda_budget_is_the_inverse_rounded_up_to_whole_episodes():
    # A=0.9, δ=0.2, α=0, β=1: x = ln(1 - 0.6/0.9) / ln(0.8) = 4.92 episodes -> 5 episodes of 10 labels
    assert alda_budget(0.6, 0.9, 0.2, 0.0, 1.0, 10) == 50
    assert budget_curve(50, 0.9, 0.2, 0.0, 1.0, b=10) >= 0.6 > budget_curve(40, 0.9, 0.2, 0.0, 1.0, b=10)
    # α=1, β=2: x = sqrt(4.92) - 1 = 1.22 -> 2 episodes
    assert alda_budget(0.6, 0.9, 0.2, 1.0, 2.0, 10) == 20
    # a target met before the first label needs none; τ <= 0 needs none
    assert alda_budget(0.1, 0.9, 0.2, 3.0, 1.0, 10) == 0
    assert alda_budget(0.0, 0.9, 0.2, 0.0, 1.0, 10) == 0
    # τ = A_max is read just below the ceiling: finite, but far out
    assert 1e3 < alda_budget(0.9, 0.9, 0.2, 0.0, 1.0, 10) < np.inf
    # window: τ ± 0.05, the top capped 0.5 points below A_max (0.895 here)
    w = alda_window(0.85, 0.05, 0.9, 0.2, 0.0, 1.0, 10, margin=0.005)
    assert w == alda_budget(0.895, 0.9, 0.2, 0.0, 1.0, 10) - alda_budget(0.80, 0.9, 0.2, 0.0, 1.0, 10)
    assert np.isnan(alda_window(0.5, 0.05, 0.44, 0.2, 0.0, 1.0, 10, margin=0.005))  # band above the ceiling


def _rows(**cols):
    return pd.DataFrame(cols)


def test_alda_selection_rules():
    # C_eta: b and a are within 5% of the cheapest (a); c is not. The smallest window within C_eta wins (b),
    # although c has the smallest window overall. a's window is wider than the pick's: risky.
    g = alda_select(_rows(method=["a", "b", "c"], a_max=[0.9, 0.9, 0.9], feasible=[True, True, True],
                          b_abs=[100.0, 104.0, 200.0], deployment_window=[50.0, 30.0, 10.0]), eta=0.05)
    g = g.set_index("method")
    assert g.cost_competitive.tolist() == [True, True, False]
    assert g.alda_pick.tolist() == [False, True, False]
    assert g.risky.tolist() == [True, False, False]
    # eta = 0: only the cheapest is competitive
    g0 = alda_select(_rows(method=["a", "b"], a_max=[0.9, 0.9], feasible=[True, True], b_abs=[100.0, 104.0],
                           deployment_window=[50.0, 30.0]), eta=0.0).set_index("method")
    assert g0.alda_pick.tolist() == [True, False]
    # ties in W and B_abs: alphabetical
    gt = alda_select(_rows(method=["zeta", "alpha"], a_max=[0.9, 0.9], feasible=[True, True], b_abs=[100.0, 100.0],
                           deployment_window=[30.0, 30.0]), eta=0.05).set_index("method")
    assert gt.alda_pick.to_dict() == {"alpha": True, "zeta": False}
    # infeasible methods are never candidates; none feasible -> the highest ceiling, with that reason
    gi = alda_select(_rows(method=["a", "b"], a_max=[0.7, 0.8], feasible=[False, False], b_abs=[np.nan, np.nan],
                           deployment_window=[np.nan, np.nan]), eta=0.05).set_index("method")
    assert gi.alda_pick.to_dict() == {"a": False, "b": True}
    assert gi.alda_reason.iloc[0].startswith("no method feasible")
    gn = alda_select(_rows(method=["a"], a_max=[np.nan], feasible=[False], b_abs=[np.nan],
                           deployment_window=[np.nan]), eta=0.05)
    assert not gn.alda_pick.any()


# ---------------------------------------------------------------------------------------------- Bayesian pieces


def test_p_reach_is_monotone_and_counts_never_as_never():
    rng = np.random.default_rng(0)
    b_abs = np.where(rng.uniform(size=500) < 0.3, np.inf, rng.integers(1, 50, 500) * 20.0)
    grid = np.linspace(0, 2000, 101)
    p = p_reach_by(b_abs, grid)
    assert (np.diff(p) >= 0).all()
    assert p[-1] == pytest.approx(np.isfinite(b_abs).mean())  # the draws that never reach stay out


def test_p_cheapest_shares_ties_and_ignores_draws_nobody_reaches():
    b = np.array([[100, 200, np.inf, 100], [200, 100, np.inf, 100], [300, 300, np.inf, np.inf]], dtype=float)
    p = p_cheapest(b)
    np.testing.assert_allclose(p, [1.5 / 4, 1.5 / 4, 0.0])


def test_expected_regret_by_hand():
    # three joint draws of two methods' first-passage budgets; in the last one nobody reaches the target
    b = np.array([[10.0, 30.0, np.inf], [20.0, 10.0, np.inf]])
    np.testing.assert_allclose(expected_regret(b), [(1 + 2) / 2, (2 + 1) / 2])
    b = np.array([[10.0, 10.0], [15.0, np.inf]])
    np.testing.assert_allclose(expected_regret(b), [1.0, (1.5 + 2) / 2])  # never reaching scores the cap
    assert np.isnan(expected_regret(np.full((2, 3), np.inf))).all()


def test_bayes_pick_by_regret_then_reach():
    rows = _rows(method=["a", "b", "c"], p_reach=[0.90, 0.89, 0.5], expected_cost=[500.0, 300.0, 100.0],
                 p_feasible=[0.95, 0.95, 0.6], expected_regret=[1.4, 1.2, 1.2])
    g = bayes_select(rows, rule="regret").set_index("method")
    assert g.pick.to_dict() == {"a": False, "b": True, "c": False}  # lowest regret, tie to the higher P(reach)
    assert "regret" in g.pick_reason.iloc[0]
    g = bayes_select(rows.assign(p_reach=[0.0, 0.0, 0.0], expected_regret=np.nan), rule="regret").set_index("method")
    assert g.pick.to_dict() == {"a": True, "b": False, "c": False} and "P(A_max" in g.pick_reason.iloc[0]


def test_bayes_pick_prefers_reaching_then_cheaper_within_a_tie():
    rows = _rows(method=["a", "b", "c"], p_reach=[0.90, 0.89, 0.5], expected_cost=[500.0, 300.0, 100.0],
                 p_feasible=[0.95, 0.95, 0.6])
    g = bayes_select(rows, rule="reach").set_index("method")
    assert g.pick.to_dict() == {"a": False, "b": True, "c": False}  # 0.89 ties 0.90 (Monte Carlo), cheaper
    # with few effective draws the Monte Carlo error is larger, and so is the tie margin
    g = bayes_select(rows.assign(p_reach=[0.90, 0.84, 0.5], p_reach_se=[0.03, 0.03, 0.03]), rule="reach")
    g = g.set_index("method")
    assert g.pick.to_dict() == {"a": False, "b": True, "c": False}
    g = bayes_select(rows.assign(p_reach=[0.90, 0.84, 0.5], p_reach_se=[0.005, 0.005, 0.005]), rule="reach")
    g = g.set_index("method")
    assert g.pick.to_dict() == {"a": True, "b": False, "c": False}
    g = bayes_select(rows.assign(p_reach=[0.0, 0.0, 0.0]), rule="reach").set_index("method")
    assert g.pick.to_dict() == {"a": True, "b": False, "c": False} and "P(A_max" in g.pick_reason.iloc[0]


def _exact(A=0.9, delta=0.2, alpha=0.5, beta=1.0, n=200, b=10.0, now=80.0):
    """Draws that all equal one known curve (the posterior of a curve known exactly)."""
    one = np.ones(n)
    return CurveDraws(A * one, delta * one, alpha * one, beta * one, b=b, current_budget=now,
                      current_mean=float(budget_curve(now, A, delta, alpha, beta, b=b)))


def test_economics_optimum_matches_a_brute_force_grid():
    d = _exact()
    s = DecisionSettings(target=0.85, cost_per_label=0.2, value_per_point=30.0)
    row, _, _ = curve_decision(d, s, "fraction", max_budget=1000.0)
    budgets = np.arange(80.0, 1000.0 + 1e-9, 10.0)
    net = 30.0 * (budget_curve(budgets, 0.9, 0.2, 0.5, 1.0, b=10) - budget_curve(80.0, 0.9, 0.2, 0.5, 1.0, b=10)) \
        / 0.01 - 0.2 * (budgets - 80.0)
    assert row["best_budget"] == budgets[np.argmax(net)]
    assert row["net_value_best"] == pytest.approx(net.max())
    assert row["net_value_next"] == pytest.approx(net[1])
    assert row["best_budget_lower"] == row["best_budget_upper"] == row["best_budget"]  # no uncertainty here
    # B_abs of an exactly known curve is ALDA's inverse; the gain is the curve's increase over one episode
    assert row["b_abs_median"] == alda_budget(0.85, 0.9, 0.2, 0.5, 1.0, 10)
    gain = budget_curve(90.0, 0.9, 0.2, 0.5, 1.0, b=10) - budget_curve(80.0, 0.9, 0.2, 0.5, 1.0, b=10)
    assert row["gain_mean"] == pytest.approx(gain) and row["p_gain"] == float(gain >= 0.005)
    # a target above the ceiling: never reached, infinite budget and window
    row, _, _ = curve_decision(d, DecisionSettings(target=0.95), "fraction", max_budget=1000.0)
    assert row["p_feasible"] == row["p_reach"] == 0 and np.isinf(row["b_abs_median"]) and np.isinf(row["window_median"])


def test_reach_probability_agrees_with_the_true_curves():
    """Fitted on pilots of known curves: high where the true curve reaches τ well within the budget, low where
    A_max is clearly below τ; monotone in the budget."""
    params = [dict(A_max=0.9, delta=0.2, alpha=0.5, beta=1.0), dict(A_max=0.75, delta=0.25, alpha=0.5, beta=1.0)]
    df, _ = simulate(2, seed=21, n_budgets=8, params=params)
    fc = Forecaster(seed=2, **FAST).fit(df)
    # τ = 0.83: c00 reaches it at 110 labels, c01 never (A_max 0.75)
    result = decide(fc, DecisionSettings(target=0.83, max_budget=600.0))
    t = result.table.set_index("method")
    assert t.at["c00", "p_reach"] > 0.8 and t.at["c00", "verdict"] == "keep labelling"
    assert t.at["c01", "p_reach"] < 0.1 and t.at["c01", "p_feasible"] < 0.1 and t.at["c01", "verdict"] == "stop"
    assert t.pick.to_dict() == {"c00": True, "c01": False}
    assert t.at["c00", "p_cheapest"] > 0.9
    for _key, (budgets, p) in result.reach.items():
        assert (np.diff(budgets) > 0).all() and (np.diff(p) >= 0).all()
    # the same question asked of a target already met: answered, not an error
    low = decide(fc, DecisionSettings(target=0.5)).table
    assert (low.verdict == "already reached").all()
    assert list(low.columns) == DECISION_COLUMNS + DETAIL_COLUMNS


# ---------------------------------------------------------------------------------------------- command line

CLI_FAST = ["--draws", "200", "--tune", "300", "--chains", "2", "--geometry", "shape", "--jobs", "1"]


def test_decide_command_outputs_and_reuse_of_a_saved_posterior(cli, tmp_path):
    out = tmp_path / "d"
    code, stdout, err = cli("decide", AL_CSV, "--method", "random", "entropy", "--max-points", "6", "--target", "0.75",
                            "--cost-per-label", "1", "--value-per-point", "40", "--out", out, *CLI_FAST)
    assert code == 0, err
    for f in ("decision.csv", "decision.json", "decision.png", "posterior.nc"):
        assert (out / f).stat().st_size > 0
    t = pd.read_csv(out / "decision.csv")
    assert list(t.columns) == DECISION_COLUMNS + DETAIL_COLUMNS
    assert len(t) == 2 and t.pick.sum() == 1 and t.alda_pick.sum() == 1
    assert t.best_budget.notna().all() and t.p_reach.between(0, 1).all()
    assert "entropy: " in stdout and "random: " in stdout and "pick:" in stdout
    doc = json.loads((out / "decision.json").read_text())
    assert doc["settings"]["target"] == 0.75 and len(doc["p_reach_by_budget"]) == 2
    # decide again with another target from the saved fit: no sampling, same posterior file untouched
    before = (out / "posterior.nc").stat().st_mtime_ns
    code, _, err = cli("decide", out, "--target", "0.8", "--out", tmp_path / "e")
    assert code == 0, err
    assert "no new sampling" in err
    assert (out / "posterior.nc").stat().st_mtime_ns == before
    again = pd.read_csv(tmp_path / "e" / "decision.csv")
    assert (again.target == 0.8).all() and len(again) == 2
    assert (again.p_reach <= t.set_index("method").loc[again.method, "p_reach"].to_numpy() + 1e-12).all()


def test_decide_bad_inputs(cli, tmp_path):
    code, _, err = cli("decide", AL_CSV, "--target", "80", "--out", tmp_path, *CLI_FAST)
    assert code == 2 and "--target 80" in err and "fractions" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("decide", AL_CSV, "--target", "0.8", "--cost-per-label", "1", "--out", tmp_path, *CLI_FAST)
    assert code == 2 and "--value-per-point" in err
    code, _, err = cli("decide", AL_CSV, "--target", "0.8", "--max-budget", "-5", "--out", tmp_path, *CLI_FAST)
    assert code == 2 and "--max-budget -5" in err


def test_discrepancy_spreads_labels_to_reach_around_the_palm_answer():
    """A curve known exactly reaches τ at one budget; with the extrapolation discrepancy its mean curve may stray
    after the last observed budget, so P(reach by B) rises smoothly around that budget instead of jumping."""
    from dataclasses import replace

    d = _exact(n=4000, now=80.0)
    target = float(budget_curve(240.0, 0.9, 0.2, 0.5, 1.0, b=10))
    exact = d.budget_to_reach(target)
    assert np.all(exact == 240.0)
    wide = replace(d, discrepancy=0.02, seed=3)
    b_abs = wide.budget_to_reach(target, horizon=1000.0)
    by = p_reach_by(b_abs, np.array([79.0, 160.0, 240.0, 480.0]))
    assert by[0] == 0.0  # nothing is reached before the data end
    assert 0.05 < by[1] < by[2] < by[3] < 1.0 and 0.3 < by[2] < 0.9
    assert np.all(b_abs[np.isfinite(b_abs)] % 10 == 0)  # whole episodes
    early = replace(d, discrepancy=0.02, seed=3).budget_to_reach(float(budget_curve(60.0, 0.9, 0.2, 0.5, 1.0, b=10)))
    assert np.all(early == 60.0)  # reached inside the data: the discrepancy does not apply


def test_the_drift_brings_the_budget_to_reach_forward_and_raises_p_reach():
    """The drift carries each draw's mean curve up beyond the data: a target beyond the known curve's reach by the
    budget limit becomes reachable with some probability, and no draw reaches it later than without the drift."""
    from dataclasses import replace

    d = _exact(n=2000, now=80.0)
    target = float(budget_curve(400.0, 0.9, 0.2, 0.5, 1.0, b=10))
    plain = replace(d, discrepancy=0.02, seed=3).budget_to_reach(target, horizon=1000.0)
    lifted = replace(d, discrepancy=0.02, drift=0.2, seed=3).budget_to_reach(target, horizon=1000.0)
    limit = np.array([300.0])
    assert p_reach_by(lifted, limit)[0] > p_reach_by(plain, limit)[0] + 0.1
    assert np.all(lifted <= plain)  # the same paths (same seed), each carried up
