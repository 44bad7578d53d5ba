"""Forecasts from a mixture of curve families (palm_bayes.ensemble through the Forecaster)."""

import numpy as np
import pandas as pd
import pytest
from conftest import AL_CSV, simulate

from palm_bayes.curve import budget_curve
from palm_bayes.decision import CurveDraws, DecisionSettings, decide
from palm_bayes.ensemble import CurveMixture, check_families, draw_counts, spread
from palm_bayes.errors import InputError
from palm_bayes.families import family_curve
from palm_bayes.forecast import Forecaster

SMALL = dict(draws=150, tune=200, chains=2, seed=3, pooling="none", discrepancy=0.0, drift=0.0)


@pytest.fixture(scope="module")
def mixed():
    df, _ = simulate(2, seed=11, n_budgets=8)
    return Forecaster(families="palm,mmf4", **SMALL).fit(df)


def test_draw_counts_add_up_and_follow_the_weights():
    assert draw_counts({"palm": 0.5, "mmf4": 0.5}, 301) == {"palm": 151, "mmf4": 150}
    c = draw_counts({"a": 0.2, "b": 0.3, "c": 0.5}, 1000)
    assert c == {"a": 200, "b": 300, "c": 500}
    assert sum(draw_counts({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 100).values()) == 100
    i = spread(3, 10)
    assert list(i) == [0, 3, 6] and len(np.unique(spread(50, 50))) == 50


def test_families_are_checked():
    assert check_families("palm, mmf4") == ("palm", "mmf4")
    for bad, words in (("palm,foo", "unknown curve family 'foo'"), ("mmf4", "includes palm"),
                       ("palm,palm", "named twice")):
        with pytest.raises(InputError, match=words):
            Forecaster(families=bad)
    with pytest.raises(InputError, match="Normal likelihood"):
        Forecaster(families="palm,mmf4", likelihood="student")
    with pytest.raises(InputError, match="ceiling only"):
        Forecaster(families="palm,pow4", pooling="full")


def test_the_bands_are_the_quantiles_of_the_families_draws_mixed_by_weight(mixed):
    fc = mixed
    for key in fc.keys():
        B = np.array([10.0, 40.0, 80.0, 160.0, 300.0])
        t = fc.predict(budgets=B).query("method == @key[2]")
        palm, mmf4 = fc.posteriors[key], fc.members[key]["mmf4"]
        assert fc.weights(key) == {"palm": 0.5, "mmf4": 0.5}
        n = palm.draws["A_max"].size
        # written out independently of CurveMixture: every other PALM draw, every other MMF4 draw
        p = {k: palm.draws[k].reshape(-1)[0::2][:, None] for k in ("A_max", "delta", "alpha", "beta")}
        m = {k: mmf4.draws[k].reshape(-1)[0::2][:, None] for k in ("A_max", "eta1", "p", "q")}
        mu = np.concatenate([budget_curve(B[None, :], p["A_max"], p["delta"], p["alpha"], p["beta"], b=palm.b),
                             family_curve("mmf4", B[None, :] / mmf4.b, m["A_max"], m["eta1"], m["p"], m["q"],
                                          mmf4.x_first)])
        assert mu.shape[0] == n
        np.testing.assert_allclose(t["mean"], mu.mean(0), rtol=1e-12)
        np.testing.assert_allclose(t["lower"], np.quantile(mu, 0.05, axis=0), rtol=1e-12)
        np.testing.assert_allclose(t["upper"], np.quantile(mu, 0.95, axis=0), rtol=1e-12)
        # the predictive band is wider than the mean curve's, and holds the mixture's noise
        assert np.all(t.pred_lower < t.lower) and np.all(t.pred_upper > t.upper)


def test_params_keep_palm_and_add_the_weights_and_diagnostics_name_the_families(mixed):
    p = mixed.params()
    for key in mixed.keys():
        rows = p[p.method == key[2]].set_index("param")
        assert {"A_max", "delta", "alpha", "beta", "weight_palm", "weight_mmf4"} <= set(rows.index)
        assert rows.loc["weight_palm", "mean"] + rows.loc["weight_mmf4", "mean"] == pytest.approx(1.0)
    d = mixed.diagnostics()
    assert (d.families == "palm 0.50, mmf4 0.50").all()
    # a family's sampler warnings are the curve's: its status says so
    for key in mixed.keys():
        warns = mixed.curve_warnings(key)
        assert warns == [*mixed.posteriors[key].warnings,
                         *(f"mmf4: {w}" for w in mixed.members[key]["mmf4"].warnings)]


def test_a_reload_predicts_and_decides_identical_numbers(mixed, tmp_path):
    fc = mixed
    path = fc.save(tmp_path)
    back = Forecaster.load(path)
    assert back.families == ("palm", "mmf4") and set(back.members) == set(fc.members)
    pd.testing.assert_frame_equal(fc.predict(), back.predict())
    pd.testing.assert_frame_equal(fc.params(), back.params())
    pd.testing.assert_frame_equal(fc.diagnostics(), back.diagnostics())
    s = DecisionSettings(target=0.8)
    pd.testing.assert_frame_equal(decide(fc, s).table, decide(back, s).table)


def test_decisions_on_a_curve_function_match_the_palm_inverse():
    """CurveDraws given the mean curve as a function (a mixture's) reach τ where the PALM closed form says."""
    rng = np.random.default_rng(0)
    n, b, now = 300, 10.0, 80.0
    A, delta = rng.uniform(0.85, 0.95, n), rng.uniform(0.1, 0.3, n)
    alpha, beta = rng.uniform(0, 1, n), rng.uniform(0.7, 1.3, n)

    def curve(B):
        return budget_curve(np.asarray(B)[None, :], A[:, None], delta[:, None], alpha[:, None], beta[:, None], b=b)

    closed = CurveDraws(A, delta, alpha, beta, b=b, current_budget=now, current_mean=0.8)
    nan = np.full(n, np.nan)
    generic = CurveDraws(A, nan, nan, nan, b=b, current_budget=now, current_mean=0.8, curve=curve)
    for target in (0.6, 0.8, 0.84):
        exact, grid = closed.budget_to_reach(target, 2000.0), generic.budget_to_reach(target, 2000.0)
        both = np.isfinite(exact) & (exact <= 2000.0)
        np.testing.assert_array_equal(grid[both], exact[both])
        assert np.all(np.isinf(grid[~both]))


def test_a_mixture_with_palm_alone_is_the_palm_posterior(mixed):
    key = mixed.keys()[0]
    only = CurveMixture(mixed.posteriors[key], {}, {"palm": 1.0})
    B = np.array([20.0, 50.0, 120.0])
    post = mixed.posteriors[key]
    d = {k: post.draws[k].reshape(-1)[:, None] for k in ("A_max", "delta", "alpha", "beta")}
    np.testing.assert_array_equal(only.mean_curve(B), budget_curve(B[None, :], **d, b=post.b))


def test_the_command_line_refuses_bad_families_in_one_line(cli, tmp_path):
    code, _, err = cli("forecast", AL_CSV, "--families", "palm,nope", "--out", tmp_path / "o")
    assert code == 2 and err.strip().count("\n") == 0
    assert "--families" in err and "nope" in err and "mmf4" in err
    assert not (tmp_path / "o").exists()
