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
    PALM.py sees it never ends with a larger squared error than ``palm.py`` within the scale bounds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit, least_squares

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


# --------------------------------------------------------------------------------------------- PALM.py


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


def fit_palm_py(y_avg: np.ndarray, options: PalmPyOptions | None = None, budget_size: float = 100.0) -> PointFit:
    """Fit ``y_avg`` exactly as PALM.py does (see the module docstring).

    Parameters
    ----------
    y_avg : array
        The averaged curve, one value per episode.
    options : PalmPyOptions, optional
        PALM.py's start values and bounds.
    budget_size : float
        PALM.py's ``--budget_size``; only used to place episodes on the budget axis (episode k ↔ k·b).
    """
    o = options or PalmPyOptions()
    y = np.asarray(y_avg, dtype=float)
    x = np.arange(1, len(y) + 1, dtype=float)
    p0 = [o.init_A_max if o.init_A_max is not None else float(y.max()), o.init_delta, o.init_alpha, o.init_beta]
    bounds = ([0.0, 0.0, -1000.0, 0.0], [100.0, 1.0, o.alpha_hi, o.beta_hi])
    try:
        with np.errstate(all="ignore"):
            popt, _ = curve_fit(_palm_py_fn, x, y, p0=p0, bounds=bounds, maxfev=50000)
        ok, msg = True, "curve_fit converged"
    except (RuntimeError, ValueError) as e:
        popt, ok, msg = np.array(p0, dtype=float), False, f"curve_fit failed: {e}"
    resid = _palm_py_fn(x, *popt) - y
    sse = float(resid @ resid)
    return PointFit(*map(float, popt), b=float(budget_size), axis="episode_index", mode="palm.py", sse=sse,
                    rmse=float(np.sqrt(sse / len(y))), n_points=len(y), success=bool(ok and np.isfinite(sse)),
                    message=msg, extra={"y_avg": y.tolist()})


# --------------------------------------------------------------------------------------------- robust


def robust_bounds(x_min: float, x_max: float, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the robust fit on x = B/b: A_max in [0, top], δ in (0, 1), α keeping x + α > 0 at the
    smallest observed x, β in [0.01, 20]."""
    eps = 1e-9
    lo = np.array([0.0, eps, -x_min + 1e-6, 0.01])
    hi = np.array([top, 1 - eps, max(10.0 * x_max + 1.0, 1000.0), 20.0])
    return lo, hi


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
    xu, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    ybar = np.bincount(inv, weights=y) / counts
    w = np.sqrt(counts)
    within = float(((y - ybar[inv]) ** 2).sum())

    def resid(p):
        return w * (palm_curve(xu, *p) - ybar)

    def jac(p):
        return w[:, None] * palm_curve_jacobian(xu, *p)

    def run(start, nfev):
        start = np.clip(np.asarray(start, dtype=float), lo + 1e-12, hi - 1e-12)
        try:
            with np.errstate(all="ignore"):
                res = least_squares(resid, start, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac",
                                    max_nfev=nfev)
        except (ValueError, FloatingPointError):
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
                        rmse=np.nan, n_points=len(y), success=False, message="every start failed")
    return PointFit(*map(float, best), b=b, axis="budget", mode="robust", sse=best_sse,
                    rmse=float(np.sqrt(best_sse / len(y))), n_points=len(y), success=bool(best_res.success),
                    message=str(best_res.message), extra={"starts": len(starts)})


# --------------------------------------------------------------------------------------------- one entry point


def fit_curve(
    rows: pd.DataFrame,
    *,
    mode: str = "robust",
    scale: str = "fraction",
    b: float | None = None,
    seed: int = 0,
    palm_py: PalmPyOptions | None = None,
) -> PointFit:
    """Point fit of one curve's rows (tidy table columns ``run, budget, score``).

    ``mode="palm.py"`` reproduces PALM.py (``b`` is its ``budget_size``, default 100, used only to draw the
    curve on the budget axis). ``mode="robust"`` fits x = B/b over every observation, ``b`` inferred from the
    budgets unless given; when the curve's budgets are the episodes ``b, 2b, ..., Nb`` it also starts from
    PALM.py's optimum, so it is never worse than it on the same average.
    """
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}; expected one of {FIT_MODES}")
    o = palm_py or PalmPyOptions()
    if mode == "palm.py":
        return fit_palm_py(palm_py_average(rows, o.num_samples), o, budget_size=b if b is not None else 100.0)
    budgets = rows["budget"].to_numpy(dtype=float)
    b_fit = float(b) if b is not None else episode_size(budgets)
    extra = []
    mc = mean_curve(rows)
    if np.allclose(mc["budget"].to_numpy() / b_fit, np.arange(1, len(mc) + 1)):
        ref = fit_palm_py(palm_py_average(rows, None), o, budget_size=b_fit)
        extra.append(np.array([ref.A_max, ref.delta, ref.alpha, ref.beta]))
    return fit_robust(budgets, rows["score"].to_numpy(dtype=float), b=b_fit, scale=scale, seed=seed,
                      extra_starts=extra)


__all__ = [
    "FIT_MODES",
    "PARAM_NAMES",
    "PalmPyOptions",
    "PointFit",
    "fit_curve",
    "fit_palm_py",
    "fit_robust",
    "palm_py_average",
]
