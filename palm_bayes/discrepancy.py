"""The extrapolation discrepancy: how far the true mean curve may stray from the PALM form beyond the data."""

from __future__ import annotations

import numpy as np

from .curve import on_scale

#: Scale κ of the extrapolation discrepancy (fraction scale per √(log budget ratio)); see
#: :func:`extrapolation_discrepancy` and docs/benchmarks.md for how it was set.
DISCREPANCY = 0.02


def extrapolation_discrepancy(budgets: np.ndarray, last_budget: float, kappa: float, n_draws: int,
                              rng: np.random.Generator) -> np.ndarray:
    """Draws (n_draws × budgets) of how far the true mean curve strays from the PALM form beyond the data.

    Within the observed budgets the PALM form is checked by the data; beyond the last one it is an assumption,
    and the further out the forecast, the more a real curve can depart from it (a late plateau, a late jump).
    palm-bayes models the departure as a Brownian motion in log budget that starts at zero at the last observed
    budget: d(B) ~ N(0, κ² · log(B / B_last)) for B > B_last, with independent increments between budgets, so a
    trajectory stays coherent across budgets. κ is not learned from one pilot (a pilot cannot show what happens
    after it); it was set on the development sets' held-out budgets (docs/benchmarks.md), κ = 0 turns it off.
    """
    B = np.asarray(budgets, dtype=float)
    if kappa <= 0 or B.size == 0:
        return np.zeros((n_draws, B.size))
    order = np.argsort(B, kind="stable")
    h = np.log(np.maximum(B[order], last_budget) / last_budget)
    steps = np.diff(np.concatenate([[0.0], h]))
    walk = np.cumsum(kappa * np.sqrt(steps)[None, :] * rng.standard_normal((n_draws, B.size)), axis=1)
    out = np.empty_like(walk)
    out[:, order] = walk
    return out


def with_discrepancy(mu: np.ndarray, budgets: np.ndarray, last_budget: float, kappa: float,
                     rng: np.random.Generator, top: float = 1.0) -> np.ndarray:
    """Mean-curve draws ``mu`` (draws × budgets, on a scale whose maximum is ``top``) moved by
    :func:`extrapolation_discrepancy` and clipped to [0, top]: accuracy cannot leave its scale."""
    walk = extrapolation_discrepancy(budgets, last_budget, kappa, mu.shape[0], rng)
    return on_scale(mu + top * walk, top)
