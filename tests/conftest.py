"""Shared fixtures: paths to the shipped example data and an in-process CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from palm_bayes_cli.main import main

from palm_bayes import data
from palm_bayes.curve import budget_curve

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RUNS_BASE = EXAMPLES / "al_runs" / "Yeast" / "SVC_RBF"
AL_CSV = EXAMPLES / "al_curves_yeast_svc.csv"
LCDB_CSV = EXAMPLES / "lcdb_curves.csv"


@pytest.fixture(scope="session", autouse=True)
def compiled_model_cache(tmp_path_factory):
    """The tests keep palm-bayes's compiled-model cache in a folder of their own, not in the user's."""
    import os

    folder = tmp_path_factory.mktemp("palm-bayes-cache")
    old = os.environ.get("PALM_BAYES_CACHE_DIR")
    os.environ["PALM_BAYES_CACHE_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("PALM_BAYES_CACHE_DIR", None)
    else:
        os.environ["PALM_BAYES_CACHE_DIR"] = old


@pytest.fixture
def cli(capsys):
    """Run ``palm-bayes ARGS`` in-process; returns (exit status, stdout, stderr)."""

    def run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def write_runs(base: Path, method: str, ys: list[np.ndarray], xs: list[np.ndarray] | None = None) -> Path:
    """Write runs in the PALM layout ``base/<method>_<i>/plot_episode_{y,x}values.npy``."""
    for i, y in enumerate(ys, start=1):
        d = base / f"{method}_{i}"
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "plot_episode_yvalues.npy", np.asarray(y))
        if xs is not None:
            np.save(d / "plot_episode_xvalues.npy", np.asarray(xs[i - 1]))
    return base


def simulate(n_curves: int, seed: int = 7, n_runs: int = 5, n_budgets: int = 15, b: float = 10.0,
             params: list[dict] | None = None):
    """Curves from known PALM parameters (random, or ``params``) with a run effect and noise; returns
    (tidy table, truth dict ``{key: (params, tau, sigma)}``)."""
    rng = np.random.default_rng(seed)
    frames, truth = [], {}
    for i in range(n_curves):
        p = params[i] if params else dict(A_max=rng.uniform(0.75, 0.95), delta=rng.uniform(0.08, 0.35),
                                          alpha=rng.uniform(0.0, 2.0), beta=rng.uniform(0.7, 1.3))
        tau, sigma = 0.008, 0.01
        B = np.arange(1, n_budgets + 1) * b
        mu = budget_curve(B, b=b, **p)
        for r in range(n_runs):
            y = mu + tau * rng.standard_normal() + sigma * rng.standard_normal(len(B))
            frames.append(pd.DataFrame({"dataset": "sim", "model": "m", "method": f"c{i:02d}", "run": str(r),
                                        "budget": B, "score": np.clip(y, 0, 1)}))
        truth[("sim", "m", f"c{i:02d}")] = (p, tau, sigma)
    df = data.validate(pd.concat(frames, ignore_index=True), "simulated")
    return df, truth
