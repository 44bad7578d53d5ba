"""The PALM learning curve: the formula, its inverse, and what each parameter means.

PALM (Machnio, Nielsen, Ghazi, ICCV 2025) models the accuracy of an active-learning run after ``B`` labels as

.. math::

    A(B) = A_{max} \\left(1 - (1 - \\delta)^{(B/b + \\alpha)^{\\beta}}\\right)

with ``b`` the labels bought per episode, so ``x = B/b`` is the (possibly fractional) episode count.
Writing ``λ = -ln(1 - δ)`` shows it is a shifted Weibull-type saturation curve,
``A_max · (1 - exp(-λ (x + α)^β))``.

This module is the only place the formula and its inverse are written down. Every other module (point fits,
the PyMC model, decisions, plots) calls :func:`palm_curve` / :func:`budget_to_reach`. The formula uses only
arithmetic operators, so it evaluates NumPy arrays and PyTensor tensors alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: One-line meaning of each PALM parameter (used in reports, plots and the CLI help).
PARAMETERS: dict[str, str] = {
    "A_max": "achievable accuracy: the ceiling the curve approaches with unlimited labels (score scale)",
    "delta": "coverage efficiency in (0, 1): the share of the remaining headroom closed per unit of (x + α)^β",
    "alpha": "initial learning efficiency: shifts the episode axis; x + α must stay > 0 "
    "(α > 0 = a head start, e.g. an informative initial pool)",
    "beta": "scalability > 0: β > 1 learning accelerates as labels accumulate, β < 1 it decelerates",
}


def on_scale(values: np.ndarray, top: float = 1.0) -> np.ndarray:
    """Accuracy draws kept on their scale [0, ``top``]: a draw beyond an edge is set to the edge.

    A Normal noise or discrepancy term can carry a draw below 0 or above the maximum score, which no run can
    score. Setting it to the edge makes the distribution censored there, so every quantile (and every band
    built from quantiles) lies on the scale, and a band whose tail reaches past an edge ends exactly at it.
    """
    return np.clip(values, 0.0, top)


#: Guard PALM.py applies to the base of the power: ``max(x + α, 1e-8)``.
PALM_PY_FLOOR = 1e-8


def palm_curve(x: Any, A_max: Any, delta: Any, alpha: Any, beta: Any, *, floor: float | None = None) -> Any:
    """Evaluate the PALM curve on the episode axis ``x = B / b``.

    Parameters
    ----------
    x : array_like or tensor
        Episode axis: cumulative labels divided by labels per episode (or PALM.py's episode index 1..N).
    A_max, delta, alpha, beta : array_like or tensor
        PALM parameters (see :data:`PARAMETERS`); broadcast against ``x``.
    floor : float, optional
        If given, the base ``x + alpha`` is clipped from below at ``floor`` (PALM.py uses 1e-8). Without it,
        points with ``x + alpha <= 0`` evaluate to NaN, which is what a model that keeps the base positive by
        construction wants.

    Returns
    -------
    array_like or tensor
        ``A_max * (1 - (1 - delta) ** ((x + alpha) ** beta))``, on the scale of ``A_max``.
    """
    base = x + alpha
    if floor is not None:
        base = np.clip(base, floor, None)
    elif isinstance(base, np.ndarray | float | int | np.floating):
        base = np.where(np.asarray(base) > 0, base, np.nan)
    return A_max * (1 - (1 - delta) ** (base**beta))


def budget_curve(
    budget: Any, A_max: Any, delta: Any, alpha: Any, beta: Any, b: float, *, floor: float | None = None
) -> Any:
    """Evaluate the PALM curve at cumulative budgets ``B`` (labels), with ``b`` labels per episode."""
    return palm_curve(np.asarray(budget, dtype=float) / b, A_max, delta, alpha, beta, floor=floor)


def episodes_to_reach(target: Any, A_max: Any, delta: Any, alpha: Any, beta: Any) -> np.ndarray:
    """Exact (fractional) episode position ``x`` at which the curve reaches ``target``: the inverse of PALM.

    Solves ``A(x) = target`` for ``x``::

        x = (ln(1 - target / A_max) / ln(1 - delta)) ** (1 / beta) - alpha

    Vectorised over every argument. Returns ``inf`` where the target is at or above ``A_max`` (never reached),
    and ``-alpha`` (the start of the curve) for targets at or below 0.
    """
    t, A, d, a, be = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (target, A_max, delta, alpha, beta)))
    out = np.full(t.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        reachable = (t < A) & (A > 0) & (d > 0) & (d < 1) & (be > 0)
        ratio = np.log1p(-np.clip(t / A, 0.0, None)) / np.log1p(-d)
        x = np.power(ratio, 1.0 / be) - a
    out[reachable] = x[reachable]
    return out if out.ndim else out[()]


def budget_to_reach(
    target: Any,
    A_max: Any,
    delta: Any,
    alpha: Any,
    beta: Any,
    b: float,
    *,
    whole_episodes: bool = True,
) -> np.ndarray:
    """Smallest cumulative budget (labels) at which the PALM curve reaches ``target``; vectorised.

    Parameters
    ----------
    target : array_like
        Accuracy to reach, on the scale of ``A_max``.
    A_max, delta, alpha, beta : array_like
        PALM parameters (scalars, or arrays such as posterior draws).
    b : float
        Labels per episode.
    whole_episodes : bool, default True
        Round the episode count up to a whole episode, as ALDA does (labels are bought an episode at a time).
        Budgets are never negative: a target already met at ``x <= 0`` needs 0 labels.

    Returns
    -------
    numpy.ndarray or float
        Labels needed; ``inf`` where the target is at or above ``A_max`` (never reached).
    """
    x = np.asarray(episodes_to_reach(target, A_max, delta, alpha, beta), dtype=float)
    finite = np.isfinite(x)
    if whole_episodes:
        # 1e-9 absorbs float noise so that an exact round trip of a whole episode is not pushed one episode up.
        x = np.where(finite, np.ceil(np.round(x, 9)), x)
    x = np.where(finite, np.maximum(x, 0.0), x)
    out = x * float(b)
    return out if out.ndim else float(out)


def labels_to_reach(
    target: float, A_max: float, delta: float, alpha: float, beta: float, b: float, *, whole_episodes: bool = True
) -> float | None:
    """Scalar convenience over :func:`budget_to_reach`: labels to reach ``target``, or ``None`` if never."""
    out = float(budget_to_reach(target, A_max, delta, alpha, beta, b, whole_episodes=whole_episodes))
    return None if math.isinf(out) else out


def palm_curve_jacobian(x: np.ndarray, A_max: float, delta: float, alpha: float, beta: float) -> np.ndarray:
    """Partial derivatives of :func:`palm_curve` with respect to (A_max, δ, α, β), shape ``(len(x), 4)``.

    With ``λ = -ln(1 - δ)``, ``u = (x + α)^β`` and ``e = exp(-λ u)`` (so the curve is ``A_max (1 - e)``)::

        ∂/∂A_max = 1 - e          ∂/∂δ = A_max e u / (1 - δ)
        ∂/∂α = A_max e λ β (x + α)^(β - 1)          ∂/∂β = A_max e λ u ln(x + α)

    Used by the least-squares point fits; ``x + α`` must be positive.
    """
    base = np.asarray(x, dtype=float) + alpha
    lam = -np.log1p(-delta)
    u = base**beta
    e = np.exp(-lam * u)
    return np.column_stack([
        1 - e,
        A_max * e * u / (1 - delta),
        A_max * e * lam * beta * base ** (beta - 1),
        A_max * e * lam * u * np.log(base),
    ])


def palm_curve_cloglog(x: Any, A_max: Any, log_lambda: Any, alpha: Any, beta: Any, *, xp: Any = np) -> Any:
    """The same PALM curve written through ``λ = -ln(1 - δ)`` in a numerically stable form.

    ``A_max · (1 - exp(-exp(log λ + β · log(x + α))))``, identical to :func:`palm_curve` with
    ``δ = 1 - exp(-λ)`` but without forming ``1 - δ`` (which loses precision when δ is near 0 or 1). ``xp`` is
    the math module (NumPy, or ``pytensor.tensor`` for model graphs).
    """
    return A_max * -xp.expm1(-xp.exp(log_lambda + beta * xp.log(x + alpha)))


def delta_from_log_lambda(log_lambda: Any) -> Any:
    """δ = 1 - exp(-λ) from log λ (NumPy)."""
    return -np.expm1(-np.exp(log_lambda))
