"""The Bayesian model and the Forecaster, at small draw counts (heavy runs live in benchmarks/)."""

import numpy as np
import pandas as pd
import pytest
from conftest import AL_CSV, simulate

from palm_bayes import data
from palm_bayes.curve import budget_curve
from palm_bayes.forecast import FORECAST_COLUMNS, Forecaster

# the single-curve model ("auto" geometry, the default, is tested on its own; pooling in test_pooling.py)
FAST = dict(draws=300, tune=400, chains=2, geometry="shape", pooling="none")


@pytest.fixture(scope="module")
def recovery():
    df, truth = simulate(20)
    fc = Forecaster(seed=11, **FAST).fit(df)
    return df, truth, fc


def test_parameter_recovery_and_interval_coverage(recovery):
    _df, truth, fc = recovery
    params = fc.params(level=0.9).set_index(["method", "param"])
    hits = {"A_max": 0, "delta": 0, "beta": 0}
    for key, (p, _, _) in truth.items():
        for name in hits:
            r = params.loc[(key[2], name)]
            hits[name] += bool(r.lower <= p[name] <= r.upper)
    n = len(truth)
    # 90% intervals: roughly nominal. With 20 curves, 14/20 is far below what a calibrated posterior gives
    # (P(X <= 14) < 0.05 for X ~ Binomial(20, 0.9)).
    for name, h in hits.items():
        assert h >= 15, (name, h, n)


def test_future_accuracy_inside_predictive_band(recovery):
    _df, truth, fc = recovery
    rng = np.random.default_rng(99)
    future = np.array([200.0, 300.0])
    table = fc.predict(budgets=future, level=0.9)
    inside = total = 0
    for key, (p, tau, sigma) in truth.items():
        t = table[table.method == key[2]].sort_values("budget")
        new_run = budget_curve(future, b=10.0, **p) + tau * rng.standard_normal() + sigma * rng.standard_normal(2)
        inside += int(((t.pred_lower.values <= new_run) & (new_run <= t.pred_upper.values)).sum())
        total += len(future)
    assert inside / total >= 0.8, inside / total


def test_predict_contract(recovery):
    _df, _truth, fc = recovery
    table = fc.predict(level=[0.9, 0.5])
    assert list(table.columns[: len(FORECAST_COLUMNS)]) == FORECAST_COLUMNS
    assert {"lower_90", "upper_90", "lower_50", "upper_50", "pred_lower_50"} <= set(table.columns)
    per_curve = table.groupby("method").size()
    assert (per_curve == 15 + 20).all()  # observed budgets + a 20-point grid up to twice the largest
    assert table.groupby("method")["observed"].sum().eq(15).all()
    ok = table.dropna()
    assert (ok.lower <= ok["median"]).all() and (ok["median"] <= ok.upper).all()
    assert (ok.lower_50 >= ok.lower - 1e-12).all() and (ok.upper_50 <= ok.upper + 1e-12).all()
    # a new run adds run and noise variation to the mean curve: its band is wider. Row by row the quantiles
    # carry Monte Carlo error (the noise sd shrinks with the budget), so allow half a point there.
    assert ((ok.pred_upper - ok.pred_lower) > (ok.upper - ok.lower)).mean() > 0.95
    assert (ok.pred_lower <= ok.lower + 0.005).all() and (ok.pred_upper >= ok.upper - 0.005).all()
    assert table.budget.max() == 300.0
    draws = fc.curve_draws(("sim", "m", "c00"), np.array([100.0]))
    assert draws.shape == (FAST["draws"] * FAST["chains"], 1)


def test_diagnostics_are_reported(recovery):
    _, truth, fc = recovery
    diag = fc.diagnostics()
    assert len(diag) == len(truth)
    assert {"max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences", "status", "message"} <= set(diag.columns)
    # any curve flagged 'warning' says why
    assert (diag.loc[diag.status == "warning", "message"].str.len() > 0).all()


def test_same_seed_same_numbers_and_saved_posterior_reloads(tmp_path):
    rows = data.select(data.load_curves(AL_CSV), method="random")
    auto = {**FAST, "geometry": "auto"}  # the default path, retry included, is reproducible too
    a = Forecaster(seed=5, **auto).fit(rows)
    b = Forecaster(seed=5, **auto).fit(rows)
    pa, pb = a.predict(level=0.9), b.predict(level=0.9)
    pd.testing.assert_frame_equal(pa, pb)
    a.save(tmp_path)
    from palm_bayes._compat import arviz

    saved = arviz().from_netcdf(tmp_path / "posterior.nc")  # ArviZ reads it (InferenceData or DataTree)
    assert saved["posterior"]["A_max"].dims == ("curve", "chain", "draw")
    again = Forecaster.load(tmp_path)
    pd.testing.assert_frame_equal(pa, again.predict(level=0.9))
    assert set(a.diagnostics().geometry) <= {"shape", "levels"}
    assert again.diagnostics().geometry.tolist() == a.diagnostics().geometry.tolist()
    c = Forecaster(seed=6, **FAST).fit(rows).predict(level=0.9)
    assert not np.allclose(c["mean"], pa["mean"])


def test_a_failed_curve_is_reported_and_others_finish(monkeypatch):
    from palm_bayes import engine

    df, _ = simulate(2, seed=3)
    real = engine.PalmSampler.sample

    def flaky(self, cd, key=()):
        if key[2] == "c00":
            raise RuntimeError("sampler exploded")
        return real(self, cd, key)

    monkeypatch.setattr(engine.PalmSampler, "sample", flaky)
    fc = Forecaster(seed=1, **FAST).fit(df)
    assert set(fc.failures) == {("sim", "m", "c00")}
    table = fc.predict(level=0.9)
    bad = table[table.method == "c00"]
    assert bad["mean"].isna().all() and bad.point.notna().all() and (bad.status == "failed").all()
    assert table[table.method == "c01"]["mean"].notna().all()
    assert fc.diagnostics().set_index("method").loc["c00", "message"] == "RuntimeError: sampler exploded"


def test_pymc_sampler_fallback_gives_a_posterior():
    """Without nutpie the model samples with PyMC's own NUTS (same model, same outputs)."""
    df, _ = simulate(1, seed=4)
    fc = Forecaster(seed=2, draws=150, tune=200, chains=2, backend="pymc", geometry="shape").fit(df)
    assert not fc.failures
    post = fc.posteriors[("sim", "m", "c00")]
    assert post.draws["A_max"].shape == (2, 150)
    t = fc.predict(budgets=[100.0], level=0.9)
    assert 0 < t["mean"].iloc[0] < 1 and t.lower.iloc[0] < t.upper.iloc[0]


def test_robust_likelihood_and_misfit_variants_sample():
    """The Student-t likelihood, the per-budget misfit term and AR(1) run deviations are options that sample
    (together) and report their terms."""
    df, _ = simulate(1, seed=8)
    plain = Forecaster(seed=4, **FAST).fit(df)
    variant = Forecaster(seed=4, likelihood="student", misfit=True, ar1=True, **FAST).fit(df)
    assert not variant.failures
    names = set(variant.params().param)
    assert {"nu", "omega", "gamma", "rho"} <= names
    far = [400.0]
    assert plain.predict(budgets=far).eval("upper - lower").iloc[0] > 0
    assert variant.predict(budgets=far).eval("upper - lower").iloc[0] > 0
    assert variant.curve_draws(("sim", "m", "c00"), np.array(far), predictive=True).shape[1] == 1


def test_loo_and_prior_predictive_check():
    """PSIS-LOO per curve for comparing variants, and prior draws that are wide yet contain the data."""
    df, truth = simulate(1, seed=12)
    key = ("sim", "m", "c00")
    fc = Forecaster(seed=3, loo=True, **FAST).fit(df)
    loo = fc.loo()
    assert list(loo.columns) == ["dataset", "model", "method", "elpd_loo", "se", "p_loo", "max_k", "n_bad_k"]
    assert len(loo) == 1 and np.isfinite(loo.elpd_loo.iloc[0]) and 0 < loo.p_loo.iloc[0] < 40
    # ~75 points with noise sd ~0.01 on the fraction scale: each point's log density is around log(1/0.01·0.4)
    assert loo.elpd_loo.iloc[0] > 75 * 2.0
    budgets = np.array([10.0, 150.0, 300.0])
    prior = fc.prior_draws(key, budgets, draws=400)
    assert prior["mean"].shape == prior["run"].shape == (400, 3)
    assert ((prior["mean"] > 0) & (prior["mean"] < 1)).all()
    lo, hi = np.quantile(prior["mean"][:, 1], [0.05, 0.95])
    true_mean = budget_curve(150.0, b=10.0, **truth[key][0])
    assert lo < true_mean < hi and hi - lo > 0.3  # weakly informative: the data, not the prior, decide
    assert prior["run"].std(0).mean() > prior["mean"].std(0).mean()
    assert fc.prior_draws(key, budgets, draws=400)["mean"].tolist() == prior["mean"].tolist()  # seeded


def test_levels_geometry_density_is_the_shape_density_times_the_jacobian():
    """The "levels" coordinates are a change of variables: at any point, their log-density equals the "shape"
    log-density at the mapped point plus log|det J| of the map (J by finite differences), up to one constant.
    Checked from a plateau (headroom coordinate 1.5, A_max next to the last level) to a curve far from it; dropping
    one term of the Jacobian (the ``+ r``) fails it by 2 to 4.5 nats, which the sampling check below misses."""
    import pymc as pm

    from palm_bayes.engine import PalmSampler, SamplerSettings
    from palm_bayes.model import CurveData, build_model

    df, _ = simulate(1, seed=5, n_budgets=8, params=[dict(A_max=0.85, delta=0.6, alpha=0.0, beta=1.0)])
    values = PalmSampler(SamplerSettings(), backend="pymc")._values(CurveData.from_rows(df, "fraction"))
    models = {g: build_model(8, geometry=g, marginal=True) for g in ("shape", "levels")}
    for m in models.values():
        with m:
            pm.set_data(values)
    levels, shape = models["levels"], models["shape"]
    logp_levels, logp_shape = levels.compile_logp(), shape.compile_logp()
    derived = levels.compile_fn(levels.replace_rvs_by_values([levels[n] for n in ("A_max", "beta", "log_lambda")]),
                                inputs=levels.value_vars, on_unused_input="ignore", point_fn=False)

    def to_shape(point):
        A, beta, log_lambda = derived(*[point[v.name] for v in levels.value_vars])
        logit = np.log(A / values["a_top"]) - np.log1p(-A / values["a_top"])
        return {"z_A": (logit - values["a_mu"]) / values["a_sd"], "log_beta": np.log(beta),
                "eta1": log_lambda + beta * point["log_base"],
                **{k: point[k] for k in ("log_base", "tau_log__", "sigma_log__", "gamma")}}

    rng = np.random.default_rng(0)
    gaps = []
    for headroom in (-3.0, -1.0, 0.0, 0.5, 1.0, 1.5):
        point = {"level_last": 1.5 + rng.normal(0, 0.5), "level_ratio": 1.0 + rng.normal(0, 0.5),
                 "headroom": headroom, "log_base": np.log(2.0) + rng.normal(0, 0.5), "tau_log__": np.log(0.01),
                 "sigma_log__": np.log(0.02), "gamma": 0.3}
        point = {k: np.asarray(v) for k, v in point.items()}
        jac = np.zeros((3, 3))
        for j, name in enumerate(("level_last", "level_ratio", "headroom")):
            up, down = dict(point), dict(point)
            up[name], down[name] = point[name] + 1e-5, point[name] - 1e-5
            jac[:, j] = [(to_shape(up)[k] - to_shape(down)[k]) / 2e-5 for k in ("z_A", "log_beta", "eta1")]
        gaps.append(logp_levels(point) - logp_shape(to_shape(point)) - np.log(abs(np.linalg.det(jac))))
    assert np.ptp(gaps) < 1e-4, gaps


@pytest.mark.parametrize("curve", ["rising", "plateaued"])
def test_levels_geometry_samples_the_same_posterior_as_the_shape_geometry(curve):
    """Same posterior, sampled: the two geometries' posterior means agree within Monte Carlo error and their sds
    within 25 %, on a curve still rising at the end of its pilot and on one that reached its plateau early. Four
    chains: with two short ones, one geometry's run on the rising curve (3 divergences, R-hat 1.015 on PyMC 6)
    stretched β's sd by a third where longer runs of both agree within 4 %."""
    params = None if curve == "rising" else [dict(A_max=0.85, delta=0.6, alpha=0.0, beta=1.0)]
    df, _ = simulate(1, seed=5, n_budgets=8, params=params)
    post = {g: Forecaster(seed=1, draws=1000, tune=1000, chains=4, geometry=g).fit(df).posteriors[("sim", "m", "c00")]
            for g in ("shape", "levels")}
    for name in ("A_max", "beta", "alpha", "delta"):
        a, b = (post[g].draws[name].reshape(-1) for g in ("shape", "levels"))
        ess = [post[g].diagnostics.set_index("param").at[name, "ess_bulk"] for g in ("shape", "levels")]
        se = np.sqrt(a.var() / ess[0] + b.var() / ess[1])
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean(), se)
        assert abs(a.std() / b.std() - 1) < 0.25, (name, a.std(), b.std())


def test_previous_budget_index_links_each_run_in_budget_order():
    from palm_bayes.model import CurveData

    rows = pd.DataFrame({"run": ["b", "a", "a", "b", "a", "b"], "budget": [20, 40, 20, 10, 10, 40],
                         "score": [0.5, 0.6, 0.55, 0.4, 0.45, 0.7]})
    cd = CurveData.from_rows(rows, "fraction", b=10)
    prev = rows.iloc[cd.prev_index].reset_index(drop=True)
    assert (prev.run == rows.run).all()  # never links two runs
    first = rows.budget == rows.groupby("run").budget.transform("min")
    assert (cd.prev_index[first.to_numpy()] == np.flatnonzero(first)).all()  # a run's first budget: itself
    later = ~first.to_numpy()
    expected = {(r.run, r.budget): rows[(rows.run == r.run) & (rows.budget < r.budget)].budget.max()
                for r in rows[later].itertuples()}
    assert all(prev.budget[i] == expected[(rows.run[i], rows.budget[i])] for i in np.flatnonzero(later))


def test_auto_geometry_retries_an_unhealthy_curve_and_keeps_the_healthier(monkeypatch):
    from palm_bayes import diagnostics, engine

    def fake(rhat, ndiv, seconds, geometry, accept):
        diag = pd.DataFrame({"param": ["A_max"], "r_hat": [rhat], "ess_bulk": [1000.0], "ess_tail": [1000.0]})
        return engine.CurvePosterior(draws={}, b=1.0, scale="fraction", diagnostics=diag, divergences=ndiv,
                                     seconds=seconds, warnings=diagnostics.health_warnings(diag, ndiv),
                                     geometry=geometry, target_accept=accept)

    calls = []

    def sample(self, data, key, geometry, accept, tune, draws):
        calls.append((geometry, accept, tune, draws))
        return {("levels", 0.9, 300): fake(1.05, 3, 2.0, "levels", 0.9),
                ("shape", 0.99, 300): fake(1.03, 0, 3.0, "shape", 0.99),
                ("shape", 0.99, 1000): fake(1.002, 2, 5.0, "shape", 0.99),
                ("levels", 0.99, 1000): fake(1.02, 0, 4.0, "levels", 0.99)}[(geometry, accept, tune)]

    monkeypatch.setattr(engine.PalmSampler, "_sample", sample)
    sampler = engine.PalmSampler(engine.SamplerSettings(geometry="auto", tune=300, draws=500), backend="pymc")
    post = sampler.sample(None, ("d", "m", "x"))
    # the first two runs at the settings' tuning and draws; the last two tune longer and draw twice as many
    assert calls == [("levels", 0.9, 300, 500), ("shape", 0.99, 300, 500), ("shape", 0.99, 1000, 1000),
                     ("levels", 0.99, 1000, 1000)]
    # none healthy: the fewest missed thresholds (one each but the first), then the chains that agree (the long
    # "shape" run: R-hat within 1.01, two divergences); every run's time counted
    assert (post.geometry, post.divergences, post.seconds) == ("shape", 2, 14.0)
    # a run that is healthy ends the ladder
    calls.clear()
    monkeypatch.setattr(engine.PalmSampler, "_sample", lambda self, d, k, g, a, t, n: calls.append(g)
                        or fake(1.0 if g == "shape" else 1.05, 0, 1.0, g, a))
    assert sampler.sample(None, ()).geometry == "shape" and calls == ["levels", "shape"]
    # when no run is healthy, the one with the fewest missed thresholds (then the smallest R-hat) is kept
    monkeypatch.setattr(engine.PalmSampler, "_sample", lambda self, d, k, g, a, t, n: fake(1.05 if a < 0.99 else 1.02,
                                                                                         1, t, g, a))
    assert sampler.sample(None, ()).target_accept == 0.99
    # among runs that miss as many thresholds and whose chains agree (R-hat <= 1.01), fewer divergences win before a
    # smaller R-hat (a run with 200 divergences and R-hat 1.001 is not kept over one with 1 and R-hat 1.002) ...
    runs = {("levels", 0.9, 300): (1.003, 206), ("shape", 0.99, 300): (1.002, 1), ("shape", 0.99, 1000): (1.001, 200),
            ("levels", 0.99, 1000): (1.001, 48)}
    monkeypatch.setattr(engine.PalmSampler, "_sample",
                        lambda self, d, k, g, a, t, n: fake(*runs[(g, a, t)], 1.0, g, a))
    post = sampler.sample(None, ())
    assert (post.geometry, post.target_accept, post.divergences) == ("shape", 0.99, 1)
    # ... but a run whose chains disagree is not kept over a divergent one whose chains agree
    runs = {("levels", 0.9, 300): (1.002, 30), ("shape", 0.99, 300): (1.05, 0), ("shape", 0.99, 1000): (1.002, 200),
            ("levels", 0.99, 1000): (1.03, 0)}
    post = sampler.sample(None, ())
    assert (post.geometry, post.target_accept, post.divergences) == ("levels", 0.9, 30)
    # a user's higher target_accept is never stepped below
    assert engine.retry_ladder(0.98) == [("levels", 0.98), ("shape", 0.99), ("shape", 0.99), ("levels", 0.99)]
    assert engine.run_lengths(engine.SamplerSettings(tune=200, draws=400, retry_tune=700)) == [
        (200, 400), (200, 400), (700, 800), (700, 800)]


def test_the_families_first_run_takes_its_own_target_accept(monkeypatch):
    """MMF4's level coordinates start at ``ensemble.LEVELS_FIRST_ACCEPT``, a family without them (its own
    parameters) at PALM's first accept as before, and the rest of the ladder is PALM's; a user's target_accept
    still sets the first run of both."""
    from palm_bayes import engine, ensemble
    from palm_bayes.model import CurveData

    rows = pd.DataFrame({"run": ["a"] * 6, "budget": np.arange(1, 7) * 10.0,
                         "score": [0.5, 0.6, 0.66, 0.7, 0.72, 0.74]})
    data = CurveData.from_rows(rows, "fraction")
    seen = []

    def fake_healthiest(attempt, ladder):
        seen.append([run[:2] for run in ladder])

    monkeypatch.setattr(ensemble, "healthiest", fake_healthiest)
    for family, accept in (("mmf4", None), ("pow4", None), ("mmf4", 0.98)):
        sampler = engine.PalmSampler(engine.SamplerSettings(target_accept=accept), backend="pymc")
        ensemble.sample_family(sampler, data, family, ("d", "m", "c"))
    rest = [("shape", 0.99), ("shape", 0.99)]
    assert seen[0] == [("levels", ensemble.LEVELS_FIRST_ACCEPT), *rest, ("levels", 0.99)]
    assert seen[1] == [("shape", engine.FIRST_ACCEPT["levels"]), *rest, ("shape", 0.99)]
    assert seen[2] == [("levels", 0.98), *rest, ("levels", 0.99)]
    assert ensemble.LEVELS_FIRST_ACCEPT != engine.FIRST_ACCEPT["levels"]


def test_the_two_stages_count_both_passes_and_the_joint_run_climbs_the_same_ladder(monkeypatch):
    """A method refitted under the refined proposal keeps the seconds of both passes (kept or not); the joint group
    run takes the ladder's run lengths (the long runs tune longer and draw twice as many, thinned back)."""
    from palm_bayes import diagnostics, engine, pooling
    from palm_bayes.model import CurveData

    def fake(rhat, seconds):
        diag = pd.DataFrame({"param": ["A_max"], "r_hat": [rhat], "ess_bulk": [1000.0], "ess_tail": [1000.0]})
        return engine.CurvePosterior(draws={"A_max": 0.8 + 0.001 * np.arange(100).reshape(2, 50)}, b=1.0,
                                     scale="fraction", diagnostics=diag, divergences=0, seconds=seconds,
                                     warnings=diagnostics.health_warnings(diag, 0))

    df, _ = simulate(2, seed=3, n_budgets=5)
    group = pooling.GroupData.from_curves([CurveData.from_rows(g, "fraction") for _, g in df.groupby("method")])
    sampler = engine.PalmSampler(engine.SamplerSettings(tune=300, draws=50, chains=2), backend="pymc")
    for refit_rhat, kept in ((1.0, "refit"), (1.2, "first")):
        tags = []

        def sample(m, proposal, eng, tag, tags=tags, refit_rhat=refit_rhat):
            tags.append((m, tag))
            return fake(refit_rhat if tag else (1.05 if m == 1 else 1.0), 3.0 if tag else 1.0)

        stage1, _, _ = pooling.two_stages(sample, sampler, group, np.random.default_rng(0))
        assert tags == [(0, ()), (1, ()), (1, ("refined",))]
        assert stage1[1].seconds == 4.0 and (stage1[1].diagnostics.r_hat[0] == 1.0) == (kept == "refit")

    calls = []

    def joint(sampler, data, pooling_, key, geometry, accept, tune, draws):
        calls.append((geometry, accept, tune, draws))
        return pooling.GroupPosterior(curves=[], draws={}, diagnostics=pd.DataFrame({"r_hat": [1.0]}),
                                      divergences=1, seconds=1.0, pooling=pooling_, target_accept=accept,
                                      warnings=["1 divergent transition"])

    monkeypatch.setattr(pooling, "_sample_group", joint)
    joint_sampler = engine.PalmSampler(engine.SamplerSettings(tune=300, draws=50, group_sampler="joint"), "pymc")
    pooling.sample_group(joint_sampler, group, "ceiling")
    assert calls == [("levels", 0.9, 300, 50), ("shape", 0.99, 300, 50), ("shape", 0.99, 1000, 100),
                     ("levels", 0.99, 1000, 100)]


def test_the_curve_once_per_budget_is_the_same_density_as_once_per_observation():
    """The model evaluates the curve and the noise sd once per distinct budget and reads them off per observation:
    fed every observation as its own "budget" instead, it gives the same log-density, in both geometries and with
    the latent run offsets (an exact rewrite, not an approximation)."""
    import pymc as pm

    from palm_bayes.engine import PalmSampler, SamplerSettings
    from palm_bayes.model import CurveData, build_model

    df, _ = simulate(1, seed=7, n_budgets=6, n_runs=3)
    values = PalmSampler(SamplerSettings(), backend="pymc")._values(CurveData.from_rows(df, "fraction"))
    each = dict(values, x_budget=values["x_budget"][values["budget_index"]],
                budget_index=np.arange(len(values["y"]), dtype="int64"))
    assert len(values["x_budget"]) == 6 and len(each["x_budget"]) == 18
    rng = np.random.default_rng(1)
    for geometry, marginal in (("shape", True), ("levels", True), ("shape", False)):
        model = build_model(8, geometry=geometry, marginal=marginal)
        logp = model.compile_logp()
        points = [{k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
                  for _ in range(4)]
        got = {}
        for name, layout in (("per budget", values), ("per observation", each)):
            with model:
                pm.set_data(layout)
            got[name] = [float(logp(p)) for p in points]
        np.testing.assert_allclose(got["per budget"], got["per observation"], rtol=1e-10)
        assert np.isfinite(got["per budget"]).all()


def test_a_retry_is_thinned_to_the_settings_draws():
    """A long retry draws RETRY_DRAWS times as many per chain and keeps every RETRY_DRAWS-th: every curve keeps the
    same number of draws (the saved posterior stacks them)."""
    from palm_bayes import engine
    from palm_bayes.model import CurveData

    df, _ = simulate(1, seed=5, n_budgets=6)
    cd = CurveData.from_rows(df, "fraction")

    sampler = engine.PalmSampler(engine.SamplerSettings(draws=50, tune=50, chains=2), backend="pymc")
    post = sampler._sample(cd, ("d", "m", "c"), "shape", 0.9, 50, engine.RETRY_DRAWS * 50)
    assert post.draws["A_max"].shape == (2, 50)


def test_marginal_run_loglik_matches_a_dense_multivariate_normal():
    """The closed form (matrix determinant lemma, Sherman–Morrison) equals the Normal density with covariance
    diag(sd²) + τ² 1 1ᵀ per run, for ragged runs and an unused run slot."""
    import pytensor.tensor as pt
    from scipy.stats import multivariate_normal

    from palm_bayes.model import marginal_run_loglik

    rng = np.random.default_rng(0)
    run = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    resid, sd, tau = rng.normal(0, 0.03, run.size), rng.uniform(0.01, 0.04, run.size), 0.02
    got = marginal_run_loglik(pt.as_tensor(resid), pt.as_tensor(sd), tau, pt.as_tensor(run), 4).eval()
    for r in range(3):
        m = run == r
        cov = np.diag(sd[m] ** 2) + tau**2
        assert got[r] == pytest.approx(multivariate_normal(np.zeros(m.sum()), cov).logpdf(resid[m]), rel=1e-10)
    assert got[3] == 0.0


def test_marginal_run_offsets_sample_the_same_posterior_as_sampled_offsets():
    """Integrating the run offsets out changes the sampler's work, not the posterior."""
    df, _ = simulate(1, seed=8, n_budgets=8)
    post = {m: Forecaster(seed=2, draws=600, tune=600, chains=2, geometry="shape", marginal_runs=m).fit(df)
            .posteriors[("sim", "m", "c00")] for m in (True, False)}
    for name in ("A_max", "beta", "delta", "tau", "sigma"):
        a, b = (post[m].draws[name].reshape(-1) for m in (True, False))
        ess = [post[m].diagnostics.set_index("param").at[name, "ess_bulk"] for m in (True, False)]
        se = np.sqrt(a.var() / ess[0] + b.var() / ess[1])
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean(), se)
        assert abs(a.std() / b.std() - 1) < 0.25, (name, a.std(), b.std())


def test_known_ceiling_bounds_every_draw_and_narrows_a_rising_curve():
    """A pilot still rising steeply leaves A_max wide open; a known ceiling keeps every draw below it and
    narrows the interval. A prior range moves the posterior towards it."""
    truth = [dict(A_max=0.9, delta=0.05, alpha=0.5, beta=1.0)]
    df, _ = simulate(1, seed=5, n_budgets=6, params=truth)
    key = ("sim", "m", "c00")
    fits = {name: Forecaster(seed=1, draws=400, tune=400, chains=2, **kw).fit(df)
            for name, kw in {"default": {}, "ceiling": {"a_max_below": 0.65},
                             "range": {"a_max_range": (0.85, 0.95)}}.items()}
    a_max = {n: fc.posteriors[key].draws["A_max"].reshape(-1) for n, fc in fits.items()}
    assert np.mean(a_max["default"] > 0.65) > 0.05  # the constraint binds
    assert a_max["ceiling"].max() < 0.65
    width = {n: np.subtract(*np.quantile(a, [0.95, 0.05])) for n, a in a_max.items()}
    assert width["ceiling"] < width["default"]
    assert np.median(a_max["range"]) > np.quantile(a_max["default"], 0.95)  # belief moves the ceiling up
    assert fits["ceiling"].diagnostics().a_max_prior[0] == "A_max < 0.65 (known ceiling)"


def test_the_default_ceiling_prior_has_its_median_above_the_pilot():
    """The data rule out a ceiling below the levels the pilot reached, so the default prior puts its median above
    the best pilot mean (a sixth to two fifths of the way to the ceiling C), with or without a known ceiling; the
    same spread; a user's range is not moved."""
    from palm_bayes.model import A_SD, AMaxPrior

    for below in (None, 0.95):
        for best in (0.3, 0.7, 0.9):
            top, mu, sd = AMaxPrior(below=below).coords(best)
            median = top / (1 + np.exp(-mu))
            assert best + 0.1 * (top - best) < median < best + 0.5 * (top - best), (below, best, median)
            assert sd == A_SD
    top, mu, _ = AMaxPrior(low=0.8, high=0.9).coords(best=0.95)
    assert top / (1 + np.exp(-mu)) == pytest.approx(6 / 7)  # the range's centre: odds √(4 · 9) = 6


def test_prior_range_quantiles_and_bad_prior_knowledge():
    from palm_bayes.errors import InputError
    from palm_bayes.model import AMaxPrior

    top, mu, sd = AMaxPrior(below=0.95, low=0.8, high=0.9).coords(best=0.5)
    q = top / (1 + np.exp(-(mu + np.array([-1.6448536, 1.6448536]) * sd)))
    assert q == pytest.approx([0.8, 0.9])
    df, _ = simulate(1, seed=5)
    with pytest.raises(InputError, match="--a-max-below 97"):
        Forecaster(a_max_below=97).fit(df)  # a percent ceiling on fraction scores
    with pytest.raises(InputError, match=r"--a-max-prior 0\.9 0\.8"):
        Forecaster(a_max_range=(0.9, 0.8)).fit(df)
    with pytest.raises(InputError, match=r"ceiling 0\.9"):
        Forecaster(a_max_below=0.9, a_max_range=(0.85, 0.95)).fit(df)


def test_extrapolation_discrepancy_is_a_brownian_motion_in_log_budget():
    from palm_bayes.discrepancy import extrapolation_discrepancy

    B = np.array([400.0, 50.0, 100.0, 800.0, 200.0])  # unsorted on purpose; the last observed budget is 100
    d = extrapolation_discrepancy(B, 100.0, 0.02, 200_000, np.random.default_rng(1))
    assert np.all(d[:, [1, 2]] == 0)  # at or before the last observed budget
    var = 0.02**2 * np.log(B / 100.0).clip(0)
    assert d.var(0) == pytest.approx(var, rel=0.02, abs=1e-12)
    # independent increments: cov(d(200), d(800)) = var(d(200))
    assert np.cov(d[:, 4], d[:, 3])[0, 1] == pytest.approx(var[4], rel=0.03)
    assert not extrapolation_discrepancy(B, 100.0, 0.0, 10, np.random.default_rng(1)).any()


def test_drift_moves_the_logit_by_a_bounded_shift_and_stays_on_the_scale():
    from palm_bayes.discrepancy import drifted, with_discrepancy

    B = np.array([50.0, 100.0, 200.0, 800.0])  # the last observed budget is 100
    mu = np.array([[0.0, 0.3, 0.6, 0.9], [1.0, 0.5, 0.95, 0.999]])
    out = drifted(mu, B, 100.0, 0.05)
    assert out[:, :2] == pytest.approx(mu[:, :2])  # at or before the last observed budget nothing moves
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    shift = logit(out[:, 2:]) - logit(mu[:, 2:])
    assert shift == pytest.approx(0.05 * (1 - 100.0 / B[2:]) * np.ones((2, 1)))  # half the drift at 2 × B_last
    far = logit(drifted(mu[:, 2:3], np.array([1e9]), 100.0, 0.05)) - logit(mu[:, 2:3])
    assert np.all((far > 0.0499) & (far <= 0.05))  # bounded: far out, the whole drift and never more
    edges = drifted(np.array([[0.0, 1.0, 0.0, 1.0]]), B, 100.0, 0.5)
    assert edges.tolist() == [[0.0, 1.0, 0.0, 1.0]]  # 0 and the top stay where they are
    pct = drifted(100 * mu, B, 100.0, 0.05, top=100.0)
    assert pct == pytest.approx(100 * out)  # the same on the percent scale
    assert drifted(mu, B, 100.0, 0.0) is mu
    # with the walk: the drift's shift plus the Brownian motion, clipped to the scale
    rng = lambda: np.random.default_rng(4)  # noqa: E731
    both = with_discrepancy(np.tile(mu[:1], (50_000, 1)), B, 100.0, 0.02, rng(), drift=0.05)
    assert both.mean(0)[2] == pytest.approx(out[0, 2], abs=1e-3) and both.min() >= 0 and both.max() <= 1
    # a known ceiling: the drift works on the share of it and carries no draw above it
    capped = with_discrepancy(np.array([[0.5, 0.79, 0.79]]), B[1:], 100.0, 0.0, rng(), drift=2.0, ceiling=0.8)
    assert capped[0, 0] == 0.5 and np.all(capped[0, 1:] > 0.79) and capped.max() < 0.8


def test_the_drift_lifts_only_the_extrapolation_and_is_saved(recovery, tmp_path):
    _df, _truth, fc = recovery
    key = fc.keys()[0]
    last = float(fc.observed(key)["budget"].max())
    budgets = {key: [last / 2, last, 2 * last, 8 * last]}
    means, default = {}, fc.drift
    try:
        for drift in (0.0, 0.05):
            fc.drift = drift
            means[drift] = fc.predict(budgets=budgets, level=0.9)["mean"].to_numpy()
        fc.save(tmp_path)
        assert Forecaster.load(tmp_path).drift == 0.05
    finally:
        fc.drift = default  # the fixture is shared
    assert means[0.05][:2] == pytest.approx(means[0.0][:2])  # inside the data: the same forecast
    assert np.all(means[0.05][2:] > means[0.0][2:])  # beyond it: higher
    lift = np.log(means[0.05] / (1 - means[0.05])) - np.log(means[0.0] / (1 - means[0.0]))
    assert lift[3] > lift[2]  # and more so further out (in logit units: half the drift at 2 x, 7/8 at 8 x)


def test_discrepancy_widens_only_the_extrapolation(recovery):
    _df, _truth, fc = recovery
    key = fc.keys()[0]
    last = float(fc.observed(key)["budget"].max())
    budgets = {key: [last / 2, last, 2 * last, 8 * last]}
    widths, default = {}, fc.discrepancy
    for kappa in (0.0, 0.02):
        fc.discrepancy = kappa
        t = fc.predict(budgets=budgets, level=0.9)
        widths[kappa] = (t.upper - t.lower).to_numpy()
    fc.discrepancy = default
    assert widths[0.02][:2] == pytest.approx(widths[0.0][:2])  # inside the data: the same band
    assert np.all(widths[0.02][2:] > widths[0.0][2:] + 0.01)  # beyond it: wider
    assert widths[0.02][3] - widths[0.0][3] > widths[0.02][2] - widths[0.0][2]  # and more so further out


def test_every_band_stays_on_the_score_scale_at_every_level():
    """Near an edge the Normal noise and the discrepancy put draws past it; bands end at the edge, never beyond
    (censored at 0 and at the scale's maximum), for both bands, every level and both scales."""
    params = [dict(A_max=0.995, delta=0.6, alpha=1.0, beta=1.0), dict(A_max=0.9, delta=0.004, alpha=0.0, beta=1.0)]
    df, _ = simulate(2, seed=21, n_runs=3, n_budgets=8, params=params)
    rng = np.random.default_rng(0)
    df["score"] = np.clip(df["score"] + 0.03 * rng.standard_normal(len(df)), 0, 1)  # noisy near 1 and near 0
    levels = [0.5, 0.9, 0.99]
    for scale, top in (("fraction", 1.0), ("percent", 100.0)):
        rows = df.assign(score=df["score"] * top)
        rows.attrs["scale"] = scale
        table = Forecaster(seed=8, **FAST).fit(rows).predict(level=levels, horizon=400)
        bands = [c for c in table.columns if c.startswith(("lower", "upper", "pred_lower", "pred_upper"))]
        assert len(bands) == 4 + 4 * len(levels)
        values = table[bands].to_numpy()
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= top
        near_one = table[table.method == "c00"]
        near_zero = table[table.method == "c01"]
        assert (near_one["pred_upper_99"] == top).any()  # the band reaches the edge and stops there
        assert (near_zero["pred_lower_99"] == 0).any()
