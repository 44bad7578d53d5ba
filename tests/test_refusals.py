"""The bad inputs palm-bayes refuses: one line naming what is wrong, exit status 2, no traceback, nothing written.

``REFUSALS`` is the table (also rendered in docs/refusals.md by ``docs/refusals.py``): each row is the input a user
might give, the command line, and a piece of the one-line message that must come back. Every refusal here happens
before any sampling; the last test checks that a refusal does not even import the heavy libraries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import RUNS_BASE

FAST = ["--draws", "20", "--tune", "20", "--chains", "1", "--quiet"]
GOOD = "method,run,budget,score\n" + "".join(f"m,{r},{b},{0.5 + 0.01 * b / 10 + 0.001 * r}\n"
                                              for r in (1, 2) for b in (10, 20, 30, 40, 50))


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _csv(text: str, name: str = "in.csv"):
    def make(d: Path) -> Path:
        (d / name).write_text(text)
        return d / name
    return make


def _npy(arr) -> callable:
    def make(d: Path) -> Path:
        (d / "runs" / "m_1").mkdir(parents=True)
        np.save(d / "runs" / "m_1" / "plot_episode_yvalues.npy", arr)
        return d / "runs"
    return make


def _corrupt_npy(d: Path) -> Path:
    (d / "runs" / "m_1").mkdir(parents=True)
    (d / "runs" / "m_1" / "plot_episode_yvalues.npy").write_bytes(b"not numpy")
    return d / "runs"


def _empty_dir(d: Path) -> Path:
    (d / "runs" / "m_1").mkdir(parents=True)
    return d / "runs"


def _corrupt_posterior(d: Path) -> Path:
    (d / "posterior.nc").write_bytes(b"\x89HDF garbage")
    return d / "posterior.nc"


def _good(d: Path) -> Path:
    return _csv(GOOD)(d)


def _percent(text: str) -> str:
    """The same rows with scores in percent."""
    head, *rows = text.splitlines()
    return "\n".join([head] + [",".join([*r.split(",")[:3], f"{100 * float(r.split(',')[3]):g}"]) for r in rows]) + "\n"


def _mixed(d: Path) -> Path:
    """Run 1 in fractions, run 2 in percent."""
    lines = GOOD.splitlines()
    run2 = [",".join([*ln.split(",")[:3], f"{100 * float(ln.split(',')[3]):g}"]) for ln in lines if ",2," in ln]
    return _csv("\n".join([ln for ln in lines if ",2," not in ln] + run2) + "\n")(d)


OUT_IS_FILE = "OUT_IS_FILE"
OWN_FORECAST = "OWN_FORECAST"

#: (case, input maker, command and flags, a piece of the one-line message)
REFUSALS = [
    ("missing file", lambda d: d / "none.csv", ["forecast"], "none.csv: no such file or directory"),
    ("empty file", _csv(""), ["forecast"], "the file is empty"),
    ("header only", _csv("method,budget,score\n"), ["forecast"], "has a header but no data rows"),
    ("missing column", _csv("method,budget\nm,10\n"), ["forecast"], "missing column(s) score"),
    ("non-numeric score", _csv(GOOD.replace("m,1,30,0.531", "m,1,30,abc")), ["forecast"],
     "line 4: column score is 'abc' (expected a finite number)"),
    ("NaN score", _csv(GOOD.replace("m,1,30,0.531", "m,1,30,nan")), ["forecast"], "line 4: column score is 'nan'"),
    ("infinite budget", _csv(GOOD.replace("m,1,30,", "m,1,inf,")), ["forecast"], "line 4: column budget is 'inf'"),
    ("negative budget", _csv(GOOD.replace("m,1,10,", "m,1,-10,")), ["forecast"], "budget -10 is negative"),
    ("duplicated row", _csv(GOOD + "m,1,50,0.6\n"), ["forecast"], "duplicated row for run 1 at budget 50"),
    ("two budgets", _csv("method,budget,score\nm,10,0.5\nm,20,0.6\n"), ["forecast"],
     "has 2 distinct budget(s) (expected at least 4"),
    ("score off both scales", _csv(GOOD.replace("m,1,30,0.531", "m,1,30,130")), ["forecast"],
     "score 130 is outside [0, 1] and [0, 100]"),
    ("negative score", _csv(GOOD.replace("m,1,30,0.531", "m,1,30,-0.1")), ["forecast"], "score -0.1 is outside"),
    ("runs on two scales", _mixed, ["forecast"], "run 1 is in fractions (0–1) (line 2: 0.511) but"),
    ("typo above 1 in fractions", _csv(GOOD.replace("m,1,30,0.531", "m,1,30,1.7")), ["forecast"],
     "line 4: curve unknown/unknown/m, run 1: 1 score(s) above 1 among 4 fractions"),
    ("percent above 100", _csv(_percent(GOOD).replace("m,1,30,53.1", "m,1,30,101")), ["forecast"],
     "score 101 is outside [0, 1] and [0, 100]"),
    ("unknown flag", _good, ["forecast", "--bogus"], "unrecognized arguments: --bogus"),
    ("fractions stated, percent given", _csv(_percent(GOOD)), ["forecast", "--scale", "fraction"],
     "is outside [0, 1] (expected fractions, as stated with --scale)"),
    ("not a CSV", _csv("PK", "in.xlsx"), ["forecast"],
     "unsupported file type '.xlsx'"),
    ("corrupt .npy", _corrupt_npy, ["forecast"], "not a readable NumPy .npy file"),
    ("2-D .npy", _npy(np.ones((3, 4))), ["forecast"], "has shape (3, 4) (expected a 1-D array"),
    ("text .npy", _npy(np.array(["a", "b", "c", "d"])), ["forecast"], "(expected numbers)"),
    ("NaN in .npy", _npy(np.array([0.5, np.nan, 0.6, 0.7])), ["forecast"], "value nan at episode 2"),
    ("PALM folder without .npy", _empty_dir, ["forecast"], "no runs found"),
    ("--level 1.5", _good, ["forecast", "--level", "1.5"], "--level 1.5: expected a level strictly between 0 and 1"),
    ("--max-points 1", _good, ["forecast", "--max-points", "1"], "--max-points 1: expected at least 4"),
    ("--upto below 4 budgets", _good, ["forecast", "--upto", "20"], "--upto 20 leaves 2 distinct budget(s)"),
    ("--draws 0", _good, ["forecast", "--draws", "0"], "--draws 0: expected a positive whole number"),
    ("--chains 0", _good, ["forecast", "--chains", "0"], "--chains 0: expected a positive whole number"),
    ("--tune -1", _good, ["forecast", "--tune", "-1"], "--tune -1: expected 0 or more"),
    ("--jobs -1", _good, ["forecast", "--jobs", "-1"], "--jobs -1"),
    ("negative --at", _good, ["forecast", "--at", "-5"], "--at: expected budgets >= 0"),
    ("--discrepancy 2", _good, ["forecast", "--discrepancy", "2"], "--discrepancy 2: expected a scale between 0 and 1"),
    ("--drift 2", _good, ["forecast", "--drift", "2"], "--drift 2: expected a drift between -1 and 1"),
    ("ceiling off the scale", _good, ["forecast", "--a-max-below", "80"], "--a-max-below 80"),
    ("prior range upside down", _good, ["forecast", "--a-max-prior", "0.9", "0.6"], "--a-max-prior"),
    ("no such method", _good, ["forecast", "--method", "nope"], "no method named nope"),
    ("one of two methods missing", _good, ["forecast", "--method", "m", "nope"],
     "no method named nope in the input (found: m)"),
    ("--out is a file", _good, ["forecast", OUT_IS_FILE], "exists and is not a directory"),
    ("user's forecast.csv in --out", _good, ["forecast", OWN_FORECAST],
     "forecast.csv: exists and was not written by palm-bayes"),
    ("target off the scale", _good, ["decide", "--target", "80"], "--target 80"),
    ("negative cost", _good, ["decide", "--target", "0.8", "--cost-per-label", "-1", "--value-per-point", "5"],
     "--cost-per-label -1"),
    ("cost without value", _good, ["decide", "--target", "0.8", "--cost-per-label", "1"], "--value-per-point"),
    ("corrupt posterior.nc (decide)", _corrupt_posterior, ["decide", "--target", "0.8"], "posterior.nc"),
    ("corrupt posterior.nc (report)", _corrupt_posterior, ["report"], "posterior.nc"),
    ("backtest pilot of 3", _good, ["backtest", "--cutoffs", "3"], "--cutoffs 3: expected whole numbers of at least 4"),
    ("fit: --num_samples 0", lambda d: RUNS_BASE, ["fit", "--num_samples", "0"], "--num_samples 0"),
    ("fit: --budget_size 0", lambda d: RUNS_BASE, ["fit", "--method", "entropy_b20", "--budget_size", "0"],
     "--budget_size 0"),
    ("fit: no runs for the method", lambda d: RUNS_BASE, ["fit", "--method", "nope"], "no runs found for method"),
]
#: refused by argparse itself: a usage line, then the error line
ARGPARSE = {"unknown flag"}


def _argv(tmp_path: Path, make, command: list[str]) -> tuple[list[str], Path]:
    src = tmp_path / "src"
    src.mkdir()
    path = make(src)
    out = tmp_path / "out"
    args = [a for a in command if a not in (OUT_IS_FILE, OWN_FORECAST)]
    if OUT_IS_FILE in command:
        out.write_text("a file of mine\n")
    if OWN_FORECAST in command:
        out.mkdir()
        (out / "forecast.csv").write_text("my own forecast\n")
    if args[0] == "fit":
        return [*args[:1], "--base_path", str(path), *args[1:], "--out_dir", str(out)], out
    return [args[0], str(path), "--out", str(out), *FAST, *args[1:]], out


@pytest.mark.parametrize("case, make, command, message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_with_one_line_and_status_2(cli, capsys, tmp_path, case, make, command, message):
    argv, out = _argv(tmp_path, make, command)
    before = _files(out) if out.is_dir() else (out.read_bytes() if out.exists() else None)
    try:
        code, _, err = cli(*argv)
    except SystemExit as e:  # argparse: usage line + error line
        code, err = e.code, capsys.readouterr().err
        assert case in ARGPARSE and err.strip().splitlines()[-1].endswith(message)
    assert code == 2
    assert message in err, err
    assert len(err.strip().splitlines()) == (2 if case in ARGPARSE else 1) and "Traceback" not in err
    after = _files(out) if out.is_dir() else (out.read_bytes() if out.exists() else None)
    assert after == before  # nothing written, nothing of the user's touched


def test_a_refusal_does_not_import_the_heavy_libraries(tmp_path):
    """Input is read before PyMC, ArviZ, matplotlib or SciPy load, so a refusal takes a fraction of a second."""
    bad = tmp_path / "bad.csv"
    _mixed(tmp_path).rename(bad)
    heavy = ("pymc", "pytensor", "arviz", "matplotlib", "scipy", "nutpie", "xarray")
    for argv in (["forecast", str(bad)], ["decide", str(bad), "--target", "0.8"], ["report", str(bad)],
                 ["backtest", str(bad)], ["fit", "--input", str(bad)], ["forecast", str(tmp_path / "none.csv")]):
        code = (f"import sys; from palm_bayes_cli.main import main; rc = main({argv!r} + ['--out' if "
                f"{argv[0]!r} != 'fit' else '--out_dir', {str(tmp_path / 'o')!r}]); "
                f"print(rc, [m for m in {heavy!r} if m in sys.modules])")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert done.stdout.strip() == "2 []", (argv, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1


def test_arviz_import_announcement_is_not_shown(tmp_path):
    """ArviZ 0.x warns about its coming refactor on the day's first import (by PyMC or nutpie too): nothing a user
    can act on, so importing palm-bayes filters that one message and no other warning."""
    code = ("import warnings, palm_bayes, pymc\n"
            "warnings.warn('another FutureWarning', FutureWarning)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}  # ArviZ keeps its once-a-day stamp in the user's cache
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "ArviZ is undergoing" not in done.stderr
    assert "another FutureWarning" in done.stderr  # the filter is for that message only
