"""The curve families of palm_bayes.families: each is its textbook form, reparameterised."""

import numpy as np
import pytest

from palm_bayes.curve import palm_curve
from palm_bayes.families import FAMILIES, check_family, family_curve

X1 = 2.3
X = np.array([2.3, 3.3, 4.6, 6.4, 9.1, 13.0, 40.0, 200.0])


def textbook(name, x, A, eta1, p, q):
    """The family in the form the literature writes it (LCDB's on accuracy; PALM's own)."""
    r1 = np.exp(eta1)
    if name == "palm":
        alpha, beta = np.exp(p) - X1, np.exp(q)
        return palm_curve(x, A, -np.expm1(-np.exp(eta1 - beta * p)), alpha, beta)
    if name == "palm_log":
        beta = np.exp(q)
        return palm_curve(1 + np.log(x / X1), A, -np.expm1(-np.exp(eta1 - beta * p)), np.exp(p) - 1, beta)
    if name == "wbl4":  # c - b exp(-a x^d)
        d = np.exp(q)
        a = np.exp(p) / X1**d
        return A - A * np.exp(np.exp(p) - r1) * np.exp(-a * x**d)
    if name == "pow4":  # a - b (x + d)^-c
        d, c = np.exp(p) - X1, np.exp(q)
        b = A * np.exp(-r1) * (X1 + d) ** c
        return A - b * (x + d) ** -c
    if name == "mmf4":  # (a b + c x^d) / (b + x^d)
        d, kappa = np.exp(q), X1 * np.exp(p)
        b = kappa**d
        a = A * (1 - np.exp(-r1) * (1 + (X1 / kappa) ** d))
        return (a * b + A * x**d) / (b + x**d)
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_is_its_textbook_form_and_reaches_exp_eta1_at_the_first_budget(name):
    rng = np.random.default_rng(1)
    for _ in range(20):
        A, eta1, p, q = rng.uniform(0.5, 0.99), rng.normal(0, 1), rng.normal(1.0, 0.5), rng.normal(0, 0.5)
        ours = family_curve(name, X, A, eta1, p, q, X1)
        np.testing.assert_allclose(ours, textbook(name, X, A, eta1, p, q), rtol=1e-9, atol=1e-12)
        # the share of A_max at the first budget is the prior's quantity: 1 - exp(-exp(eta1))
        np.testing.assert_allclose(ours[0] / A, -np.expm1(-np.exp(eta1)), rtol=1e-9)
        assert np.all(np.diff(ours) >= 0) and np.all(ours <= A)  # saturating: rising to the ceiling


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_model_graph_evaluates_the_same_formula(name):
    import pytensor
    import pytensor.tensor as pt

    x, A, e, p, q = pt.dvector("x"), pt.dscalar("A"), pt.dscalar("e"), pt.dscalar("p"), pt.dscalar("q")
    f = pytensor.function([x, A, e, p, q], family_curve(name, x, A, e, p, q, X1, xp=pt))
    np.testing.assert_allclose(f(X, 0.8, 0.3, 1.2, -0.2), family_curve(name, X, 0.8, 0.3, 1.2, -0.2, X1),
                               rtol=1e-12)


def test_an_unknown_family_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown curve family 'pow9'; expected one of palm, palm_log"):
        check_family("pow9")


def test_the_palm_family_model_is_the_palm_model():
    """build_family_model("palm") is PALM's model ("shape" coordinates, offsets integrated out) under other names:
    the same log-density at the same point, so the families share PALM's priors, runs and noise exactly."""
    import pymc as pm
    from conftest import simulate

    from palm_bayes.engine import PalmSampler, SamplerSettings
    from palm_bayes.model import CurveData, build_family_model, build_model

    df, _ = simulate(1, seed=3, n_budgets=7)
    values = PalmSampler(SamplerSettings(), backend="pymc")._values(CurveData.from_rows(df, "fraction"))
    palm, family = build_model(8, geometry="shape", marginal=True), build_family_model("palm", 8)
    with palm:
        pm.set_data(values)
    with family:
        pm.set_data({k: v for k, v in values.items() if k != "x_last"})
    rng = np.random.default_rng(0)
    for _ in range(5):
        point = {"z_A": rng.normal(), "eta1": rng.normal(), "log_base": rng.normal(1, 0.5),
                 "log_beta": rng.normal(0, 0.5), "tau_log__": rng.normal(-4, 0.5), "sigma_log__": rng.normal(-3.5, 0.3),
                 "gamma": rng.normal(0.3, 0.2)}
        renamed = {{"log_base": "p", "log_beta": "q"}.get(k, k): v for k, v in point.items()}
        assert palm.compile_logp()(point) == pytest.approx(family.compile_logp()(renamed), abs=1e-9)


def test_a_family_fitted_to_its_own_curves_recovers_them_alone_and_pooled():
    """MMF4 curves (known parameters, run offsets and noise) fitted by the ensemble's sampler, each alone and the
    two as one group with a pooled ceiling (two stages): the chains agree, and the 98 % intervals of A_max and of
    the mean curve at twice the last budget hold the truth (eight intervals from one simulated data set: a
    recovery check, not a coverage one)."""
    import pandas as pd

    from palm_bayes.engine import PalmSampler, SamplerSettings
    from palm_bayes.ensemble import sample_family, sample_family_group
    from palm_bayes.model import CurveData

    rng = np.random.default_rng(4)
    x = np.arange(1, 11) * 1.0
    truths, curves = [(0.9, 0.2, 0.3, 0.2), (0.88, -0.4, 0.5, 0.0)], []
    for A, eta1, p, q in truths:
        mu = family_curve("mmf4", x, A, eta1, p, q, 1.0)
        offsets = 0.008 * rng.standard_normal(5)
        rows = pd.DataFrame([{"run": str(r), "budget": xi * 10, "score": m + off + 0.01 * rng.standard_normal()}
                             for r, off in enumerate(offsets) for xi, m in zip(x, mu, strict=True)])
        curves.append(CurveData.from_rows(rows, "fraction"))
    sampler = PalmSampler(SamplerSettings(draws=300, tune=300, chains=2, seed=1))
    alone = [sample_family(sampler, c, "mmf4", ("sim", "m", f"c{i}")) for i, c in enumerate(curves)]
    pooled = sample_family_group(sampler, curves, "mmf4", [("sim", "m", f"c{i}") for i in range(2)])
    for posts in (alone, pooled):
        for post, (A, eta1, p, q) in zip(posts, truths, strict=True):
            assert post.diagnostics.r_hat.max() < 1.05
            lo, hi = np.quantile(post.draws["A_max"], [0.01, 0.99])
            assert lo < A < hi
            far = post.mean_curve(np.array([200.0]))[:, 0]
            true_far = family_curve("mmf4", 20.0, A, eta1, p, q, 1.0)
            assert np.quantile(far, 0.01) < true_far < np.quantile(far, 0.99)


def test_mmf4_levels_density_is_the_shape_density_times_the_jacobian():
    """MMF4's "levels" coordinates (model.mmf4_levels) are a change of variables: at any point their log-density
    equals the "shape" log-density at the mapped point plus log|det J| (J by finite differences), from a plateau
    (headroom coordinate 1.5) to a curve far below its ceiling and from a nearly pure power law (bend −2) to a
    sharp bend."""
    import pymc as pm
    from conftest import simulate

    from palm_bayes.engine import PalmSampler, SamplerSettings
    from palm_bayes.model import CurveData, build_family_model

    df, _ = simulate(1, seed=5, n_budgets=8)
    values = PalmSampler(SamplerSettings(), backend="pymc")._values(CurveData.from_rows(df, "fraction"))
    models = {g: build_family_model("mmf4", 8, geometry=g) for g in ("shape", "levels")}
    for g, m in models.items():
        with m:
            pm.set_data({k: v for k, v in values.items() if g == "levels" or k != "x_last"})
    levels, shape = models["levels"], models["shape"]
    logp_levels, logp_shape = levels.compile_logp(), shape.compile_logp()
    derived = levels.compile_fn(levels.replace_rvs_by_values([levels[n] for n in ("A_max", "eta1", "p", "q")]),
                                inputs=levels.value_vars, on_unused_input="ignore", point_fn=False)

    def to_shape(point):
        A, eta1, p, q = derived(*[point[v.name] for v in levels.value_vars])
        logit = np.log(A / values["a_top"]) - np.log1p(-A / values["a_top"])
        return {"z_A": (logit - values["a_mu"]) / values["a_sd"], "eta1": eta1, "p": p, "q": q,
                **{k: point[k] for k in ("tau_log__", "sigma_log__", "gamma")}}

    rng = np.random.default_rng(0)
    gaps, coords = [], ("level_last", "level_ratio", "headroom", "bend")
    for headroom in (-3.0, -1.0, 0.0, 1.5):
        for bend in (-2.0, 0.0, 1.5):
            point = {"level_last": 1.5 + rng.normal(0, 0.5), "level_ratio": 1.0 + rng.normal(0, 0.5),
                     "headroom": headroom, "bend": bend, "tau_log__": np.log(0.01), "sigma_log__": np.log(0.02),
                     "gamma": 0.3}
            point = {k: np.asarray(v) for k, v in point.items()}
            jac = np.zeros((4, 4))
            for j, name in enumerate(coords):
                up, down = dict(point), dict(point)
                up[name], down[name] = point[name] + 1e-6, point[name] - 1e-6
                jac[:, j] = [(to_shape(up)[k] - to_shape(down)[k]) / 2e-6 for k in ("z_A", "eta1", "p", "q")]
            gaps.append(logp_levels(point) - logp_shape(to_shape(point)) - np.log(abs(np.linalg.det(jac))))
    assert np.ptp(gaps) < 1e-5, gaps


def test_mmf4_levels_samples_the_same_posterior_as_its_own_parameters(monkeypatch):
    """Sampled, the "levels" coordinates and MMF4's own (small steps, long tuning) give the same posterior on an
    MMF4 curve still rising through its pilot: means within Monte Carlo error (4 standard errors, from each run's
    ESS) and sds within 25 %, for A_max, η₁, the shape parameters and the mean curve at 3× the last budget."""
    import pandas as pd

    from palm_bayes import engine, ensemble
    from palm_bayes.engine import PalmSampler, SamplerSettings
    from palm_bayes.model import CurveData

    rng = np.random.default_rng(2)
    x = np.arange(1, 9) * 1.0
    mu = family_curve("mmf4", x, 0.9, -0.3, 1.0, 0.3, 1.0)
    rows = pd.DataFrame([{"run": str(r), "budget": xi * 10, "score": m + off + 0.01 * rng.standard_normal()}
                         for r, off in enumerate(0.008 * rng.standard_normal(5)) for xi, m in zip(x, mu, strict=True)])
    data = CurveData.from_rows(rows, "fraction")
    sampler = PalmSampler(SamplerSettings(draws=1000, tune=300, chains=2, seed=1, retry_tune=1500))
    post = {}
    for rung in (("levels", 0.9, False), ("shape", 0.99, True)):
        monkeypatch.setattr(engine, "LADDER", (rung,))
        geometry = rung[0]
        post[geometry] = ensemble.sample_family(sampler, data, "mmf4", ("sim", "m", "c0"))
    for name in ("A_max", "eta1", "p", "q", "far"):
        if name == "far":
            a, b = (post[g].mean_curve(np.array([240.0]))[:, 0] for g in ("levels", "shape"))
            ess = [min(post[g].diagnostics.ess_bulk) for g in ("levels", "shape")]
        else:
            a, b = (post[g].draws[name].reshape(-1) for g in ("levels", "shape"))
            ess = [post[g].diagnostics.set_index("param").at[name, "ess_bulk"] for g in ("levels", "shape")]
        se = np.sqrt(a.var() / ess[0] + b.var() / ess[1])
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean(), se)
        assert abs(a.std() / b.std() - 1) < 0.25, (name, a.std(), b.std())
