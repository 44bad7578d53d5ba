"""Sampling health: R-hat, effective sample sizes and divergences, and the plain-language warnings they give."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _compat

#: Convergence thresholds that trigger a warning.
RHAT_MAX, ESS_MIN = 1.01, 400


def diagnostics_table(draws: dict[str, np.ndarray]) -> pd.DataFrame:
    """R-hat and bulk/tail ESS per parameter from draws shaped (chain, draw)."""
    rows = []
    for name, d in draws.items():
        rows.append({"param": name, "r_hat": _compat.rhat(d), "ess_bulk": _compat.ess(d, "bulk"),
                     "ess_tail": _compat.ess(d, "tail")})
    return pd.DataFrame(rows)


def health_warnings(diag: pd.DataFrame, n_divergences: int) -> list[str]:
    """Plain-language warnings when R-hat > 1.01, ESS_bulk < 400 or any divergence occurred."""
    out = []
    if n_divergences:
        out.append(f"{n_divergences} divergent transition(s): the posterior may be biased; "
                   "raise --tune or inspect the curve")
    bad = diag[diag.r_hat > RHAT_MAX]
    if len(bad):
        out.append("R-hat > 1.01 for " + ", ".join(f"{r.param} ({r.r_hat:.3f})" for r in bad.itertuples())
                   + ": chains disagree; raise --tune/--draws")
    low = diag[diag.ess_bulk < ESS_MIN]
    if len(low):
        out.append("ESS_bulk < 400 for " + ", ".join(f"{r.param} ({r.ess_bulk:.0f})" for r in low.itertuples())
                   + ": intervals are imprecise; raise --draws")
    return out
