import json

import numpy as np
import pandas as pd
import pytest
from conftest import AL_CSV, LCDB_CSV, RUNS_BASE, write_runs

from palm_bayes import data
from palm_bayes.errors import InputError


def test_long_csv_example_is_tidy():
    df = data.load_curves(AL_CSV)
    assert list(df.columns) == data.TIDY_COLUMNS
    assert df.attrs["scale"] == "fraction"
    assert len(data.curve_keys(df)) == 5 and len(df) == 500


def test_lcdb_csv_without_model_column_has_irregular_budgets():
    df = data.load_curves(LCDB_CSV)
    assert set(df["model"]) == {data.UNKNOWN}
    b = np.sort(df[df.dataset == "mnist_784"].budget.unique())
    steps = np.diff(b)
    assert steps.max() / steps.min() > 10  # geometric, not regular
    assert data.episode_size(b) == steps.min()


def test_alda_csv(tmp_path):
    src = pd.read_csv(LCDB_CSV)
    alda = src.rename(columns={"budget": "cumulative_budget"})[["dataset", "method", "cumulative_budget", "score"]]
    alda = alda[src.run == 1]
    p = tmp_path / "alda.csv"
    alda.to_csv(p, index=False)
    df = data.load_curves(p)
    assert len(df) == len(alda) and set(df.run) == {"1"}
    assert "ALDA CSV" in df.attrs["notes"][0]


def test_percent_scale_detected_and_kept(tmp_path):
    src = pd.read_csv(AL_CSV)
    src["score"] *= 100
    p = tmp_path / "pct.csv"
    src.to_csv(p, index=False)
    df = data.load_curves(p)
    assert df.attrs["scale"] == "percent"
    assert df.score.max() > 1


def test_check_scale_of_scores():
    def scale(scores):
        return data.check_scale(pd.DataFrame({"dataset": "d", "model": "m", "method": "a", "run": "1",
                                              "score": scores}))

    assert scale([0.1, 1.0]) == "fraction"
    assert scale([10, 55.5]) == "percent"
    with pytest.raises(InputError, match="outside"):
        scale([10, 101])


def test_ragged_runs_are_kept_whole(tmp_path):
    ys = [np.linspace(0.5, 0.8, n) for n in (10, 7, 12)]
    write_runs(tmp_path / "D" / "M", "m", ys)
    df = data.load_curves(tmp_path / "D" / "M")
    assert df.groupby("run").size().to_dict() == {"m_1": 10, "m_2": 7, "m_3": 12}
    assert df.budget.max() == 1200  # episode 12 x default budget_size 100


def test_run_layout_reads_x_values_and_names_curve_from_path():
    df = data.load_palm_runs(RUNS_BASE, "entropy_b20")
    assert set(df.run) == {f"entropy_b20_{i}" for i in range(1, 6)}
    assert (df.dataset.unique().tolist(), df.model.unique().tolist()) == (["Yeast"], ["SVC_RBF"])
    assert np.array_equal(np.sort(df.budget.unique()), np.arange(20, 401, 20))


def test_run_discovery_follows_palm_py(tmp_path):
    y = np.linspace(0.5, 0.9, 6)
    base = write_runs(tmp_path, "rnd", [y] * 3)
    for name in ("rnd_10_seed", "rnd_2b"):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "plot_episode_yvalues.npy", y)
    names = lambda fs: [f.parent.name for f in fs]  # noqa: E731
    # exact <method>_1..N first; fuzzy <method>_* (natural order) only when fewer than asked
    assert names(data.find_run_files(base, "rnd", 2)) == ["rnd_1", "rnd_2"]
    assert names(data.find_run_files(base, "rnd", 5)) == ["rnd_1", "rnd_2", "rnd_3", "rnd_2b", "rnd_10_seed"]
    assert names(data.find_run_files(base, "rnd", None)) == ["rnd_1", "rnd_2", "rnd_3"]
    # num_samples keeps the first episodes
    df = data.load_palm_runs(base, "rnd", num_variants=2, num_samples=4)
    assert df.groupby("run").size().tolist() == [4, 4]


def test_load_all_methods_and_run_tree(tmp_path):
    write_runs(tmp_path / "A" / "m1", "rand", [np.linspace(0.5, 0.9, 5)] * 2)
    write_runs(tmp_path / "A" / "m1", "marg", [np.linspace(0.5, 0.95, 5)] * 2)
    write_runs(tmp_path / "B" / "m2", "rand", [np.linspace(0.4, 0.7, 6)] * 2)
    df = data.load_curves(tmp_path)
    assert data.curve_keys(df) == [("A", "m1", "marg"), ("A", "m1", "rand"), ("B", "m2", "rand")]


def test_palm_py_output_dir(tmp_path):
    (tmp_path / "palm_params.json").write_text(json.dumps({"dataset": "D", "method": "m", "budget_size": 50}))
    np.save(tmp_path / "y_avg.npy", np.linspace(60, 80, 8))
    df = data.load_curves(tmp_path)
    assert df.attrs["scale"] == "percent"
    assert df.budget.tolist() == [50 * i for i in range(1, 9)] and set(df.run) == {"y_avg"}


def test_pilot_keeps_only_early_budgets():
    df = data.load_curves(LCDB_CSV)
    p = data.pilot(df, max_points=5)
    assert p.groupby(data.CURVE_KEYS).budget.nunique().eq(5).all()
    cut = data.pilot(df, upto=200)
    assert cut.budget.max() <= 200
    with pytest.raises(InputError, match="--max-points 3"):
        data.pilot(df, max_points=3)


def test_select_unknown_method_lists_what_exists():
    df = data.load_curves(AL_CSV)
    with pytest.raises(InputError, match="found: coreset, entropy"):
        data.select(df, method="nope")


# ------------------------------------------------------------------------------------ one scale per run/curve

def _csv(tmp_path, runs: dict[tuple[str, str], list[float]], budgets=(10, 20, 30, 40, 50)):
    rows = [(m, r, b, v) for (m, r), ys in runs.items() for b, v in zip(budgets, ys, strict=True)]
    p = tmp_path / "curves.csv"
    pd.DataFrame(rows, columns=["method", "run", "budget", "score"]).to_csv(p, index=False)
    return p


FRACTIONS = [0.60, 0.68, 0.72, 0.74, 0.75]


def test_runs_on_different_scales_are_refused_naming_curve_runs_and_rows(tmp_path):
    p = _csv(tmp_path, {("m", "1"): FRACTIONS, ("m", "2"): [60.1, 68.4, 72.0, 74.0, 75.0]})
    with pytest.raises(InputError) as e:
        data.load_curves(p)
    msg = str(e.value)
    assert str(p) in msg and "run 1" in msg and "run 2" in msg and "unknown/unknown/m" in msg
    assert "line 2" in msg and "line 7" in msg and "--scale" in msg and "\n" not in msg
    # two curves of one file on different scales: refused the same way
    p = _csv(tmp_path, {("m", "1"): FRACTIONS, ("n", "1"): [60.0, 68.0, 72.0, 74.0, 75.0]})
    with pytest.raises(InputError, match=r"curve unknown/unknown/m, run 1 is in fractions .* curve "
                       r"unknown/unknown/n, run 1 in percent"):
        data.load_curves(p)


def test_a_single_typo_above_one_in_a_fraction_run_is_refused(tmp_path):
    p = _csv(tmp_path, {("m", "1"): [0.60, 0.68, 1.7, 0.74, 0.75], ("m", "2"): FRACTIONS})
    with pytest.raises(InputError, match=r"line 4: curve unknown/unknown/m, run 1: 1 score\(s\) above 1 among 4 "
                       r"fractions .*1\.7"):
        data.load_curves(p)
    # a fraction among percentages is named the same way
    p = _csv(tmp_path, {("m", "1"): [60.0, 68.0, 0.72, 74.0, 75.0]})
    with pytest.raises(InputError, match=r"line 4: .* between 0 and 1 among 4 percentages"):
        data.load_curves(p)


def test_percent_above_100_and_stated_scales(tmp_path):
    p = _csv(tmp_path, {("m", "1"): [60.0, 68.0, 72.0, 74.0, 100.5]})
    with pytest.raises(InputError, match=r"line 6: score 100.5 is outside \[0, 1\] and \[0, 100\]"):
        data.load_curves(p)
    # a percent curve that starts below 1 % (e.g. many classes at chance) is read with --scale percent
    low = _csv(tmp_path, {("m", "1"): [0.8, 5.0, 12.0, 20.0, 30.0]})
    with pytest.raises(InputError, match="--scale"):
        data.load_curves(low)
    df = data.load_curves(low, scale="percent")
    assert df.attrs["scale"] == "percent" and "as stated with --scale" in df.attrs["notes"][-1]
    with pytest.raises(InputError, match=r"lines 3, 4, 5, 6: score 5 is outside \[0, 1\] \(expected fractions"):
        data.load_curves(low, scale="fraction")
    # 0 and 1 fit both scales: a fraction run that reaches 1.0 and a percent run that starts at 0 are fine
    assert data.load_curves(_csv(tmp_path, {("m", "1"): [0.0, 0.5, 0.9, 1.0, 1.0]})).attrs["scale"] == "fraction"
    assert data.load_curves(_csv(tmp_path, {("m", "1"): [0.0, 50, 90, 99, 100]})).attrs["scale"] == "percent"


def test_run_files_on_different_scales_name_the_files(tmp_path):
    base = write_runs(tmp_path / "D" / "M", "rnd", [np.array(FRACTIONS), np.array([60.0, 68, 72, 74, 75])])
    with pytest.raises(InputError) as e:
        data.load_curves(base)
    msg = str(e.value)
    assert "rnd_1" in msg and "rnd_2" in msg and "episode 1" in msg and "percent" in msg
    assert data.load_curves(base, scale="percent").attrs["scale"] == "percent"
