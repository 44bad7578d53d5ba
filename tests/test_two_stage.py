"""The pooled ceiling in two stages (palm_bayes.two_stage): the resampling algebra against an exact posterior, and
the whole path against one joint NUTS run on the same model."""

import numpy as np
import pandas as pd
import pytest
from test_pooling import SHARED, group_table

from palm_bayes import _compat
from palm_bayes.forecast import Forecaster
from palm_bayes.two_stage import S_MIN, pooled_ceiling_draws, proposal_prior, refined_proposal

POOL_SD = 0.5


def exact_normal_posterior(y, v, prior_mu):
    """The Normal-Normal pooled model a_m ~ N(μ, s²), y_m ~ N(a_m, v_m²), μ ~ N(prior), s ~ HalfNormal(POOL_SD)
    (truncated below at S_MIN, as the grid is), by quadrature: E and sd of μ, E of s, E of each a_m."""
    mu = np.linspace(prior_mu[0] - 8, prior_mu[0] + 8, 1601)[:, None, None]
    s = np.linspace(S_MIN, 3.0, 1200)[None, :, None]
    var = s**2 + v**2
    log_p = (-0.5 * ((mu[..., 0] - prior_mu[0]) / prior_mu[1]) ** 2 - 0.5 * (s[..., 0] / POOL_SD) ** 2
             + (-0.5 * (y - mu) ** 2 / var - 0.5 * np.log(var)).sum(axis=-1))
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    # a_m given (μ, s): Normal with precision 1/s² + 1/v² (conjugate)
    a_mean = ((mu / s**2 + y / v**2) / (1 / s**2 + 1 / v**2) * p[..., None]).sum(axis=(0, 1))
    e_mu = (p * mu[..., 0]).sum()
    sd_mu = np.sqrt((p * (mu[..., 0] - e_mu) ** 2).sum())
    return e_mu, sd_mu, (p * s[..., 0]).sum(), a_mean


@pytest.mark.parametrize("y", [[2.0, 2.3, 1.8], [0.0, 3.0, 1.5, 2.5]])
def test_stage_two_matches_the_exact_normal_posterior(y):
    """Stage-1 'posteriors' drawn exactly (a Normal likelihood times the proposal), the group resampled: μ, s and
    each a_m agree with the exact posterior. Without the division by the proposal density the answers move by
    several Monte Carlo errors (the weights would count the proposal twice)."""
    rng = np.random.default_rng(0)
    y = np.asarray(y)
    v = np.array([0.2, 1.5, 0.6, 0.4])[: len(y)]  # one tightly measured method, one barely measured
    prior_mu = (1.5, 1.0)
    # each method its own proposal (any proposal gives the same posterior); the default one first
    proposals = [proposal_prior(*prior_mu, POOL_SD), (2.5, 1.2), (0.5, 1.5), (1.5, 2.0)][: len(y)]
    stage1 = []
    for ym, vm, (centre, width) in zip(y, v, proposals, strict=True):  # q_m ∝ N(y_m; a, v_m²) N(a; centre, width²)
        prec = 1 / vm**2 + 1 / width**2
        stage1.append(rng.normal((ym / vm**2 + centre / width**2) / prec, prec**-0.5, size=4000))
    out = pooled_ceiling_draws(stage1, proposals, prior_mu, POOL_SD, 4000, rng)
    e_mu, sd_mu, e_s, a_mean = exact_normal_posterior(y, v, prior_mu)
    se = sd_mu / np.sqrt(min(out.ess))
    assert abs(out.mu.mean() - e_mu) < 4 * se + 0.01, (out.mu.mean(), e_mu, se)
    assert abs(out.mu.std() - sd_mu) < 0.1 * sd_mu
    assert abs(out.scale.mean() - e_s) < 0.1 * e_s
    for m, a in enumerate(stage1):
        pooled = a[out.index[m]]
        assert abs(pooled.mean() - a_mean[m]) < 4 * pooled.std() / np.sqrt(out.ess[m]) + 0.01, (m, a_mean[m])
    assert (out.ess > 500).all() and (out.ess <= 4000).all()
    # a second proposal for a method is centred on the first pass's estimate of its pooled ceiling, and wider
    # than the group's spread
    for m, a in enumerate(stage1):
        c2, w2 = refined_proposal(out, a, m)
        assert abs(c2 - a_mean[m]) < 0.1 and w2 > sd_mu


def test_stage_two_is_reproducible_and_draws_are_joint():
    rng = np.random.default_rng(1)
    stage1 = [rng.normal(m, 0.5, size=2000) for m in (1.0, 1.2, 3.0)]
    a = pooled_ceiling_draws(stage1, [(1.5, 2.0)] * 3, (1.5, 1.0), POOL_SD, 2000, np.random.default_rng(5))
    b = pooled_ceiling_draws(stage1, [(1.5, 2.0)] * 3, (1.5, 1.0), POOL_SD, 2000, np.random.default_rng(5))
    np.testing.assert_array_equal(a.mu, b.mu)
    for i, j in zip(a.index, b.index, strict=True):
        np.testing.assert_array_equal(i, j)
    # draw k of each method was picked given the same (μ, s): the methods' resampled ceilings move with μ
    for m, a_m in enumerate(stage1):
        assert np.corrcoef(a_m[a.index[m]], a.mu)[0, 1] > 0.2


@pytest.fixture(scope="module")
def both():
    df, _ = group_table(SHARED[1:4], seed=6)
    settings = dict(seed=1, draws=600, tune=600, chains=2, pooling="ceiling")
    return df, {g: Forecaster(group_sampler=g, **settings).fit(df) for g in ("two-stage", "joint")}


def test_two_stage_samples_the_joint_posterior(both):
    """The same model two ways — each method alone and the group resampled, or one NUTS run over the group —:
    every method's A_max and β, the group's ceiling and pooling scale, and the forecast at 3× the last budget
    agree within Monte Carlo error (ESS-based standard errors; the joint run's ESS from ArviZ, the two-stage
    ESS as diagnostics() reports it)."""
    df, fits = both
    two, joint = fits["two-stage"], fits["joint"]
    assert (joint.diagnostics().max_r_hat < 1.02).all()  # the reference mixed
    diag = two.diagnostics().set_index("method")
    g = ("sim", "m")
    names = {f"{n}/{k[2]}": (two.posteriors[k].draws[n], joint.posteriors[k].draws[n], diag.min_ess_bulk[k[2]])
             for k in two.posteriors for n in ("A_max", "beta")}
    last = df.budget.max()
    for k in two.posteriors:
        names[f"A(3B)/{k[2]}"] = (two.curve_draws(k, [3 * last])[:, 0], joint.curve_draws(k, [3 * last])[:, 0],
                                  diag.min_ess_bulk[k[2]])
    for n in ("A_max_group", "pool_sd_A_max"):
        names[n] = (two.groups[g].draws[n], joint.groups[g].draws[n], _compat.ess(two.groups[g].draws[n]))
    for name, (a, b, ess_a) in names.items():
        ess_b = _compat.ess(b) if b.ndim == 2 else _compat.ess(b.reshape(2, -1))
        a, b = a.reshape(-1), b.reshape(-1)
        se = np.sqrt(a.var() / ess_a + b.var() / ess_b)
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean(), se)
        assert abs(np.quantile(a, 0.9) - np.quantile(b, 0.9)) < 6 * se + 0.01, name


def test_two_stage_diagnostics_are_reported_and_survive_a_reload(both, tmp_path):
    _df, fits = both
    two = fits["two-stage"]
    diag = two.diagnostics()
    assert diag.geometry.str.startswith("two-stage ceiling").all() and (diag.pooling == "ceiling").all()
    assert (diag.min_ess_bulk > 0).all() and diag.max_r_hat.notna().all()
    two.save(tmp_path)
    back = Forecaster.load(tmp_path)
    assert back.settings.group_sampler == "two-stage"
    pd.testing.assert_frame_equal(back.diagnostics(), diag)
    pd.testing.assert_frame_equal(back.predict(level=0.9), two.predict(level=0.9))
