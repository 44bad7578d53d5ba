"""One joint PALM model for all methods of a (dataset, model) group, with partial pooling.

A_max is the accuracy the *model* can reach on the *dataset*: every AL method run with the same model on the same
data heads for about the same ceiling; methods differ mostly in how fast they get there (δ, α, β). Fitting each
method alone throws that away: a method whose pilot is still steep gets a wide or wild A_max although its
neighbours' pilots already show where the ceiling is. The joint model lets the methods of one group share what
they show, as much as the data say they agree.

``pooling="ceiling"`` (partial pooling of A_max, non-centred)::

    logit(A_max_m / C) = μ_A + s_A · z_m,   z_m ~ N(0, 1)
    μ_A ~ N(logit(best pilot mean of the group / C) + A_LIFT, A_SD)   (or the user's prior range, AMaxPrior)
    s_A ~ HalfNormal(POOL_SD["A_max"])                                the learned pooling scale (logit units)

with C the known ceiling (1 by default); at A_max ≈ 0.85 a scale of 0.5 is about ±6 accuracy points between
methods. s_A near 0 means one shared ceiling; a large s_A means the methods' ceilings differ, and each method
then leans on its own data (the test suite checks both). ``A_max_group`` = C·sigmoid(μ_A)
is the group's typical ceiling. δ, α, β keep each method's own single-curve priors.

``pooling="full"`` also pools the shape: log β_m, η₁_m (the share of A_max reached at the first budget) and
log(x₁ + α)_m each get a group mean and a learned scale, non-centred in the same way.

Sampling. ``pooling="ceiling"`` is sampled in two stages by default (``group_sampler="two-stage"``,
:func:`sample_two_stage`, :mod:`palm_bayes.two_stage`): each method alone by the single-curve engine under a wide
proposal prior of its ceiling, then the group's two parameters on a grid and each method's draws resampled —
the same posterior (``tests/test_two_stage.py``), without a NUTS run that must find every method's explanation
at once. On the AL dev groups it gave the joint run's forecasts where that run mixed (final-budget errors within
0.15 points per curve), 88 % instead of 60 % of the curves sampled cleanly and 4.2 instead of 7.3 s per curve
(docs/benchmarks.md). ``group_sampler="joint"`` and ``pooling="full"`` run one NUTS over the joint model below.

The joint run. As for one curve (:mod:`palm_bayes.engine`) there are two coordinate systems with the same posterior:
``"shape"``, where every pooled quantity is non-centred (no funnel between a small pooling scale and the
methods' deviations when the data say little about each method, the usual case with pilots still rising), and
``"levels"``, each method in the single-curve levels coordinates, where A_max, η₁ and log β are derived and their
pooled priors therefore centred: better when each method's data pin its ceiling down and the ceilings differ
(on a simulated group of that kind, bulk ESS 269 instead of 75 at the same draws). The default
(``geometry="auto"``) follows the single-curve retry ladder: "shape", then "levels", then both with smaller steps
(target_accept 0.99), keeping the healthiest run. On the AL dev groups the "levels" rungs made no group healthy
that "shape" left unhealthy and took the time from 124 to 339 s (docs/benchmarks.md); they stay for groups whose
ceilings differ. Tried and dropped: a centred "shape" form, and a zero-avoiding Gamma(2, 4) prior on the pooling
scale (no health gain, final-budget MAE 4.5 instead of 4.3 points).

Run offsets and noise are each method's own, as in the single-curve model (:mod:`palm_bayes.model`), with the
offsets integrated out for the Normal likelihood. A group with a single method is fitted by the single-curve
model itself (:class:`~palm_bayes.forecast.Forecaster` routes it there), so its forecast is identical.

All methods' draws come from one NUTS run: draw i of every method is one joint draw, and comparisons between
methods (P(cheapest), :func:`palm_bayes.decision.p_cheapest`) keep the correlations the shared ceiling induces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import _compat
from .curve import delta_from_log_lambda, palm_curve_cloglog
from .diagnostics import ESS_MIN, diagnostics_table, health_warnings
from .engine import CurvePosterior, PalmSampler, curve_seed, healthiest, kept_draws, ladder_runs
from .model import A_SD, BETA_SD, ETA_SD, AMaxPrior, CurveData, levels_geometry, marginal_run_loglik, pad_runs
from .two_stage import pooled_ceiling_draws, proposal_prior, refined_proposal

POOLING = ("none", "ceiling", "full")
#: How a pooled ceiling is sampled (:class:`~palm_bayes.engine.SamplerSettings.group_sampler`).
GROUP_SAMPLERS = ("two-stage", "joint")
#: A method sampled again in the two-stage path (its draws covered the pooled posterior too thinly) gets this many
#: times the draws.
REFIT_DRAWS = 2
#: HalfNormal scales of the learned pooling scales: logit A_max, log β, η₁ (cloglog share), log(x₁ + α).
POOL_SD = {"A_max": 0.5, "log_beta": 0.5, "eta1": 0.75, "log_base": 0.5}
#: Group-level quantities reported per pooling (A_max_group on the fraction scale; the scales in their own units).
GROUP_PARAMS = {"ceiling": ("A_max_group", "pool_sd_A_max"),
                "full": ("A_max_group", "pool_sd_A_max", "pool_sd_log_beta", "pool_sd_eta1", "pool_sd_log_base")}


@dataclass
class GroupData:
    """The curves of one (dataset, model) group prepared for the joint model.

    Every curve keeps its own episode axis (``x = B / b`` with its own b) and runs; the A_max prior is centred on
    the best pilot mean over the whole group.
    """

    curves: list[CurveData]
    a_top: float = 1.0
    a_mu: float = 0.0
    a_sd: float = A_SD

    @classmethod
    def from_curves(cls, curves: list[CurveData], prior: AMaxPrior | None = None) -> GroupData:
        a_top, a_mu, a_sd = (prior or AMaxPrior()).coords(max(c.best for c in curves))
        return cls(curves=curves, a_top=a_top, a_mu=a_mu, a_sd=a_sd)

    @property
    def n_runs(self) -> int:
        return sum(c.n_runs for c in self.curves)

    def values(self, n_run_slots: int) -> dict[str, np.ndarray]:
        """The joint model's data (``pm.Data`` names → arrays): observations stacked curve after curve, runs
        numbered across the group, ``run_curve`` = the curve of each run slot."""
        offsets = np.cumsum([0] + [c.n_runs for c in self.curves])
        run_curve = np.zeros(n_run_slots, dtype="int64")
        for m in range(len(self.curves)):
            run_curve[offsets[m]:offsets[m + 1]] = m
        return {"x": np.concatenate([c.x for c in self.curves]),
                "y": np.concatenate([c.y for c in self.curves]),
                "curve_index": np.concatenate([np.full(len(c.x), m, dtype="int64")
                                               for m, c in enumerate(self.curves)]),
                "run_index": np.concatenate([c.run_index + offsets[m] for m, c in enumerate(self.curves)]),
                "run_curve": run_curve,
                "x_first": np.array([c.x_first for c in self.curves]),
                "x_last": np.array([c.x_last for c in self.curves]),
                "a_top": np.asarray(self.a_top), "a_mu": np.asarray(self.a_mu), "a_sd": np.asarray(self.a_sd)}


def build_group_model(n_curves: int, n_run_slots: int, pooling: str = "ceiling", likelihood: str = "normal",
                      noise_trend: bool = True, marginal: bool = True, geometry: str = "shape"):
    """The joint PyMC model of ``n_curves`` curves with placeholder data (see the module docstring).

    ``geometry`` (the posterior is the same): ``"shape"`` samples each method in the single-curve model's shape
    coordinates and each pooled quantity non-centred, group mean + scale · z (no funnel when the data say little
    and the scale is small); ``"levels"`` samples each method in the single-curve model's levels coordinates
    (:func:`~palm_bayes.model.levels_geometry`), where A_max, η₁ and log β are derived and their pooled priors
    are therefore centred.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if pooling not in POOLING[1:]:
        raise ValueError(f"pooling must be one of {POOLING[1:]} for a joint model")
    M = n_curves
    with pm.Model() as model:
        x = pm.Data("x", np.tile(np.arange(1.0, 6.0), M))
        y = pm.Data("y", np.full(5 * M, 0.5))
        curve = pm.Data("curve_index", np.repeat(np.arange(M), 5).astype("int64"))
        run = pm.Data("run_index", np.repeat(np.arange(M), 5).astype("int64"))
        run_curve = pm.Data("run_curve", np.zeros(n_run_slots, dtype="int64"))
        x_first = pm.Data("x_first", np.ones(M))
        a_top, a_mu, a_sd = pm.Data("a_top", 1.0), pm.Data("a_mu", 0.0), pm.Data("a_sd", A_SD)

        def group_prior(name: str, centre, prior_sd, pooled: bool = True):
            """(mean, sd) of a quantity's prior per method: the single-curve prior, or a group mean and a
            learned scale of the methods' deviations."""
            if not pooled:
                return centre, prior_sd
            return (centre + pm.Normal(f"mu_{name}", 0.0, prior_sd),
                    pm.HalfNormal(f"pool_sd_{name}", POOL_SD[name]))

        def draw(name: str, prior):  # non-centred: mean + sd · z
            return prior[0] + prior[1] * pm.Normal(f"z_{name}", 0.0, 1.0, shape=M)

        full = pooling == "full"
        a_prior = group_prior("A_max", a_mu, a_sd)
        pm.Deterministic("A_max_group", a_top * pm.math.sigmoid(a_prior[0]))
        log_base = draw("log_base", group_prior("log_base", pt.log(x_first + 1.0), 1.0, full))
        eta_prior = group_prior("eta1", 0.0, ETA_SD, full)
        beta_prior = group_prior("log_beta", 0.0, BETA_SD, full)
        if geometry == "levels":
            x_last = pm.Data("x_last", np.full(M, 5.0))
            A_max, beta, eta1 = levels_geometry(a_top, *a_prior, log_base, x_first, x_last, shape=M,
                                                eta_prior=eta_prior, beta_prior=beta_prior)
        elif geometry == "shape":
            A_max = pm.Deterministic("A_max", a_top * pm.math.sigmoid(draw("A_max", a_prior)))
            beta = pm.Deterministic("beta", pt.exp(draw("log_beta", beta_prior)))
            eta1 = draw("eta1", eta_prior)
        else:
            raise ValueError(f"geometry must be 'shape' or 'levels' for a joint model, not {geometry!r}")
        alpha = pm.Deterministic("alpha", pt.exp(log_base) - x_first)
        log_lambda = pm.Deterministic("log_lambda", eta1 - beta * log_base)
        tau = pm.HalfNormal("tau", 0.03, shape=M)
        sigma = pm.HalfNormal("sigma", 0.05, shape=M)
        sd = sigma[curve]
        if noise_trend:
            gamma = pm.Normal("gamma", 0.3, 0.5, shape=M)
            sd = sd * pt.exp(-gamma[curve] * pt.log(x / x_first[curve]))
        mu = palm_curve_cloglog(x, A_max[curve], log_lambda[curve], alpha[curve], beta[curve], xp=pt)
        if marginal:
            if likelihood != "normal":
                raise ValueError("marginal run offsets need the Normal likelihood")
            pm.Potential("obs", marginal_run_loglik(y - mu, sd, tau[run_curve], run, n_run_slots).sum())
            return model
        mu = mu + tau[run_curve][run] * pm.Normal("z_run", 0.0, 1.0, shape=n_run_slots)[run]
        if likelihood == "student":
            nu = pm.Deterministic("nu", 2.0 + pm.Gamma("nu_minus_2", 2.0, 0.1, shape=M))
            pm.StudentT("obs", nu=nu[curve], mu=mu, sigma=sd, observed=y, shape=x.shape)
        else:
            pm.Normal("obs", mu=mu, sigma=sd, observed=y, shape=x.shape)
    return model


@dataclass
class GroupPosterior:
    """Posterior of one group: each curve's :class:`~palm_bayes.engine.CurvePosterior` (draws aligned across
    curves: one joint draw per index) and the group-level draws, each shaped (chain, draw)."""

    curves: list[CurvePosterior]
    draws: dict[str, np.ndarray]
    diagnostics: pd.DataFrame
    divergences: int
    seconds: float
    pooling: str
    target_accept: float
    warnings: list[str] = field(default_factory=list)


def sample_group(sampler: PalmSampler, data: GroupData, pooling: str, key: tuple = (),
                 methods: list[str] | None = None) -> GroupPosterior:
    """Sample the posterior of a group's joint model.

    ``pooling="ceiling"`` with ``group_sampler="two-stage"`` (the default) fits each method alone and resamples
    the group (:func:`sample_two_stage`); otherwise one NUTS run over the joint model, where with
    ``geometry="auto"`` (the default) an unhealthy run is repeated along :func:`~palm_bayes.engine.retry_ladder`
    ("levels", then both with smaller steps) and the healthiest run kept, as for one curve. ``key`` is the
    group's (dataset, model), ``methods`` its methods' names (they seed the stage-1 fits).
    """
    s = sampler.settings
    if s.ar1 or s.misfit:
        raise ValueError("the joint model has no AR(1) or misfit term; use pooling='none' for those")
    if s.group_sampler not in GROUP_SAMPLERS:
        raise ValueError(f"group_sampler must be one of {GROUP_SAMPLERS}")
    if pooling == "ceiling" and s.group_sampler == "two-stage":
        return sample_two_stage(sampler, data, key, methods or [str(m) for m in range(len(data.curves))])
    best = healthiest(lambda *run: _sample_group(sampler, data, pooling, key, *run), ladder_runs(s))
    for post in best.curves:
        post.seconds = best.seconds / len(best.curves)
    return best


def _sample_group(sampler: PalmSampler, data: GroupData, pooling: str, key: tuple, geometry: str,
                  target_accept: float, tune: int, draws: int) -> GroupPosterior:
    s = sampler.settings
    M, slots = len(data.curves), pad_runs(data.n_runs)
    model, compiled = sampler.compiled(
        ("group", M, slots, pooling, s.likelihood, s.noise_trend, s.marginalised, geometry),
        lambda: build_group_model(M, slots, pooling, s.likelihood, s.noise_trend, s.marginalised, geometry))
    names = ["A_max", "alpha", "beta", "log_lambda", "sigma", "tau"]
    names += ["nu"] if s.likelihood == "student" else []
    names += ["gamma"] if s.noise_trend else []
    t0 = time.perf_counter()
    values = data.values(slots)
    if geometry != "levels" and sampler.backend == "nutpie":
        values.pop("x_last")  # nutpie takes only the data the model declares
    result = sampler.draw(model, compiled, values, curve_seed(s.seed, key), target_accept, tune=tune, draws=draws)
    seconds = time.perf_counter() - t0
    raw = kept_draws(result, names + list(GROUP_PARAMS[pooling]), draws, s.draws)
    group = {n: raw.pop(n) for n in GROUP_PARAMS[pooling]}
    raw["delta"] = delta_from_log_lambda(raw.pop("log_lambda"))
    ndiv = _compat.divergences(result)
    group_diag = diagnostics_table(group)
    curves, own = [], []
    for m, c in enumerate(data.curves):
        draws = {n: np.ascontiguousarray(v[..., m]) for n, v in raw.items()}
        own.append(diagnostics_table(draws))
        diag = pd.concat([own[-1], group_diag], ignore_index=True)  # a curve is as healthy as its group
        post = CurvePosterior(draws=draws, b=c.b, scale=c.scale, diagnostics=diag, divergences=ndiv,
                              seconds=seconds / M, likelihood=s.likelihood, x_first=c.x_first,
                              geometry=f"joint {pooling}, {geometry}",
                              target_accept=target_accept)
        post.warnings = health_warnings(diag, ndiv)
        curves.append(post)
    all_diag = pd.concat([*own, group_diag], ignore_index=True)
    return GroupPosterior(curves=curves, draws=group, diagnostics=group_diag, divergences=ndiv, seconds=seconds,
                          pooling=pooling, target_accept=target_accept, warnings=health_warnings(all_diag, ndiv))


def logit_share(post, top: float) -> np.ndarray:
    """logit(A_max / top) of a posterior's A_max draws (``post.draws["A_max"]``), flattened."""
    share = np.clip(post.draws["A_max"].reshape(-1) / top, 1e-12, 1 - 1e-12)
    return np.log(share) - np.log1p(-share)


def two_stages(sample: Callable, sampler: PalmSampler, data: GroupData, rng: np.random.Generator):
    """The draws of :mod:`palm_bayes.two_stage` for one group: ``sample(m, proposal, engine, tag)`` samples method m
    with ``engine`` (a :class:`PalmSampler`) under the proposal prior ``(a_mu, a_sd)`` of its ceiling (any
    posterior with ``draws["A_max"]``, ``diagnostics``, ``warnings``, ``seconds``). Each method is sampled under the
    wide proposal, the group's (μ, s) drawn on a grid; a method whose run missed a threshold, or whose draws cover
    the pooled posterior too thinly (its effective draws below the ESS threshold), is sampled again under a
    proposal centred on its first-pass pooled ceiling (:func:`~palm_bayes.two_stage.refined_proposal`) with
    :data:`REFIT_DRAWS` times the draws (``tag`` ``("refined",)``), kept unless it misses more thresholds than the
    first (the seconds of both passes counted), and the group drawn again. Returns ``(posteriors, CeilingDraws,
    shape)``: ``shape`` (chains, draws) of the first pass, which the resampled draws keep."""
    s = sampler.settings
    first = proposal_prior(data.a_mu, data.a_sd, POOL_SD["A_max"])
    proposals = [first] * len(data.curves)
    stage1 = [sample(m, first, sampler, ()) for m in range(len(data.curves))]
    shape = stage1[0].draws["A_max"].shape
    n_draws = int(np.prod(shape))
    pooled = pooled_ceiling_draws([logit_share(p, data.a_top) for p in stage1], proposals,
                                  (data.a_mu, data.a_sd), POOL_SD["A_max"], n_draws, rng)
    again = [m for m, post in enumerate(stage1) if post.warnings
             or post.diagnostics.ess_bulk.min() * pooled.ess[m] / post.draws["A_max"].size < ESS_MIN]
    if again:
        more = PalmSampler(replace(s, draws=REFIT_DRAWS * s.draws), sampler.backend)
        for m in again:
            second = refined_proposal(pooled, logit_share(stage1[m], data.a_top), m)
            post = sample(m, second, more, ("refined",))
            if len(post.warnings) <= len(stage1[m].warnings):
                post.seconds += stage1[m].seconds
                proposals[m], stage1[m] = second, post
            else:
                stage1[m].seconds += post.seconds
        pooled = pooled_ceiling_draws([logit_share(p, data.a_top) for p in stage1], proposals,
                                      (data.a_mu, data.a_sd), POOL_SD["A_max"], n_draws, rng)
    return stage1, pooled, shape


def resampled(post, index: np.ndarray, ess: float, shape: tuple) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """A method's draws picked by the group's resampling (``index`` into its stage-1 draws), shaped (chain, draw)
    as ``shape``, and its diagnostics with the ESS scaled by its effective share of the stage-1 draws."""
    draws = {n: np.ascontiguousarray(v.reshape(-1)[index].reshape(shape)) for n, v in post.draws.items()}
    share = ess / post.draws["A_max"].size
    return draws, post.diagnostics.assign(ess_bulk=post.diagnostics.ess_bulk * share,
                                          ess_tail=post.diagnostics.ess_tail * share)


def sample_two_stage(sampler: PalmSampler, data: GroupData, key: tuple, methods: list[str]) -> GroupPosterior:
    """The ``pooling="ceiling"`` posterior in two stages (:mod:`palm_bayes.two_stage`): each method by the
    single-curve engine under the wide proposal prior of its ceiling, then the group's (μ, s) on a grid and each
    method's draws resampled from its stage-1 draws. A method whose first run missed a threshold or covers the
    pooled posterior thinly is sampled once more (:func:`~palm_bayes.two_stage.refined_proposal`,
    :data:`REFIT_DRAWS` × the draws) and the group resampled.

    Each method's diagnostics are its stage-1 ones with the ESS scaled by its share of effective resampling
    weights, beside the group's rows; its divergences are the group's (a curve is as healthy as its group, as in
    the joint fit).
    """
    s = sampler.settings
    t0 = time.perf_counter()
    rng = np.random.default_rng(curve_seed(s.seed, (*key, "two-stage")))
    stage1, pooled, shape = two_stages(
        lambda m, proposal, engine, tag: engine.sample(replace(data.curves[m], a_mu=proposal[0], a_sd=proposal[1]),
                                                       (*key, methods[m], *tag)), sampler, data, rng)
    group = {"A_max_group": (data.a_top / (1 + np.exp(-pooled.mu))).reshape(shape),
             "pool_sd_A_max": pooled.scale.reshape(shape)}
    seconds = time.perf_counter() - t0
    ndiv = sum(post.divergences for post in stage1)
    group_diag = diagnostics_table(group)
    curves, own = [], []
    for post, index, ess in zip(stage1, pooled.index, pooled.ess, strict=True):
        draws, diagnostics = resampled(post, index, ess, shape)
        own.append(diagnostics)
        diag = pd.concat([own[-1], group_diag], ignore_index=True)
        out = CurvePosterior(draws=draws, b=post.b, scale=post.scale, diagnostics=diag, divergences=ndiv,
                             seconds=seconds / len(stage1), likelihood=s.likelihood, x_first=post.x_first,
                             geometry=f"two-stage ceiling, {post.geometry}", target_accept=post.target_accept)
        out.warnings = health_warnings(diag, ndiv)
        curves.append(out)
    all_diag = pd.concat([*own, group_diag], ignore_index=True)
    return GroupPosterior(curves=curves, draws=group, diagnostics=group_diag, divergences=ndiv, seconds=seconds,
                          pooling="ceiling", target_accept=max(post.target_accept for post in stage1),
                          warnings=health_warnings(all_diag, ndiv))
