"""The :class:`Forecaster`: fit every curve of a tidy table, predict accuracy at any budget with intervals.

Prophet's contract: ``fit`` takes the tidy DataFrame from :mod:`palm_bayes.data`; ``predict`` returns a DataFrame
with a point value and lower/upper columns; ``save`` / ``load`` keep a fit so later commands need not sample
again.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .curve import budget_curve, on_scale
from .data import CURVE_KEYS, check_scale, iter_curves, scale_max
from .discrepancy import DISCREPANCY, DRIFT, with_discrepancy
from .engine import TIMINGS, CurvePosterior, PalmSampler, SamplerSettings, curve_seed
from .ensemble import PALM, CurveMixture, FamilyPosterior, check_families, mixture_weights, sample_family_group
from .errors import InputError, first_line
from .model import PARAMS, AMaxPrior, CurveData
from .outputs import OutputDir
from .parallel import available_cores, run_tasks
from .pointfit import PARAM_NAMES, PointFit, fit_curve
from .pooling import GROUP_SAMPLERS, POOLING, GroupData, GroupPosterior, sample_group
from .serialize import POSTERIOR_FILE, load_forecaster, save_forecaster

#: ``forecast.csv`` starts with exactly these columns.
FORECAST_COLUMNS = ["dataset", "model", "method", "budget", "observed", "point", "mean", "median", "lower", "upper",
                    "pred_lower", "pred_upper"]
#: ``params.csv`` rows of a group's own parameters (pooled fits) carry this in the ``method`` column.
GROUP_ROW = "(group)"
#: Default of ``--pooling`` (chosen on the development benchmark; docs/benchmarks.md).
DEFAULT_POOLING = "ceiling"
#: Default of ``--families`` (docs/benchmarks.md).
DEFAULT_FAMILIES = PALM
Key = tuple[str, str, str]


def new_run_scores(mu: np.ndarray, tau: np.ndarray, sd: np.ndarray, rng: np.random.Generator,
                   nu: np.ndarray | None = None) -> np.ndarray:
    """One new run's scores per draw (draws × budgets) around the mean-curve draws ``mu``: the run's offset
    τ·z, shared by its budgets, plus observation noise of sd ``sd`` (draws × budgets; Student-t with ``nu`` degrees
    of freedom per draw where given, else Normal)."""
    run = tau[:, None] * rng.standard_normal((mu.shape[0], 1))
    noise = rng.standard_t(nu[:, None], size=mu.shape) if nu is not None else rng.standard_normal(mu.shape)
    return mu + run + sd * noise


def _levels(level: float | Iterable[float]) -> list[float]:
    levels = [float(level)] if np.isscalar(level) else [float(v) for v in level]
    if not levels or any(not 0 < v < 1 for v in levels):
        raise InputError(f"--level {level}: expected interval levels strictly between 0 and 1, e.g. 0.9")
    return levels


class Forecaster:
    """Bayesian PALM forecasts for many curves.

    Parameters
    ----------
    draws, tune, chains : int
        NUTS draws kept per chain, tuning steps per chain (of the first run; a retry tunes for at least 1000),
        chains.
    seed : int
        Seed; the same seed gives identical numbers (each curve's seed derives from it and the curve's name).
    likelihood : {"normal", "student"}
        Observation noise; ``"student"`` is robust to outlying episodes.
    target_accept : float, optional
        NUTS target acceptance rate of the first run (the retries of ``geometry="auto"`` take smaller steps);
        default: 0.9 in the "levels" coordinates, 0.97 in "shape" (``palm_bayes.engine.FIRST_ACCEPT``).
    noise_trend : bool
        Let the observation noise shrink (or grow) with the budget: sd = σ (x / x₁)^(−γ).
    low_rank : bool
        nutpie's low-rank mass-matrix adaptation (copes with correlated parameters).
    misfit : bool
        Add a per-budget deviation of the mean over runs from the PALM form (shared by all runs); it widens the
        mean-curve band by the misfit the pilot shows.
    ar1 : bool
        Let each run's deviation from its curve carry over between consecutive budgets (AR(1), coefficient ρ).
    marginal_runs : bool
        Integrate the run offsets out analytically (exact for the Normal likelihood without AR(1) or misfit
        terms; those keep one sampled offset per run). Same posterior, fewer dimensions, no funnel.
    geometry : {"auto", "shape", "levels"}
        Coordinates NUTS moves in (the posterior is the same; see :mod:`palm_bayes.engine`). ``"auto"`` re-samples
        a curve that misses a health threshold in the other coordinates and keeps the healthier run.
    loo : bool
        Also estimate each curve's PSIS-LOO expected log predictive density of the fitted points (ArviZ), to
        compare model variants (see :meth:`loo`).
    a_max_below : float, optional
        A known ceiling of A_max on the scores' scale (e.g. the accuracy of training on the whole pool): every
        posterior draw of A_max stays below it (the prior is rescaled to (0, ceiling), see
        :mod:`palm_bayes.model`).
    a_max_range : (float, float), optional
        A prior range for A_max on the scores' scale: its prior's 5 % and 95 % quantiles (a belief, not a
        bound).
    discrepancy : float
        Scale κ of the extrapolation discrepancy: beyond the last observed budget the mean curve may stray from
        the PALM form by a Brownian motion in log budget, sd = κ √log(B / B_last) on the fraction scale
        (:func:`palm_bayes.discrepancy.extrapolation_discrepancy`; default set on the development sets). 0 turns it
        off: the bands then assume the PALM form holds exactly far beyond the data.
    drift : float
        Drift of that discrepancy: beyond the data each draw of the mean curve has its logit carried up by
        drift · (1 − B_last / B) (:func:`palm_bayes.discrepancy.drifted`; the fitted forms saturated too early on
        every development set; default chosen across sets). 0 turns it off.
    families : str or sequence of str
        Curve families to forecast with (:mod:`palm_bayes.families`), e.g. ``("palm", "mmf4")`` or
        ``"palm,mmf4"``; ``palm`` must be among them. Each is sampled per curve (PALM by its own model, the others
        by :func:`palm_bayes.ensemble.sample_family`, with the same ceiling pooling), and the forecast, bands and
        decisions come from their equally weighted mixture (:class:`palm_bayes.ensemble.CurveMixture`).
        ``("palm",)``, the default, is the PALM-only forecast. Other families take the Normal likelihood without
        AR(1) or misfit terms, and ``pooling`` "ceiling" or "none".
    pooling : {"ceiling", "full", "none"}
        How the methods of one (dataset, model) group share information (:mod:`palm_bayes.pooling`): one joint
        model per group with A_max partially pooled (``"ceiling"``), with δ, α, β pooled too (``"full"``), or
        every curve alone (``"none"``). A group with one method is fitted alone whatever this says. Pooled
        fits take the Normal or Student-t likelihood, not the AR(1) and misfit terms.
    group_sampler : {"two-stage", "joint"}
        How a pooled ceiling is sampled (the posterior is the same): each method alone, then the group by
        importance resampling (``"two-stage"``, :mod:`palm_bayes.two_stage`), or one NUTS run over the group's
        joint model (``"joint"``, the reference; slower, and it mixes badly when some methods sit flat through the
        pilot while others climb). ``pooling="full"`` is always joint.
    jobs : int
        Worker processes for the fits (1: this process): a task is one curve, or one group when pooled. Each
        worker builds the model once and loads its compiled form from the on-disk cache.
    scheduler : str or dask.distributed.Client, optional
        A Dask distributed scheduler's address (or a client) to run the per-curve fits on instead of local
        processes. The same seed gives the same numbers whatever ``jobs`` or ``scheduler``: each curve's seed
        derives from the seed and the curve's name.
    backend : {"nutpie", "pymc"}, optional
        Sampler; nutpie when installed.
    progress : callable, optional
        ``progress(i, n, key, seconds)`` after each curve.

    Attributes
    ----------
    posteriors : dict
        ``{(dataset, model, method): CurvePosterior}`` for every curve that sampled. The curves of one pooled
        group share draw indices: draw i of each is one joint draw.
    groups : dict
        ``{(dataset, model): GroupPosterior}`` for every group fitted jointly (its group-level draws).
    members : dict
        ``{key: {family: FamilyPosterior}}``: the other families' posteriors of each curve (empty for PALM alone).
    point_fits : dict
        ``{key: PointFit}``, the robust least-squares fit of the same data.
    failures : dict
        ``{key: message}`` for curves whose sampling failed (the others still finish).
    notes : dict
        ``{key: message}`` warnings about the user's prior knowledge (a ceiling below the observed scores).
    """

    def __init__(self, draws: int = 1000, tune: int = 300, chains: int = 4, seed: int = 0,
                 likelihood: str = "normal", target_accept: float | None = None, noise_trend: bool = True,
                 low_rank: bool = True, misfit: bool = False, loo: bool = False, geometry: str = "auto",
                 ar1: bool = False, marginal_runs: bool = True, a_max_below: float | None = None,
                 a_max_range: tuple[float, float] | None = None, discrepancy: float = DISCREPANCY,
                 drift: float = DRIFT,
                 pooling: str = DEFAULT_POOLING, group_sampler: str = "two-stage", jobs: int = 1, scheduler=None,
                 backend: str | None = None, progress: Callable | None = None,
                 families: str | Iterable[str] = DEFAULT_FAMILIES):
        self.settings = SamplerSettings(draws=draws, tune=tune, chains=chains, seed=seed,
                                        target_accept=target_accept, likelihood=likelihood,
                                        noise_trend=noise_trend, low_rank=low_rank, misfit=misfit, loo=loo,
                                        geometry=geometry, ar1=ar1, marginal_runs=marginal_runs,
                                        group_sampler=group_sampler)
        if group_sampler not in GROUP_SAMPLERS:
            raise InputError(f"--group-sampler {group_sampler}: expected one of {', '.join(GROUP_SAMPLERS)}")
        self.a_max_below = None if a_max_below is None else float(a_max_below)
        self.a_max_range = None if a_max_range is None else tuple(float(v) for v in a_max_range)
        self.discrepancy = float(discrepancy)
        self.drift = float(drift)
        if pooling not in POOLING:
            raise InputError(f"--pooling {pooling}: expected one of {', '.join(POOLING)}")
        self.pooling = pooling
        try:
            self.families = check_families(families)
        except ValueError as e:
            raise InputError(f"--families: {e}") from None
        if len(self.families) > 1 and not self.settings.marginalised:
            raise InputError(f"--families {','.join(self.families)}: families other than palm take the Normal "
                             "likelihood without AR(1) or misfit terms; use --families palm with those")
        if len(self.families) > 1 and pooling == "full":
            raise InputError(f"--families {','.join(self.families)}: families other than palm pool the ceiling "
                             "only; use --pooling ceiling or none")
        self.jobs = jobs
        self.scheduler = scheduler
        self.backend = backend
        self.progress = progress
        self.notes: dict[Key, str] = {}
        self.posteriors: dict[Key, CurvePosterior] = {}
        self.point_fits: dict[Key, PointFit] = {}
        self.failures: dict[Key, str] = {}
        self.groups: dict[tuple[str, str], GroupPosterior] = {}
        self.members: dict[Key, dict[str, FamilyPosterior]] = {}
        self.history: pd.DataFrame | None = None
        self.scale: str | None = None

    # ------------------------------------------------------------------------------------------ fit

    def fit(self, df: pd.DataFrame) -> Forecaster:
        """Sample the posterior of every curve (dataset, model, method) in a tidy table (:mod:`palm_bayes.data`),
        on ``jobs`` local processes or the Dask ``scheduler``."""
        missing = [c for c in [*CURVE_KEYS, "run", "budget", "score"] if c not in df.columns]
        if missing:
            raise InputError(f"the table lacks column(s) {', '.join(missing)}")
        self.scale = df.attrs.get("scale") or check_scale(df, "the table")
        self.history = df[[*CURVE_KEYS, "run", "budget", "score"]].copy()
        prior = self.a_max_prior()
        # workers side by side share the cores: each samples its chains on its share (a Dask worker on one); with
        # fewer tasks than jobs (one pooled group, say) the workers that run get the idle ones' share too
        tasks = fit_tasks(df, self.scale, self.settings, self.backend, prior, self.pooling, self.families)
        workers = min(self.jobs, len(tasks))
        if self.scheduler is not None or workers > 1:
            cores = 1 if self.scheduler is not None else max(1, available_cores() // workers)
            tasks = [replace(t, settings=replace(t.settings, cores=cores)) for t in tasks]
        s = self.settings
        if any(t.pooling != "none" for t in tasks) and (s.ar1 or s.misfit):
            raise InputError(f"pooling={self.pooling!r} fits the methods of a dataset/model jointly, and the joint "
                             "model has no AR(1) or misfit term; use pooling='none' (--pooling none) with those")
        done: dict[Key, CurveFit] = {}
        n_curves, i = sum(len(t.keys) for t in tasks), 0
        for j, result in run_tasks(fit_task, tasks, self.jobs, self.scheduler):
            for key, fit in zip(tasks[j].keys, result.fits, strict=True):
                done[key] = fit
                i += 1
                if self.progress:
                    self.progress(i, n_curves, key, fit.seconds)
            if result.group is not None:
                self.groups[tasks[j].keys[0][:2]] = result.group
            if result.pid != os.getpid():  # a worker's phase timings (benchmarks/speed.py reads them)
                TIMINGS.update(result.timings)
        f = scale_max(self.scale)
        for key in (k for task in tasks for k in task.keys):  # stored in table order, whatever finished first
            r = done[key]
            self.point_fits[key] = r.point_fit
            if r.posterior is not None:
                self.posteriors[key] = r.posterior
                if r.members:
                    self.members[key] = r.members
            else:
                self.failures[key] = r.failure
            if r.member_failures:
                self.notes[key] = "; ".join(f"family {f} failed ({m}); the forecast mixes the others"
                                            for f, m in r.member_failures.items())
            if prior.below is not None and r.best >= prior.below:
                self.notes[key] = (self.notes[key] + "; " if key in self.notes else "") + (
                                   f"--a-max-below {prior.below * f:g} is below the best observed mean "
                                   f"{r.best * f:.4g} of {'/'.join(key)}: the ceiling forces the curve under "
                                   "scores it already reached")
        self.groups = {g: self.groups[g] for g in dict.fromkeys(k[:2] for k in self.keys()) if g in self.groups}
        return self

    def a_max_prior(self) -> AMaxPrior:
        """The user's knowledge of A_max on the fraction scale (raises :class:`InputError` if it does not fit
        the scores' scale)."""
        f = scale_max(self.scale or "fraction")
        below = None if self.a_max_below is None else self.a_max_below / f
        lo, hi = (None, None) if self.a_max_range is None else (v / f for v in self.a_max_range)
        unit = "percent (0-100)" if f == 100 else "fractions (0-1)"
        if below is not None and not 0 < below <= 1:
            raise InputError(f"--a-max-below {self.a_max_below:g}: expected a ceiling within the scores' scale, "
                             f"{unit}")
        if lo is not None and not 0 < lo < hi < (below or 1):
            top = f"the ceiling {self.a_max_below:g}" if below is not None else f"{f:g}"
            raise InputError(f"--a-max-prior {self.a_max_range[0]:g} {self.a_max_range[1]:g}: expected "
                             f"0 < LO < HI < {top} (scores as {unit})")
        return AMaxPrior(below=below, low=lo, high=hi)

    # ------------------------------------------------------------------------------------------ predict

    def keys(self) -> list[Key]:
        """Curve keys in fitting order (failed ones included)."""
        return [tuple(k) for k in self.history[CURVE_KEYS].drop_duplicates().itertuples(index=False)]

    def default_budgets(self, key: Key, horizon: float | None = None, n_grid: int = 20) -> np.ndarray:
        """Every observed budget of a curve plus an even grid up to ``horizon`` (default 2 × the largest)."""
        obs = np.sort(self.observed(key)["budget"].unique())
        top = float(horizon) if horizon is not None else 2.0 * float(obs.max())
        grid = np.linspace(obs.max(), top, n_grid + 1)[1:] if top > obs.max() else np.array([])
        return np.unique(np.round(np.concatenate([obs, grid]), 6))

    def curve_draws(self, key: Key, budgets: np.ndarray, *, predictive: bool = False) -> np.ndarray:
        """Posterior draws (draws × budgets) of the mean curve A(B), or of one new run's score if ``predictive``,
        on the input's score scale; every draw lies on the scale (see :func:`~palm_bayes.curve.on_scale`)."""
        post = self.posteriors[key]
        d = {k: v.reshape(-1) for k, v in post.draws.items()}
        B = np.asarray(budgets, dtype=float)[None, :]
        mix = self.mixture(key)
        if mix is None:
            mu = budget_curve(B, d["A_max"][:, None], d["delta"][:, None], d["alpha"][:, None], d["beta"][:, None],
                              b=post.b)
            tau, noise_sd = d["tau"], post.noise_sd
        else:  # families other than PALM: the Normal likelihood, no misfit term (checked in __init__)
            mu, tau, noise_sd = mix.mean_curve(B[0]), mix.flat("tau"), mix.noise_sd
        if self.discrepancy > 0 or self.drift != 0:
            # the PALM form is an assumption beyond the data: a trajectory drifts up and strays from it (clipped to
            # the scale)
            disc_rng = np.random.default_rng(curve_seed(self.settings.seed, key) + (4 if predictive else 3))
            last = float(self.observed(key)["budget"].max())
            ceiling = None if self.a_max_below is None else self.a_max_below / scale_max(post.scale)
            mu = with_discrepancy(mu, B[0], last, self.discrepancy, disc_rng, drift=self.drift, ceiling=ceiling)
        if "omega" in d:
            # the mean over runs at a budget deviates from the PALM form by the misfit term
            mis_rng = np.random.default_rng(curve_seed(self.settings.seed, key) + 2)
            mu = mu + d["omega"][:, None] * mis_rng.standard_normal(mu.shape)
        if predictive:
            rng = np.random.default_rng(curve_seed(self.settings.seed, key) + 1)
            mu = new_run_scores(mu, tau, noise_sd(np.asarray(budgets, dtype=float)), rng, d.get("nu"))
        return on_scale(mu) * scale_max(post.scale)

    def mixture(self, key: Key) -> CurveMixture | None:
        """The mixture of families a curve's forecast draws come from (``None`` for PALM alone)."""
        members = self.members.get(key)
        if not members or key not in self.posteriors:
            return None
        return CurveMixture(self.posteriors[key], members, self.weights(key))

    def weights(self, key: Key) -> dict[str, float]:
        """Each family's weight in a curve's forecast (the families that sampled; :func:`mixture_weights`)."""
        if key not in self.posteriors:
            return {}
        return mixture_weights([PALM, *self.members.get(key, {})])

    def curve_warnings(self, key: Key) -> list[str]:
        """Sampler warnings of a curve: PALM's, and each other family's (named)."""
        mix = self.mixture(key)
        return mix.warnings if mix is not None else list(self.posteriors[key].warnings)

    def prior_draws(self, key: Key, budgets: np.ndarray, draws: int = 500) -> dict[str, np.ndarray]:
        """Prior predictive check: draws (draws × budgets) of the mean curve (``"mean"``) and of one new run's
        score (``"run"``) under the prior alone, on the input's score scale. The prior of a curve depends on its
        first budget and best pilot mean (see :mod:`palm_bayes.model`), so it is drawn per curve."""
        cd = CurveData.from_rows(self.observed(key), self.scale)
        x = np.asarray(budgets, dtype=float) / cd.b
        out = PalmSampler(self.settings, self.backend).sample_prior(cd, x, draws, curve_seed(self.settings.seed, key))
        return {k: v * scale_max(self.scale) for k, v in out.items()}

    def predict(self, budgets: Iterable[float] | Mapping[Key, Iterable[float]] | None = None,
                level: float | Iterable[float] = 0.9, horizon: float | None = None) -> pd.DataFrame:
        """Forecast table: one row per curve × budget.

        Parameters
        ----------
        budgets : array, or dict key → array, optional
            Budgets to forecast (the same for every curve, or per curve). Default: every observed budget plus an
            even grid up to ``horizon``.
        level : float or list of floats
            Equal-tailed interval level(s). The first gives ``lower/upper/pred_lower/pred_upper``; every level
            also gets suffixed columns such as ``lower_90``.
        horizon : float, optional
            Largest budget of the default grid (default: twice the largest observed budget).

        Returns
        -------
        DataFrame
            :data:`FORECAST_COLUMNS`, then ``sd`` and per-level columns, ``status``. ``point`` is the robust
            least-squares fit; ``mean``/``median``/``lower``/``upper`` summarise the posterior of the mean curve;
            ``pred_lower``/``pred_upper`` bound one new run's score. Failed curves keep ``point`` and get NaN.
        """
        levels = _levels(level)
        frames = []
        for key in self.keys():
            if isinstance(budgets, Mapping):
                B = np.asarray(budgets.get(key, []), dtype=float)
            elif budgets is not None:
                B = np.asarray(list(budgets), dtype=float)
            else:
                B = self.default_budgets(key, horizon)
            B = np.sort(np.unique(B))
            obs = set(self.observed(key)["budget"].to_numpy().tolist())
            out = pd.DataFrame({"dataset": key[0], "model": key[1], "method": key[2], "budget": B,
                                "observed": [b in obs for b in B]})
            fit = self.point_fits.get(key)
            out["point"] = fit.predict(B) if fit is not None and np.isfinite(fit.A_max) else np.nan
            if key in self.posteriors:
                mu = self.curve_draws(key, B)
                pred = self.curve_draws(key, B, predictive=True)
                out["mean"], out["median"], out["sd"] = mu.mean(0), np.median(mu, 0), mu.std(0)
                for j, lv in enumerate(levels):
                    q = [(1 - lv) / 2, 1 - (1 - lv) / 2]
                    lo, hi = np.quantile(mu, q, axis=0)
                    plo, phi = np.quantile(pred, q, axis=0)
                    tag = f"{round(lv * 100, 4):g}".replace(".", "_")
                    if j == 0:
                        out["lower"], out["upper"], out["pred_lower"], out["pred_upper"] = lo, hi, plo, phi
                    out[f"lower_{tag}"], out[f"upper_{tag}"] = lo, hi
                    out[f"pred_lower_{tag}"], out[f"pred_upper_{tag}"] = plo, phi
                out["status"] = "ok" if not self.curve_warnings(key) else "warning"
            else:
                for c in ("mean", "median", "lower", "upper", "pred_lower", "pred_upper", "sd"):
                    out[c] = np.nan
                out["status"] = "failed"
            frames.append(out)
        table = pd.concat(frames, ignore_index=True)
        rest = [c for c in table.columns if c not in FORECAST_COLUMNS]
        return table[FORECAST_COLUMNS + rest]

    # ------------------------------------------------------------------------------------------ summaries

    def params(self, level: float = 0.9) -> pd.DataFrame:
        """Per curve and parameter: point fit, posterior mean/sd/median/interval, R-hat, ESS, divergences.

        A_max, sigma and tau are on the input's score scale. A pooled group adds rows with ``method`` =
        :data:`GROUP_ROW` for its own parameters: ``A_max_group`` (the group's typical ceiling, on the score
        scale) and the learned pooling scales ``pool_sd_*`` (logit A_max, log β, η₁, log(x₁ + α) units).
        ``point_note`` (on every row of a curve) says which point-fit parameters the pilot does not identify
        (:func:`palm_bayes.pointfit.identification`); "" when the point fit is fine.
        """
        rows = []
        q = [(1 - level) / 2, 1 - (1 - level) / 2]
        for key in self.keys():
            fit = self.point_fits.get(key)
            if fit is not None and fit.unidentified is None:  # e.g. read back from posterior.nc
                fit = fit.assessed(self.observed(key), self.scale)
            post = self.posteriors.get(key)
            names = [*PARAMS, *(n for n in ("gamma", "omega", "nu", "rho") if post is not None and n in post.draws)]
            for name in names:
                r = dict(zip(CURVE_KEYS, key, strict=True), param=name)
                factor = scale_max(self.scale) if name in ("A_max", "sigma", "tau") else 1.0
                # the point fit is on the input's scale already, and has no noise terms
                r["point"] = getattr(fit, name) if fit is not None and name in PARAM_NAMES else np.nan
                r["point_note"] = fit.note if fit is not None else ""
                if post is not None:
                    d = post.draws[name].reshape(-1) * factor
                    lo, hi = np.quantile(d, q)
                    diag = post.diagnostics.set_index("param").loc[name]
                    r.update(mean=d.mean(), sd=d.std(), median=np.median(d), lower=lo, upper=hi,
                             r_hat=diag.r_hat, ess_bulk=diag.ess_bulk, ess_tail=diag.ess_tail,
                             divergences=post.divergences, b=post.b)
                rows.append(r)
            if len(self.families) > 1:
                for family, w in self.weights(key).items():
                    rows.append(dict(zip(CURVE_KEYS, key, strict=True), param=f"weight_{family}", point=np.nan,
                                     point_note="", mean=w, median=w, sd=0.0, lower=w, upper=w))
        for (dataset, model), g in self.groups.items():
            for name, v in g.draws.items():
                d = v.reshape(-1) * (scale_max(self.scale) if name == "A_max_group" else 1.0)
                lo, hi = np.quantile(d, q)
                diag = g.diagnostics.set_index("param").loc[name]
                rows.append({"dataset": dataset, "model": model, "method": GROUP_ROW, "param": name,
                             "point": np.nan, "point_note": "", "mean": d.mean(), "sd": d.std(),
                             "median": np.median(d), "lower": lo, "upper": hi, "r_hat": diag.r_hat,
                             "ess_bulk": diag.ess_bulk, "ess_tail": diag.ess_tail, "divergences": g.divergences,
                             "b": np.nan})
        return pd.DataFrame(rows)

    def diagnostics(self) -> pd.DataFrame:
        """One row per curve: worst R-hat, smallest ESS, divergences, seconds, the A_max prior used, warnings,
        failure."""
        rows = []
        prior = self.a_max_prior().describe(scale_max(self.scale))
        for key in self.keys():
            r = dict(zip(CURVE_KEYS, key, strict=True))
            post = self.posteriors.get(key)
            if post is None:
                r.update(status="failed", message=self.failures.get(key, ""))
            else:
                d = post.diagnostics
                warns = self.curve_warnings(key)
                r.update(status="warning" if warns else "ok", max_r_hat=d.r_hat.max(),
                         min_ess_bulk=d.ess_bulk.min(), min_ess_tail=d.ess_tail.min(),
                         divergences=post.divergences, seconds=post.seconds, geometry=post.geometry,
                         target_accept=post.target_accept,
                         pooling=self.pooling if key[:2] in self.groups else "none",
                         families=", ".join(f"{f} {w:.2f}" for f, w in self.weights(key).items()),
                         message="; ".join([*warns, *([self.notes[key]] if key in self.notes else [])]))
            r["a_max_prior"] = prior
            rows.append(r)
        cols = [*CURVE_KEYS, "status", "max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences", "seconds",
                "geometry", "target_accept", "pooling", "a_max_prior", "families", "message"]
        return pd.DataFrame(rows, columns=cols)

    def loo(self) -> pd.DataFrame:
        """PSIS-LOO per curve (fitted with ``loo=True``): ``elpd_loo``, ``se``, ``p_loo``, the largest Pareto k
        and how many points have k > 0.7 (where the estimate is unreliable)."""
        rows = [dict(zip(CURVE_KEYS, k, strict=True), **p.loo) for k, p in self.posteriors.items() if p.loo]
        return pd.DataFrame(rows, columns=[*CURVE_KEYS, "elpd_loo", "se", "p_loo", "max_k", "n_bad_k"])

    def observed(self, key: Key) -> pd.DataFrame:
        """The fitted rows (``run, budget, score`` ...) of one curve."""
        h = self.history
        return h[(h.dataset == key[0]) & (h.model == key[1]) & (h.method == key[2])]

    # ------------------------------------------------------------------------------------------ persistence

    def save(self, out: OutputDir | str | Path, name: str = POSTERIOR_FILE) -> Path:
        """Write the posterior, the fitted data and the settings to one ArviZ-readable NetCDF file
        (:func:`palm_bayes.serialize.save_forecaster`); returns its path."""
        return save_forecaster(self, out, name)

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """Read a forecaster written by :meth:`save` (a ``posterior.nc`` file or the folder holding it;
        :func:`palm_bayes.serialize.load_forecaster`)."""
        return load_forecaster(path, cls)


@dataclass(frozen=True)
class FitTask:
    """One unit of fitting work, everything a worker process needs (picklable): one curve, or the curves of one
    (dataset, model) group to fit jointly (``pooling`` "ceiling"/"full")."""

    keys: list[Key]
    rows: list[pd.DataFrame]
    scale: str
    settings: SamplerSettings
    backend: str | None
    prior: AMaxPrior
    pooling: str = "none"
    families: tuple[str, ...] = (PALM,)


@dataclass
class CurveFit:
    """What fitting one curve gave: the point fit, the posterior (or why sampling failed), the time taken and
    the best pilot mean (fraction scale)."""

    point_fit: PointFit
    posterior: CurvePosterior | None
    failure: str | None
    seconds: float
    best: float
    members: dict[str, FamilyPosterior] = field(default_factory=dict)
    member_failures: dict[str, str] = field(default_factory=dict)


@dataclass
class TaskFit:
    """What one :class:`FitTask` gave: a :class:`CurveFit` per key, the group posterior of a joint fit, and the
    engine's phase timings of the task (:data:`palm_bayes.engine.TIMINGS`) in the process ``pid`` that ran it."""

    fits: list[CurveFit]
    group: GroupPosterior | None = None
    timings: dict[str, float] = field(default_factory=dict)
    pid: int = 0


def fit_tasks(df: pd.DataFrame, scale: str, settings: SamplerSettings, backend: str | None, prior: AMaxPrior,
              pooling: str, families: tuple[str, ...] = (PALM,)) -> list[FitTask]:
    """The fitting work for a tidy table: one task per curve, or per (dataset, model) group of two or more
    methods when pooled (a one-method group is a curve task: the single-curve model)."""
    curves = [(key, rows[["run", "budget", "score"]].reset_index(drop=True)) for key, rows in iter_curves(df)]
    if pooling == "none":
        return [FitTask([k], [r], scale, settings, backend, prior, families=families) for k, r in curves]
    groups: dict[tuple[str, str], list] = {}
    for k, r in curves:
        groups.setdefault(k[:2], []).append((k, r))
    return [FitTask([k for k, _ in g], [r for _, r in g], scale, settings, backend, prior,
                    pooling if len(g) > 1 else "none", families) for g in groups.values()]


def fit_task(task: FitTask) -> TaskFit:
    """Point fits and posterior(s) of one task; a sampling failure is returned as a message, not raised."""
    t0, timings = time.perf_counter(), Counter(TIMINGS)
    data = [CurveData.from_rows(rows, task.scale, a_max_prior=task.prior) for rows in task.rows]
    points = [fit_curve(rows, mode="robust", scale=task.scale, b=cd.b, seed=task.settings.seed)
              for rows, cd in zip(task.rows, data, strict=True)]
    sampler = PalmSampler(task.settings, task.backend)
    posteriors, group, failure = [None] * len(data), None, None
    try:
        if task.pooling == "none":
            posteriors = [sampler.sample(data[0], task.keys[0])]
        else:
            group = sample_group(sampler, GroupData.from_curves(data, task.prior), task.pooling, task.keys[0][:2],
                                 [k[2] for k in task.keys])
            posteriors = group.curves
    except Exception as e:  # a failed curve (or group) is reported; the others still finish
        failure = _message(e)
    members: list[dict] = [{} for _ in data]
    member_failures: list[dict] = [{} for _ in data]
    for family in (f for f in task.families if f != PALM and failure is None):
        try:  # the same ceiling pooling as PALM's (a one-method task is fitted alone)
            for m, post in enumerate(sample_family_group(sampler, data, family, task.keys, task.prior)):
                members[m][family] = post
        except Exception as e:  # the forecast mixes the families that sampled
            for fails in member_failures:
                fails[family] = _message(e)
    seconds = (time.perf_counter() - t0) / len(data)
    return TaskFit([CurveFit(pt, post, failure, seconds, cd.best, mem, fails)
                    for pt, post, cd, mem, fails in zip(points, posteriors, data, members, member_failures,
                                                        strict=True)], group, dict(TIMINGS - timings), os.getpid())


def _message(e: Exception) -> str:
    return f"{type(e).__name__}: {first_line(e)}" if str(e).strip() else type(e).__name__


def print_progress(i: int, n: int, key: Key, seconds: float) -> None:
    """Default progress bar on standard error (only when it is a terminal; silent in pipes, logs and CI)."""
    if sys.stderr.isatty():
        width = 24
        done = int(width * i / n)
        bar = "█" * done + "·" * (width - done)
        print(f"\r{bar} {i}/{n} curves · {'/'.join(key)} ({seconds:.1f} s)\033[K", end="" if i < n else "\n",
              file=sys.stderr, flush=True)
