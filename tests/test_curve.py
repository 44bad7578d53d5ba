import numpy as np
import pytest

from palm_bayes.curve import (
    PARAMETERS,
    budget_curve,
    budget_to_reach,
    episodes_to_reach,
    labels_to_reach,
    palm_curve,
    palm_curve_jacobian,
)

P = {"A_max": 0.9, "delta": 0.2, "alpha": 0.5, "beta": 0.8}


def test_formula_matches_definition_and_is_vectorised():
    x = np.array([1.0, 2.0, 5.0, 40.0])
    want = [0.9 * (1 - 0.8 ** ((xi + 0.5) ** 0.8)) for xi in x]
    np.testing.assert_allclose(palm_curve(x, **P), want, rtol=1e-14)
    # broadcasting over parameter draws: (draws, 1) x (budgets,)
    A = np.array([[0.8], [0.9]])
    assert palm_curve(x, A, 0.2, 0.5, 0.8).shape == (2, 4)
    np.testing.assert_allclose(budget_curve(x * 20, b=20, **P), palm_curve(x, **P))


def test_curve_is_increasing_and_bounded_by_a_max():
    y = palm_curve(np.linspace(0.1, 500, 300), **P)
    assert np.all(np.diff(y) > 0) and y.max() < P["A_max"]


def test_base_below_zero_is_nan_unless_floored():
    assert np.isnan(palm_curve(np.array([0.2]), 0.9, 0.2, -0.5, 1.0))[0]
    assert palm_curve(np.array([0.2]), 0.9, 0.2, -0.5, 1.0, floor=1e-8)[0] == pytest.approx(0.9 * (1 - 0.8 ** 1e-8))


@pytest.mark.parametrize("target", [0.3, 0.6, 0.85, 0.899])
def test_inverse_round_trip(target):
    x = episodes_to_reach(target, **P)
    assert palm_curve(np.array([x]), **P)[0] == pytest.approx(target, rel=1e-10)


def test_inverse_rounds_up_to_whole_episodes_and_is_the_smallest_budget():
    b = 20.0
    for target in np.linspace(0.2, 0.89, 25):
        need = budget_to_reach(target, b=b, **P)
        assert need % b == 0
        assert budget_curve(need, b=b, **P) >= target - 1e-12
        if need > 0:
            assert budget_curve(need - b, b=b, **P) < target
    # an exact whole-episode target does not get pushed one episode up by float noise
    exact = float(budget_curve(200.0, b=b, **P))
    assert budget_to_reach(exact, b=b, **P) == 200.0


def test_unreachable_target_is_none_or_inf():
    assert labels_to_reach(0.9, b=10, **P) is None
    assert labels_to_reach(0.95, b=10, **P) is None
    assert labels_to_reach(0.5, b=10, **P) == float(budget_to_reach(0.5, b=10, **P))
    draws = budget_to_reach(0.85, np.array([0.8, 0.9, 0.95]), 0.2, 0.5, 0.8, b=10)
    assert np.isinf(draws[0]) and np.all(np.isfinite(draws[1:])) and draws[1] > draws[2]


def test_target_at_start_needs_no_labels():
    assert budget_to_reach(0.0, b=10, **P) == 0.0


def test_jacobian_matches_finite_differences():
    x = np.linspace(1, 30, 12)
    p = np.array([P["A_max"], P["delta"], P["alpha"], P["beta"]])
    J = palm_curve_jacobian(x, *p)
    for j in range(4):
        h = np.zeros(4)
        h[j] = 1e-6
        num = (palm_curve(x, *(p + h)) - palm_curve(x, *(p - h))) / 2e-6
        np.testing.assert_allclose(J[:, j], num, rtol=1e-5, atol=1e-9)


def test_every_parameter_is_documented():
    assert set(PARAMETERS) == {"A_max", "delta", "alpha", "beta"}
