"""Learning-curve families beside PALM, written so that one Bayesian model serves them all.

Every family here is a saturating curve ``A(x) = A_max · (1 − exp(−H(x)))`` on the episode axis ``x = B / b``,
with ``H`` increasing: the cumulative "hazard" of closing the headroom to the ceiling A_max. Each family is its own
``H``, written through its value at the first observed budget, ``H(x₁) = exp(η₁)`` (η₁ is the complementary
log-log of the share of A_max reached at x₁, the quantity the data pin down best), and two shape parameters
``(p, q)`` on unconstrained scales:

``palm``      PALM (Machnio et al. 2025), ``H = exp(η₁) · ((x + α) / (x₁ + α))^β``:
              p = log(x₁ + α), q = log β (:func:`palm_bayes.curve.palm_curve_cloglog`).
``palm_log``  PALM on a log-budget axis ``x' = 1 + log(x / x₁)`` (PALM.py's episode index on geometric budget
              grids such as LCDB's): the same ``p, q`` on x'.
``wbl4``      Weibull with a start level (LCDB's WBL4, ``c − b·exp(−a·x^d)``):
              ``H = exp(η₁) + exp(p) · ((x / x₁)^d − 1)``, q = log d; exp(p) = a·x₁^d.
``pow4``      Shifted power law (LCDB's POW4, ``a − b·(x + d)^(−c)``): the headroom left falls as a power of x + d,
              ``H = exp(η₁) + c · log((x + d) / (x₁ + d))``, p = log(x₁ + d), q = log c.
``mmf4``      Morgan-Mercer-Flodin (LCDB's MMF4, ``(a·b + c·x^d) / (b + x^d)``): the headroom left falls
              log-logistically, ``H = exp(η₁) + log1p((x/κ)^d) − log1p((x₁/κ)^d)``, p = log(κ / x₁), q = log d.

Written this way, each family's A_max, η₁ and run/noise model share PALM's priors (:mod:`palm_bayes.model`) and
the families differ only in how the headroom closes beyond the data. The textbook forms (LCDB: Mohr, Viering,
Loog, van Rijn 2022, on error rates; here on accuracy) are a reparameterisation; ``tests/test_families.py``
checks each against its textbook form.

This module is the only place these formulas are written; PALM's own stays in :mod:`palm_bayes.curve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .curve import palm_curve_cloglog


@dataclass(frozen=True)
class Family:
    """One curve family: its name, what its two shape parameters mean, and their priors (Normal mean, sd) on the
    unconstrained scale; a mean given as ``"log_x1p1"`` is log(x₁ + 1) (the first budget about one episode into
    the curve, as PALM's α)."""

    name: str
    p: str
    q: str
    p_prior: tuple[Any, float]
    q_prior: tuple[float, float]
    description: str


FAMILIES: dict[str, Family] = {
    "palm": Family("palm", "log(x1 + alpha)", "log beta", ("log_x1p1", 1.0), (0.0, 0.75),
                   "PALM on x = B/b"),
    "palm_log": Family("palm_log", "log(x1' + alpha)", "log beta", ("log_x1p1", 1.0), (0.0, 0.75),
                       "PALM on x' = 1 + log(x / x1)"),
    "wbl4": Family("wbl4", "log rate at x1", "log d", (0.0, 1.5), (0.0, 0.75),
                   "Weibull with a start level (WBL4)"),
    "pow4": Family("pow4", "log(x1 + d)", "log c", ("log_x1p1", 1.0), (0.0, 0.75),
                   "shifted power law (POW4)"),
    "mmf4": Family("mmf4", "log(kappa / x1)", "log d", (0.0, 1.5), (0.0, 0.75),
                   "Morgan-Mercer-Flodin (MMF4)"),
}


def check_family(name: str) -> Family:
    """The :class:`Family` called ``name`` (ValueError naming the known ones otherwise)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown curve family {name!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_curve(name: str, x: Any, A_max: Any, eta1: Any, p: Any, q: Any, x1: Any, *, xp: Any = np) -> Any:
    """Mean accuracy ``A(x)`` of family ``name`` on the episode axis (NumPy arrays or PyTensor tensors with
    ``xp=pytensor.tensor``); parameters broadcast against ``x`` (see the module docstring)."""
    check_family(name)
    if name in ("palm", "palm_log"):
        if name == "palm_log":
            x, x1 = 1.0 + xp.log(x / x1), 1.0 + 0.0 * x1
        # log λ = η₁ − β · log(x₁ + α): the same curve as PALM's with H(x₁) = exp(η₁)
        beta = xp.exp(q)
        return palm_curve_cloglog(x, A_max, eta1 - beta * p, xp.exp(p) - x1, beta, xp=xp)
    if name == "wbl4":
        hazard = xp.exp(eta1) + xp.exp(p) * xp.expm1(xp.exp(q) * xp.log(x / x1))
    elif name == "pow4":
        hazard = xp.exp(eta1) + xp.exp(q) * (xp.log(x - x1 + xp.exp(p)) - p)
    else:  # mmf4
        d, log_kappa = xp.exp(q), p + xp.log(x1)
        hazard = (xp.exp(eta1) + _softplus(d * (xp.log(x) - log_kappa), xp)
                  - _softplus(d * (xp.log(x1) - log_kappa), xp))
    return A_max * -xp.expm1(-hazard)


def _softplus(v: Any, xp: Any) -> Any:
    """log(1 + exp(v)), stable for large |v|."""
    if xp is np:
        return np.logaddexp(0.0, v)
    return xp.softplus(v)


def prior_mean(value: Any, x1: Any, xp: Any = np) -> Any:
    """A prior mean of :data:`FAMILIES` as a number (``"log_x1p1"``: log(x₁ + 1))."""
    return xp.log(x1 + 1.0) if value == "log_x1p1" else value
