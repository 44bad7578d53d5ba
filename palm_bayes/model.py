"""The Bayesian PALM model: priors, likelihood, and NUTS sampling of one curve at a time.

Data of one curve (every run, every budget) enter on the fraction scale (percent scores are divided by 100) and
on the episode axis ``x = B / b`` with ``b`` the curve's smallest budget step (:func:`palm_bayes.data.episode_size`),
so the priors mean the same thing whatever the budget unit: regular AL runs get x = 1, 2, 3, ...; geometric
budgets (LCDB) get x ≈ 2.3, 3.3, 4.6, ... from their finest step.

Priors (every sampled quantity is unconstrained and smooth; nothing is clipped):

``z_A``       logit A_max = logit(best pilot mean) + ``A_SD`` · z_A,  z_A ~ N(0, 1).
              Centred on the best observed mean because that is where the ceiling is usually found; the sd of
              1.0 on the logit scale still allows e.g. 0.70 → [0.25, 0.95] (±2 sd).
``log_base``  log(x₁ + α) ~ N(log(x₁ + 1), 1), with x₁ the first observed x: keeps ``x + α > 0`` at every
              observed budget by construction (α = exp(log_base) − x₁) and says "the first budget is about one
              episode into the curve", give or take a factor e.
``log_beta``  log β ~ N(0, 0.75): β between about 0.2 and 4.5 (±2 sd); β = 1 is the plain exponential.
``eta1``      cloglog of the share of A_max reached at the first budget, ~ N(0, 1.5): the curve's level at the
              data instead of δ itself, which the data pin down far better (δ and β trade off strongly when only
              the early part of the curve is seen). log λ = eta1 − β · log_base, δ = 1 − exp(−λ).
``tau``       run-to-run offset scale, HalfNormal(0.03): repetitions share seeds and initial pools, so a run that
              starts high tends to stay high; each run gets an additive offset τ·z_r (non-centred).
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
log-Jacobian of the change of variables added to the prior (see :func:`_levels_geometry`). It mixes A_max far
better on curves still rising at the end of the pilot, but on plateaued ones (common on LCDB) the headroom
coordinate has an extremely heavy tail (it maps to log β through a double logarithm) and chains can get stuck.
The default ``geometry="auto"`` samples in "shape" first and, when that run misses a health threshold, again in
"levels", keeping the healthier run (:meth:`PalmSampler.sample`); docs/benchmarks.md has the comparison.

The model is compiled once per process (per padded run count) and re-used for every curve by swapping its data.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
import zlib
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import _compat
from .curve import delta_from_log_lambda, palm_curve_cloglog
from .data import episode_size, scale_max

A_SD, ETA_SD, BETA_SD = 1.0, 1.5, 0.75
GEOMETRIES = ("shape", "levels", "auto")
LIKELIHOODS = ("normal", "student")
#: Posterior quantities kept per draw (fraction scale for A_max/sigma/tau).
PARAMS = ("A_max", "delta", "alpha", "beta", "sigma", "tau")
#: Convergence thresholds that trigger a warning.
RHAT_MAX, ESS_MIN = 1.01, 400


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
    logit_ref: float
    x_last: float = 0.0
    #: per observation, the index of the same run's observation at its previous budget (itself for a run's first)
    prev_index: np.ndarray | None = None

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, scale: str, b: float | None = None) -> CurveData:
        """Build from one curve's tidy rows (``run, budget, score``)."""
        b = float(b) if b is not None else episode_size(rows["budget"].to_numpy())
        x = rows["budget"].to_numpy(dtype=float) / b
        y = rows["score"].to_numpy(dtype=float) / scale_max(scale)
        runs, run_index = np.unique(rows["run"].astype(str).to_numpy(), return_inverse=True)
        budgets, budget_index = np.unique(x, return_inverse=True)
        best = float(rows.groupby("budget")["score"].mean().max()) / scale_max(scale)
        best = min(max(best, 0.02), 0.98)
        order = np.lexsort((x, run_index))  # by run, then budget
        prev = np.arange(len(x))
        same_run = run_index[order][1:] == run_index[order][:-1]
        prev[order[1:][same_run]] = order[:-1][same_run]
        return cls(x=x, y=y, run_index=run_index.astype("int64"), n_runs=len(runs),
                   budget_index=budget_index.astype("int64"), n_budgets=len(budgets), b=b, scale=scale,
                   x_first=float(x.min()), logit_ref=float(np.log(best / (1 - best))), x_last=float(x.max()),
                   prev_index=prev.astype("int64"))


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

    def noise_sd(self, budgets: np.ndarray) -> np.ndarray:
        """Observation-noise sd per draw (rows) and budget (columns), fraction scale."""
        sigma = self.draws["sigma"].reshape(-1)[:, None]
        if "gamma" not in self.draws:
            return np.broadcast_to(sigma, (sigma.shape[0], len(budgets)))
        x = np.asarray(budgets, dtype=float)[None, :] / self.b
        return sigma * np.exp(-self.draws["gamma"].reshape(-1)[:, None] * np.log(x / self.x_first))


def _pad_runs(n: int) -> int:
    """Run-effect vector length: the model is compiled for 8, 16, 32, ... runs so that curves share it."""
    size = 8
    while size < n:
        size *= 2
    return size


def build_model(n_run_slots: int = 8, likelihood: str = "normal", noise_trend: bool = True,
                n_budget_slots: int = 0, geometry: str = "shape", ar1: bool = False):
    """The PyMC model with placeholder data (see the module docstring for the priors)."""
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
        logit_ref = pm.Data("logit_ref", 0.0)

        log_base = pm.Normal("log_base", pm.math.log(x_first + 1.0), 1.0)
        alpha = pm.Deterministic("alpha", pm.math.exp(log_base) - x_first)
        if geometry == "levels":
            A_max, beta, eta1 = _levels_geometry(logit_ref, log_base, x_first, x_last)
        elif geometry == "shape":
            z_A = pm.Normal("z_A", 0.0, 1.0)
            A_max = pm.Deterministic("A_max", pm.math.sigmoid(logit_ref + A_SD * z_A))
            beta = pm.Deterministic("beta", pm.math.exp(pm.Normal("log_beta", 0.0, BETA_SD)))
            eta1 = pm.Normal("eta1", 0.0, ETA_SD)
        else:
            raise ValueError(f"geometry must be one of {GEOMETRIES}")
        log_lambda = pm.Deterministic("log_lambda", eta1 - beta * log_base)
        tau = pm.HalfNormal("tau", 0.03)
        z_run = pm.Normal("z_run", 0.0, 1.0, shape=n_run_slots)
        sigma = pm.HalfNormal("sigma", 0.05)
        if noise_trend:
            # noise shrinks (gamma > 0) or grows as the labelled set grows: sd(x) = sigma * (x / x1)^(-gamma)
            gamma = pm.Normal("gamma", 0.3, 0.5)
            sd = sigma * pt.exp(-gamma * pt.log(x / x_first))
        else:
            sd = sigma

        mu = palm_curve_cloglog(x, A_max, log_lambda, alpha, beta, xp=pt) + tau * z_run[run]
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


def _levels_geometry(logit_ref, log_base, x_first, x_last):
    """The same prior as ``geometry="shape"``, sampled in coordinates the data pin down.

    NUTS moves in (``level_last``, ``level_ratio``, ``headroom``): the logit of the curve's level at the last
    observed budget, L_K = A(x_K); the logit of L_1 / L_K (the level at the first budget relative to it); and the
    logit of the share of the remaining headroom that A_max adds, (A_max − L_K) / (1 − L_K). The map to
    (logit A_max, η₁, log β) is a bijection; its log-Jacobian is added to the prior of those coordinates, so the
    posterior is exactly that of the "shape" geometry, but the first two coordinates are nearly fixed by the data
    and A_max varies (mostly) along one axis instead of a curved ridge.
    """
    import pymc as pm
    import pytensor.tensor as pt

    p, q, r = pm.Flat("level_last"), pm.Flat("level_ratio"), pm.Flat("headroom")
    level_last, h = pm.math.sigmoid(p), pm.math.sigmoid(r)
    A_max = pm.Deterministic("A_max", level_last + (1 - level_last) * h)
    share_last = level_last / A_max
    share_first = share_last * pm.math.sigmoid(q)
    eta1 = pt.log(-pt.log1p(-share_first))
    eta_last = pt.log(-pt.log1p(-share_last))
    gap = eta_last - eta1
    span = pt.log(x_last - x_first + pt.exp(log_base)) - log_base  # log((x_K + α) / (x_1 + α)) > 0
    log_beta = pt.log(gap) - pt.log(span)
    beta = pm.Deterministic("beta", pt.exp(log_beta))
    logit_A = pt.log(A_max) - pt.log1p(-A_max)
    prior = (pm.logp(pm.Normal.dist(logit_ref, A_SD), logit_A) + pm.logp(pm.Normal.dist(0.0, ETA_SD), eta1)
             + pm.logp(pm.Normal.dist(0.0, BETA_SD), log_beta))

    def log_dsigmoid(v):
        return -pt.softplus(-v) - pt.softplus(v)

    def log_dcloglog(share, eta):  # d cloglog(s) / ds = 1 / ((1 - s)(-log(1 - s)))
        return -pt.log1p(-share) - eta

    log_jac = (log_dsigmoid(p) + log_dsigmoid(q) + log_dsigmoid(r) + pt.log(share_last) + pt.log1p(-level_last)
               - 2 * pt.log(A_max) - pt.log1p(-A_max) + log_dcloglog(share_first, eta1)
               + log_dcloglog(share_last, eta_last) - pt.log(gap))
    pm.Potential("prior_levels", prior + log_jac)
    return A_max, beta, eta1


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

    def _get(self, slots: tuple, geometry: str | None = None, backend: str | None = "sampler"):
        """The model for these run/budget slots (built once per process), and its nutpie compilation."""
        geometry = geometry or self.settings.geometry
        backend = self.backend if backend == "sampler" else backend
        key = (slots, self.settings.likelihood, self.settings.noise_trend, geometry, self.settings.ar1, backend)
        if key not in _COMPILED:
            budget_slots = slots[1] if self.settings.misfit else 0
            model = build_model(slots[0], self.settings.likelihood, self.settings.noise_trend, budget_slots,
                                geometry, self.settings.ar1)
            compiled = None
            if backend == "nutpie":
                import nutpie

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    compiled = nutpie.compile_pymc_model(model)
            _COMPILED[key] = (model, compiled)
        return _COMPILED[key]

    def sample(self, data: CurveData, key: tuple = ()) -> CurvePosterior:
        """Sample the posterior of one curve.

        With ``geometry="auto"`` the curve is sampled in the "shape" coordinates first and, if that run misses a
        health threshold, again in the "levels" coordinates (same posterior, another sampler path); the healthier
        of the two is kept (fewest missed thresholds, then the smaller worst R-hat) and both times are counted.
        """
        if self.settings.geometry != "auto":
            return self._sample(data, key, self.settings.geometry)
        first = self._sample(data, key, "shape")
        if not first.warnings:
            return first
        second = self._sample(data, key, "levels")
        best = min((first, second), key=_health_rank)
        best.seconds = first.seconds + second.seconds
        return best

    def _sample(self, data: CurveData, key: tuple, geometry: str) -> CurvePosterior:
        s = self.settings
        slots = (_pad_runs(data.n_runs), _pad_runs(data.n_budgets) if s.misfit else 0)
        model, compiled = self._get(slots, geometry)
        values = self._values(data)
        seed = curve_seed(s.seed, key)
        t0 = time.perf_counter()
        names = ["A_max", "alpha", "beta", "log_lambda", "sigma", "tau"]
        names += ["nu"] if s.likelihood == "student" else []
        names += ["gamma"] if s.noise_trend else []
        names += ["omega"] if s.misfit else []
        names += ["rho"] if s.ar1 else []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.backend == "nutpie":
                import nutpie

                extra = _compat.nutpie_low_rank_kwargs() if s.low_rank else {}
                used = {k: v for k, v in values.items() if k != "x_last" or geometry == "levels"}
                result = nutpie.sample(compiled.with_data(**used), draws=s.draws, tune=s.tune, chains=s.chains,
                                       seed=seed % (2**32), progress_bar=False, target_accept=s.target_accept,
                                       **extra)
            else:
                import pymc as pm

                with model:
                    pm.set_data(values)
                    result = pm.sample(draws=s.draws, tune=s.tune, chains=s.chains, random_seed=seed,
                                       target_accept=s.target_accept, progressbar=False,
                                       compute_convergence_checks=False, cores=1)
        seconds = time.perf_counter() - t0
        raw = _compat.posterior_arrays(result, names)
        raw["delta"] = delta_from_log_lambda(raw.pop("log_lambda"))
        diag = diagnostics_table(raw)
        ndiv = _compat.divergences(result)
        post = CurvePosterior(draws=raw, b=data.b, scale=data.scale, diagnostics=diag, divergences=ndiv,
                              seconds=seconds, likelihood=s.likelihood, x_first=data.x_first, geometry=geometry)
        post.warnings = health_warnings(diag, ndiv)
        if s.loo:
            post.loo = self._loo(model, values, result)
        return post

    def _values(self, data: CurveData) -> dict:
        """The model's data for one curve (``pm.Data`` names → arrays), with the optional terms' indices."""
        values = {"x": data.x, "y": data.y, "run_index": data.run_index, "x_first": np.asarray(data.x_first),
                  "x_last": np.asarray(data.x_last), "logit_ref": np.asarray(data.logit_ref)}
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
        slots = (_pad_runs(data.n_runs), _pad_runs(max(data.n_budgets, len(x))) if s.misfit else 0)
        model, _ = self._get(slots, geometry="shape", backend=None)
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


def _health_rank(post: CurvePosterior) -> tuple:
    """Sort key: fewer missed thresholds first (:func:`health_warnings` gives one warning per missed threshold:
    divergences, R-hat, ESS), then the smaller worst R-hat."""
    return len(post.warnings), float(post.diagnostics.r_hat.max())


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
