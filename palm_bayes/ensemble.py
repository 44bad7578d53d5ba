"""Several curve families fitted to one curve (:mod:`palm_bayes.families`), sampled with PALM's engine, and the
forecast draws of their weighted mixture.

:class:`~palm_bayes.forecast.Forecaster` (``families=...``, ``--families`` on the command line) samples PALM's own
model (:mod:`palm_bayes.engine`) and every other family named here (:func:`sample_family`, or
:func:`sample_family_group` for a pooled ceiling), then forecasts from :class:`CurveMixture`: each family's draws in
proportion to its weight (:func:`mixture_weights`). ``benchmarks/family_benchmark.py`` compares families and weighting
rules on the development sets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import _compat
from .curve import budget_curve
from .diagnostics import diagnostics_table, health_warnings
from .engine import FIRST_ACCEPT, CurvePosterior, PalmSampler, curve_seed, healthiest, kept_draws, ladder_runs
from .families import check_family, family_curve
from .model import AMaxPrior, CurveData, build_family_model, pad_runs
from .pooling import GroupData, resampled, two_stages

#: the families written in "levels" coordinates too
LEVELS_FAMILIES = ("mmf4",)
#: The first run's target_accept in the level coordinates of :data:`LEVELS_FAMILIES` (PALM's own is
#: :data:`palm_bayes.engine.FIRST_ACCEPT`): at 0.9 MMF4's first run diverged on 25 of 60 LCDB and 12 of 25 AL dev
#: curves, often with only 1-3 divergences in 4000 draws (12 of the 25 LCDB ones), which slightly smaller steps
#: avoid and which otherwise cost a retry. Chosen among 0.9 / 0.95 / 0.97 on each dev set with
#: ``--families palm,mmf4`` and scored on the other: 0.95 both ways (docs/benchmarks.md, 2026-12-07, night).
LEVELS_FIRST_ACCEPT = 0.95
#: what is kept per draw
FAMILY_PARAMS = ("A_max", "eta1", "p", "q", "sigma", "tau", "gamma")
#: the family whose own model (:mod:`palm_bayes.model`) is sampled by :class:`~palm_bayes.engine.PalmSampler`
PALM = "palm"


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
    PALM's retry ladder (:data:`palm_bayes.engine.LADDER`) until a run is healthy; the healthiest run is kept.
    Its "levels" runs take the family's level coordinates (:func:`palm_bayes.model.mmf4_levels`) where it has them
    (:data:`LEVELS_FAMILIES`), else its own parameters ("shape")."""
    check_family(family)
    s = sampler.settings
    seed = curve_seed(s.seed, (*key, family))
    # the whole ladder, whatever geometry the settings pin for PALM
    ladder = [(g if family in LEVELS_FAMILIES else "shape", *rest) for g, *rest in
              ladder_runs(replace(s, geometry="auto"),
                          {**FIRST_ACCEPT, "levels": LEVELS_FIRST_ACCEPT} if family in LEVELS_FAMILIES else None)]

    def attempt(geometry, accept, tune, draws):
        model, compiled = sampler.compiled(
            ("family", family, geometry, pad_runs(data.n_runs), s.noise_trend),
            lambda: build_family_model(family, pad_runs(data.n_runs), s.noise_trend, geometry))
        values = {k: v for k, v in sampler._values(data).items() if k != "x_last" or geometry == "levels"}
        t0 = time.perf_counter()
        result = sampler.draw(model, compiled, values, seed, accept, tune=tune, draws=draws)
        raw = kept_draws(result, list(FAMILY_PARAMS), draws, s.draws)
        diag = diagnostics_table(raw)
        ndiv = _compat.divergences(result)
        return FamilyPosterior(family, raw, data.b, data.x_first, diag, ndiv, time.perf_counter() - t0, accept,
                               health_warnings(diag, ndiv))

    return healthiest(attempt, ladder)


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


def check_families(families: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The families of a mixture as a tuple (a comma-separated text is split); ValueError for an unknown or
    repeated name, or a set without ``palm`` (PALM's parameters are the interpretable summary every output
    keeps)."""
    names = tuple(f.strip() for f in families.split(",")) if isinstance(families, str) else tuple(families)
    for name in names:
        check_family(name)
    if len(set(names)) != len(names):
        raise ValueError(f"families {','.join(names)}: a family is named twice")
    if PALM not in names:
        raise ValueError(f"families {','.join(names)}: expected a set that includes {PALM} (its parameters are "
                         "the summary params.csv keeps)")
    return names


def mixture_weights(families: list[str]) -> dict[str, float]:
    """Weight of each family sampled for one curve (they sum to 1): equal. No tuned constant; on the development
    benchmark no leave-future-out weighting (pseudo-BMA, stacking) carried over between the sets better
    (docs/benchmarks.md, 2026-12-07)."""
    return {f: 1.0 / len(families) for f in families}


def draw_counts(weights: dict[str, float], total: int) -> dict[str, int]:
    """How many of ``total`` mixture draws each family gives: ``total`` × weight, rounded so that they add up
    (largest remainders; ties to the earlier family)."""
    w = np.array(list(weights.values()), dtype=float)
    exact = w / w.sum() * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return dict(zip(weights, counts.tolist(), strict=True))


def spread(n: int, available: int) -> np.ndarray:
    """``n`` draw indices spread evenly over ``available`` flattened (chain, draw) draws: deterministic, so a
    reload picks the same draws, and the same for every curve of a pooled group (joint draws stay paired)."""
    return np.floor(np.arange(n) * (available / n)).astype(int) if n else np.zeros(0, dtype=int)


@dataclass
class CurveMixture:
    """The forecast draws of one curve: PALM's posterior (:class:`~palm_bayes.engine.CurvePosterior`) and each
    other family's (:class:`FamilyPosterior`), each giving draws in proportion to its weight.

    ``weights`` names every family mixed (PALM included); the total is PALM's number of draws. Quantities are per
    mixture draw on the fraction scale, the families in the order of ``weights``.
    """

    palm: CurvePosterior
    members: dict[str, FamilyPosterior]
    weights: dict[str, float]

    def __post_init__(self):
        total = self.palm.draws["A_max"].size
        counts = draw_counts(self.weights, total)
        self.picks = {f: spread(n, self._source(f)["A_max"].size) for f, n in counts.items()}

    def _source(self, family: str) -> dict[str, np.ndarray]:
        return self.palm.draws if family == PALM else self.members[family].draws

    def flat(self, name: str) -> np.ndarray:
        """One quantity every family has (``A_max``, ``sigma``, ``tau``, ``gamma``) per mixture draw."""
        return np.concatenate([self._source(f)[name].reshape(-1)[i] for f, i in self.picks.items()])

    def family_curves(self, budgets: np.ndarray) -> dict[str, np.ndarray]:
        """Each family's share of the mixture draws (draws × budgets) of the mean curve, fraction scale (no
        extrapolation discrepancy)."""
        B = np.asarray(budgets, dtype=float)
        out = {}
        for f, i in self.picks.items():
            if f == PALM:
                d = {k: self.palm.draws[k].reshape(-1)[i][:, None] for k in ("A_max", "delta", "alpha", "beta")}
                out[f] = budget_curve(B[None, :], d["A_max"], d["delta"], d["alpha"], d["beta"], b=self.palm.b)
            else:
                out[f] = self.members[f].mean_curve(B)[i]
        return out

    def mean_curve(self, budgets: np.ndarray) -> np.ndarray:
        """Draws (mixture draws × budgets) of the mean curve, fraction scale (no extrapolation discrepancy)."""
        return np.concatenate(list(self.family_curves(budgets).values()))

    def noise_sd(self, budgets: np.ndarray) -> np.ndarray:
        """Observation-noise sd per mixture draw and budget, fraction scale."""
        return np.concatenate([(self.palm if f == PALM else self.members[f]).noise_sd(budgets)[i]
                               for f, i in self.picks.items()])

    @property
    def warnings(self) -> list[str]:
        """PALM's sampler warnings and each other family's, named."""
        return [*self.palm.warnings, *(f"{f}: {w}" for f, m in self.members.items() for w in m.warnings)]
