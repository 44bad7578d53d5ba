"""The Bayesian PALM model: priors, likelihood, and NUTS sampling of one curve at a time.

Data of one curve (every run, every budget) enter on the fraction scale (percent scores are divided by 100) and
on the episode axis ``x = B / b`` with ``b`` the curve's smallest budget step (:func:`palm_bayes.data.episode_size`),
so the priors mean the same thing whatever the budget unit: regular AL runs get x = 1, 2, 3, ...; geometric
budgets (LCDB) get x ≈ 2.3, 3.3, 4.6, ... from their finest step.

Priors (every sampled quantity is unconstrained and smooth; nothing is clipped):

``z_A``       logit A_max = logit(best pilot mean) + ``A_SD`` · z_A,  z_A ~ N(0, 1).
              Centred on the best observed mean because that is where the ceiling is usually found; the sd of
              1.0 on the logit scale still allows e.g. 0.70 → [0.25, 0.95] (±2 sd).
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

Sampling geometry. The prior above is stated on (z_A, log_base, log_beta, eta1); ``geometry="shape"`` samples in
exactly those coordinates. There A_max, β and η₁ sit on a curved ridge (a higher ceiling needs a lower share
reached and another β to fit the same points), and A_max mixed slowly (R-hat > 1.01 on about half the dev curves).
``geometry="levels"`` samples the same posterior in coordinates the data pin down — the curve's level at the last
observed budget, the first level relative to it, and the share of the remaining headroom A_max adds — with the
log-Jacobian of the change of variables added to the prior (see :func:`levels_geometry`). It mixes A_max far
better on curves still rising at the end of the pilot, but on plateaued ones (common on LCDB) the headroom
coordinate has an extremely heavy tail (it maps to log β through a double logarithm) and chains can get stuck.
The default ``geometry="auto"`` samples in "shape" first and, while a run misses a health threshold, again in
"levels", then in both with smaller steps (target_accept 0.99), keeping the healthiest run
(:meth:`PalmSampler.sample`, :func:`retry_ladder`); docs/benchmarks.md has the comparison.

The model is compiled once per process (per padded run count) and re-used for every curve by swapping its data.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import _compat
from .curve import delta_from_log_lambda, palm_curve_cloglog
from .data import episode_size, scale_max

A_SD, ETA_SD, BETA_SD = 1.0, 1.5, 0.75
Z90 = 1.6448536269514722  # standard normal 95 % quantile: [LO, HI] of a prior range is its central 90 %
GEOMETRIES = ("shape", "levels", "auto")
LIKELIHOODS = ("normal", "student")
#: Posterior quantities kept per draw (fraction scale for A_max/sigma/tau).
PARAMS = ("A_max", "delta", "alpha", "beta", "sigma", "tau")
#: Convergence thresholds that trigger a warning.
RHAT_MAX, ESS_MIN = 1.01, 400
#: Scale κ of the extrapolation discrepancy (fraction scale per √(log budget ratio)); see
#: :func:`extrapolation_discrepancy` and docs/benchmarks.md for how it was set.
DISCREPANCY = 0.02


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings. ``seed`` makes every number reproducible."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = 0
    target_accept: float = 0.97
    likelihood: str = "normal"
    noise_trend: bool = True
    low_rank: bool = True
    misfit: bool = False
    loo: bool = False
    geometry: str = "auto"
    ar1: bool = False
    marginal_runs: bool = True
    #: chains nutpie runs at once (None: one per core); set per worker when several fit curves side by side
    cores: int | None = None

    @property
    def marginalised(self) -> bool:
        """Whether the run offsets are integrated out analytically (Normal noise, no AR(1) or misfit term)."""
        return self.marginal_runs and self.likelihood == "normal" and not self.ar1 and not self.misfit


@dataclass(frozen=True)
class AMaxPrior:
    """What the user knows about A_max, on the fraction scale.

    Parameters
    ----------
    below : float, optional
        A known ceiling: every draw of A_max stays below it (the logit-normal prior is rescaled to (0, below)).
    low, high : float, optional
        A prior range: the logit-normal prior of A_max gets LO and HI as its 5 % and 95 % quantiles instead of
        being centred on the best pilot mean. Both or neither; below the ceiling if one is given.
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
        pilot mean (fraction scale), the default centre."""
        top = 1.0 if self.below is None else float(self.below)
        if self.low is not None:
            lo, hi = _logit(self.low / top), _logit(self.high / top)
            return top, (lo + hi) / 2, (hi - lo) / (2 * Z90)
        return top, _logit(min(max(best / top, 0.02), 0.98)), A_SD

    def describe(self, scale_factor: float = 1.0) -> str:
        """A short text for the outputs, on the data's scale (``scale_factor`` = 100 for percent)."""
        parts = []
        if self.below is not None:
            parts.append(f"A_max < {self.below * scale_factor:g} (known ceiling)")
        if self.low is not None:
            parts.append(f"A_max 90% prior range [{self.low * scale_factor:g}, {self.high * scale_factor:g}]")
        return "; ".join(parts) or "default (logit-normal around the best pilot mean)"


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


@dataclass
class CurvePosterior:
    """Posterior draws of one curve, each shaped (chain, draw), plus sampler diagnostics."""

    draws: dict[str, np.ndarray]
    b: float
    scale: str
    diagnostics: pd.DataFrame
    divergences: int
    seconds: float
    likelihood: str = "normal"
    warnings: list[str] = field(default_factory=list)
    x_first: float = 1.0
    loo: dict | None = None
    geometry: str = "shape"
    target_accept: float = 0.97

    def noise_sd(self, budgets: np.ndarray) -> np.ndarray:
        """Observation-noise sd per draw (rows) and budget (columns), fraction scale."""
        sigma = self.draws["sigma"].reshape(-1)[:, None]
        if "gamma" not in self.draws:
            return np.broadcast_to(sigma, (sigma.shape[0], len(budgets)))
        x = np.asarray(budgets, dtype=float)[None, :] / self.b
        return sigma * np.exp(-self.draws["gamma"].reshape(-1)[:, None] * np.log(x / self.x_first))


def pad_runs(n: int) -> int:
    """Run-effect vector length: the model is compiled for 8, 16, 32, ... runs so that curves share it."""
    size = 8
    while size < n:
        size *= 2
    return size


def extrapolation_discrepancy(budgets: np.ndarray, last_budget: float, kappa: float, n_draws: int,
                              rng: np.random.Generator) -> np.ndarray:
    """Draws (n_draws × budgets) of how far the true mean curve strays from the PALM form beyond the data.

    Within the observed budgets the PALM form is checked by the data; beyond the last one it is an assumption,
    and the further out the forecast, the more a real curve can depart from it (a late plateau, a late jump).
    palm-bayes models the departure as a Brownian motion in log budget that starts at zero at the last observed
    budget: d(B) ~ N(0, κ² · log(B / B_last)) for B > B_last, with independent increments between budgets, so a
    trajectory stays coherent across budgets. κ is not learned from one pilot (a pilot cannot show what happens
    after it); it was set on the development sets' held-out budgets (docs/benchmarks.md), κ = 0 turns it off.
    """
    B = np.asarray(budgets, dtype=float)
    if kappa <= 0 or B.size == 0:
        return np.zeros((n_draws, B.size))
    order = np.argsort(B, kind="stable")
    h = np.log(np.maximum(B[order], last_budget) / last_budget)
    steps = np.diff(np.concatenate([[0.0], h]))
    walk = np.cumsum(kappa * np.sqrt(steps)[None, :] * rng.standard_normal((n_draws, B.size)), axis=1)
    out = np.empty_like(walk)
    out[:, order] = walk
    return out


def with_discrepancy(mu: np.ndarray, budgets: np.ndarray, last_budget: float, kappa: float,
                     rng: np.random.Generator, top: float = 1.0) -> np.ndarray:
    """Mean-curve draws ``mu`` (draws × budgets, on a scale whose maximum is ``top``) moved by
    :func:`extrapolation_discrepancy` and clipped to [0, top]: accuracy cannot leave its scale."""
    walk = extrapolation_discrepancy(budgets, last_budget, kappa, mu.shape[0], rng)
    return np.clip(mu + top * walk, 0, top)


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
        x = pm.Data("x", np.arange(1.0, 6.0))
        y = pm.Data("y", np.full(5, 0.5))
        run = pm.Data("run_index", np.zeros(5, dtype="int64"))
        x_first = pm.Data("x_first", 1.0)
        x_last = pm.Data("x_last", 5.0)
        a_top, a_mu, a_sd = pm.Data("a_top", 1.0), pm.Data("a_mu", 0.0), pm.Data("a_sd", A_SD)

        log_base = pm.Normal("log_base", pm.math.log(x_first + 1.0), 1.0)
        alpha = pm.Deterministic("alpha", pm.math.exp(log_base) - x_first)
        if geometry == "levels":
            A_max, beta, eta1 = levels_geometry(a_top, a_mu, a_sd, log_base, x_first, x_last)
        elif geometry == "shape":
            z_A = pm.Normal("z_A", 0.0, 1.0)
            A_max = pm.Deterministic("A_max", a_top * pm.math.sigmoid(a_mu + a_sd * z_A))
            beta = pm.Deterministic("beta", pm.math.exp(pm.Normal("log_beta", 0.0, BETA_SD)))
            eta1 = pm.Normal("eta1", 0.0, ETA_SD)
        else:
            raise ValueError(f"geometry must be one of {GEOMETRIES}")
        log_lambda = pm.Deterministic("log_lambda", eta1 - beta * log_base)
        tau = pm.HalfNormal("tau", 0.03)
        sigma = pm.HalfNormal("sigma", 0.05)
        if noise_trend:
            # noise shrinks (gamma > 0) or grows as the labelled set grows: sd(x) = sigma * (x / x1)^(-gamma)
            gamma = pm.Normal("gamma", 0.3, 0.5)
            sd = sigma * pt.exp(-gamma * pt.log(x / x_first))
        else:
            sd = sigma

        mu = palm_curve_cloglog(x, A_max, log_lambda, alpha, beta, xp=pt)
        if marginal:
            if likelihood != "normal" or ar1 or n_budget_slots:
                raise ValueError("marginal run offsets need the Normal likelihood without AR(1) or misfit terms")
            ll_run = marginal_run_loglik(y - mu, sd * pt.ones_like(x), tau, run, n_run_slots)
            pm.Potential("obs", pm.Deterministic("loglik_run", ll_run).sum())
            return model
        mu = mu + tau * pm.Normal("z_run", 0.0, 1.0, shape=n_run_slots)[run]
        if n_budget_slots:
            budget = pm.Data("budget_index", np.arange(5, dtype="int64"))
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
    logit of the share of the remaining headroom that A_max adds, (A_max − L_K) / (1 − L_K). The map to
    (logit A_max, η₁, log β) is a bijection; its log-Jacobian is added to the prior of those coordinates, so the
    posterior is exactly that of the "shape" geometry, but the first two coordinates are nearly fixed by the data
    and A_max varies (mostly) along one axis instead of a curved ridge. Levels and A_max are measured in units
    of the A_max ceiling ``a_top`` (1 unless the user knows a lower one; shares are ratios and do not change).

    ``shape`` gives one set of coordinates per curve (the joint model of :mod:`palm_bayes.pooling`, whose
    pooled priors come in as ``a_mu``/``a_sd``, ``eta_prior`` and ``beta_prior``: (mean, sd) of η₁ and log β).
    """
    import pymc as pm
    import pytensor.tensor as pt

    p, q, r = (pm.Flat(name, shape=shape) for name in ("level_last", "level_ratio", "headroom"))
    level_last, h = pm.math.sigmoid(p), pm.math.sigmoid(r)
    A_max = level_last + (1 - level_last) * h  # in units of a_top
    pm.Deterministic("A_max", a_top * A_max)
    share_last = level_last / A_max
    share_first = share_last * pm.math.sigmoid(q)
    eta1 = pt.log(-pt.log1p(-share_first))
    eta_last = pt.log(-pt.log1p(-share_last))
    gap = eta_last - eta1
    span = pt.log(x_last - x_first + pt.exp(log_base)) - log_base  # log((x_K + α) / (x_1 + α)) > 0
    log_beta = pt.log(gap) - pt.log(span)
    beta = pm.Deterministic("beta", pt.exp(log_beta))
    logit_A = pt.log(A_max) - pt.log1p(-A_max)
    prior = (pm.logp(pm.Normal.dist(a_mu, a_sd), logit_A) + pm.logp(pm.Normal.dist(*eta_prior), eta1)
             + pm.logp(pm.Normal.dist(*beta_prior), log_beta))

    def log_dsigmoid(v):
        return -pt.softplus(-v) - pt.softplus(v)

    def log_dcloglog(share, eta):  # d cloglog(s) / ds = 1 / ((1 - s)(-log(1 - s)))
        return -pt.log1p(-share) - eta

    log_jac = (log_dsigmoid(p) + log_dsigmoid(q) + log_dsigmoid(r) + pt.log(share_last) + pt.log1p(-level_last)
               - 2 * pt.log(A_max) - pt.log1p(-A_max) + log_dcloglog(share_first, eta1)
               + log_dcloglog(share_last, eta_last) - pt.log(gap))
    pm.Potential("prior_levels", prior + log_jac)
    return a_top * A_max, beta, eta1


def curve_seed(seed: int, key: tuple) -> int:
    """Per-curve seed from the user's seed and the curve's name: independent of curve order and of workers."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32("/".join(map(str, key)).encode())]).generate_state(1)[0])


def has_nutpie() -> bool:
    """Whether nutpie (the fast NUTS implementation) is installed."""
    return importlib.util.find_spec("nutpie") is not None


#: Process-wide cache of built (and, for nutpie, compiled) models: compiling costs 10-30 s, sampling a curve ~1 s.
_COMPILED: dict[tuple, tuple] = {}


class PalmSampler:
    """Compiles the PALM model once (per run-slot count and likelihood) and samples curve after curve.

    Uses nutpie when it is installed (compiled once, then ``with_data`` for each curve), PyMC's own NUTS
    otherwise (``pm.set_data`` on one model).
    """

    def __init__(self, settings: SamplerSettings | None = None, backend: str | None = None):
        self.settings = settings or SamplerSettings()
        self.backend = backend or ("nutpie" if has_nutpie() else "pymc")

    def _get(self, slots: tuple, geometry: str | None = None, backend: str | None = "sampler",
             marginal: bool | None = None):
        """The model for these run/budget slots (built once per process), and its nutpie compilation."""
        geometry = geometry or self.settings.geometry
        marginal = self.settings.marginalised if marginal is None else marginal
        s = self.settings
        key = (slots, s.likelihood, s.noise_trend, geometry, s.ar1, marginal)
        return self.compiled(key, lambda: build_model(slots[0], s.likelihood, s.noise_trend,
                                                      slots[1] if s.misfit else 0, geometry, s.ar1, marginal),
                             backend)

    def compiled(self, key: tuple, build: Callable, backend: str | None = "sampler") -> tuple:
        """``(model, nutpie compilation or None)`` for the model ``build()`` makes; built once per process and
        ``key`` (and backend)."""
        backend = self.backend if backend == "sampler" else backend
        key = (*key, backend)
        if key not in _COMPILED:
            model = build()
            compiled = None
            if backend == "nutpie":
                import nutpie

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    compiled = nutpie.compile_pymc_model(model)
            _COMPILED[key] = (model, compiled)
        return _COMPILED[key]

    def draw(self, model, compiled, values: dict, seed: int, target_accept: float):
        """Run NUTS on ``model`` with its data set to ``values`` (nutpie, or PyMC's sampler); the raw result."""
        s = self.settings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.backend == "nutpie":
                import nutpie

                extra = dict(_compat.nutpie_low_rank_kwargs()) if s.low_rank else {}  # a copy: that one is cached
                extra.update({"cores": s.cores} if s.cores else {})
                return nutpie.sample(compiled.with_data(**values), draws=s.draws, tune=s.tune, chains=s.chains,
                                     seed=seed % (2**32), progress_bar=False, target_accept=target_accept,
                                     **extra)
            import pymc as pm

            with model:
                pm.set_data(values)
                return pm.sample(draws=s.draws, tune=s.tune, chains=s.chains, random_seed=seed,
                                 target_accept=target_accept, progressbar=False, compute_convergence_checks=False,
                                 cores=1)

    def sample(self, data: CurveData, key: tuple = ()) -> CurvePosterior:
        """Sample the posterior of one curve.

        With ``geometry="auto"`` a curve is sampled in the "shape" coordinates first; while a run misses a health
        threshold the next rung of :func:`retry_ladder` is tried (the "levels" coordinates — same posterior,
        another sampler path — then both again with smaller steps, target_accept
        :data:`RETRY_TARGET_ACCEPT`). The healthiest run is kept (fewest missed thresholds, then the smaller
        worst R-hat) and every run's time is counted.
        """
        s = self.settings
        ladder = retry_ladder(s.target_accept) if s.geometry == "auto" else [(s.geometry, s.target_accept)]
        return healthiest(lambda geometry, accept: self._sample(data, key, geometry, accept), ladder)

    def _sample(self, data: CurveData, key: tuple, geometry: str, target_accept: float) -> CurvePosterior:
        s = self.settings
        slots = (pad_runs(data.n_runs), pad_runs(data.n_budgets) if s.misfit else 0)
        model, compiled = self._get(slots, geometry)
        values = self._values(data)
        seed = curve_seed(s.seed, key)
        t0 = time.perf_counter()
        names = ["A_max", "alpha", "beta", "log_lambda", "sigma", "tau"]
        names += ["nu"] if s.likelihood == "student" else []
        names += ["gamma"] if s.noise_trend else []
        names += ["omega"] if s.misfit else []
        names += ["rho"] if s.ar1 else []
        names += ["loglik_run"] if s.loo and s.marginalised else []
        used = {k: v for k, v in values.items()
                if k != "x_last" or geometry == "levels" or self.backend != "nutpie"}  # nutpie: declared data only
        result = self.draw(model, compiled, used, seed, target_accept)
        seconds = time.perf_counter() - t0
        raw = _compat.posterior_arrays(result, names)
        loglik_run = raw.pop("loglik_run", None)
        raw["delta"] = delta_from_log_lambda(raw.pop("log_lambda"))
        diag = diagnostics_table(raw)
        ndiv = _compat.divergences(result)
        post = CurvePosterior(draws=raw, b=data.b, scale=data.scale, diagnostics=diag, divergences=ndiv,
                              seconds=seconds, likelihood=s.likelihood, x_first=data.x_first, geometry=geometry,
                              target_accept=target_accept)
        post.warnings = health_warnings(diag, ndiv)
        if s.loo:
            # with the offsets integrated out, a run is one observation (leave-one-run-out)
            post.loo = (_compat.loo(loglik_run[..., :data.n_runs]) if loglik_run is not None
                        else self._loo(model, values, result))
        return post

    def _values(self, data: CurveData) -> dict:
        """The model's data for one curve (``pm.Data`` names → arrays), with the optional terms' indices."""
        values = {"x": data.x, "y": data.y, "run_index": data.run_index, "x_first": np.asarray(data.x_first),
                  "x_last": np.asarray(data.x_last),
                  **{k: np.asarray(getattr(data, k)) for k in ("a_top", "a_mu", "a_sd")}}
        if self.settings.misfit:
            values["budget_index"] = data.budget_index
        if self.settings.ar1:
            values["prev_index"] = data.prev_index
        return values

    @staticmethod
    def _loo(model, values: dict, result) -> dict:
        """PSIS-LOO of the fitted observations (ArviZ), for comparing model variants."""
        import pymc as pm

        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm.set_data(values)
            ll = pm.compute_log_likelihood(result, model=model, extend_inferencedata=False, progressbar=False)
        return _compat.loo(ll["obs"].values)

    def sample_prior(self, data: CurveData, x: np.ndarray, draws: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
        """Prior predictive draws at episode positions ``x`` for one curve's prior (which depends on its first
        budget and best pilot mean): ``{"mean": A(x), "run": one new run's score}``, each (draws, len(x)),
        fraction scale. Drawn from the "shape" geometry, whose priors are explicit distributions (the "levels"
        geometry has the same prior, written as a density on other coordinates)."""
        import pymc as pm

        s = self.settings
        slots = (pad_runs(data.n_runs), pad_runs(max(data.n_budgets, len(x))) if s.misfit else 0)
        model, _ = self._get(slots, geometry="shape", backend=None, marginal=False)  # the same prior, with "obs"
        x = np.asarray(x, dtype=float)
        each = np.arange(len(x), dtype="int64")
        # one new run at every x: its own budget slot, and no previous score (marginal noise at each budget)
        values = self._values(replace(data, x=x, y=np.zeros_like(x), run_index=np.zeros_like(each),
                                      budget_index=each, prev_index=each))
        names = ["A_max", "alpha", "beta", "log_lambda", "obs"]
        pymc_log = logging.getLogger("pymc")
        level, pymc_log.level = pymc_log.level, logging.WARNING  # no "Sampling: [...]" line per curve
        try:
            with model, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pm.set_data(values)
                prior = pm.sample_prior_predictive(draws, var_names=names, random_seed=seed)
        finally:
            pymc_log.setLevel(level)
        group = {n: np.asarray(prior["prior_predictive" if n == "obs" else "prior"][n].values).reshape(draws, -1)
                 for n in names}
        mean = palm_curve_cloglog(x[None, :], group["A_max"], group["log_lambda"], group["alpha"], group["beta"])
        return {"mean": mean, "run": group["obs"]}


#: target_accept of the last retries of ``geometry="auto"``: smaller steps remove the divergences that come from
#: a step size too large for the posterior's curvature (on the dev sets, 7 of the 14 curves still unhealthy).
RETRY_TARGET_ACCEPT = 0.99


def retry_ladder(target_accept: float) -> list[tuple[str, float]]:
    """The (geometry, target_accept) runs ``geometry="auto"`` tries in turn, until one is healthy."""
    ladder = [("shape", target_accept), ("levels", target_accept)]
    if target_accept < RETRY_TARGET_ACCEPT:
        ladder += [("shape", RETRY_TARGET_ACCEPT), ("levels", RETRY_TARGET_ACCEPT)]
    return ladder


def healthiest(attempt: Callable, ladder: list[tuple[str, float]]):
    """Run ``attempt(geometry, target_accept)`` along ``ladder`` until a run is healthy (no warnings); return the
    healthiest run — fewest missed thresholds (:func:`health_warnings` gives one warning per missed threshold:
    divergences, R-hat, ESS), then the smaller worst R-hat — with the seconds of every run counted."""
    tried = []
    for geometry, accept in ladder:
        tried.append(attempt(geometry, accept))
        if not tried[-1].warnings:
            break
    best = min(tried, key=lambda post: (len(post.warnings), float(post.diagnostics.r_hat.max())))
    best.seconds = sum(post.seconds for post in tried)
    return best


def diagnostics_table(draws: dict[str, np.ndarray]) -> pd.DataFrame:
    """R-hat and bulk/tail ESS per parameter from draws shaped (chain, draw)."""
    rows = []
    for name, d in draws.items():
        rows.append({"param": name, "r_hat": _compat.rhat(d), "ess_bulk": _compat.ess(d, "bulk"),
                     "ess_tail": _compat.ess(d, "tail")})
    return pd.DataFrame(rows)


def health_warnings(diag: pd.DataFrame, n_divergences: int) -> list[str]:
    """Plain-language warnings when R-hat > 1.01, ESS_bulk < 400 or any divergence occurred."""
    out = []
    if n_divergences:
        out.append(f"{n_divergences} divergent transition(s): the posterior may be biased; "
                   "raise --tune or inspect the curve")
    bad = diag[diag.r_hat > RHAT_MAX]
    if len(bad):
        out.append("R-hat > 1.01 for " + ", ".join(f"{r.param} ({r.r_hat:.3f})" for r in bad.itertuples())
                   + ": chains disagree; raise --tune/--draws")
    low = diag[diag.ess_bulk < ESS_MIN]
    if len(low):
        out.append("ESS_bulk < 400 for " + ", ".join(f"{r.param} ({r.ess_bulk:.0f})" for r in low.itertuples())
                   + ": intervals are imprecise; raise --draws")
    return out
