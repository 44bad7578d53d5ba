"""The joint model of one (dataset, model) group with partial pooling (palm_bayes.pooling), at small draw counts.

Heavier checks (interval coverage over many simulated groups, the dev-set comparison none/ceiling/full) live in
benchmarks/pooling_benchmark.py and benchmarks/forecast_benchmark.py --pooling.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import simulate

from palm_bayes import _compat, data
from palm_bayes.decision import DecisionSettings, decide, p_first
from palm_bayes.errors import InputError
from palm_bayes.forecast import FORECAST_COLUMNS, GROUP_ROW, Forecaster
from palm_bayes.model import CurveData
from palm_bayes.pooling import GroupData

FAST = dict(draws=300, tune=400, chains=2, geometry="shape")  # one run per group; the retry ladder is shared
#: Four methods heading for one ceiling: two have reached it within the pilot, two are still steep (about 60 %
#: of the way at the end of the pilot).
SHARED = [dict(A_max=0.85, delta=0.30, alpha=0.5, beta=1.0), dict(A_max=0.85, delta=0.25, alpha=1.0, beta=0.9),
          dict(A_max=0.85, delta=0.10, alpha=0.5, beta=1.0), dict(A_max=0.85, delta=0.08, alpha=1.0, beta=1.1)]
#: Four methods whose pilots show their own ceilings, far apart.
APART = [dict(A_max=a, delta=d, alpha=0.5, beta=1.0) for a, d in ((0.95, 0.30), (0.70, 0.35), (0.90, 0.25),
                                                                  (0.60, 0.40))]


def group_table(params: list[dict], seed: int, dataset: str = "sim") -> tuple[pd.DataFrame, dict]:
    df, truth = simulate(len(params), seed=seed, n_budgets=8, params=params)
    df = df.assign(dataset=dataset)
    return df, {(dataset, *k[1:]): v for k, v in truth.items()}


def a_max_intervals(fc: Forecaster) -> pd.DataFrame:
    p = fc.params(level=0.9)
    return p[(p.param == "A_max") & (p.method != GROUP_ROW)].set_index(["dataset", "method"])


@pytest.fixture(scope="module")
def shared():
    frames, truth = zip(*(group_table(SHARED, seed, f"g{seed}") for seed in (1, 2, 3)), strict=True)
    df = data.validate(pd.concat(frames, ignore_index=True), "simulated")
    truth = {k: v for t in truth for k, v in t.items()}
    fits = {pooling: Forecaster(seed=3, pooling=pooling, **FAST).fit(df) for pooling in ("none", "ceiling")}
    return df, truth, fits


def test_pooled_ceiling_is_narrower_and_still_covers_the_truth(shared):
    _df, truth, fits = shared
    pooled, alone = a_max_intervals(fits["ceiling"]), a_max_intervals(fits["none"])
    width = {"pooled": pooled.upper - pooled.lower, "alone": alone.upper - alone.lower}
    steep = [(k[0], k[2]) for k, (p, _, _) in truth.items() if p["delta"] <= 0.1]
    true = pd.Series({(k[0], k[2]): p["A_max"] for k, (p, _, _) in truth.items()})
    hit = {name: (t.lower <= true.loc[t.index]) & (true.loc[t.index] <= t.upper)
           for name, t in (("pooled", pooled), ("alone", alone))}
    # the steep methods' ceilings are what pooling is for: each gets a narrower interval, unless alone it was
    # narrow by being wrong (the single-curve prior sits just above the best pilot mean, below a steep curve's ceiling:
    # docs/benchmarks.md, simulated groups); at the test's short chains that happens for one method in six
    narrower_or_alone_wrong = (width["pooled"] < width["alone"]) | ~hit["alone"]
    assert narrower_or_alone_wrong.loc[steep].all(), pd.DataFrame({**width, **hit}).loc[steep]
    assert width["pooled"].loc[steep].mean() < width["alone"].loc[steep].mean()
    assert width["pooled"].mean() < width["alone"].mean()  # the group as a whole does not get wider
    # 90% intervals over 12 methods (3 groups): a calibrated posterior covers at least 9 with probability > 0.97
    assert hit["pooled"].sum() >= 9 and hit["pooled"].sum() >= hit["alone"].sum(), hit
    # each group was one joint fit, with its group-level rows in params.csv
    assert set(fits["ceiling"].groups) == {("g1", "m"), ("g2", "m"), ("g3", "m")}
    rows = fits["ceiling"].params()
    grp = rows[rows.method == GROUP_ROW]
    assert set(grp.param) == {"A_max_group", "pool_sd_A_max"} and len(grp) == 6
    assert ((grp[grp.param == "A_max_group"].lower <= 0.85) & (0.85 <= grp[grp.param == "A_max_group"].upper)).all()


def test_pooling_scale_grows_when_ceilings_differ(shared):
    _df, _truth, fits = shared
    df, truth = group_table(APART, seed=4)
    apart = Forecaster(seed=3, pooling="ceiling", **FAST).fit(df)
    scale = {name: fc.groups[g].draws["pool_sd_A_max"].reshape(-1)
             for name, fc, g in (("apart", apart, ("sim", "m")), ("shared", fits["ceiling"], ("g1", "m")))}
    assert np.median(scale["apart"]) > 2 * np.median(scale["shared"]), {k: np.median(v) for k, v in scale.items()}
    pooled = a_max_intervals(apart)
    for k, (p, _, _) in truth.items():  # each method's interval covers its own ceiling, not the group's
        r = pooled.loc[(k[0], k[2])]
        assert r.lower <= p["A_max"] <= r.upper, (k, p["A_max"], r.lower, r.upper)


def test_one_method_group_is_the_single_curve_model():
    df, _ = simulate(1, seed=9, n_budgets=8)
    alone = Forecaster(seed=4, pooling="none", **FAST).fit(df).predict(level=0.9)
    pooled_fc = Forecaster(seed=4, pooling="ceiling", **FAST).fit(df)
    pd.testing.assert_frame_equal(alone, pooled_fc.predict(level=0.9))
    assert not pooled_fc.groups and (pooled_fc.diagnostics().pooling == "none").all()


def test_outputs_keep_their_columns_save_load_and_decide_from_joint_draws(shared, tmp_path):
    _df, _truth, fits = shared
    fc = fits["ceiling"]
    table = fc.predict(level=0.9)
    assert list(table.columns[: len(FORECAST_COLUMNS)]) == FORECAST_COLUMNS
    assert list(fits["none"].params().columns) == list(fc.params().columns)
    diag = fc.diagnostics()
    assert (diag.pooling == "ceiling").all() and diag.geometry.str.startswith("two-stage ceiling").all()
    fc.save(tmp_path)
    back = Forecaster.load(tmp_path)
    assert back.pooling == "ceiling" and set(back.groups) == set(fc.groups)
    for g, post in fc.groups.items():
        np.testing.assert_array_equal(back.groups[g].draws["pool_sd_A_max"], post.draws["pool_sd_A_max"])
    pd.testing.assert_frame_equal(back.predict(level=0.9), table)
    pd.testing.assert_frame_equal(back.params(), fc.params())
    pd.testing.assert_frame_equal(back.diagnostics(), diag)
    dec = decide(back, DecisionSettings(target=0.8))
    assert all(g["draws"] == "joint" for g in dec.groups)
    alone = decide(fits["none"], DecisionSettings(target=0.8))
    assert all(g["draws"] == "independent" for g in alone.groups)
    for g in dec.groups:  # P(i before j) + P(j before i) + P(tie) = 1
        for a, row in g["p_first"].items():
            for b, p in row.items():
                assert 0 <= p + g["p_first"][b][a] <= 1 + 1e-12


def test_joint_draws_keep_the_correlation_of_a_shared_ceiling(shared):
    _df, _truth, fits = shared
    fc = fits["ceiling"]
    keys = [k for k in fc.keys() if k[:2] == ("g1", "m")]
    a = np.stack([fc.posteriors[k].draws["A_max"].reshape(-1) for k in keys])
    steep = [i for i, k in enumerate(keys) if k[2] in ("c02", "c03")]  # δ 0.10 and 0.08
    # the two steep methods learn their ceiling from the same group ceiling: their draws move together
    assert np.corrcoef(a[steep[0]], a[steep[1]])[0, 1] > 0.2
    b_abs = np.array([[1.0, 2.0, np.inf], [2.0, 2.0, np.inf]])
    np.testing.assert_allclose(p_first(b_abs), [[0, 1 / 3], [0, 0]])


def test_group_data_numbers_runs_across_curves_and_bad_options():
    df, _ = simulate(3, seed=1, n_budgets=5, n_runs=2)
    curves = [CurveData.from_rows(rows, "fraction") for _, rows in data.iter_curves(df)]
    v = GroupData.from_curves(curves).values(8)
    assert v["run_index"].tolist() == sorted(v["run_index"].tolist()) and set(v["run_index"]) == set(range(6))
    assert v["run_curve"].tolist() == [0, 0, 1, 1, 2, 2, 0, 0]
    assert v["curve_index"].tolist() == [0] * 10 + [1] * 10 + [2] * 10
    with pytest.raises(InputError, match="pooling='none'"):
        Forecaster(pooling="ceiling", ar1=True).fit(df)
    with pytest.raises(InputError, match="--pooling"):
        Forecaster(pooling="partial")


def test_a_group_fit_depends_on_the_seed_and_its_own_curves_only(shared):
    df, _truth, fits = shared
    one = df[df.dataset == "g2"]
    again = Forecaster(seed=3, pooling="ceiling", **FAST).fit(one).predict(level=0.9)
    before = fits["ceiling"].predict(level=0.9)
    pd.testing.assert_frame_equal(again, before[before.dataset == "g2"].reset_index(drop=True))


@pytest.mark.parametrize("pooling", ["ceiling", "full"])
def test_joint_levels_coordinates_sample_the_same_posterior(pooling):
    """Each method in the levels coordinates with its Jacobian, the pooled priors centred: the same posterior as
    the non-centred shape coordinates (means within Monte Carlo error; a wrong Jacobian shifts them far more)."""
    df, _ = group_table(SHARED[1:3], seed=6)
    fits = {g: Forecaster(seed=1, draws=600, tune=600, chains=2, geometry=g, pooling=pooling,
                          group_sampler="joint").fit(df) for g in ("shape", "levels")}
    post = {g: fc.groups[("sim", "m")] for g, fc in fits.items()}
    draws = {g: {**{f"{n}/{k[2]}": p.draws[n] for k, p in fits[g].posteriors.items() for n in ("A_max", "beta")},
                 **post[g].draws} for g in fits}
    for name in draws["shape"]:
        a, b = (draws[g][name].reshape(-1) for g in ("shape", "levels"))
        ess = [_compat.ess(draws[g][name]) for g in ("shape", "levels")]
        se = np.sqrt(a.var() / ess[0] + b.var() / ess[1])
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean(), se)


def test_a_pooled_fit_without_a_group_of_two_saves_and_loads(tmp_path):
    df, _ = simulate(1, seed=9, n_budgets=6)
    fc = Forecaster(seed=4, pooling="ceiling", **FAST).fit(df)
    fc.save(tmp_path)
    back = Forecaster.load(tmp_path)
    assert back.pooling == "ceiling" and not back.groups
    pd.testing.assert_frame_equal(back.predict(level=0.9), fc.predict(level=0.9))
