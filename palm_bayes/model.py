"""The Bayesian PALM model: priors, likelihood, and NUTS sampling of one curve at a time.

Data of one curve (every run, every budget) enter on the fraction scale (percent scores are divided by 100) and
on the episode axis ``x = B / b`` with ``b`` the curve's smallest budget step (:func:`palm_bayes.data.episode_size`),
so the priors mean the same thing whatever the budget unit: regular AL runs get x = 1, 2, 3, ...; geometric
budgets (LCDB) get x ≈ 2.3, 3.3, 4.6, ... from their finest step.

Priors (every sampled quantity is unconstrained and smooth; nothing is clipped):

``z_A``       logit A_max = logit(best pilot mean) + ``A_LIFT`` + ``A_SD`` · z_A,  z_A ~ N(0, 1).
              The ceiling is above what the pilot has reached: the prior's median sits ``A_LIFT`` = 0.5 logit
              units above the best pilot mean (0.30 → 0.41, 0.70 → 0.79, 0.90 → 0.94: a sixth to two fifths of
              the remaining headroom), and the sd of 1.0 still allows e.g. 0.70 → [0.34, 0.97] (±2 sd). A prior
              centred on the best pilot mean itself put half its mass where the data do not allow a ceiling and
              pulled every forecast down: the final-budget forecast was below the truth on 78 % of LCDB dev
              curves, 88 % of AL dev curves and 90 % of 168 more AL curves. The lift was chosen across sets
              (docs/benchmarks.md, 2026-12-07, late night).
              What the user knows replaces it (:class:`AMaxPrior`): a known ceiling C (e.g. the accuracy of
              training on the whole pool) makes A_max = C · sigmoid(·), the same logit-normal shape rescaled to
              (0, C), so every draw stays below C; a prior range [LO, HI] centres and scales the logit-normal so
              that LO and HI are its 5 % and 95 % quantiles (a belief, not a bound).
``log_base``  log(x₁ + α) ~ N(log(x₁ + 1), 1), with x₁ the first observed x: keeps ``x + α > 0`` at every
              observed budget by construction (α = exp(log_base) − x₁) and says "the first budget is about one
              episode into the curve", give or take a factor e.
``log_beta``  log β ~ N(0, 0.75): β between about 0.2 and 4.5 (±2 sd); β = 1 is the plain exponential.
``eta1``      cloglog of the share of A_max reached at the first budget, ~ N(0, 1.5): the curve's level at the
              data instead of δ itself, which the data pin down far better (δ and β trade off strongly when only
              the early part of the curve is seen). log λ = eta1 − β · log_base, δ = 1 − exp(−λ).
``tau``       run-to-run offset scale, HalfNormal(0.03): repetitions share seeds and initial pools, so a run that
              starts high tends to stay high; each run gets an additive offset τ·z_r, z_r ~ N(0, 1). With the
              Normal likelihood (the default) the offsets are integrated out exactly (:func:`marginal_run_loglik`):
              a run's scores are jointly Normal with covariance diag(sd²) + τ² 1 1ᵀ. Same posterior as sampling
              the z_r, but 7 dimensions instead of 7 + runs and no funnel between τ and the offsets; on 20 + 20
              dev curves this took sampling health from 65 % to 85–95 % of curves and sampling time from 5–11 s
              to 1–1.5 s per curve (docs/benchmarks.md). The Student-t, AR(1) and misfit variants sample the z_r.
``sigma``     observation noise at the first budget, HalfNormal(0.05); with ``likelihood="student"`` a Student-t
              with ν − 2 ~ Gamma(2, 0.1) for outlying episodes (ν > 2: the noise keeps a finite variance).
``rho``       (``ar1=True``) carry-over of a run's deviation from one budget to its next, ρ ~ Beta(2, 2): in AL
              the labelled set grows a little per episode, so a run that is above its curve now tends to stay
              above it next episode; beyond the constant run offset. Each score is modelled given the run's
              previous one, so every observation keeps its own likelihood term (for LOO).
``gamma``     noise trend (``noise_trend=True``, the default): sd(x) = σ · (x / x₁)^(−γ), γ ~ N(0.3, 0.5). Test
              accuracy measured after training on few labels scatters far more than after many, so one constant σ
              learned on a pilot makes later predictive bands too wide (on LCDB) or mixes misfit into noise.

The curve and the noise sd are evaluated once per distinct budget (``x_budget``) and read off for each observation
(``budget_index``): the same density, with a fifth to a tenth of the transcendental functions per gradient on
pilots of 5-25 runs.

:func:`build_family_model` puts another curve family of :mod:`palm_bayes.families` in PALM's place, with the same
priors on A_max and η₁, the same runs and noise (offsets integrated out), and the family's two shape parameters.

The coordinates NUTS moves in (``geometry``) are :func:`build_model`'s choice too: see
:mod:`palm_bayes.engine` for why there are two and how the default picks between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .curve import palm_curve_cloglog
from .data import episode_size, scale_max

A_SD, ETA_SD, BETA_SD = 1.0, 1.5, 0.75
#: How far above the best pilot mean (logit units) the default A_max prior puts its median (see the module
#: docstring); a user's prior range (:class:`AMaxPrior` ``low``/``high``) replaces centre and spread.
A_LIFT = 0.5
Z90 = 1.6448536269514722  # standard normal 95 % quantile: [LO, HI] of a prior range is its central 90 %
GEOMETRIES = ("shape", "levels", "auto")
LIKELIHOODS = ("normal", "student")
#: Posterior quantities kept per draw (fraction scale for A_max/sigma/tau).
PARAMS = ("A_max", "delta", "alpha", "beta", "sigma", "tau")


@dataclass(frozen=True)
class AMaxPrior:
    """What the user knows about A_max, on the fraction scale.

    Parameters
    ----------
    below : float, optional
        A known ceiling: every draw of A_max stays below it (the logit-normal prior is rescaled to (0, below)).
    low, high : float, optional
        A prior range: the logit-normal prior of A_max gets LO and HI as its 5 % and 95 % quantiles instead of
        being centred above the best pilot mean. Both or neither; below the ceiling if one is given.
    """

    below: float | None = None
    low: float | None = None
    high: float | None = None

    def __post_init__(self):
        if (self.low is None) != (self.high is None):
            raise ValueError("give both ends of the A_max prior range, or neither")
        top = 1.0 if self.below is None else self.below
        if not 0 < top <= 1:
            raise ValueError(f"the A_max ceiling {top:g} is outside (0, 1] on the fraction scale")
        if self.low is not None and not 0 < self.low < self.high < top:
            raise ValueError(f"the A_max prior range [{self.low:g}, {self.high:g}] must satisfy "
                             f"0 < LO < HI < {top:g}")

    def coords(self, best: float) -> tuple[float, float, float]:
        """``(ceiling, mu, sd)`` with A_max = ceiling · sigmoid(mu + sd · z), z ~ N(0, 1); ``best`` is the best
        pilot mean (fraction scale): the default centre is :data:`A_LIFT` logit units above it."""
        top = 1.0 if self.below is None else float(self.below)
        if self.low is not None:
            lo, hi = _logit(self.low / top), _logit(self.high / top)
            return top, (lo + hi) / 2, (hi - lo) / (2 * Z90)
        return top, _logit(min(max(best / top, 0.02), 0.98)) + A_LIFT, A_SD

    def describe(self, scale_factor: float = 1.0) -> str:
        """A short text for the outputs, on the data's scale (``scale_factor`` = 100 for percent)."""
        parts = []
        if self.below is not None:
            parts.append(f"A_max < {self.below * scale_factor:g} (known ceiling)")
        if self.low is not None:
            parts.append(f"A_max 90% prior range [{self.low * scale_factor:g}, {self.high * scale_factor:g}]")
        return "; ".join(parts) or "default (logit-normal, median above the best pilot mean)"


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


@dataclass
class CurveData:
    """One curve prepared for the model (fraction scale, episode axis)."""

    x: np.ndarray
    y: np.ndarray
    run_index: np.ndarray
    n_runs: int
    budget_index: np.ndarray
    n_budgets: int
    b: float
    scale: str
    x_first: float
    x_last: float = 0.0
    #: A_max = a_top · sigmoid(a_mu + a_sd · z): the prior of A_max (see :class:`AMaxPrior`)
    a_top: float = 1.0
    a_mu: float = 0.0
    a_sd: float = A_SD
    #: best mean over runs at one pilot budget (fraction scale)
    best: float = 0.5
    #: per observation, the index of the same run's observation at its previous budget (itself for a run's first)
    prev_index: np.ndarray | None = None

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, scale: str, b: float | None = None,
                  a_max_prior: AMaxPrior | None = None) -> CurveData:
        """Build from one curve's tidy rows (``run, budget, score``)."""
        b = float(b) if b is not None else episode_size(rows["budget"].to_numpy())
        x = rows["budget"].to_numpy(dtype=float) / b
        y = rows["score"].to_numpy(dtype=float) / scale_max(scale)
        runs, run_index = np.unique(rows["run"].astype(str).to_numpy(), return_inverse=True)
        budgets, budget_index = np.unique(x, return_inverse=True)
        best = float(rows.groupby("budget")["score"].mean().max()) / scale_max(scale)
        a_top, a_mu, a_sd = (a_max_prior or AMaxPrior()).coords(best)
        order = np.lexsort((x, run_index))  # by run, then budget
        prev = np.arange(len(x))
        same_run = run_index[order][1:] == run_index[order][:-1]
        prev[order[1:][same_run]] = order[:-1][same_run]
        return cls(x=x, y=y, run_index=run_index.astype("int64"), n_runs=len(runs),
                   budget_index=budget_index.astype("int64"), n_budgets=len(budgets), b=b, scale=scale,
                   x_first=float(x.min()), x_last=float(x.max()),
                   a_top=a_top, a_mu=a_mu, a_sd=a_sd, best=best, prev_index=prev.astype("int64"))


def pad_runs(n: int) -> int:
    """Run-effect vector length: the model is compiled for 8, 16, 32, ... runs so that curves share it."""
    size = 8
    while size < n:
        size *= 2
    return size


def build_model(n_run_slots: int = 8, likelihood: str = "normal", noise_trend: bool = True,
                n_budget_slots: int = 0, geometry: str = "shape", ar1: bool = False, marginal: bool = False):
    """The PyMC model with placeholder data (see the module docstring for the priors).

    With ``marginal=True`` (Normal likelihood only, no AR(1) or misfit term) the run offsets are integrated out:
    the likelihood is :func:`marginal_run_loglik` per run, and ``loglik_run`` keeps each run's log-likelihood.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}")
    with pm.Model() as model:
        # the curve and the noise sd are evaluated once per distinct budget (``x_budget``) and read off for each
        # observation through ``budget_index``: pilots repeat each budget once per run, so this is most of the work
        # of a gradient saved (the same density: the same numbers, gathered)
        x_budget, budget, y, run, x_first, (a_top, a_mu, a_sd) = curve_data()
        x = x_budget[budget]
        x_last = pm.Data("x_last", 5.0)

        log_base = pm.Normal("log_base", pm.math.log(x_first + 1.0), 1.0)
        alpha = pm.Deterministic("alpha", pm.math.exp(log_base) - x_first)
        if geometry == "levels":
            A_max, beta, eta1 = levels_geometry(a_top, a_mu, a_sd, log_base, x_first, x_last)
        elif geometry == "shape":
            A_max = ceiling(a_top, a_mu, a_sd)
            beta = pm.Deterministic("beta", pm.math.exp(pm.Normal("log_beta", 0.0, BETA_SD)))
            eta1 = pm.Normal("eta1", 0.0, ETA_SD)
        else:
            raise ValueError(f"geometry must be one of {GEOMETRIES}")
        log_lambda = pm.Deterministic("log_lambda", eta1 - beta * log_base)
        tau, sd = noise_terms(x_budget, x_first, budget, noise_trend)

        mu = palm_curve_cloglog(x_budget, A_max, log_lambda, alpha, beta, xp=pt)[budget]
        if marginal:
            if likelihood != "normal" or ar1 or n_budget_slots:
                raise ValueError("marginal run offsets need the Normal likelihood without AR(1) or misfit terms")
            marginal_observations(y, mu, sd, tau, run, n_run_slots)
            return model
        mu = mu + tau * pm.Normal("z_run", 0.0, 1.0, shape=n_run_slots)[run]
        if n_budget_slots:
            # misfit of the PALM form: a deviation of the mean over runs at each budget, shared by all runs
            omega = pm.HalfNormal("omega", 0.02)
            w = pm.Normal("w_budget", 0.0, 1.0, shape=n_budget_slots)
            mu = mu + omega * w[budget]
        sd = sd * pt.ones_like(x)
        if ar1:
            # a run's deviation from its curve carries over from one budget to the next (the labelled set grows by
            # a little each episode): AR(1) across each run's budgets, written as each score given the run's
            # previous one, so every observation keeps its own likelihood term
            prev = pm.Data("prev_index", np.arange(5, dtype="int64"))
            has_prev = pt.neq(prev, pt.arange(x.shape[0]))
            rho = pm.Beta("rho", 2.0, 2.0)
            carry = pt.switch(has_prev, rho, 0.0)
            mu = mu + carry * (sd / sd[prev]) * (y[prev] - mu[prev])
            sd = sd * pt.sqrt(1 - carry**2)
        if likelihood == "student":
            # nu > 2 keeps the noise variance finite; with nu < 1 (which LCDB pilots' outliers pull towards) a
            # predictive band of one new run became thousands of points wide
            nu = pm.Deterministic("nu", 2.0 + pm.Gamma("nu_minus_2", 2.0, 0.1))
            pm.StudentT("obs", nu=nu, mu=mu, sigma=sd, observed=y, shape=x.shape)
        else:
            pm.Normal("obs", mu=mu, sigma=sd, observed=y, shape=x.shape)
    return model


def build_family_model(family: str, n_run_slots: int = 8, noise_trend: bool = True, geometry: str = "shape"):
    """The PyMC model of one curve family of :mod:`palm_bayes.families` for one curve.

    A_max and η₁ (the level at the first budget) have PALM's priors (module docstring), the family's two shape
    parameters ``p``, ``q`` their own (:data:`palm_bayes.families.FAMILIES`), and the runs and the noise the same
    model as PALM's, offsets integrated out. The data are PALM's (``x_budget``, ``budget_index``, ``y``, ...).
    ``geometry="levels"`` (MMF4 only) samples the same posterior in the coordinates of :func:`mmf4_levels`.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from .families import check_family, family_curve, prior_mean

    fam = check_family(family)
    if geometry == "levels" and family != "mmf4":
        raise ValueError(f"geometry 'levels' is written for the mmf4 family only, not {family!r}")
    with pm.Model() as model:
        x_budget, budget, y, run, x_first, a_prior = curve_data()
        if geometry == "levels":
            A_max, eta1, p, q = mmf4_levels(*a_prior, x_first, pm.Data("x_last", 5.0), fam)
        else:
            A_max = ceiling(*a_prior)
            eta1 = pm.Normal("eta1", 0.0, ETA_SD)
            first = 1.0 if family == "palm_log" else x_first  # the first budget on the family's own axis
            p = pm.Normal("p", prior_mean(fam.p_prior[0], first, pt), fam.p_prior[1])
            q = pm.Normal("q", *fam.q_prior)
        tau, sd = noise_terms(x_budget, x_first, budget, noise_trend)
        mu = family_curve(family, x_budget, A_max, eta1, p, q, x_first, xp=pt)[budget]
        marginal_observations(y, mu, sd, tau, run, n_run_slots)
    return model


def curve_data():
    """Inside a model: one curve's data containers, filled per curve (``PalmSampler._values``): ``x_budget``
    (each distinct budget on the episode axis), ``budget_index`` and ``run_index`` (per observation), ``y``,
    ``x_first`` and the A_max prior's ``(a_top, a_mu, a_sd)``."""
    import pymc as pm

    x_budget = pm.Data("x_budget", np.arange(1.0, 6.0))
    budget = pm.Data("budget_index", np.arange(5, dtype="int64"))
    y = pm.Data("y", np.full(5, 0.5))
    run = pm.Data("run_index", np.zeros(5, dtype="int64"))
    x_first = pm.Data("x_first", 1.0)
    return x_budget, budget, y, run, x_first, (pm.Data("a_top", 1.0), pm.Data("a_mu", 0.0), pm.Data("a_sd", A_SD))


def ceiling(a_top, a_mu, a_sd):
    """Inside a model: A_max = a_top · sigmoid(a_mu + a_sd · z_A), z_A ~ N(0, 1) (the module docstring)."""
    import pymc as pm

    return pm.Deterministic("A_max", a_top * pm.math.sigmoid(a_mu + a_sd * pm.Normal("z_A", 0.0, 1.0)))


def noise_terms(x_budget, x_first, budget, noise_trend: bool = True):
    """Inside a model: the run-offset scale ``tau`` and the observation-noise sd per observation (see the module
    docstring: ``tau``, ``sigma``, ``gamma``), read off per distinct budget through ``budget``."""
    import pymc as pm
    import pytensor.tensor as pt

    tau = pm.HalfNormal("tau", 0.03)
    sigma = pm.HalfNormal("sigma", 0.05)
    if not noise_trend:
        return tau, sigma
    # noise shrinks (gamma > 0) or grows as the labelled set grows: sd(x) = sigma * (x / x1)^(-gamma)
    gamma = pm.Normal("gamma", 0.3, 0.5)
    return tau, (sigma * pt.exp(-gamma * pt.log(x_budget / x_first)))[budget]


def marginal_observations(y, mu, sd, tau, run, n_run_slots: int) -> None:
    """Inside a model: the likelihood of the scores ``y`` around the mean curve ``mu`` (per observation) with
    each run's offset integrated out (:func:`marginal_run_loglik`); ``loglik_run`` keeps each run's term."""
    import pymc as pm
    import pytensor.tensor as pt

    ll_run = marginal_run_loglik(y - mu, sd * pt.ones_like(y), tau, run, n_run_slots)
    pm.Potential("obs", pm.Deterministic("loglik_run", ll_run).sum())


def marginal_run_loglik(resid, sd, tau, run, n_runs: int):
    """Log-likelihood of each run's scores with its offset integrated out (PyTensor graph).

    A run's residuals e = y − A(x) are Normal with covariance D + τ² 1 1ᵀ, D = diag(sd²): a shared offset
    τ·z plus independent noise. By the matrix determinant lemma and Sherman–Morrison, with
    S₁ = Σ 1/d, S₂ = Σ e/d, Q = Σ e²/d over the run's n observations,

        log p = −½ [n log 2π + Σ log d + log(1 + τ² S₁) + Q − τ² S₂² / (1 + τ² S₁)].

    The same posterior as sampling one offset per run, without the funnel between τ and the offsets.
    Returns a vector of ``n_runs`` values (0 for unused run slots).
    """
    import pytensor.tensor as pt

    d = sd**2

    def per_run(v):
        return pt.inc_subtensor(pt.zeros(n_runs)[run], v)

    n, s1, s2, q = per_run(pt.ones_like(d)), per_run(1 / d), per_run(resid / d), per_run(resid**2 / d)
    logdet = per_run(pt.log(d)) + pt.log1p(tau**2 * s1)
    return -0.5 * (n * np.log(2 * np.pi) + logdet + q - tau**2 * s2**2 / (1 + tau**2 * s1))


def levels_geometry(a_top, a_mu, a_sd, log_base, x_first, x_last, shape=None, eta_prior=(0.0, ETA_SD),
                    beta_prior=(0.0, BETA_SD)):
    """The same prior as ``geometry="shape"``, sampled in coordinates the data pin down.

    NUTS moves in (``level_last``, ``level_ratio``, ``headroom``): the logit of the curve's level at the last
    observed budget, L_K = A(x_K); the logit of L_1 / L_K (the level at the first budget relative to it); and the
    share h of the remaining headroom that A_max adds, h = (A_max − L_K) / (1 − L_K), as r with
    h = exp(−(exp(exp(r)) − 1)) (r → −∞: A_max → the ceiling; r → ∞: A_max → L_K, a plateau). The map to
    (logit A_max, η₁, log β) is a bijection; its log-Jacobian is added to the prior of those coordinates, so the
    posterior is exactly that of the "shape" geometry, but the first two coordinates are nearly fixed by the data
    and A_max varies (mostly) along one axis instead of a curved ridge. Levels and A_max are measured in units
    of the A_max ceiling ``a_top`` (1 unless the user knows a lower one; shares are ratios and do not change).

    ``shape`` gives one set of coordinates per curve (the joint model of :mod:`palm_bayes.pooling`, whose
    pooled priors come in as ``a_mu``/``a_sd``, ``eta_prior`` and ``beta_prior``: (mean, sd) of η₁ and log β).
    """
    import pymc as pm
    import pytensor.tensor as pt

    lv = level_coordinates(a_top, shape)
    gap = lv["eta_last"] - lv["eta1"]
    span = pt.log(x_last - x_first + pt.exp(log_base)) - log_base  # log((x_K + α) / (x_1 + α)) > 0
    log_beta = pt.log(gap) - pt.log(span)
    beta = pm.Deterministic("beta", pt.exp(log_beta))
    prior = (pm.logp(pm.Normal.dist(a_mu, a_sd), lv["logit_A"]) + pm.logp(pm.Normal.dist(*eta_prior), lv["eta1"])
             + pm.logp(pm.Normal.dist(*beta_prior), log_beta))
    # (logit A_max, eta1, eta_last) -> (logit A_max, eta1, log beta): d log beta / d eta_last = 1 / gap
    pm.Potential("prior_levels", prior + (lv["log_jac"] - pt.log(gap)))
    return a_top * lv["A_max"], beta, lv["eta1"]


def level_coordinates(a_top, shape=None) -> dict:
    """Inside a model: the free coordinates (``level_last``, ``level_ratio``, ``headroom``) of
    :func:`levels_geometry` and what they give, in units of the A_max ceiling: ``A_max``, ``logit_A``, the shares
    of A_max reached at the first and last budget and their complementary log-logs ``eta1`` and ``eta_last``, and
    ``log_jac``, the log-Jacobian of (level_last, level_ratio, headroom) → (logit A_max, η₁, η_K). The model's
    ``A_max`` (a_top times the share) is kept as a Deterministic."""
    import pymc as pm
    import pytensor.tensor as pt

    p, q, r = (pm.Flat(name, shape=shape) for name in ("level_last", "level_ratio", "headroom"))
    level_last = pm.math.sigmoid(p)
    # the headroom share h = (A_max - L_K) / (1 - L_K) = exp(-(exp(exp(r)) - 1)), computed in logs: on a plateau
    # (h -> 0) log beta grows like log log log(1/h), so in logit(h) the posterior had a tail heavy enough to
    # stall NUTS; in this coordinate log beta grows like r and its Normal prior keeps the tail light
    log_h = -pt.expm1(pt.exp(r))
    log_1mh = pt.log(-pt.expm1(log_h))
    h = pt.exp(log_h)
    A_max = level_last + (1 - level_last) * h  # in units of a_top
    pm.Deterministic("A_max", a_top * A_max)
    log_A, log_1mA = pt.log(A_max), pt.log1p(-level_last) + log_1mh
    share_last = level_last / A_max
    log_1m_share_last = pt.log1p(-level_last) + log_h - log_A  # log(1 - L_K / A_max), exact as h -> 0
    share_first = share_last * pm.math.sigmoid(q)
    eta1 = pt.log(-pt.log1p(-share_first))
    eta_last = pt.log(-log_1m_share_last)

    def log_dsigmoid(v):
        return -pt.softplus(-v) - pt.softplus(v)

    # log-Jacobian of (p, q, r) -> (logit A_max, eta1, eta_last): log|dh/dr| = log h + e^r + r, then the map from
    # (L_K, L_1/L_K, h); log h - log(1 - share_last) = log A_max - log(1 - L_K) is taken out by hand, as the two
    # are huge and nearly equal on a plateau
    log_jac = (log_dsigmoid(p) + log_dsigmoid(q) + pt.exp(r) + r + pt.log(share_last) - log_A - log_1mA
               - pt.log1p(-share_first) - eta1 - eta_last)
    return {"A_max": A_max, "logit_A": log_A - log_1mA, "eta1": eta1, "eta_last": eta_last,
            "log_1m_share_first": pt.log1p(-share_first), "log_1m_share_last": log_1m_share_last,
            "log_jac": log_jac}


def mmf4_levels(a_top, a_mu, a_sd, x_first, x_last, fam):
    """MMF4's prior (:func:`build_family_model`) sampled in coordinates the data pin down, as PALM's
    :func:`levels_geometry`: the levels at the first and last budget and the headroom share of
    :func:`level_coordinates`, and ``bend`` = ω.

    MMF4's headroom left at x is exp(−H(x)) ∝ 1 / (1 + u·x^d), u = κ^(−d) (:mod:`palm_bayes.families`). Given
    A_max and the two levels, the hazard gap G = H(x_K) − H(x₁) = log(1 − s₁) − log(1 − s_K) (s: shares of A_max) is
    fixed, and every d > G / ℓ, ℓ = log(x_K / x₁), has exactly one κ with that gap:
    u = (e^G − 1) / (x₁^d (e^(dℓ) − e^G)). So d = (G / ℓ)(1 + e^ω) and
    p = log(κ / x₁) = [G + log(e^(Ge^ω) − 1) − log(e^G − 1)] / d. The log-Jacobian of (G, ω) → (log d, p) is
    log σ(ω) + log|∂p/∂G| (d fixed), that of (η_K → G) is η_K; with :func:`level_coordinates`' the density is
    exactly the "shape" one. Returns (A_max, η₁, p, q = log d).
    """
    import pymc as pm
    import pytensor.tensor as pt

    from .families import prior_mean

    lv = level_coordinates(a_top)
    omega = pm.Flat("bend")
    gap = lv["log_1m_share_first"] - lv["log_1m_share_last"]
    span = pt.log(x_last / x_first)
    log_d = pt.log(gap) + pt.softplus(omega) - pt.log(span)

    def log_expm1(v):
        return v + pt.log1mexp(-v)

    bent = gap * pt.exp(omega)  # d·ℓ − G > 0
    p = (gap + log_expm1(bent) - log_expm1(gap)) * pt.exp(-log_d)
    log_dp_dgap = -log_d + pt.logaddexp(-log_expm1(bent), -pt.log1mexp(-gap))
    log_jac = lv["log_jac"] + lv["eta_last"] - pt.softplus(-omega) + log_dp_dgap
    prior = (pm.logp(pm.Normal.dist(a_mu, a_sd), lv["logit_A"]) + pm.logp(pm.Normal.dist(0.0, ETA_SD), lv["eta1"])
             + pm.logp(pm.Normal.dist(prior_mean(fam.p_prior[0], x_first, pt), fam.p_prior[1]), p)
             + pm.logp(pm.Normal.dist(*fam.q_prior), log_d))
    pm.Potential("prior_levels", prior + log_jac)
    return a_top * lv["A_max"], pm.Deterministic("eta1", lv["eta1"]), pm.Deterministic("p", p), \
        pm.Deterministic("q", log_d)
