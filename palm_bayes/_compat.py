"""The one place that knows which PyMC / ArviZ generation is installed.

Python 3.11 resolves PyMC 5.x + ArviZ 0.x (``InferenceData``); Python ≥ 3.12 resolves PyMC 6.x + ArviZ 1.x (an
``xarray.DataTree``). palm-bayes keeps its own draws as NumPy arrays, so only diagnostics, the posterior group of
a sampler result, and reading a saved posterior need a shim.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

# ArviZ 0.x announces its 1.0 refactor once a day when it is first imported, by us or by PyMC / nutpie: nothing a
# palm-bayes user can act on (this module keeps both generations working), so that one message is not shown
warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning,
                        module="arviz")


@functools.cache
def arviz():
    """ArviZ, imported on first use: a command that refuses its input never pays its import (about 1.5 s)."""
    import arviz as az

    return az


def arviz_major() -> int:
    """Major version of the installed ArviZ (0: InferenceData, 1: DataTree)."""
    return int(arviz().__version__.split(".")[0])


def rhat(draws: np.ndarray) -> float:
    """Rank-normalised split R-hat of one scalar's draws shaped (chain, draw)."""
    return float(arviz().rhat(np.asarray(draws, dtype=float)))


def ess(draws: np.ndarray, method: str = "bulk") -> float:
    """Bulk or tail effective sample size of draws shaped (chain, draw)."""
    a, az = np.asarray(draws, dtype=float), arviz()
    if method == "tail" and arviz_major() >= 1:
        return float(az.ess(a, method="tail", prob=(0.05, 0.95)))
    return float(az.ess(a, method=method))


def posterior_arrays(result, names: list[str]) -> dict[str, np.ndarray]:
    """``{name: array (chain, draw, ...)}`` from a sampler result (InferenceData, DataTree, or nutpie's raw
    trace)."""
    if isinstance(result, ArrowTrace):
        return {n: result.column(n) for n in names}
    post = result["posterior"]  # both InferenceData and DataTree index their groups by name
    return {n: np.asarray(post[n].values) for n in names}


@functools.cache
def nutpie_raw_trace_kwargs() -> dict:
    """``nutpie.sample``'s switch for its raw Arrow trace (read by :class:`ArrowTrace`), where this nutpie has
    it."""
    import inspect

    import nutpie

    return {"return_raw_trace": True} if "return_raw_trace" in inspect.signature(nutpie.sample).parameters else {}


class ArrowTrace:
    """nutpie's raw trace (``return_raw_trace=True``), read column by column after tuning: no InferenceData is
    built (about 0.08 s per run of a few thousand draws)."""

    def __init__(self, result):
        self.draws, self.stats = result.get_arrow_trace()  # nutpie hands the trace over once
        self.kept = [~_arrow_column(stat, "tuning").astype(bool) for stat in self.stats]  # each chain's draws

    def column(self, name: str, stats: bool = False) -> np.ndarray:
        """One quantity's draws (or, with ``stats``, one sampler statistic) shaped (chain, draw, ...)."""
        return np.stack([_arrow_column(batch, name)[kept]
                         for batch, kept in zip(self.stats if stats else self.draws, self.kept, strict=True)])


def _arrow_column(batch, key: str) -> np.ndarray:
    import pyarrow  # nutpie's own dependency; reads its arro3 arrays through the Arrow C interface

    col = batch.column(key)
    meta = col.field.metadata or {}
    shape = [int(v) for v in meta[b"shape"].decode().split(",")] if meta.get(b"shape") else []
    values = pyarrow.array(col)
    if hasattr(values, "flatten"):  # a vector quantity: one list per draw
        values = values.flatten()
    return np.asarray(values.to_numpy(zero_copy_only=False)).reshape(batch.num_rows, *shape)


def divergences(result) -> int:
    """Number of divergent transitions after tuning in a sampler result."""
    if isinstance(result, ArrowTrace):
        return int(result.column("diverging", stats=True).sum())
    stats = result["sample_stats"]
    for key in ("diverging", "divergences"):
        if key in stats:
            return int(np.asarray(stats[key].values).sum())
    return 0


@functools.cache
def nutpie_low_rank_kwargs() -> dict:
    """nutpie's switch for its low-rank mass-matrix adaptation (renamed between 0.16.8 and 0.16.11)."""
    import inspect

    import nutpie

    params = inspect.signature(nutpie.sample).parameters
    if "low_rank_modified_mass_matrix" in params:
        return {"low_rank_modified_mass_matrix": True}
    if "adaptation" in params:
        return {"adaptation": "low_rank"}
    return {}


def nutpie_shared_table(logp_fn, expand_fn) -> tuple[dict, dict, np.ndarray, dict]:
    """The shared data of nutpie's two compiled PyTensor functions, laid out as that nutpie version's
    ``CompiledPyMCModel`` expects: ``(shared_data, keys, user_data, extra_fields)``, with ``keys`` each shared
    variable's key in ``shared_data`` and in the ``user_data`` pointer record.

    nutpie 0.16.8 keys the data (and the record) by variable name; 0.16.11 by a random key per variable, kept in
    the model's ``shared_var_keys`` field (and its ``make_user_data`` takes that mapping, not name → variable).
    """
    import dataclasses
    import uuid

    from nutpie.compile_pymc import CompiledPyMCModel, make_user_data

    keyed = "shared_var_keys" in {f.name for f in dataclasses.fields(CompiledPyMCModel)}
    shared_data, keys = {}, {}
    for var in [*logp_fn.get_shared(), *expand_fn.get_shared()]:
        if var in keys:
            continue
        if not keyed and var.name in shared_data:
            raise ValueError(f"shared variables must have unique names: {var.name}")
        keys[var] = uuid.uuid4().hex if keyed else var.name
        shared_data[keys[var]] = np.array(var.get_value(), order="C", copy=True)
        shared_data[keys[var]].flags.writeable = False
    user_data = make_user_data(keys if keyed else {key: var for var, key in keys.items()}, shared_data)
    return shared_data, keys, user_data, ({"shared_var_keys": keys} if keyed else {})


def loo(log_lik: np.ndarray) -> dict[str, float]:
    """PSIS-LOO from pointwise log-likelihoods shaped (chain, draw, observation).

    Returns ``elpd_loo``, its standard error ``se``, the effective number of parameters ``p_loo`` and the
    Pareto-k summary (``max_k``, ``n_bad_k`` = observations with k > 0.7, where the estimate is unreliable).
    """
    arr = np.asarray(log_lik, dtype=float)
    post = {"_": np.zeros(arr.shape[:2])}
    az = arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if arviz_major() >= 1:
            res = az.loo(az.from_dict({"posterior": post, "log_likelihood": {"obs": arr}}), pointwise=True)
            elpd, se, p = float(res.elpd), float(res.se), float(res.p)
        else:
            res = az.loo(az.from_dict(posterior=post, log_likelihood={"obs": arr}), pointwise=True)
            elpd, se, p = float(res.elpd_loo), float(res.se), float(res.p_loo)
    k = np.asarray(res.pareto_k).reshape(-1)
    return {"elpd_loo": elpd, "se": se, "p_loo": p, "max_k": float(np.max(k)), "n_bad_k": int(np.sum(k > 0.7))}
