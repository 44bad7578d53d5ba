"""Several curve families fitted to one curve (:mod:`palm_bayes.families`), sampled with PALM's engine.

Work in progress (issue 14): the families' posteriors and their mean-curve draws, for the benchmark that decides
how to weight them (``benchmarks/family_benchmark.py``). Not yet used by the command line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import _compat
from .diagnostics import diagnostics_table, health_warnings
from .engine import RETRY_DRAWS, CurvePosterior, PalmSampler, curve_seed, healthiest
from .families import check_family, family_curve
from .model import AMaxPrior, CurveData, build_family_model, pad_runs
from .pooling import GroupData, resampled, two_stages

#: (target_accept, tuning steps, draws multiplier) of a family's first run and its retries
FAMILY_LADDER = ((0.9, None, 1), (0.97, 1000, RETRY_DRAWS), (0.99, 1000, RETRY_DRAWS))
#: what is kept per draw
FAMILY_PARAMS = ("A_max", "eta1", "p", "q", "sigma", "tau", "gamma")


@dataclass
class FamilyPosterior:
    """Posterior draws of one family for one curve, each shaped (chain, draw), with sampler diagnostics."""

    family: str
    draws: dict[str, np.ndarray]
    b: float
    x_first: float
    diagnostics: pd.DataFrame
    divergences: int
    seconds: float
    target_accept: float
    warnings: list[str] = field(default_factory=list)

    def mean_curve(self, budgets: np.ndarray) -> np.ndarray:
        """Draws (draws × budgets) of the family's mean curve at ``budgets``, fraction scale."""
        d = {k: v.reshape(-1)[:, None] for k, v in self.draws.items()}
        x = np.asarray(budgets, dtype=float)[None, :] / self.b
        return family_curve(self.family, x, d["A_max"], d["eta1"], d["p"], d["q"], self.x_first)

    #: observation-noise sd per draw and budget: the same noise model as PALM's
    noise_sd = CurvePosterior.noise_sd


def sample_family(sampler: PalmSampler, data: CurveData, family: str, key: tuple = ()) -> FamilyPosterior:
    """Sample one family's posterior for one curve (nutpie, the compiled model re-used across curves), climbing
    :data:`FAMILY_LADDER` until a run is healthy; the healthiest run is kept."""
    check_family(family)
    s = sampler.settings
    model, compiled = sampler.compiled(("family", family, pad_runs(data.n_runs), s.noise_trend),
                                       lambda: build_family_model(family, pad_runs(data.n_runs), s.noise_trend))
    values = {k: v for k, v in sampler._values(data).items() if k != "x_last"}
    seed = curve_seed(s.seed, (*key, family))
    rungs = iter(FAMILY_LADDER)

    def attempt(_geometry, accept):
        _, tune, times = next(rungs)
        tune = s.tune if tune is None else max(tune, s.tune)
        t0 = time.perf_counter()
        result = sampler.draw(model, compiled, values, seed, accept, tune=tune, draws=times * s.draws)
        raw = {n: v[:, ::times] for n, v in _compat.posterior_arrays(result, list(FAMILY_PARAMS)).items()}
        diag = diagnostics_table(raw)
        ndiv = _compat.divergences(result)
        return FamilyPosterior(family, raw, data.b, data.x_first, diag, ndiv, time.perf_counter() - t0, accept,
                               health_warnings(diag, ndiv))

    return healthiest(attempt, [(family, accept) for accept, _, _ in FAMILY_LADDER])


def sample_family_group(sampler: PalmSampler, curves: list[CurveData], family: str, keys: list[tuple],
                        prior: AMaxPrior | None = None) -> list[FamilyPosterior]:
    """One family's posteriors for the methods of one (dataset, model) group with their ceilings pooled
    (``pooling="ceiling"``), in the two stages of :mod:`palm_bayes.two_stage`: each method alone under the wide
    proposal prior of its ceiling, then the group's (μ, s) on a grid and each method's draws resampled, a method
    that missed a threshold or covers the pooled posterior thinly sampled once more (the same two stages as
    PALM's, :func:`palm_bayes.pooling.two_stages`). A single curve is sampled under its own prior."""
    if len(curves) == 1:
        return [sample_family(sampler, curves[0], family, keys[0])]
    group = GroupData.from_curves(curves, prior)
    rng = np.random.default_rng(curve_seed(sampler.settings.seed, (*keys[0][:2], family, "two-stage")))
    stage1, pooled, shape = two_stages(
        lambda m, proposal, engine, tag: sample_family(
            engine, replace(curves[m], a_top=group.a_top, a_mu=proposal[0], a_sd=proposal[1]), family,
            (*keys[m], *tag)), sampler, group, rng)
    out = []
    for post, index, ess in zip(stage1, pooled.index, pooled.ess, strict=True):
        draws, diag = resampled(post, index, ess, shape)
        out.append(replace(post, draws=draws, diagnostics=diag, warnings=health_warnings(diag, post.divergences)))
    return out
