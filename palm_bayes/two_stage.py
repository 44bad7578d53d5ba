"""The pooled-ceiling posterior in two stages: each method alone, then the group by importance resampling.

The joint model of :mod:`palm_bayes.pooling` (``pooling="ceiling"``) is

    logit(A_max_m / C) = a_m,   a_m ~ N(μ, s²),   μ ~ N(μ₀, σ₀²),   s ~ HalfNormal(POOL_SD["A_max"]),

with every other parameter θ_m of method m under its single-curve prior. One NUTS run over all methods at once
is slow and mixes badly on real AL groups: methods that sit flat through the pilot while others climb give the
posterior two explanations (own low ceilings, or the shared high one with slow progress), and 29 % of the curves
of 24 groups sampled cleanly (docs/benchmarks.md). Following Lunn, Barrett, Sweeting & Thompson (2013, "Fully
Bayesian hierarchical modelling in two stages", JRSS C 62), the same posterior is reached in two stages:

1. **Each method alone** (:func:`proposal_prior`): the single-curve model with the A_max prior replaced by a wide
   logit-normal *proposal* p₀(a) = N(μ₀, w²) — its posterior q_m(θ_m) ∝ p(y_m | θ_m) p₀(a_m) p(rest). These
   are ordinary one-curve fits: the engine's compiled model, its retry ladder and its health checks.
2. **The group** (:func:`pooled_ceiling_draws`). The joint posterior is

       p(μ, s, θ_1..M | y) ∝ p(μ) p(s) Π_m q_m(θ_m) · N(a_m; μ, s²) / p₀(a_m),

   so, with q_m represented by its stage-1 draws, the marginal posterior of the two group parameters is

       p(μ, s | y) ∝ p(μ) p(s) Π_m (1/N) Σ_i N(a_mi; μ, s²) / p₀(a_mi),

   evaluated on a grid over (μ, log s) — two dimensions, so no chain has to find both explanations: the grid
   sees them all — and sampled exactly from it; given each (μ, s) draw, every method's draw is one of its stage-1
   draws picked with probability ∝ N(a_mi; μ, s²) / p₀(a_mi). Draw k of every method and of the group is one
   joint draw (comparisons between methods keep the correlation the shared ceiling induces).

How good the second stage is depends on how well the stage-1 draws cover where the pooled posterior puts each
method's ceiling. That is measured, not assumed: the Kish effective size of each method's resampling weights,
1 / Σ π_i² with π the mean over the output draws of its normalised weights, is its share of the stage-1 draws
that count; each method's ESS is its stage-1 ESS times that share (and misses the ESS threshold, with a
warning, when the stage-1 draws do not cover the pooled posterior). A method whose share falls short, or whose
stage-1 run missed a health threshold, is sampled once more under :func:`refined_proposal` (centred on its
first-pass pooled ceiling; any proposal gives the same posterior, only the efficiency changes) and the group
resampled (:func:`palm_bayes.pooling.sample_two_stage`). The proposal's width w is
:data:`PROPOSAL_WIDTH` × the sd of the pooled prior of one method's ceiling, √(σ₀² + POOL_SD²): with the pooled
prior's own sd, the stage-1 draws of Shuttle/SVC (accuracies near 0.99) did not reach far enough towards 1 and
its effective size fell to 8-20 of 4000 draws; twice that sd kept it above 2000.

One approximation, stated: the pooling scale's grid starts at :data:`S_MIN` (0.01 on the logit scale, a tenth of
an accuracy point at A_max = 0.9); its HalfNormal prior puts 1.6 % of its mass below, which the grid drops. Below
that scale the weights would single out a handful of stage-1 draws (a kernel estimate with a bandwidth below the
draws' spacing). ``tests/test_two_stage.py`` compares the stage-2 algebra with the exact posterior of a
Normal-Normal case, and the whole path with one joint NUTS run (``group_sampler="joint"``) on simulated groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The stage-1 proposal's sd of logit A_max, in units of the pooled prior's sd of one method's ceiling.
PROPOSAL_WIDTH = 2.0
#: Range of the pooling scale s (logit units) on the grid; the HalfNormal(0.5) prior has 1.6 % of its mass below
#: S_MIN and 6e-7 above S_MAX.
S_MIN, S_MAX = 0.01, 2.5
#: Grid points (μ, log s) of the first pass and of the refined pass over the region that holds the posterior.
COARSE_GRID, FINE_GRID = (48, 24), (64, 32)
#: The refined pass covers the cells whose log density is within this of the largest.
GRID_LOG_RANGE = 15.0
#: Stage-1 draws used for the first pass (every draw is used for the refined one).
COARSE_DRAWS = 800


def proposal_prior(mu0: float, sd0: float, pool_sd: float) -> tuple[float, float]:
    """``(centre, sd)`` of the stage-1 logit-normal prior of A_max: centred where the group's ceiling prior is,
    :data:`PROPOSAL_WIDTH` × the pooled prior's sd of one method's ceiling wide."""
    return float(mu0), float(PROPOSAL_WIDTH * np.hypot(sd0, pool_sd))


def refined_proposal(pooled: CeilingDraws, logit_a: np.ndarray, m: int) -> tuple[float, float]:
    """``(centre, sd)`` of a second stage-1 proposal for method ``m``, whose first run (stage-1 draws
    ``logit_a``) missed a health threshold or covered the pooled posterior too thinly: centred on the first
    pass's estimate of its pooled ceiling (the mean of its resampled draws), :data:`PROPOSAL_WIDTH` times the
    larger of their sd and the group's predictive sd of one method's ceiling, √(Var μ + E s²), wide."""
    mine = logit_a[pooled.index[m]]
    spread = max(float(mine.std()), float(np.sqrt(pooled.mu.var() + np.mean(pooled.scale**2))))
    return float(mine.mean()), float(PROPOSAL_WIDTH * spread)


def _log_normal(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def log_marginal(logit_a: np.ndarray, log_w0: np.ndarray, mu: np.ndarray, s: np.ndarray) -> np.ndarray:
    """log (1/N) Σ_i exp(log_w0_i) N(a_i; μ_j, s_j²) for each grid point j (``mu``, ``s`` flat, same length):
    one method's factor of p(μ, s | y), with ``log_w0`` = −log p₀(a_i)."""
    out = np.empty(len(mu))
    for lo in range(0, len(mu), 512):  # chunks keep the (grid × draws) array small
        m, sd = mu[lo:lo + 512, None], s[lo:lo + 512, None]
        v = -0.5 * ((logit_a[None, :] - m) / sd) ** 2 - np.log(sd) + log_w0[None, :]
        top = v.max(axis=1, keepdims=True)
        out[lo:lo + 512] = top[:, 0] + np.log(np.exp(v - top).mean(axis=1))
    return out - 0.5 * np.log(2 * np.pi)


@dataclass
class CeilingDraws:
    """Stage 2's output: per method the stage-1 draw picked for each output draw (``index``), the group's μ and s
    per output draw, and per method the Kish effective size of its resampling weights (``ess``)."""

    index: list[np.ndarray]
    mu: np.ndarray
    scale: np.ndarray
    ess: np.ndarray


def pooled_ceiling_draws(logit_a: list[np.ndarray], proposals: list[tuple[float, float]],
                         prior_mu: tuple[float, float], pool_sd: float, n_out: int,
                         rng: np.random.Generator) -> CeilingDraws:
    """Sample the pooled-ceiling posterior from the methods' stage-1 draws (see the module docstring).

    Parameters
    ----------
    logit_a : list of numpy.ndarray
        Per method, its stage-1 draws of logit(A_max / C), flattened over chains.
    proposals : list of (float, float)
        Per method, the centre and sd of the logit-normal prior p₀ its stage-1 draws were sampled under
        (:func:`proposal_prior`, :func:`refined_proposal`).
    prior_mu : (float, float)
        Mean and sd of the Normal prior of the group's logit ceiling μ.
    pool_sd : float
        Scale of the HalfNormal prior of the pooling scale s.
    n_out : int
        Joint draws to return.
    rng : numpy.random.Generator
        Source of every random choice.
    """
    log_w0 = [-_log_normal(a, *q) for a, q in zip(logit_a, proposals, strict=True)]

    def log_post(mu_axis, ls_axis, subset=None):
        mu, ls = (g.ravel() for g in np.meshgrid(mu_axis, ls_axis, indexing="ij"))
        s = np.exp(ls)
        # priors of μ and s, and ls (the Jacobian of the log-s grid); HalfNormal: 2 N(s; 0, pool_sd)
        lp = _log_normal(mu, *prior_mu) + np.log(2.0) + _log_normal(s, 0.0, pool_sd) + ls
        for a, w in zip(logit_a, log_w0, strict=True):
            pick = slice(None) if subset is None else subset(len(a))
            lp = lp + log_marginal(a[pick], w[pick], mu, s)
        return lp.reshape(len(mu_axis), len(ls_axis))

    lo = min(float(a.min()) for a in logit_a) - 1.0
    hi = max(float(a.max()) for a in logit_a) + 1.0
    mu_axis = np.linspace(lo, hi, COARSE_GRID[0])
    ls_axis = np.linspace(np.log(S_MIN), np.log(S_MAX), COARSE_GRID[1])
    thin = lambda n: np.linspace(0, n - 1, min(n, COARSE_DRAWS)).astype(int)  # noqa: E731
    lp = log_post(mu_axis, ls_axis, thin)
    i_mu, i_ls = np.nonzero(lp > lp.max() - GRID_LOG_RANGE)
    d_mu, d_ls = mu_axis[1] - mu_axis[0], ls_axis[1] - ls_axis[0]
    mu_axis = np.linspace(mu_axis[i_mu.min()] - d_mu, mu_axis[i_mu.max()] + d_mu, FINE_GRID[0])
    ls_axis = np.linspace(max(ls_axis[i_ls.min()] - d_ls, np.log(S_MIN)),
                          min(ls_axis[i_ls.max()] + d_ls, np.log(S_MAX)), FINE_GRID[1])
    lp = log_post(mu_axis, ls_axis)
    p = np.exp(lp - lp.max()).ravel()
    cell = rng.choice(p.size, size=n_out, p=p / p.sum())
    cells, of_cell = np.unique(cell, return_inverse=True)
    j_mu, j_ls = np.unravel_index(cells, lp.shape)
    d_mu, d_ls = mu_axis[1] - mu_axis[0], ls_axis[1] - ls_axis[0]
    # the methods' draws are picked given the cell's centre; the group's draws are spread uniformly over the cell
    mu = mu_axis[j_mu][of_cell] + (rng.random(n_out) - 0.5) * d_mu
    s = np.exp(ls_axis[j_ls][of_cell] + (rng.random(n_out) - 0.5) * d_ls)
    centre_mu, centre_s = mu_axis[j_mu], np.exp(ls_axis[j_ls])

    index, ess = [], []
    for a, w0 in zip(logit_a, log_w0, strict=True):
        picked = np.empty(n_out, dtype=np.int64)
        share = np.zeros(len(a))
        for lo_c in range(0, len(cells), 256):
            c = slice(lo_c, lo_c + 256)
            lw = _log_normal(a[None, :], centre_mu[c, None], centre_s[c, None]) + w0[None, :]
            cdf = np.cumsum(np.exp(lw - lw.max(axis=1, keepdims=True)), axis=1)
            cdf /= cdf[:, -1:]
            for i, row in enumerate(cdf, start=lo_c):  # the output draws that fell in this cell
                mine = np.flatnonzero(of_cell == i)
                picked[mine] = np.minimum(np.searchsorted(row, rng.random(mine.size), side="right"), len(a) - 1)
                share += np.diff(row, prepend=0.0) * mine.size
        share /= n_out
        index.append(picked)
        ess.append(1.0 / float(np.sum(share**2)))
    return CeilingDraws(index=index, mu=mu, scale=s, ess=np.asarray(ess))
