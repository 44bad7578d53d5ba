"""Classic (least-squares) PALM fits: PALM.py's exact procedure, and a robust multistart fit.

Two modes:

``palm.py``
    Exactly what the reference tool ``PALM.py`` (MIT) does, so its users get the same numbers: runs cut to
    ``num_samples`` episodes, then to the shortest run, averaged into ``y_avg``; x = episode index 1..N (in both
    of its x modes — its ``cumulative_normalized`` mode computes x·b/b); ``scipy.optimize.curve_fit`` with its
    start values, bounds ``[0, 0, -1000, 0] .. [100, 1, alpha_hi, beta_hi]`` (its ``--alpha_lo`` is parsed but
    not applied) and ``maxfev=50000``.
``robust`` (default)
    A seeded multistart least-squares fit on x = B/b over every observation (all runs, ragged lengths and
    irregular budgets kept), the way ALDA fits, with bounds that respect the score scale (A_max ≤ 1 for
    fractions, ≤ 100 for percent) and keep ``x + α > 0`` at every observed budget. Its candidates include
    PALM.py's start and, when PALM.py's episode axis coincides with B/b, PALM.py's own optimum, so on the data
    PALM.py sees its least-squares optimum never has a larger squared error than ``palm.py`` within the scale
    bounds. When that optimum is degenerate — a parameter at a bound (δ → 0, A_max at the scale's top,
    x₁ + α → 0, β at 0.01 or 20), what a pilot that does not pin the curve down often gives — it reports instead
    the fit nearest PALM's neutral values among those as good as it (:func:`interpretable_optimum`: at most
    :data:`SSE_TOLERANCE` noise variances more squared error).

Both modes mark the parameters the data do not identify (:func:`identification`: at a bound, or flat), in
:attr:`PointFit.unidentified` and :attr:`PointFit.note`; ``palm.py`` fits are marked, never changed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from .curve import PALM_PY_FLOOR, palm_curve, palm_curve_jacobian
from .data import episode_size, mean_curve, scale_max

PARAM_NAMES = ("A_max", "delta", "alpha", "beta")
FIT_MODES = ("robust", "palm.py")


@dataclass(frozen=True)
class PalmPyOptions:
    """PALM.py's fitting flags and their defaults."""

    num_samples: int | None = 20
    init_A_max: float | None = None
    init_delta: float = 0.5
    init_alpha: float = 1.0
    init_beta: float = 1.0
    alpha_lo: float = -1000.0  # parsed by PALM.py but not applied; kept for the record
    alpha_hi: float = 1000.0
    beta_hi: float = 100.0


@dataclass
class PointFit:
    """Result of a point fit.

    Attributes
    ----------
    A_max, delta, alpha, beta : float
        PALM parameters on the data's score scale.
    b : float
        Labels per episode used for the episode axis (``x = B / b``). For ``palm.py`` fits x is the episode index
        and ``b`` is PALM.py's ``budget_size``.
    axis : str
        ``"budget"`` (x = B/b) or ``"episode_index"`` (x = 1..N, PALM.py).
    mode : str
        ``"robust"`` or ``"palm.py"``.
    sse : float
        Sum of squared residuals on the data the fit saw (the per-budget means for ``palm.py``; every
        observation for ``robust``).
    rmse : float
        Root mean squared residual over those points.
    n_points : int
        Number of points in the loss.
    success : bool
        Whether the optimiser reported convergence.
    message : str
        Optimiser message (or why the fit failed).
    unidentified : tuple of str, optional
        Parameters the data do not identify (:func:`identification`): at a bound of the fit, or so flat that the
        fit could move them a long way at no cost in squared error. Empty when every parameter is identified;
        ``None`` when not assessed (e.g. a fit read back from a file).
    note : str
        One human line about ``unidentified`` ("" when every parameter is identified or when not assessed).
    """

    A_max: float
    delta: float
    alpha: float
    beta: float
    b: float
    axis: str
    mode: str
    sse: float
    rmse: float
    n_points: int
    success: bool = True
    message: str = ""
    extra: dict = field(default_factory=dict)
    unidentified: tuple[str, ...] | None = None
    note: str = ""

    @property
    def params(self) -> dict[str, float]:
        """The four PALM parameters as a dict."""
        return {k: float(getattr(self, k)) for k in PARAM_NAMES}

    def predict(self, budgets: np.ndarray) -> np.ndarray:
        """Fitted curve at cumulative budgets (labels). For ``palm.py`` fits, budget = episode × b."""
        x = np.asarray(budgets, dtype=float) / self.b
        floor = PALM_PY_FLOOR if self.mode == "palm.py" else None
        return palm_curve(x, self.A_max, self.delta, self.alpha, self.beta, floor=floor)

    def to_dict(self) -> dict:
        """Plain-dict view (JSON friendly)."""
        return asdict(self)

    def assessed(self, rows: pd.DataFrame, scale: str = "fraction", num_samples: int | None = None) -> PointFit:
        """This fit with ``unidentified`` and ``note`` worked out from the rows it was fitted to (see
        :func:`assess`)."""
        return assess(self, rows, scale, num_samples)


# --------------------------------------------------------------------------------------------- PALM.py


def optimize():
    """``scipy.optimize``, imported on first use: a command that refuses its input never pays for it."""
    import scipy.optimize

    return scipy.optimize


def palm_py_average(rows: pd.DataFrame, num_samples: int | None = 20) -> np.ndarray:
    """PALM.py's ``y_avg``: each run's scores in budget order, cut to ``num_samples`` (None/-1 = all), then to
    the shortest run, averaged over runs."""
    runs = [g.sort_values("budget")["score"].to_numpy(dtype=float) for _, g in rows.groupby("run", sort=False)]
    if num_samples is not None and num_samples >= 0:
        runs = [r[:num_samples] for r in runs]
    n = min(len(r) for r in runs)
    return np.stack([r[:n] for r in runs]).mean(axis=0)


def _palm_py_fn(x, A, d, a, b):
    return palm_curve(x, A, d, a, b, floor=PALM_PY_FLOOR)


def palm_py_bounds(o: PalmPyOptions) -> tuple[np.ndarray, np.ndarray]:
    """PALM.py's bounds on (A_max, δ, α, β): ``[0, 0, -1000, 0] .. [100, 1, alpha_hi, beta_hi]``."""
    return np.array([0.0, 0.0, -1000.0, 0.0]), np.array([100.0, 1.0, o.alpha_hi, o.beta_hi])


def palm_py_p0(o: PalmPyOptions, y_avg: np.ndarray) -> list[float]:
    """PALM.py's start (A_max, δ, α, β): its options, A_max defaulting to the average's maximum."""
    return [o.init_A_max if o.init_A_max is not None else float(np.max(y_avg)), o.init_delta, o.init_alpha,
            o.init_beta]


def fit_palm_py(y_avg: np.ndarray, options: PalmPyOptions | None = None, budget_size: float = 100.0,
                scale: str | None = None) -> PointFit:
    """Fit ``y_avg`` exactly as PALM.py does (see the module docstring), then mark (never change) the parameters
    the average does not identify (:func:`identification`).

    Parameters
    ----------
    y_avg : array
        The averaged curve, one value per episode.
    options : PalmPyOptions, optional
        PALM.py's start values and bounds.
    budget_size : float
        PALM.py's ``--budget_size``; only used to place episodes on the budget axis (episode k ↔ k·b).
    scale : {"fraction", "percent"}, optional
        The scores' scale, for marking an A_max at or above its top (PALM.py itself bounds A_max by 100).
    """
    o = options or PalmPyOptions()
    y = np.asarray(y_avg, dtype=float)
    x = np.arange(1, len(y) + 1, dtype=float)
    p0 = palm_py_p0(o, y)
    bounds = palm_py_bounds(o)
    try:
        with np.errstate(all="ignore"):
            popt, _ = optimize().curve_fit(_palm_py_fn, x, y, p0=p0, bounds=bounds, maxfev=50000)
        ok, msg = True, "curve_fit converged"
    except (RuntimeError, ValueError) as e:
        popt, ok, msg = np.array(p0, dtype=float), False, f"curve_fit failed: {e}"
    resid = _palm_py_fn(x, *popt) - y
    sse = float(resid @ resid)
    why = identification(x, y, popt, *bounds, scale_max(scale) if scale else 100.0, sse=sse, n=len(y),
                         floor=PALM_PY_FLOOR)
    return PointFit(*map(float, popt), b=float(budget_size), axis="episode_index", mode="palm.py", sse=sse,
                    rmse=float(np.sqrt(sse / len(y))), n_points=len(y), success=bool(ok and np.isfinite(sse)),
                    message=msg, extra={"y_avg": y.tolist()}, unidentified=tuple(why),
                    note=identification_note(why))


def palm_py_start(y_avg: np.ndarray, options: PalmPyOptions | None = None, max_nfev: int = 1000) -> np.ndarray:
    """PALM.py's least-squares problem (its average, start and bounds) solved with the exact Jacobian for at most
    ``max_nfev`` evaluations: a start for the robust fit on regular budgets.

    PALM.py's own ``curve_fit`` differentiates numerically and may walk 10 000 evaluations along a flat direction
    (1.5-2 s for one curve) for a fraction of a percent of squared error, which the robust fit's polish recovers:
    on the shipped example curves (``tests/test_pointfit.py``) and the 25 AL dev pilots the robust optimum is still
    never worse than PALM.py's fit on the same average.
    """
    o = options or PalmPyOptions()
    y = np.asarray(y_avg, dtype=float)
    x = np.arange(1, len(y) + 1, dtype=float)
    p0 = np.array(palm_py_p0(o, y))
    res = _bounded_lsq(lambda p: _palm_py_fn(x, *p) - y, lambda p: _jacobian(x, p, PALM_PY_FLOOR), p0,
                       *palm_py_bounds(o), max_nfev)
    return p0 if res is None else res.x


# --------------------------------------------------------------------------------------------- robust


def per_x_means(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(distinct x, observations there, their mean score, the within-x sum of squares). Least squares over every
    observation equals weighted least squares on these means (weights = counts) plus that constant."""
    xu, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    ybar = np.bincount(inv, weights=y) / counts
    return xu, counts, ybar, float(((y - ybar[inv]) ** 2).sum())


def _bounded_lsq(resid, jac, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_nfev: int):
    """SciPy's bounded trust-region least squares from ``start`` (moved just inside the bounds); None when it
    raises on a non-finite step."""
    start = np.clip(np.asarray(start, dtype=float), lo + 1e-12, hi - 1e-12)
    try:
        with np.errstate(all="ignore"):
            return optimize().least_squares(resid, start, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac",
                                            max_nfev=max_nfev)
    except (ValueError, FloatingPointError):
        return None


def robust_bounds(x_min: float, x_max: float, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the robust fit on x = B/b: A_max in [0, top], δ in (0, 1), α keeping x + α > 0 at the
    smallest observed x, β in [0.01, 20]."""
    eps = 1e-9
    lo = np.array([0.0, eps, -x_min + 1e-6, 0.01])
    hi = np.array([top, 1 - eps, max(10.0 * x_max + 1.0, 1000.0), 20.0])
    return lo, hi


# --------------------------------------------------------------------------------------------- identification

#: Optima whose squared error (over every observation) exceeds the best by at most this many noise variances
#: σ̂² = SSE / (n − 4) fit the data equally well (Δχ² = 1: one standard error of one parameter); a degenerate
#: robust fit reports the most interpretable of them. Not tuned: 1 is the textbook value; on the dev pilots
#: (benchmarks/pointfit_identification.py) LCDB scores best at 0.5 and AL at 2–4, and 1 improves both.
SSE_TOLERANCE = 1.0
#: A parameter is *flat* when √IDENT_CHI2 standard errors (Wald, from JᵀJ) exceed its :data:`IDENT_SPAN`: the
#: fits within Δχ² = IDENT_CHI2 of this one move it further than that.
IDENT_CHI2 = 1.0
#: Half-widths that count as "not identified", in the coordinates the standard errors are computed in:
#: A_max as a share of the score scale, ln λ with λ = −ln(1 − δ), ln(x₁ + α) with x₁ the first B/b, ln β.
IDENT_SPAN = {"A_max": 0.1, "delta": math.log(10.0), "alpha": math.log(10.0), "beta": math.log(10.0)}
#: Parameters the interpretable choice pulls towards PALM's neutral values (A_max towards the best observed
#: mean, δ towards 1/2, α towards 0, β towards 1).
PULLED = ("A_max", "delta", "alpha", "beta")
#: When the robust fit looks for an interpretable optimum: "degenerate" (only when the best one has a parameter at
#: a bound), "flagged" (when it has any unidentified parameter), "always", or "never" (the least-squares optimum).
SELECT = "degenerate"
SELECTIONS = ("degenerate", "flagged", "always", "never")


def _logit(u):
    u = np.clip(u, 1e-12, 1 - 1e-12)
    return np.log(u) - np.log1p(-u)


def _jacobian(x: np.ndarray, p: np.ndarray, floor: float | None) -> np.ndarray:
    """∂curve/∂(A_max, δ, α, β); with a floor, points where x + α is clipped do not move with α."""
    base = np.asarray(x, dtype=float) + p[2]
    clipped = base < (floor if floor is not None else 0.0)
    safe = np.where(clipped, floor if floor is not None else 1.0, base)
    J = palm_curve_jacobian(safe - p[2], *p)
    J[clipped, 2] = 0.0
    return J


def identification(
    x: np.ndarray,
    y: np.ndarray,
    params: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    top: float,
    *,
    sse: float,
    n: int,
    weights: np.ndarray | None = None,
    floor: float | None = None,
) -> dict[str, str]:
    """Parameters of a least-squares PALM fit that the data do not identify, each with its reason.

    A parameter is not identified when it sits at a bound of the fit (within 10⁻⁶ of the box; A_max at or above
    the score scale's top, δ ≈ 0 or 1, x₁ + α ≈ 0) — the optimum lies on the edge of what was allowed, so the
    data would have pushed it further — or when it is *flat*: √:data:`IDENT_CHI2` Wald standard errors (from
    σ̂² (JᵀWJ)⁻¹, σ̂² = SSE/(n − 4), the others re-adjusting) exceed :data:`IDENT_SPAN`, so fits as good as this
    one put it anywhere in a wide range.

    Parameters
    ----------
    x, y : array
        Episode positions and the (mean) scores fitted there.
    params : array
        (A_max, δ, α, β).
    lo, hi : array
        Bounds the fit used.
    top : float
        Top of the score scale (1 or 100).
    sse, n : float, int
        Sum of squared residuals and number of observations behind it.
    weights : array, optional
        Observations per x (the weighted fit's squared weights); 1 by default.
    floor : float, optional
        PALM.py's guard on x + α (``palm.py`` fits).

    Returns
    -------
    dict
        ``{name: reason}`` ("at bound", "above the score scale" or "flat") in :data:`PARAM_NAMES` order; empty
        when every parameter is identified.
    """
    p = np.asarray(params, dtype=float)
    x = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(p)):
        return dict.fromkeys(PARAM_NAMES, "fit failed")
    x1 = float(x.min())
    out: dict[str, str] = {}
    near = 1e-6 * (hi - lo)
    at = (p <= lo + near) | (p >= hi - near)
    at[0] |= p[0] >= top * (1 - 1e-6)
    at[1] |= (p[1] <= 1e-6) | (p[1] >= 1 - 1e-6)
    at[2] |= x1 + p[2] <= 1e-6 * max(x1, 1.0)
    for j, name in enumerate(PARAM_NAMES):
        if at[j]:
            out[name] = "at bound"
    if p[0] > top * (1 + 1e-9):  # palm.py fits bound A_max by 100 whatever the scale
        out["A_max"] = "above the score scale"
    if n <= len(p) or not np.isfinite(sse):
        return {name: out.get(name, "flat") for name in PARAM_NAMES}
    # standard errors in coordinates where "a long way" means the same for every parameter
    lam = -np.log1p(-min(p[1], 1 - 1e-15))
    base1 = x1 + p[2]
    dt = np.array([top, (1 - p[1]) * lam, base1 if base1 > 0 else 1.0, p[3]])
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    J = np.sqrt(w)[:, None] * _jacobian(x, p, floor) * dt[None, :]
    s2 = sse / (n - len(p))
    scale = np.linalg.norm(J, axis=0)
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(J)) or np.any(scale == 0):
            se = np.full(len(p), np.inf)
        else:
            _, sv, vt = np.linalg.svd(J / scale, full_matrices=False)
            sv = np.maximum(sv, sv[0] * 1e-12 + 1e-300)
            se = np.sqrt(s2 * ((vt / sv[:, None]) ** 2).sum(axis=0)) / scale
    span = np.array([IDENT_SPAN[k] for k in PARAM_NAMES])
    flat = ~(np.sqrt(IDENT_CHI2) * se <= span)
    if base1 <= 0:
        flat[2] = True
    for j, name in enumerate(PARAM_NAMES):
        if flat[j] and name not in out:
            out[name] = "flat"
    return {name: out[name] for name in PARAM_NAMES if name in out}


def identification_note(unidentified: dict[str, str] | tuple[str, ...] | None) -> str:
    """The one line a user sees about unidentified parameters ("" when there are none)."""
    if not unidentified:
        return ""
    if isinstance(unidentified, dict) and set(unidentified.values()) == {"fit failed"}:
        return "the point fit failed: it has no parameters to read"
    if isinstance(unidentified, dict):
        why = ", ".join(f"{k} {v}" for k, v in unidentified.items())
        names = ", ".join(unidentified)
    else:
        names, why = ", ".join(unidentified), ""
    return (f"the pilot does not identify {names}" + (f" ({why})" if why else "")
            + ": compare curves, not these numbers")


def interpretable_optimum(
    best: np.ndarray,
    best_sse: float,
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    within: float,
    n: int,
    lo: np.ndarray,
    hi: np.ndarray,
    top: float,
    *,
    max_nfev: int = 1000,
) -> tuple[np.ndarray, float]:
    """Among the PALM fits as good as the best one, the one nearest PALM's neutral values.

    "As good" = squared error over every observation at most ``best_sse + SSE_TOLERANCE · σ̂²`` (σ̂² = SSE /
    (n − 4)): a difference the noise in the data cannot tell apart. "Nearest" = smallest
    ``Σ r²`` with r = (logit(A_max/top) − logit(max ȳ/top), logit δ, ln((x₁ + α)/x₁), ln β) over the parameters
    in :data:`PULLED`: away from the bounds (δ → 0, A_max → the scale's top, x₁ + α → 0, β → 0 or ∞) where the
    least-squares optimum of a pilot that does not pin the curve down often ends. Found by penalised least
    squares, the penalty as strong as the tolerance allows (bisection on its weight, in log space).

    ``x, y, weights`` are the distinct x, the mean score there and the number of observations there; ``within``
    is the within-x part of the squared error. Returns (parameters, squared error over every observation).
    """
    if n <= 4 or not np.isfinite(best_sse) or best_sse <= within or not PULLED:
        return best, best_sse
    s2 = best_sse / (n - 4)
    limit = best_sse + SSE_TOLERANCE * s2
    sw = np.sqrt(weights) / np.sqrt(s2)
    x1 = float(x.min())
    a_ref = float(_logit(min(float(y.max()), top * (1 - 1e-6)) / top))
    use = np.array([k in PULLED for k in PARAM_NAMES])

    def pen(p):
        return np.array([_logit(p[0] / top) - a_ref, _logit(p[1]), np.log((x1 + p[2]) / x1), np.log(p[3])])[use]

    def dpen(p):
        u = np.clip(p[0] / top, 1e-12, 1 - 1e-12)
        d = np.clip(p[1], 1e-12, 1 - 1e-12)
        return np.diag([1 / (top * u * (1 - u)), 1 / (d * (1 - d)), 1 / (x1 + p[2]), 1 / p[3]])[use]

    def sse_of(p):
        r = palm_curve(x, *p) - y
        return float((weights * r * r).sum()) + within

    def solve(mu, start):
        m = np.sqrt(mu)

        def resid(p):
            return np.concatenate([sw * (palm_curve(x, *p) - y), m * pen(p)])

        def jac(p):
            return np.vstack([sw[:, None] * palm_curve_jacobian(x, *p), m * dpen(p)])

        res = _bounded_lsq(resid, jac, start, lo, hi, max_nfev)
        if res is None or not np.all(np.isfinite(res.fun)):
            return None, np.inf
        return res.x, sse_of(res.x)

    chosen, chosen_sse = np.asarray(best, dtype=float), float(best_sse)
    p, s = solve(1e3, chosen)
    if p is not None and s <= limit:
        return p, s
    lo_mu, hi_mu = -6.0, 3.0
    for _ in range(12):
        mid = 0.5 * (lo_mu + hi_mu)
        p, s = solve(10.0 ** mid, chosen)
        if p is not None and s <= limit:
            chosen, chosen_sse, lo_mu = p, s, mid
        else:
            hi_mu = mid
    return chosen, chosen_sse


def fit_robust(
    budgets: np.ndarray,
    scores: np.ndarray,
    *,
    b: float | None = None,
    scale: str = "fraction",
    n_starts: int = 8,
    seed: int = 0,
    max_nfev: int = 1000,
    extra_starts: list[np.ndarray] | None = None,
    select: str | None = None,
) -> PointFit:
    """Seeded multistart least-squares PALM fit on x = B/b over every observation.

    Parameters
    ----------
    budgets, scores : array
        Every (budget, score) observation of one curve (all runs; ragged and irregular allowed).
    b : float, optional
        Labels per episode; inferred with :func:`palm_bayes.data.episode_size` when omitted.
    scale : {"fraction", "percent"}
        Score scale; bounds A_max by 1 or 100.
    n_starts : int
        Random starts (in addition to PALM.py's default start and ``extra_starts``).
    max_nfev : int
        Evaluation budget of each local least-squares run.
    seed : int
        Seed of the start generator; the same seed gives the same fit.
    extra_starts : list of arrays, optional
        More starting points (clipped into the bounds), e.g. another fit's optimum.
    select : {"degenerate", "flagged", "always", "never"}, optional
        When to replace the least-squares optimum by the most interpretable fit as good as it
        (:func:`interpretable_optimum`); default :data:`SELECT`. "never" is the plain least-squares optimum.
    """
    B = np.asarray(budgets, dtype=float)
    y = np.asarray(scores, dtype=float)
    b = float(b) if b is not None else episode_size(B)
    x = B / b
    top = scale_max(scale)
    lo, hi = robust_bounds(float(x.min()), float(x.max()), top)
    rng = np.random.default_rng(seed)
    ymax = float(y.max())
    starts = [np.array([ymax, 0.5, 1.0, 1.0]), *list(extra_starts or [])]
    for _ in range(n_starts):
        starts.append(np.array([
            rng.uniform(ymax, min(top, 1.5 * ymax + 0.01 * top)),
            np.exp(rng.uniform(np.log(1e-3), np.log(0.9))),
            rng.uniform(lo[2], max(2.0, 0.5 * float(x.max()))),
            np.exp(rng.uniform(np.log(0.2), np.log(3.0))),
        ]))

    # Least squares over every observation equals weighted least squares on the per-budget means (plus a
    # constant), which is cheaper: fit the means with weights sqrt(n) and report the all-observation SSE.
    xu, counts, ybar, within = per_x_means(x, y)
    w = np.sqrt(counts)

    def resid(p):
        return w * (palm_curve(xu, *p) - ybar)

    def jac(p):
        return w[:, None] * palm_curve_jacobian(xu, *p)

    def run(start, nfev):
        res = _bounded_lsq(resid, jac, start, lo, hi, nfev)
        if res is None:
            return None, np.inf
        return res, (float(res.fun @ res.fun) + within if np.all(np.isfinite(res.fun)) else np.inf)

    # A short run from every start, then the two best are polished with the full evaluation budget.
    scouts = sorted((run(s, max(50, max_nfev // 8)) for s in starts), key=lambda t: t[1])
    best, best_sse, best_res = None, np.inf, None
    for res, sse in scouts[:2]:
        if res is None:
            continue
        for cand, cand_sse in ((res, sse), run(res.x, max_nfev)):
            if cand is not None and cand_sse < best_sse:
                best, best_sse, best_res = cand.x, cand_sse, cand
    if best is None:
        return PointFit(np.nan, np.nan, np.nan, np.nan, b=b, axis="budget", mode="robust", sse=np.nan,
                        rmse=np.nan, n_points=len(y), success=False, message="every start failed",
                        unidentified=PARAM_NAMES, note=identification_note(dict.fromkeys(PARAM_NAMES, "fit failed")))
    extra = {"starts": len(starts)}

    def unidentified(p, sse):
        return identification(xu, ybar, p, lo, hi, top, sse=sse, n=len(y), weights=counts)

    why = unidentified(best, best_sse)
    select = SELECT if select is None else select
    if select not in SELECTIONS:
        raise ValueError(f"unknown selection {select!r}; expected one of {SELECTIONS}")
    if (select == "always" or (select == "flagged" and why)
            or (select == "degenerate" and "at bound" in why.values())):
        p, sse = interpretable_optimum(best, best_sse, xu, ybar, counts.astype(float), within, len(y), lo, hi,
                                       top, max_nfev=max_nfev)
        if not np.array_equal(p, best):
            extra.update(least_squares_optimum=dict(zip(PARAM_NAMES, map(float, best), strict=True)),
                         least_squares_sse=float(best_sse))
            best, best_sse, why = p, sse, unidentified(p, sse)
    return PointFit(*map(float, best), b=b, axis="budget", mode="robust", sse=best_sse,
                    rmse=float(np.sqrt(best_sse / len(y))), n_points=len(y), success=bool(best_res.success),
                    message=str(best_res.message), extra=extra, unidentified=tuple(why),
                    note=identification_note(why))


def assess(fit: PointFit, rows: pd.DataFrame, scale: str = "fraction",
           num_samples: int | None = None) -> PointFit:
    """``fit`` with :attr:`PointFit.unidentified` and :attr:`PointFit.note` worked out from the rows it was
    fitted to (for fits that lack them, e.g. read back from a saved posterior); the parameters are unchanged.
    ``num_samples`` is PALM.py's episode cut (``palm.py`` fits only)."""
    p = np.array([fit.A_max, fit.delta, fit.alpha, fit.beta], dtype=float)
    top = scale_max(scale)
    if fit.mode == "palm.py":
        y = palm_py_average(rows, num_samples)
        x = np.arange(1, len(y) + 1, dtype=float)
        resid = _palm_py_fn(x, *p) - y
        why = identification(x, y, p, *palm_py_bounds(PalmPyOptions()), top, sse=float(resid @ resid), n=len(y),
                             floor=PALM_PY_FLOOR)
    else:
        xs = rows["budget"].to_numpy(dtype=float) / fit.b
        ys = rows["score"].to_numpy(dtype=float)
        xu, counts, ybar, _ = per_x_means(xs, ys)
        sse = float(((palm_curve(xs, *p) - ys) ** 2).sum()) if np.all(np.isfinite(p)) else np.nan
        lo, hi = robust_bounds(float(xs.min()), float(xs.max()), top)
        why = identification(xu, ybar, p, lo, hi, top, sse=sse, n=len(ys), weights=counts)
    return replace(fit, unidentified=tuple(why), note=identification_note(why))


# --------------------------------------------------------------------------------------------- one entry point


def fit_curve(
    rows: pd.DataFrame,
    *,
    mode: str = "robust",
    scale: str = "fraction",
    b: float | None = None,
    seed: int = 0,
    palm_py: PalmPyOptions | None = None,
    select: str | None = None,
) -> PointFit:
    """Point fit of one curve's rows (tidy table columns ``run, budget, score``).

    ``mode="palm.py"`` reproduces PALM.py (``b`` is its ``budget_size``, default 100, used only to draw the
    curve on the budget axis). ``mode="robust"`` fits x = B/b over every observation, ``b`` inferred from the
    budgets unless given; when the curve's budgets are the episodes ``b, 2b, ..., Nb`` it also starts from
    PALM.py's least-squares problem solved on the same average (:func:`palm_py_start`). ``select``
    (robust only; default :data:`SELECT`) says when a degenerate optimum is replaced by an equally good
    interpretable fit (see :func:`fit_robust`). Both modes mark unidentified parameters
    (:attr:`PointFit.unidentified`).
    """
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}; expected one of {FIT_MODES}")
    o = palm_py or PalmPyOptions()
    if mode == "palm.py":
        return fit_palm_py(palm_py_average(rows, o.num_samples), o, budget_size=b if b is not None else 100.0,
                           scale=scale)
    budgets = rows["budget"].to_numpy(dtype=float)
    b_fit = float(b) if b is not None else episode_size(budgets)
    extra = []
    mc = mean_curve(rows)
    if np.allclose(mc["budget"].to_numpy() / b_fit, np.arange(1, len(mc) + 1)):
        extra.append(palm_py_start(palm_py_average(rows, None), o))
    return fit_robust(budgets, rows["score"].to_numpy(dtype=float), b=b_fit, scale=scale, seed=seed,
                      extra_starts=extra, select=select)


__all__ = [
    "FIT_MODES",
    "PARAM_NAMES",
    "SELECTIONS",
    "PalmPyOptions",
    "PointFit",
    "assess",
    "fit_curve",
    "fit_palm_py",
    "fit_robust",
    "identification",
    "identification_note",
    "interpretable_optimum",
    "palm_py_average",
    "palm_py_start",
]
