"""Per-curve fits on local worker processes and on a Dask cluster give the serial numbers."""

import numpy as np
import pandas as pd
import pytest
from conftest import simulate

from palm_bayes.engine import TIMINGS
from palm_bayes.errors import InputError
from palm_bayes.forecast import Forecaster
from palm_bayes.parallel import check_jobs

FAST = dict(draws=200, tune=300, chains=2, geometry="shape", seed=4, pooling="none")  # a task per curve


@pytest.fixture(scope="module")
def serial():
    df, _ = simulate(3, seed=12, n_budgets=8)
    return df, Forecaster(**FAST).fit(df).predict(level=0.9)


def test_jobs_2_gives_the_serial_forecast(serial):
    df, expected = serial
    runs = TIMINGS["runs"]
    got = Forecaster(jobs=2, **FAST).fit(df).predict(level=0.9)
    pd.testing.assert_frame_equal(got, expected)
    # the workers' phase timings reach this process (benchmarks/speed.py reads them): one first run per curve
    assert TIMINGS["runs"] - runs == 3 and TIMINGS["sample"] > 0


def test_dask_local_cluster_gives_the_serial_forecast(serial):
    distributed = pytest.importorskip("distributed", reason="the dask extra is part of the dev install")
    df, expected = serial
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        got = Forecaster(scheduler=lc.scheduler_address, **FAST).fit(df).predict(level=0.9)
    pd.testing.assert_frame_equal(got, expected)
    assert np.isfinite(got["mean"]).all()


def test_bad_jobs():
    assert check_jobs(0) >= 1 and check_jobs(3) == 3
    with pytest.raises(InputError, match="--jobs -1"):
        check_jobs(-1)


def test_cli_jobs_2_writes_the_serial_forecast(cli, tmp_path):
    from conftest import AL_CSV

    flags = ["--method", "random", "entropy", "--max-points", "6", "--draws", "200", "--tune", "300", "--chains", "2",
             "--geometry", "shape", "--quiet"]
    for jobs in ("1", "2"):
        code, _, err = cli("forecast", AL_CSV, *flags, "--jobs", jobs, "--out", tmp_path / jobs)
        assert code == 0, err
    a, b = (pd.read_csv(tmp_path / j / "forecast.csv") for j in ("1", "2"))
    pd.testing.assert_frame_equal(a, b)


def test_cli_ceiling_below_observed_scores_warns_with_both_numbers(cli, tmp_path):
    from conftest import AL_CSV

    code, _, err = cli("forecast", AL_CSV, "--method", "random", "--max-points", "6", "--a-max-below", "0.6",
                       "--draws", "100", "--tune", "200", "--chains", "1", "--geometry", "shape", "--quiet",
                       "--jobs", "1", "--out", tmp_path)
    assert code == 0, err
    warning = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warning) == 1 and "--a-max-below 0.6 is below the best observed mean 0.7" in warning[0], err
    diag = pd.read_csv(tmp_path / "diagnostics.csv")
    assert diag.a_max_prior[0] == "A_max < 0.6 (known ceiling)"
    code, _, err = cli("forecast", AL_CSV, "--a-max-below", "80", "--out", tmp_path / "x", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "--a-max-below 80" in err and "fractions (0-1)" in err
