"""The sampler engine: NUTS on the PALM model of :mod:`palm_bayes.model`, compiled once and re-used.

Sampling geometry. The prior of :mod:`palm_bayes.model` is stated on (z_A, log_base, log_beta, eta1);
``geometry="shape"`` samples in exactly those coordinates. There A_max, β and η₁ sit on a curved ridge (a higher
ceiling needs a lower share reached and another β to fit the same points), and A_max mixed slowly (R-hat > 1.01 on
about half the dev curves). ``geometry="levels"`` samples the same posterior in coordinates the data pin down — the
curve's level at the last observed budget, the first level relative to it, and the share of the remaining headroom
A_max adds — with the log-Jacobian of the change of variables added to the prior (see
:func:`palm_bayes.model.levels_geometry`). It mixes A_max far better; its headroom coordinate has a light tail
(docs/benchmarks.md, 2026-12-02). Where "levels" fails it is mostly by divergences on plateaued curves (the curve
already at its ceiling at the first budget), where "shape" at smaller steps is healthy.

The default ``geometry="auto"`` climbs :data:`LADDER` until a run is healthy (:meth:`PalmSampler.sample`,
:func:`retry_ladder`): a cheap first run in "levels" (target_accept 0.9 after 300 tuning steps: nutpie's
adaptation settles in a few hundred steps, and smaller steps bought no health there), then "shape" at 0.99 as
cheap, then "shape" and "levels" at 0.99, each tuned for 1000 steps with :data:`RETRY_DRAWS` times the draws,
thinned back; the healthiest run is kept. The other curve families (:mod:`palm_bayes.ensemble`) climb the same
ladder. Chosen from single runs on both dev sets, each choice scored on the other set (docs/benchmarks.md,
2026-12-07, late evening).

The model is built once per process (per padded run count and geometry) and re-used for every curve by swapping
its data. With nutpie its compiled form is kept on disk (:mod:`palm_bayes.compile_cache`): the first process on a
machine compiles it (4-30 s per model on 2 cores, depending on what PyTensor has cached), later processes load it
in under a second (the linked PyTensor functions are kept too). A compile is announced on the ``palm_bayes``
logger (the command line prints it; a load is silent) and the time of each phase is added to :data:`TIMINGS`.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import _compat
from .compile_cache import compile_model
from .curve import delta_from_log_lambda, on_scale, palm_curve_cloglog
from .diagnostics import RHAT_MAX, diagnostics_table, health_warnings
from .model import CurveData, build_model, pad_runs


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings. ``seed`` makes every number reproducible."""

    draws: int = 1000
    #: tuning steps of a run; the long retry of ``geometry="auto"`` (:data:`LADDER`) tunes for at least
    #: ``retry_tune`` steps and draws :data:`RETRY_DRAWS` times ``draws``
    tune: int = 300
    chains: int = 4
    seed: int = 0
    #: target_accept of the first run; None: the geometry's own (:data:`FIRST_ACCEPT`)
    target_accept: float | None = None
    retry_tune: int = 1000
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
    #: how a pooled ceiling is sampled: "two-stage" (each method alone, then the group; :mod:`palm_bayes.two_stage`)
    #: or "joint" (one NUTS run over the group's joint model, the reference)
    group_sampler: str = "two-stage"

    def accept(self, geometry: str, first_accept: dict[str, float] | None = None) -> float:
        """The first run's target_accept in ``geometry`` ("shape" or "levels"): the settings', else the geometry's
        in ``first_accept`` (default :data:`FIRST_ACCEPT`)."""
        return first_run_accept(geometry, self.target_accept, first_accept)

    @property
    def marginalised(self) -> bool:
        """Whether the run offsets are integrated out analytically (Normal noise, no AR(1) or misfit term)."""
        return self.marginal_runs and self.likelihood == "normal" and not self.ar1 and not self.misfit


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


def curve_seed(seed: int, key: tuple) -> int:
    """Per-curve seed from the user's seed and the curve's name: independent of curve order and of workers."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32("/".join(map(str, key)).encode())]).generate_state(1)[0])


def has_nutpie() -> bool:
    """Whether nutpie (the fast NUTS implementation) is installed."""
    return importlib.util.find_spec("nutpie") is not None


#: Process-wide cache of built (and, for nutpie, compiled or loaded) models.
_COMPILED: dict[tuple, tuple] = {}
#: Seconds and counts of the engine's phases in this process: ``build`` / ``compile`` (and ``compiles``, ``loads``
#: from the on-disk cache), ``sample`` (the first run of each curve or group, ``runs``) and ``retry`` (later rungs
#: of the retry ladder, ``retries``); :meth:`palm_bayes.forecast.Forecaster.fit` adds its worker processes' too.
#: Read by ``benchmarks/speed.py``; nothing else depends on it.
TIMINGS: Counter = Counter()
#: Status lines ("compiling the model ...") go to this logger; the command line prints its INFO lines.
log = logging.getLogger("palm_bayes")


class PalmSampler:
    """Compiles the PALM model once (per run-slot count and likelihood) and samples curve after curve.

    Uses nutpie when it is installed (compiled or loaded once, then ``with_data`` for each curve), PyMC's own NUTS
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
            t0 = time.perf_counter()
            model = build()
            t1 = time.perf_counter()
            TIMINGS["build"] += t1 - t0
            compiled = None
            if backend == "nutpie":
                # the key's words say which model: its geometry, and "group"/pooling for a joint model
                what = ", ".join(k for k in key if isinstance(k, str) and k not in ("nutpie", "normal"))
                compiled, how = compile_model(model, what, repr(key))
                TIMINGS["compile"] += time.perf_counter() - t1
                TIMINGS["loads" if how == "loaded" else "compiles"] += 1
            _COMPILED[key] = (model, compiled)
        return _COMPILED[key]

    def draw(self, model, compiled, values: dict, seed: int, target_accept: float, raw: bool = True,
             tune: int | None = None, draws: int | None = None):
        """Run NUTS on ``model`` with its data set to ``values`` (nutpie, or PyMC's sampler) for ``tune`` tuning
        steps and ``draws`` draws per chain (default: the settings'); the sampler's result (with nutpie and
        ``raw``, its raw trace: read it with :func:`palm_bayes._compat.posterior_arrays`)."""
        s = self.settings
        tune = s.tune if tune is None else tune
        draws = s.draws if draws is None else draws
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.backend == "nutpie":
                import nutpie

                extra = dict(_compat.nutpie_low_rank_kwargs()) if s.low_rank else {}  # a copy: that one is cached
                extra.update({"cores": s.cores} if s.cores else {})
                extra.update(_compat.nutpie_raw_trace_kwargs() if raw else {})
                result = nutpie.sample(compiled.with_data(**values), draws=draws, tune=tune, chains=s.chains,
                                       seed=seed % (2**32), progress_bar=False, target_accept=target_accept,
                                       **extra)
                return _compat.ArrowTrace(result) if "return_raw_trace" in extra else result
            import pymc as pm

            with model:
                pm.set_data(values)
                return pm.sample(draws=draws, tune=tune, chains=s.chains, random_seed=seed,
                                 target_accept=target_accept, progressbar=False, compute_convergence_checks=False,
                                 cores=1)

    def sample(self, data: CurveData, key: tuple = ()) -> CurvePosterior:
        """Sample the posterior of one curve.

        With ``geometry="auto"`` a curve is sampled along :func:`retry_ladder` until a run is healthy: first in the
        "levels" coordinates at the settings' target_accept and tuning, then (while a run misses a health
        threshold) in "shape" and "levels" — the same posterior, other sampler paths — with smaller steps, the last
        two runs with longer tuning (``retry_tune``) and :data:`RETRY_DRAWS` times the draws (:func:`run_lengths`),
        thinned back to ``draws``. The healthiest run is kept (:func:`healthiest`) and every run's time is counted.
        """
        return healthiest(lambda *run: self._sample(data, key, *run), ladder_runs(self.settings))

    def _sample(self, data: CurveData, key: tuple, geometry: str, target_accept: float,
                tune: int | None = None, draws: int | None = None) -> CurvePosterior:
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
        result = self.draw(model, compiled, used, seed, target_accept, raw=not (s.loo and not s.marginalised),
                           tune=tune, draws=draws)
        seconds = time.perf_counter() - t0
        # a retry's longer run is thinned to the settings' draws per chain, so every curve keeps as many draws;
        # its health is judged on the draws kept (its divergences on all of them)
        raw = kept_draws(result, names, draws or s.draws, s.draws)
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
        x_budget = np.zeros(int(data.budget_index.max()) + 1)
        x_budget[data.budget_index] = data.x
        values = {"x_budget": x_budget, "budget_index": data.budget_index, "y": data.y, "run_index": data.run_index,
                  "x_first": np.asarray(data.x_first), "x_last": np.asarray(data.x_last),
                  **{k: np.asarray(getattr(data, k)) for k in ("a_top", "a_mu", "a_sd")}}
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
        fraction scale, kept on it (:func:`~palm_bayes.curve.on_scale`). Drawn from the "shape" geometry, whose
        priors are explicit distributions (the "levels" geometry has the same prior, written as a density on other
        coordinates)."""
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
        return {"mean": on_scale(mean), "run": on_scale(group["obs"])}


#: The first run's target_accept per geometry, unless the settings name one: "levels" mixes at larger steps (0.9
#: bought as much health as 0.97 on the dev sets, at about half the gradients); "shape" needs small steps on its
#: curved ridge (at 0.9 a short run's chains can stick apart).
FIRST_ACCEPT = {"levels": 0.9, "shape": 0.97}
#: The runs of ``geometry="auto"``, tried in turn until one is healthy: (geometry, target_accept, long), None for the
#: settings' target_accept (or the geometry's :data:`FIRST_ACCEPT`); a later rung never steps below the settings'.
#: A long run tunes for at least ``retry_tune`` steps and draws :data:`RETRY_DRAWS` times as many (:func:`run_lengths`).
#: "levels" first: it mixes A_max on rising curves and its failures are mostly divergences on plateaued ones, where
#: "shape" at small steps is healthy (a short run is enough for most of them; the long one mixes the slow rest); last,
#: "levels" at small steps and long.
#: Measured on both dev sets, for PALM and MMF4 (docs/benchmarks.md, 2026-12-07, late evening).
LADDER: tuple[tuple[str, float | None, bool], ...] = (("levels", None, False), ("shape", 0.99, False),
                                                       ("shape", 0.99, True), ("levels", 0.99, True))
#: A long run draws this many times the settings' draws and keeps every RETRY_DRAWS-th (the runs that reach the long
#: rungs mix slowly: thinning keeps most of their effective draws, and every curve keeps the same number of draws).
RETRY_DRAWS = 2


def first_run_accept(geometry: str, target_accept: float | None = None,
                     first_accept: dict[str, float] | None = None) -> float:
    """The first run's target_accept in ``geometry``: ``target_accept`` (the settings') if given, else the
    geometry's in ``first_accept`` (default :data:`FIRST_ACCEPT`)."""
    if target_accept is not None:
        return target_accept
    return (FIRST_ACCEPT if first_accept is None else first_accept)[geometry]


def retry_ladder(target_accept: float | None = None,
                 first_accept: dict[str, float] | None = None) -> list[tuple[str, float]]:
    """The (geometry, target_accept) runs ``geometry="auto"`` tries in turn (:data:`LADDER`), until one is
    healthy; ``target_accept`` is the settings' (None: each geometry's ``first_accept``, default
    :data:`FIRST_ACCEPT`, for the first run)."""
    rungs = []
    for geometry, accept, _ in LADDER:
        if accept is None:
            accept = first_run_accept(geometry, target_accept, first_accept)
        rungs.append((geometry, accept if target_accept is None else max(accept, target_accept)))
    return rungs


def run_lengths(settings: SamplerSettings) -> list[tuple[int, int]]:
    """(tuning steps, draws per chain) of each run of :data:`LADDER`: the settings', or for a long run at least
    ``retry_tune`` steps and :data:`RETRY_DRAWS` times the draws (thinned back to ``draws`` afterwards)."""
    return [(max(settings.tune, settings.retry_tune), RETRY_DRAWS * settings.draws) if long
            else (settings.tune, settings.draws) for _, _, long in LADDER]


def ladder_runs(settings: SamplerSettings,
                first_accept: dict[str, float] | None = None) -> list[tuple[str, float, int, int]]:
    """(geometry, target_accept, tuning steps, draws per chain) of each run a curve may get: with
    ``geometry="auto"`` the runs of :data:`LADDER` (:func:`retry_ladder`, :func:`run_lengths`), else the one run
    in the pinned geometry at the settings' target_accept (or its :data:`FIRST_ACCEPT`), tuning and draws.
    ``first_accept`` replaces :data:`FIRST_ACCEPT` for a model whose coordinates want other first steps (another
    curve family's, :mod:`palm_bayes.ensemble`)."""
    s = settings
    if s.geometry != "auto":
        return [(s.geometry, s.accept(s.geometry, first_accept), s.tune, s.draws)]
    return [(*rung, *lengths) for rung, lengths in
            zip(retry_ladder(s.target_accept, first_accept), run_lengths(s), strict=True)]


def kept_draws(result, names: list[str], drawn: int, kept: int) -> dict[str, np.ndarray]:
    """The posterior arrays ``names`` (chain, draw) of a sampler's ``result`` with ``drawn`` draws per chain,
    thinned to ``kept`` (a long run of :data:`LADDER`: every curve keeps the settings' number of draws)."""
    step = max(1, drawn // kept)
    return {n: v[:, ::step] for n, v in _compat.posterior_arrays(result, names).items()}


def parse_ladder(text: str) -> tuple[tuple[str, float | None, bool], ...]:
    """A ladder written ``geometry[:target_accept][:long],...`` (e.g. ``levels,shape:0.99,shape:0.99:long``), for
    the benchmarks."""
    rungs = []
    for rung in text.split(","):
        geometry, _, rest = rung.partition(":")
        accept, _, long = rest.partition(":")
        rungs.append((geometry, float(accept) if accept else None, long == "long"))
    return tuple(rungs)


def healthiest(attempt: Callable, ladder: list[tuple]):
    """Run ``attempt(*run)`` for each run of ``ladder`` (``(geometry, target_accept[, tune, draws])``, e.g.
    :func:`ladder_runs`) until one is healthy (no warnings); return the healthiest run — fewest missed thresholds
    (:func:`health_warnings` gives one warning per missed threshold: divergences, R-hat, ESS), then the smaller worst
    R-hat where it misses 1.01, then fewer divergences (of two runs whose chains agree, one with a single divergence
    is kept over one with hundreds), then the smaller worst R-hat — with the seconds of every run counted."""
    tried = []
    for run in ladder:
        tried.append(attempt(*run))
        TIMINGS["retry" if len(tried) > 1 else "sample"] += tried[-1].seconds
        TIMINGS["retries" if len(tried) > 1 else "runs"] += 1
        if not tried[-1].warnings:
            break
    def badness(post):
        r_hat = float(post.diagnostics.r_hat.max())
        return len(post.warnings), max(r_hat, RHAT_MAX), post.divergences, r_hat

    best = min(tried, key=badness)
    best.seconds = sum(post.seconds for post in tried)
    return best
