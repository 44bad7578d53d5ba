import numpy as np
import pandas as pd
from conftest import AL_CSV

from palm_bayes.forecast import FORECAST_COLUMNS, Forecaster

FAST = ["--draws", "200", "--tune", "300", "--chains", "2", "--quiet", "--jobs", "1"]


def test_forecast_outputs_and_no_leak_past_max_points(cli, tmp_path):
    code, _, err = cli("forecast", AL_CSV, "--method", "random", "entropy", "--max-points", "6",
                       "--at", "100", "200", "400", "--out", tmp_path / "a", "--seed", "3", *FAST)
    assert code == 0, err
    for f in ("forecast.csv", "params.csv", "diagnostics.csv", "posterior.nc", "forecast.png"):
        assert (tmp_path / "a" / f).stat().st_size > 0
    fc = pd.read_csv(tmp_path / "a" / "forecast.csv")
    assert list(fc.columns[:12]) == FORECAST_COLUMNS
    assert len(fc) == 2 * 3
    assert fc.loc[fc.budget == 100, "observed"].all() and not fc.loc[fc.budget > 120, "observed"].any()
    params = pd.read_csv(tmp_path / "a" / "params.csv")
    curves = params[params.method != "(group)"]
    assert set(curves.param) == {"A_max", "delta", "alpha", "beta", "sigma", "tau", "gamma"}
    # the two methods of Yeast/SVC_RBF were one joint fit (--pooling ceiling, the default): the group's rows
    assert params.loc[params.method == "(group)", "param"].tolist() == ["A_max_group", "pool_sd_A_max"]
    assert {"point", "mean", "sd", "median", "lower", "upper", "r_hat", "ess_bulk", "ess_tail",
            "divergences"} <= set(params.columns)
    # later data never reaches the fit: scramble every score after the 6th budget, same seed, same outputs
    src = pd.read_csv(AL_CSV)
    late = src.budget > 120
    src.loc[late, "score"] = np.random.default_rng(0).uniform(0, 1, late.sum())
    src.to_csv(tmp_path / "scrambled.csv", index=False)
    code, _, err = cli("forecast", tmp_path / "scrambled.csv", "--method", "random", "entropy", "--max-points", "6",
                       "--at", "100", "200", "400", "--out", tmp_path / "b", "--seed", "3", *FAST)
    assert code == 0, err
    pd.testing.assert_frame_equal(fc, pd.read_csv(tmp_path / "b" / "forecast.csv"))
    # the saved posterior predicts the same numbers
    again = Forecaster.load(tmp_path / "a").predict(budgets=[100, 200, 400], level=0.9)
    np.testing.assert_allclose(again["mean"], fc["mean"], rtol=1e-12)


def test_upto_and_default_grid(cli, tmp_path):
    code, _, err = cli("forecast", AL_CSV, "--method", "random", "--upto", "100", "--out", tmp_path, "--prior-check",
                       *FAST)
    assert code == 0, err
    assert (tmp_path / "prior_check.png").stat().st_size > 0
    fc = pd.read_csv(tmp_path / "forecast.csv")
    assert fc.loc[fc.observed, "budget"].max() == 100
    assert fc.budget.max() == 200  # default horizon: twice the largest fitted budget


def test_forecast_bad_inputs(cli, tmp_path):
    code, _, err = cli("forecast", AL_CSV, "--max-points", "3", "--out", tmp_path, *FAST)
    assert code == 2 and "--max-points 3" in err
    code, _, err = cli("forecast", AL_CSV, "--upto", "40", "--out", tmp_path, *FAST)
    assert code == 2 and "--upto 40 leaves 2 distinct budget(s)" in err
    code, _, err = cli("forecast", tmp_path / "none.csv", "--out", tmp_path, *FAST)
    assert code == 2 and "no such file" in err
    code, _, err = cli("forecast", AL_CSV, "--level", "1.5", "--out", tmp_path, *FAST)
    assert code == 2 and "--level 1.5" in err
    code, _, err = cli("forecast", AL_CSV, "--method", "nope", "--out", tmp_path, *FAST)
    assert code == 2 and "no method named nope" in err
    assert len(err.strip().splitlines()) == 1
