import numpy as np
import pandas as pd
import pytest
from conftest import AL_CSV, RUNS_BASE
from scipy.optimize import curve_fit

from palm_bayes import data
from palm_bayes.pointfit import PalmPyOptions, fit_curve, fit_robust, palm_py_average


def reference_palm_py(runs: list[np.ndarray], num_samples: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """An independent re-statement of PALM.py's fit (its source, MIT): average, then curve_fit on 1..N."""
    cut = [r[:num_samples] for r in runs]
    n = min(len(r) for r in cut)
    y_avg = np.stack([r[:n] for r in cut]).mean(axis=0)
    x = np.arange(1, n + 1, dtype=float)

    def f(xv, A, d, a, b):
        return A * (1 - (1 - d) ** (np.clip(xv + a, 1e-8, None) ** b))

    popt, _ = curve_fit(f, x, y_avg, p0=[float(y_avg.max()), 0.5, 1.0, 1.0],
                        bounds=([0.0, 0.0, -1000, 0.0], [100.0, 1.0, 1000.0, 100.0]), maxfev=50000)
    return y_avg, popt


def _curves():
    df = data.load_curves(AL_CSV)
    return [(k, g) for k, g in data.iter_curves(df)]


@pytest.mark.parametrize("num_samples", [20, 8])
def test_palm_py_mode_equals_direct_reproduction(num_samples):
    for _, rows in _curves():
        runs = [g.sort_values("budget").score.to_numpy() for _, g in rows.groupby("run")]
        y_ref, p_ref = reference_palm_py(runs, num_samples)
        fit = fit_curve(rows, mode="palm.py", palm_py=PalmPyOptions(num_samples=num_samples))
        np.testing.assert_allclose(palm_py_average(rows, num_samples), y_ref, rtol=1e-12)
        np.testing.assert_allclose([fit.A_max, fit.delta, fit.alpha, fit.beta], p_ref, rtol=1e-6, atol=1e-12)


def test_palm_py_average_cuts_to_shortest_run():
    rows = pd.DataFrame({"run": ["a"] * 6 + ["b"] * 4, "budget": list(range(1, 7)) + list(range(1, 5)),
                         "score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.3, 0.4, 0.5, 0.6]})
    np.testing.assert_allclose(palm_py_average(rows, None), [0.2, 0.3, 0.4, 0.5])
    np.testing.assert_allclose(palm_py_average(rows, 2), [0.2, 0.3])


def test_robust_never_worse_than_palm_py_on_the_same_average():
    """On regular budgets (x = B/b is PALM.py's episode index) the robust fit's loss on PALM.py's y_avg is at
    most PALM.py's, whenever PALM.py's optimum respects the score scale (A_max <= 1 for fractions)."""
    compared = 0
    for name, rows in [*_curves(), (("runs",), data.load_palm_runs(RUNS_BASE))]:
        ref = fit_curve(rows, mode="palm.py", palm_py=PalmPyOptions(num_samples=None))
        rob = fit_curve(rows, mode="robust", scale="fraction")
        y = palm_py_average(rows, None)
        loss = float(((rob.predict(np.arange(1, len(y) + 1) * rob.b) - y) ** 2).sum())
        if ref.A_max <= 1:
            compared += 1
            assert loss <= ref.sse * (1 + 1e-9) + 1e-15, name
        assert rob.A_max <= 1
    assert compared >= 3


def test_robust_fit_is_seeded_and_recovers_a_noiseless_curve():
    from palm_bayes.curve import budget_curve

    B = np.arange(10, 310, 10.0)
    truth = dict(A_max=0.85, delta=0.15, alpha=0.7, beta=0.9)
    y = budget_curve(B, b=10, **truth)
    a = fit_robust(B, y, b=10, seed=3)
    b = fit_robust(B, y, b=10, seed=3)
    assert a.params == b.params
    assert a.rmse < 1e-6
    np.testing.assert_allclose(a.predict(np.array([600.0, 1000.0])),
                               budget_curve(np.array([600.0, 1000.0]), b=10, **truth), atol=1e-4)


def test_robust_respects_percent_scale_bounds():
    df = data.load_curves(AL_CSV)
    df["score"] *= 100
    rows = next(g for _, g in data.iter_curves(df))
    fit = fit_curve(rows, mode="robust", scale="percent")
    assert 1 < fit.A_max <= 100 and 0 < fit.delta < 1 and fit.beta > 0
    assert fit.alpha + rows.budget.min() / fit.b > 0
