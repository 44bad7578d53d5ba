"""Shared fixtures: paths to the shipped example data and an in-process CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from palm_bayes_cli.main import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RUNS_BASE = EXAMPLES / "al_runs" / "Yeast" / "SVC_RBF"
AL_CSV = EXAMPLES / "al_curves_yeast_svc.csv"
LCDB_CSV = EXAMPLES / "lcdb_curves.csv"


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
