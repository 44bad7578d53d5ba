import numpy as np
import pandas as pd
import pytest
from conftest import AL_CSV, RUNS_BASE
from scipy.optimize import curve_fit

from palm_bayes import data
from palm_bayes.pointfit import PalmPyOptions, PointFit, fit_curve, fit_robust, palm_py_average


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
    """On regular budgets (x = B/b is PALM.py's episode index) the robust least-squares optimum's loss on PALM.py's
    y_avg is at most PALM.py's, whenever PALM.py's optimum respects the score scale (A_max <= 1 for fractions).
    The fit it reports trades a degenerate optimum for an equally good one: within the tolerance over every
    observation."""
    from palm_bayes.pointfit import SSE_TOLERANCE

    compared = moved = 0
    for name, rows in [*_curves(), (("runs",), data.load_palm_runs(RUNS_BASE))]:
        ref = fit_curve(rows, mode="palm.py", palm_py=PalmPyOptions(num_samples=None))
        best = fit_curve(rows, mode="robust", scale="fraction", select="never")
        rob = fit_curve(rows, mode="robust", scale="fraction")
        y = palm_py_average(rows, None)
        loss = float(((best.predict(np.arange(1, len(y) + 1) * best.b) - y) ** 2).sum())
        if ref.A_max <= 1:
            compared += 1
            assert loss <= ref.sse * (1 + 1e-9) + 1e-15, name
        assert rob.sse <= best.sse * (1 + SSE_TOLERANCE / (rob.n_points - 4)) * (1 + 1e-9), name
        moved += rob.params != best.params
        assert rob.A_max <= 1 and best.A_max <= 1
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


# --------------------------------------------------------------------------------------------- identification


def _runs(truth: dict, budgets: np.ndarray, b: float, n_runs: int = 5, sd: float = 0.005, seed: int = 0):
    from palm_bayes.curve import budget_curve

    rng = np.random.default_rng(seed)
    mu = budget_curve(budgets, b=b, **truth)
    return pd.DataFrame([(str(r), B, m + sd * rng.standard_normal()) for r in range(n_runs)
                         for B, m in zip(budgets, mu, strict=True)], columns=["run", "budget", "score"])


def test_plateaued_pilot_is_marked_and_not_reported_at_a_degenerate_optimum():
    """A pilot that is flat from its first budget pins down the ceiling but not δ, α, β. Depending on the noise
    the least-squares optimum runs into a bound (δ → 0 with α, β large: PALM's flat limit; or β → its floor);
    the robust fit then reports an equally good fit inside the bounds, and always marks δ, α, β."""
    from palm_bayes import pointfit

    B = np.arange(1, 11) * 20.0
    far = np.array([400.0, 1000.0, 4000.0])
    degenerate = 0
    for seed in range(8):
        rows = _runs(dict(A_max=0.8, delta=0.9, alpha=1.0, beta=1.0), B, 20.0, seed=seed)
        old = fit_curve(rows, select="never")
        fit = fit_curve(rows)
        if "at bound" in old.note:
            degenerate += 1
            assert fit.extra["least_squares_sse"] == pytest.approx(old.sse)
        assert "at bound" not in fit.note, seed
        assert 1e-3 < fit.delta < 1 - 1e-3 and 0.011 < fit.beta < 19, seed
        assert {"delta", "alpha", "beta"} <= set(fit.unidentified), seed
        assert fit.note.startswith("the pilot does not identify") and "compare curves" in fit.note
        assert "A_max" not in fit.unidentified and abs(fit.A_max - 0.8) < 0.005, seed
        # equally good: within the tolerance of the least-squares optimum, and the same curve further on
        assert fit.sse <= old.sse * (1 + pointfit.SSE_TOLERANCE / (fit.n_points - 4)) * (1 + 1e-9), seed
        np.testing.assert_allclose(fit.predict(far), old.predict(far), atol=0.005)
    assert degenerate >= 2  # the case this is about did occur


def test_well_identified_rising_curve_has_nothing_marked_and_is_left_as_least_squares_found_it():
    truth = dict(A_max=0.85, delta=0.15, alpha=0.7, beta=0.9)
    rows = _runs(truth, np.arange(1, 31) * 10.0, 10.0, sd=0.004, seed=2)
    fit = fit_curve(rows)
    assert fit.unidentified == () and fit.note == ""
    assert "least_squares_optimum" not in fit.extra
    assert fit.params == fit_curve(rows, select="never").params
    assert abs(fit.A_max - truth["A_max"]) < 0.01
    assert abs(fit.delta - truth["delta"]) < 0.03
    assert abs(fit.alpha - truth["alpha"]) < 0.3
    assert abs(fit.beta - truth["beta"]) < 0.08


def test_identification_marks_bounds_and_flat_directions():
    from palm_bayes.curve import palm_curve
    from palm_bayes.pointfit import identification, robust_bounds

    x = np.arange(1, 31, dtype=float)
    lo, hi = robust_bounds(1.0, 30.0, 1.0)
    p = np.array([0.85, 0.15, 0.7, 0.9])
    y = palm_curve(x, *p)
    kw = dict(sse=30 * 0.004**2, n=30)
    assert identification(x, y, p, lo, hi, 1.0, **kw) == {}
    assert identification(x, y, np.array([1.0, 0.15, 0.7, 0.9]), lo, hi, 1.0, **kw)["A_max"] == "at bound"
    assert identification(x, y, np.array([0.85, 1e-9, 0.7, 0.9]), lo, hi, 1.0, **kw)["delta"] == "at bound"
    assert identification(x, y, np.array([0.85, 0.15, lo[2], 0.9]), lo, hi, 1.0, **kw)["alpha"] == "at bound"
    # the same curve seen only on its first 5 budgets (5 runs each): its ceiling, far above, is not pinned down
    # unless the noise is tiny; with more noise neither is its shape
    def first5(sd):
        return identification(x[:5], y[:5], p, lo, hi, 1.0, sse=25 * sd**2, n=25, weights=np.full(5, 5.0))

    assert first5(0.0002) == {}
    assert first5(0.005) == {"A_max": "flat"}
    assert set(first5(0.05)) > {"A_max"} and set(first5(0.05).values()) == {"flat"}


def test_palm_py_mode_marks_but_never_moves_its_numbers():
    from palm_bayes.pointfit import assess

    rows = data.load_palm_runs(RUNS_BASE, "entropy_b20")
    fit = fit_curve(rows, mode="palm.py", palm_py=PalmPyOptions(num_samples=None))
    runs = [g.sort_values("budget").score.to_numpy() for _, g in rows.groupby("run", sort=False)]
    _, p_ref = reference_palm_py(runs, num_samples=100)
    np.testing.assert_allclose([fit.A_max, fit.delta, fit.alpha, fit.beta], p_ref, rtol=1e-6, atol=1e-12)
    # PALM.py's optimum on this average sends δ to its bound 0; that is marked, not changed
    assert fit.delta < 1e-6 and "delta" in fit.unidentified and "delta at bound" in fit.note
    # a fit read back without its marks gets the same ones from its rows
    bare = PointFit(*fit.params.values(), b=fit.b, axis=fit.axis, mode=fit.mode, sse=fit.sse, rmse=fit.rmse,
                    n_points=fit.n_points)
    assert assess(bare, rows, "fraction").unidentified == fit.unidentified


def test_forecaster_params_carries_the_point_note():
    from palm_bayes.forecast import Forecaster

    flat = _runs(dict(A_max=0.8, delta=0.9, alpha=1.0, beta=1.0), np.arange(1, 11) * 20.0, 20.0).assign(method="flat")
    rising = _runs(dict(A_max=0.85, delta=0.15, alpha=0.7, beta=0.9), np.arange(1, 31) * 10.0, 10.0, sd=0.004,
                   seed=2).assign(method="rising")
    df = pd.concat([flat, rising], ignore_index=True).assign(dataset="sim", model="m")
    fc = Forecaster()
    fc.history, fc.scale = df[["dataset", "model", "method", "run", "budget", "score"]], "fraction"
    for key, rows in data.iter_curves(df):
        fit = fit_curve(rows)
        # as read back from posterior.nc: no marks; params() works them out from the fitted rows
        fc.point_fits[key] = PointFit(*fit.params.values(), b=fit.b, axis="budget", mode="robust", sse=np.nan,
                                      rmse=np.nan, n_points=0)
    p = fc.params()
    notes = p.groupby("method").point_note.agg(set)
    assert notes["rising"] == {""}
    assert len(notes["flat"]) == 1 and "does not identify" in next(iter(notes["flat"]))


def test_palm_py_exact_jacobian_matches_finite_differences_also_where_the_floor_binds():
    """The robust fit's PALM.py start uses the exact Jacobian of PALM.py's curve; at α = -1.5 the first episode's
    base is held at PALM.py's floor, so the curve there does not move with α."""
    from palm_bayes.curve import PALM_PY_FLOOR
    from palm_bayes.pointfit import _jacobian, _palm_py_fn

    x = np.arange(1, 9.0)
    for p in [(0.8, 0.3, 0.5, 1.2), (0.9, 0.05, -1.5, 0.7), (0.7, 0.6, 3.0, 2.5)]:
        numeric = np.column_stack([
            (_palm_py_fn(x, *np.add(p, step)) - _palm_py_fn(x, *np.subtract(p, step))) / 2e-7
            for step in 1e-7 * np.eye(4)])
        np.testing.assert_allclose(_jacobian(x, np.array(p), PALM_PY_FLOOR), numeric, atol=1e-6)
