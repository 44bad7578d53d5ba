import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import AL_CSV, LCDB_CSV, RUNS_BASE, write_runs

from palm_bayes.export import OUTPUT_FILES, PALM_PY_CSV_COLUMNS

PALM_PY_KEYS = {"dataset", "model", "method", "episodes", "mode", "budget_size", "A_max", "delta", "alpha", "beta",
                "run_files"}


def test_fit_run_layout_writes_palm_py_files(cli, tmp_path):
    code, out, err = cli("fit", "--base_path", RUNS_BASE, "--method", "entropy_b20", "--out_dir", tmp_path / "o")
    assert code == 0, err
    assert "=== PALM fit ===" in out
    for f in OUTPUT_FILES:
        assert (tmp_path / "o" / f).stat().st_size > 0
    meta = json.loads((tmp_path / "o" / "palm_params.json").read_text())
    assert PALM_PY_KEYS <= set(meta)
    assert (meta["dataset"], meta["model"], meta["method"], meta["budget_size"]) == ("Yeast", "SVC_RBF",
                                                                                      "entropy_b20", 20.0)
    assert len(meta["run_files"]) == 5
    csv = pd.read_csv(tmp_path / "o" / "palm_params.csv")
    assert list(csv.columns[: len(PALM_PY_CSV_COLUMNS)]) == PALM_PY_CSV_COLUMNS
    # what ALDA's advisor reads: dataset/method/budget_size and a 1-D y_avg
    y_avg = np.load(tmp_path / "o" / "y_avg.npy")
    y_fit = np.load(tmp_path / "o" / "y_fit.npy")
    assert y_avg.ndim == 1 and y_avg.shape == y_fit.shape == (20,)
    assert np.sqrt(np.mean((y_avg - y_fit) ** 2)) < 0.02


def test_palm_py_mode_defaults_match_palm_py(cli, tmp_path):
    code, _, err = cli("fit", "--base-path", RUNS_BASE, "--method", "entropy_b20", "--fit-mode", "palm.py",
                       "--num_samples", "12", "--out-dir", tmp_path)
    assert code == 0, err
    meta = json.loads((tmp_path / "palm_params.json").read_text())
    # PALM.py's defaults: --num_variants 1, --budget_size 100, mode string
    assert len(meta["run_files"]) == 1 and meta["run_files"][0].endswith("entropy_b20_1/plot_episode_yvalues.npy")
    assert meta["budget_size"] == 100.0 and meta["mode"] == "PALM (episodes)" and meta["episodes"] == 12
    y = np.load(RUNS_BASE / "entropy_b20_1" / "plot_episode_yvalues.npy")[:12]
    np.testing.assert_allclose(np.load(tmp_path / "y_avg.npy"), y)


def test_csv_with_several_curves_writes_one_folder_each(cli, tmp_path):
    code, _, err = cli("fit", "--input", LCDB_CSV, "--out_dir", tmp_path)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "palm_params.csv")
    assert len(table) == 3
    for _, r in table.iterrows():
        assert (tmp_path / r.dataset / r.model / r.method / "palm_params.json").exists()


def test_csv_filter_by_method(cli, tmp_path):
    code, _, err = cli("fit", "--input", AL_CSV, "--method", "random", "--out_dir", tmp_path)
    assert code == 0, err
    assert json.loads((tmp_path / "palm_params.json").read_text())["method"] == "random"


def test_user_files_are_never_overwritten(cli, tmp_path):
    mine = tmp_path / "palm_params.json"
    mine.write_text("my notes")
    code, _, err = cli("fit", "--input", AL_CSV, "--method", "random", "--out_dir", tmp_path)
    assert code == 2 and "not written by palm-bayes" in err
    assert mine.read_text() == "my notes"
    assert not (tmp_path / "y_avg.npy").exists()  # nothing written before the check
    # a second run into a folder palm-bayes owns is fine, and other files there stay untouched
    other = tmp_path / "o"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert cli("fit", "--input", AL_CSV, "--method", "random", "--out_dir", other)[0] == 0
    assert cli("fit", "--input", AL_CSV, "--method", "random", "--out_dir", other)[0] == 0
    assert (other / "keep.txt").read_text() == "x"


def _csv(tmp_path, text, name="bad.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD_ROWS = "".join(f"m,1,{b},{0.5 + b / 100}\n" for b in (10, 20, 30, 40))


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("method,budget,score\n", "no data rows"),
        ("method,score\nm,0.5\n", "missing column(s) budget"),
        ("method,run,budget,score\n" + GOOD_ROWS + "m,1,50,abc\n", "line 6: column score is 'abc'"),
        ("method,run,budget,score\n" + GOOD_ROWS + "m,1,50,nan\n", "line 6: column score"),
        ("method,run,budget,score\n" + GOOD_ROWS + "m,1,50,inf\n", "line 6: column score is 'inf'"),
        ("method,run,budget,score\n" + GOOD_ROWS + "m,1,50,130\n", "line 6: score 130 is outside [0, 1] and [0, 100]"),
        ("method,run,budget,score\n" + GOOD_ROWS + "m,1,-5,0.5\n", "line 6: budget -5 is negative"),
        ("method,run,budget,score\n" + GOOD_ROWS + "m,1,20,0.5\n", "duplicated row for run 1 at budget 20"),
        ("method,run,budget,score\nm,1,10,0.5\nm,1,20,0.6\nm,1,30,0.7\n", "3 distinct budget(s)"),
    ],
)
def test_bad_csv_gives_one_line_and_status_2(cli, tmp_path, content, message):
    p = _csv(tmp_path, content)
    code, _out, err = cli("fit", "--input", p, "--out_dir", tmp_path / "o")
    assert code == 2
    assert message in err and str(p) in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "palm_params.json").exists()


def test_bad_run_layout_inputs(cli, tmp_path):
    code, _, err = cli("fit", "--base_path", tmp_path / "missing", "--method", "m")
    assert code == 2 and "no such directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli("fit", "--base_path", tmp_path / "empty", "--method", "m")
    assert code == 2 and "no runs found for method 'm'" in err
    d = tmp_path / "r" / "m_1"
    d.mkdir(parents=True)
    (d / "plot_episode_yvalues.npy").write_bytes(b"")
    code, _, err = cli("fit", "--base_path", tmp_path / "r", "--method", "m")
    assert code == 2 and "not a readable NumPy .npy file" in err and "m_1" in err
    np.save(d / "plot_episode_yvalues.npy", np.array(["a", "b"]))
    code, _, err = cli("fit", "--base_path", tmp_path / "r", "--method", "m")
    assert code == 2 and "expected numbers" in err
    np.save(d / "plot_episode_yvalues.npy", np.array([0.5, np.nan, 0.6, 0.7, 0.8]))
    code, _, err = cli("fit", "--base_path", tmp_path / "r", "--method", "m")
    assert code == 2 and "episode 2" in err and "finite" in err
    np.save(d / "plot_episode_yvalues.npy", np.array([0.5, 0.55, 0.6, 0.7, 0.8]))
    np.save(d / "plot_episode_xvalues.npy", np.array([10, 20, 20, 40, 50]))
    code, _, err = cli("fit", "--base_path", tmp_path / "r", "--method", "m")
    assert code == 2 and "budgets not increasing at episode 3" in err and "plot_episode_xvalues.npy" in err
    np.save(d / "plot_episode_xvalues.npy", np.array([10, 20, 30]))
    code, _, err = cli("fit", "--base_path", tmp_path / "r", "--method", "m")
    assert code == 2 and "3 budgets but plot_episode_yvalues.npy has 5" in err
    np.save(d / "plot_episode_xvalues.npy", np.array([-10, 20, 30, 40, 50]))
    code, _, err = cli("fit", "--base_path", tmp_path / "r", "--method", "m")
    assert code == 2 and "budget -10 is negative" in err


def test_missing_input_file(cli, tmp_path):
    code, _, err = cli("fit", "--input", tmp_path / "nope.csv")
    assert code == 2 and "nope.csv: no such file" in err


def test_command_line_error_has_no_traceback(tmp_path):
    p = _csv(tmp_path, "method,budget\nm,1\n")
    r = subprocess.run([sys.executable, "-m", "palm_bayes_cli.main", "fit", "--input", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_percent_runs_fit_in_percent(cli, tmp_path):
    ys = [np.array([55.0, 62, 68, 72, 75, 77, 78]) + i for i in range(3)]
    write_runs(tmp_path / "in", "m", ys, [np.arange(1, 8) * 5.0] * 3)
    code, _, err = cli("fit", "--base_path", tmp_path / "in", "--out_dir", tmp_path / "o")
    assert code == 0, err
    meta = json.loads((tmp_path / "o" / "palm_params.json").read_text())
    assert meta["score_scale"] == "percent" and 70 < meta["A_max"] <= 100 and meta["budget_size"] == 5.0


def test_scale_flag_reads_a_percent_curve_that_starts_below_one_percent(cli, tmp_path):
    ys = [np.array([0.6, 4.0, 9.0, 15.0, 20.0, 24.0, 27.0]) + 0.1 * i for i in range(2)]
    write_runs(tmp_path / "in", "m", ys, [np.arange(1, 8) * 5.0] * 2)
    code, out, err = cli("fit", "--base_path", tmp_path / "in", "--out_dir", tmp_path / "o")
    assert code == 2 and "between 0 and 1 among 6 percentages" in err and "--scale" in err
    assert not (tmp_path / "o").exists()
    code, out, err = cli("fit", "--base_path", tmp_path / "in", "--scale", "percent", "--out_dir", tmp_path / "o")
    assert code == 0, err
    assert "scores read as percent (0–100), as stated with --scale" in out
    assert json.loads((tmp_path / "o" / "palm_params.json").read_text())["score_scale"] == "percent"


def _simulated_runs(base, truth: dict, n_budgets: int, b: float, sd: float = 0.005, seed: int = 0):
    from palm_bayes.curve import budget_curve

    rng = np.random.default_rng(seed)
    B = np.arange(1, n_budgets + 1) * b
    mu = budget_curve(B, b=b, **truth)
    ys = [mu + sd * rng.standard_normal(len(B)) for _ in range(5)]
    return write_runs(base, "m", ys, [B] * 5)


def test_fit_warns_about_parameters_the_pilot_does_not_identify(cli, tmp_path):
    base = _simulated_runs(tmp_path / "flat", dict(A_max=0.8, delta=0.9, alpha=1.0, beta=1.0), 10, 20.0, seed=1)
    code, out, err = cli("fit", "--base_path", base, "--out_dir", tmp_path / "o")
    assert code == 0, err
    meta = json.loads((tmp_path / "o" / "palm_params.json").read_text())
    assert {"delta", "alpha", "beta"} <= set(meta["unidentified"]) and "A_max" not in meta["unidentified"]
    warning = [line for line in out.splitlines() if line.startswith("warning: the pilot does not identify")]
    assert warning == [f"warning: {meta['identification_note']}"]
    assert "delta" in warning[0] and "compare curves, not these numbers" in warning[0]
    assert meta["delta"] > 1e-3  # not the degenerate δ → 0 optimum, printed as delta=0.00000000
    assert "delta=0.00000000" not in out


def test_fit_of_a_well_identified_curve_prints_no_identification_warning(cli, tmp_path):
    truth = dict(A_max=0.85, delta=0.15, alpha=0.7, beta=0.9)
    base = _simulated_runs(tmp_path / "rising", truth, 30, 10.0, sd=0.004, seed=2)
    code, out, err = cli("fit", "--base_path", base, "--out_dir", tmp_path / "o")
    assert code == 0, err
    meta = json.loads((tmp_path / "o" / "palm_params.json").read_text())
    assert meta["unidentified"] == [] and meta["identification_note"] == ""
    assert "does not identify" not in out
    assert abs(meta["A_max"] - truth["A_max"]) < 0.01 and abs(meta["beta"] - truth["beta"]) < 0.08


def _line_x(fig, label):
    return [np.asarray(line.get_xdata(), dtype=float) for line in fig.axes[0].get_lines()
            if line.get_label() == label]


@pytest.mark.parametrize("mode", ["palm.py", "robust"])
def test_figure_draws_runs_average_and_fit_on_one_budget_axis(mode):
    """PALM.py's fit lives on the episode index; with runs that carry their own budgets (20, 40, ..., 400) and
    PALM.py's default --budget_size 100 the average and the fit used to be drawn at 100, 200, ..., 2000."""
    import matplotlib.pyplot as plt

    from palm_bayes import data
    from palm_bayes.export import point_fit_figure
    from palm_bayes.pointfit import PalmPyOptions, fit_curve

    rows = data.load_palm_runs(RUNS_BASE, "entropy_b20", num_samples=20)
    fit = fit_curve(rows, mode=mode, b=100.0 if mode == "palm.py" else None, palm_py=PalmPyOptions(num_samples=20))
    fig = point_fit_figure(("Yeast", "SVC_RBF", "entropy_b20"), rows, fit, scale="fraction", num_samples=20)
    runs = np.unique(rows["budget"].to_numpy(dtype=float))
    (avg,) = _line_x(fig, "average over runs")
    (curve,) = _line_x(fig, "PALM fit")
    run_x = np.concatenate([np.asarray(line.get_xdata(), dtype=float) for line in fig.axes[0].get_lines()
                            if line.get_label() not in ("average over runs", "PALM fit")])
    np.testing.assert_allclose(np.unique(run_x), runs)
    np.testing.assert_allclose(avg, runs[: len(avg)])
    assert curve.min() == pytest.approx(runs.min()) and curve.max() == pytest.approx(avg.max())
    # and the curve drawn there is the fit's own: PALM.py's curve at episode k sits at the k-th budget
    (fit_line,) = [line for line in fig.axes[0].get_lines() if line.get_label() == "PALM fit"]
    k = np.interp(np.asarray(fit_line.get_xdata(), float), avg, np.arange(1, len(avg) + 1))
    x_fit = k if mode == "palm.py" else np.asarray(fit_line.get_xdata(), float) / fit.b
    np.testing.assert_allclose(fit_line.get_ydata(), fit.predict(x_fit * fit.b), rtol=1e-9)
    plt.close(fig)


def test_palm_py_mode_json_budgets_are_the_labels_spent(cli, tmp_path):
    code, _, err = cli("fit", "--base_path", RUNS_BASE, "--method", "entropy_b20", "--fit-mode", "palm.py",
                       "--out_dir", tmp_path)
    assert code == 0, err
    meta = json.loads((tmp_path / "palm_params.json").read_text())
    x = np.load(RUNS_BASE / "entropy_b20_1" / "plot_episode_xvalues.npy")[:20]
    np.testing.assert_allclose(meta["budgets"], x)  # not episode × --budget_size (100, ..., 2000)
    np.testing.assert_allclose(meta["x"], np.arange(1, 21))
    assert meta["budget_size"] == 100.0 and meta["x_axis"] == "episode index 1..N"
    # y_fit stays PALM.py's curve at its own x = 1..N
    from palm_bayes.curve import PALM_PY_FLOOR, palm_curve

    y_fit = palm_curve(np.arange(1, 21.0), meta["A_max"], meta["delta"], meta["alpha"], meta["beta"],
                       floor=PALM_PY_FLOOR)
    np.testing.assert_allclose(np.load(tmp_path / "y_fit.npy"), y_fit, rtol=1e-12)
