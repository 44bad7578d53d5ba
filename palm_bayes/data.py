"""Loading learning curves into one tidy table, and validating them.

Every loader returns a :class:`pandas.DataFrame` with the columns of :data:`TIDY_COLUMNS`::

    dataset, model, method, run, budget, score

one row per (run, budget) observation; one *curve* is one (dataset, model, method). ``run`` is a label (a run
folder name, or the CSV's run id as text). ``budget`` is the cumulative number of labels; ``score`` is on the
input's own scale (fractions 0–1 or percentages 0–100; see :func:`check_scale`), recorded in
``df.attrs["scale"]``. Human-readable notes about what was read (and anything repaired) are in
``df.attrs["notes"]``.

Accepted inputs (:func:`load_curves` picks by what the path is):

* a long CSV with ``method, budget, score`` and optional ``dataset, model, run``;
* ALDA's CSV (``dataset, method, cumulative_budget, score``);
* the PALM run layout ``BASE/<method>_<i>/plot_episode_yvalues.npy`` (optional ``plot_episode_xvalues.npy``),
  discovered like PALM.py (see :func:`find_run_files`), or a tree of such ``BASE`` folders;
* a PALM.py output directory (``palm_params.json`` + ``y_avg.npy``): one averaged curve.

Runs of different lengths are kept whole, and budgets may be irregular (e.g. geometric).
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError, first_line

TIDY_COLUMNS = ["dataset", "model", "method", "run", "budget", "score"]
CURVE_KEYS = ["dataset", "model", "method"]
Y_FILE = "plot_episode_yvalues.npy"
X_FILE = "plot_episode_xvalues.npy"
#: Label used for a key column the input does not have (e.g. ``model`` in LCDB or ALDA CSVs).
UNKNOWN = "unknown"
MIN_BUDGETS = 4


# --------------------------------------------------------------------------------------------- scale


SCALES = ("fraction", "percent")
SCALE_WORDS = {"fraction": "fractions (0–1)", "percent": "percent (0–100)"}


def scale_max(scale: str) -> float:
    """Largest possible score on a scale: 1 for fractions, 100 for percent."""
    return 1.0 if scale == "fraction" else 100.0


# --------------------------------------------------------------------------------------------- CSV


def _line(index: int) -> int:
    """CSV line number (1 = header) of a 0-based data row."""
    return int(index) + 2


def read_csv_curves(path: str | Path, scale: str | None = None) -> pd.DataFrame:
    """Read a long CSV (``method, budget, score`` [+ ``dataset, model, run``]) or ALDA's CSV
    (``dataset, method, cumulative_budget, score``) into the tidy table, validated.

    Raises
    ------
    InputError
        Missing file or columns, empty file, non-numeric/NaN/inf values, negative budgets, duplicated
        (run, budget) rows, out-of-range scores, or a curve with fewer than 4 distinct budgets.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty (expected a header with method, budget, score)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable CSV ({first_line(e)})") from None
    raw.columns = [c.strip() for c in raw.columns]
    fmt = "long CSV"
    if "budget" not in raw.columns and "cumulative_budget" in raw.columns:
        raw = raw.rename(columns={"cumulative_budget": "budget"})
        fmt = "ALDA CSV"
    missing = [c for c in ("method", "budget", "score") if c not in raw.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)} (expected method, budget, score and optional "
            f"dataset, model, run; or ALDA's dataset, method, cumulative_budget, score); found {', '.join(raw.columns)}"
        )
    if raw.empty:
        raise InputError(f"{path}: the file has a header but no data rows")
    df = pd.DataFrame(index=raw.index)
    for key in ("dataset", "model", "method", "run"):
        if key in raw.columns:
            col = raw[key].astype(str).str.strip()
            empty = col == ""
            if key == "method" and empty.any():
                raise InputError(f"{path}: line {_line(np.flatnonzero(empty)[0])}: empty method")
            df[key] = col.where(~empty, UNKNOWN)
        else:
            df[key] = "1" if key == "run" else UNKNOWN
    for col in ("budget", "score"):
        values = pd.to_numeric(raw[col].str.strip(), errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            shown = raw[col].iloc[i] or "(empty)"
            raise InputError(f"{path}: line {_line(i)}: column {col} is {shown!r} (expected a finite number)")
        df[col] = values.astype(float)
    df.attrs["notes"] = [f"{path}: read as {fmt} ({len(df)} rows)"]
    return validate(df, source=str(path), scale=scale)


# --------------------------------------------------------------------------------------------- run layout


def natural_key(text: str) -> list:
    """Sort key that orders ``run_2`` before ``run_10`` (PALM.py's natural order)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def find_run_files(base_path: str | Path, method: str, num_variants: int | None = None) -> list[Path]:
    """Discover a method's run files the way PALM.py does.

    Order: ``BASE/plot_episode_yvalues.npy`` (a single run directly under the base), then the exact folders
    ``<method>_1 .. <method>_N``, then — when fewer than ``num_variants`` were found — every ``<method>_*``
    folder in natural order; duplicates dropped, cut to ``num_variants`` when it is > 0.

    ``num_variants=None`` (palm-bayes' default outside the PALM.py-compatible mode) means *all runs*: the exact
    folders ``<method>_1, _2, ...`` while they exist, and the fuzzy ``<method>_*`` match only if there is no
    exact one (so ``margin`` does not silently swallow ``margin_sampling_*``).
    """
    base = Path(base_path)
    found: list[Path] = []
    direct = base / Y_FILE
    if direct.exists():
        found.append(direct)
    if num_variants is None:
        i = 1
        while (base / f"{method}_{i}" / Y_FILE).exists():
            found.append(base / f"{method}_{i}" / Y_FILE)
            i += 1
        want_fuzzy = i == 1
    else:
        for i in range(1, num_variants + 1):
            p = base / f"{method}_{i}" / Y_FILE
            if p.exists():
                found.append(p)
        want_fuzzy = len(found) < num_variants
    if want_fuzzy:
        pattern = str(base / f"{glob.escape(method)}_*" / Y_FILE)
        found.extend(Path(p) for p in sorted(glob.glob(pattern), key=natural_key))
    unique = list(dict.fromkeys(found))
    if num_variants is not None and num_variants > 0:
        unique = unique[:num_variants]
    return unique


def discover_methods(base_path: str | Path) -> list[str]:
    """Method prefixes of the run folders under ``base_path`` (``<method>_<i>`` → ``<method>``)."""
    names = set()
    for p in Path(base_path).glob(f"*/{Y_FILE}"):
        m = re.fullmatch(r"(.+)_\d+", p.parent.name)
        names.add(m.group(1) if m else p.parent.name)
    return sorted(names, key=natural_key)


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable NumPy .npy file ({first_line(e)})") from None
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{path}: {what} has dtype {arr.dtype} (expected numbers)")
    arr = np.squeeze(arr) if arr.ndim > 1 and sum(d > 1 for d in arr.shape) <= 1 else arr
    if arr.ndim != 1:
        raise InputError(f"{path}: {what} has shape {arr.shape} (expected a 1-D array, one value per episode)")
    if arr.size == 0:
        raise InputError(f"{path}: {what} is empty (expected one value per episode)")
    arr = arr.astype(float)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(f"{path}: {what} value {arr[bad][0]} at episode {int(np.flatnonzero(bad)[0]) + 1} "
                         "(expected finite numbers)")
    return arr


def load_palm_runs(
    base_path: str | Path,
    method: str | None = None,
    *,
    num_variants: int | None = None,
    num_samples: int | None = None,
    budget_size: float = 100.0,
    dataset: str | None = None,
    model: str | None = None,
    scale: str | None = None,
    validate_result: bool = True,
) -> pd.DataFrame:
    """Load AL runs stored in PALM.py's layout ``BASE/<method>_<i>/plot_episode_yvalues.npy``.

    Parameters
    ----------
    base_path : path
        The folder that contains the run folders (PALM.py's ``--base_path``, usually ``.../<DATASET>/<MODEL>``).
    method : str, optional
        Run-folder prefix (PALM.py's ``--method``). ``None`` loads every method found under ``base_path``.
    num_variants : int, optional
        How many runs per method (see :func:`find_run_files`); ``None`` = all.
    num_samples : int, optional
        Episodes to keep from each run (PALM.py's ``--num_samples``); ``None`` or -1 = all.
    budget_size : float, default 100
        Labels per episode, used when a run has no ``plot_episode_xvalues.npy``: budget = episode × b.
    dataset, model : str, optional
        Curve labels; default to the names of ``base_path``'s parent and of ``base_path`` itself.
    scale : {"fraction", "percent"}, optional
        The scores' scale; default: read from the scores (see :func:`check_scale`).
    """
    base = Path(base_path)
    if not base.exists():
        raise InputError(f"{base}: no such directory")
    if not base.is_dir():
        raise InputError(f"{base}: not a directory (expected the folder holding <method>_<i>/{Y_FILE})")
    if budget_size is None or not np.isfinite(budget_size) or budget_size <= 0:
        raise InputError(f"--budget_size {budget_size}: expected a positive number of labels per episode")
    methods = [method] if method else discover_methods(base)
    if not methods:
        raise InputError(f"{base}: no runs found (expected folders like <method>_1/{Y_FILE})")
    dataset = dataset or base.resolve().parent.name or UNKNOWN
    model = model or base.resolve().name or UNKNOWN
    frames, notes, run_files = [], [], {}
    for m in methods:
        files = find_run_files(base, m, num_variants)
        run_files[m] = [str(f) for f in files]
        if not files:
            raise InputError(
                f"{base}: no runs found for method {m!r} (expected folders {m}_1, {m}_2, ... with {Y_FILE})"
            )
        for f in files:
            y = _load_npy(f, "accuracies")
            xfile = f.parent / X_FILE
            if xfile.exists():
                x = _load_npy(xfile, "budgets")
                if len(x) != len(y):
                    raise InputError(f"{xfile}: {len(x)} budgets but {f.name} has {len(y)} accuracies "
                                     "(expected one budget per episode)")
                step = np.diff(x)
                if (step <= 0).any():
                    k = int(np.flatnonzero(step <= 0)[0])
                    raise InputError(f"{xfile}: budgets not increasing at episode {k + 2} "
                                     f"({x[k]:g} then {x[k + 1]:g}; expected cumulative labels)")
            else:
                x = np.arange(1, len(y) + 1, dtype=float) * float(budget_size)
            if num_samples is not None and num_samples >= 0:
                x, y = x[:num_samples], y[:num_samples]
            run = f.parent.name if f.parent != base else base.name
            frames.append(pd.DataFrame({"dataset": dataset, "model": model, "method": m, "run": run,
                                        "budget": x, "score": y, "_source": str(f)}))
        xs = "x values" if all((f.parent / X_FILE).exists() for f in files) else f"episode × {budget_size:g}"
        notes.append(f"{base}: method {m}: {len(files)} run(s) ({', '.join(f.parent.name for f in files)}); "
                     f"budgets from {xs}")
    df = pd.concat(frames, ignore_index=True)
    df.attrs["notes"] = notes
    df.attrs["run_files"] = run_files
    return validate(df, source=str(base), scale=scale) if validate_result else df


def load_run_tree(root: str | Path, scale: str | None = None, **kwargs) -> pd.DataFrame:
    """Load every PALM run-layout base folder below ``root`` (e.g. ``root/<DATASET>/<MODEL>/<method>_<i>``)."""
    root = Path(root)
    bases = sorted({p.parent.parent for p in root.rglob(Y_FILE)}, key=lambda p: natural_key(str(p)))
    if not bases:
        raise InputError(f"{root}: no runs found (expected <method>_<i>/{Y_FILE} below it)")
    frames = [load_palm_runs(b, validate_result=False, **kwargs) for b in bases]
    df = pd.concat(frames, ignore_index=True)
    df.attrs["notes"] = [n for f in frames for n in f.attrs.get("notes", [])]
    return validate(df, source=str(root), scale=scale)


def load_palm_output(out_dir: str | Path, scale: str | None = None) -> pd.DataFrame:
    """Load a PALM.py output directory (``palm_params.json`` + ``y_avg.npy``) as a one-run curve.

    Only the average over runs survives in such a folder, so the table has a single run named ``y_avg``;
    budgets are episode index × ``budget_size`` from the JSON.
    """
    d = Path(out_dir)
    pfile, yfile = d / "palm_params.json", d / "y_avg.npy"
    for f in (pfile, yfile):
        if not f.exists():
            raise InputError(f"{f}: missing (a PALM.py output folder holds palm_params.json and y_avg.npy)")
    try:
        meta = json.loads(pfile.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{pfile}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{pfile}: expected a JSON object with dataset, method, budget_size")
    y = _load_npy(yfile, "y_avg")
    b = meta.get("budget_size", 100.0)
    try:
        b = float(b)
    except (TypeError, ValueError):
        raise InputError(f"{pfile}: budget_size {b!r} is not a number") from None
    if not np.isfinite(b) or b <= 0:
        raise InputError(f"{pfile}: budget_size {b!r} (expected a positive number of labels per episode)")
    df = pd.DataFrame({"dataset": str(meta.get("dataset", UNKNOWN)), "model": str(meta.get("model", UNKNOWN)),
                       "method": str(meta.get("method", d.name)), "run": "y_avg",
                       "budget": np.arange(1, len(y) + 1, dtype=float) * b, "score": y, "_source": str(yfile)})
    df.attrs["notes"] = [f"{d}: PALM.py output; only the average over runs (y_avg.npy) is available"]
    return validate(df, source=str(d), scale=scale)


def load_curves(path: str | Path, scale: str | None = None, **kwargs) -> pd.DataFrame:
    """Load curves from any supported input, chosen by what ``path`` is (see the module docstring).

    ``scale`` (``"fraction"`` or ``"percent"``) states the scores' scale instead of reading it from them (see
    :func:`check_scale`). Other keyword arguments go to :func:`load_palm_runs` for run-layout folders.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    if p.is_file():
        if p.suffix.lower() in (".csv", ".txt", ".tsv") or p.suffix == "":
            return read_csv_curves(p, scale=scale)
        raise InputError(f"{p}: unsupported file type {p.suffix!r} (expected a .csv file or a run folder)")
    if (p / "palm_params.json").exists() and (p / "y_avg.npy").exists():
        return load_palm_output(p, scale=scale)
    if any(p.glob(f"*/{Y_FILE}")) or (p / Y_FILE).exists():
        return load_palm_runs(p, scale=scale, **kwargs)
    return load_run_tree(p, scale=scale, **kwargs)


# --------------------------------------------------------------------------------------------- checks


def validate(df: pd.DataFrame, source: str = "input", scale: str | None = None) -> pd.DataFrame:
    """Check a tidy table and return it sorted, with ``attrs['scale']`` set.

    Raises :class:`InputError` for NaN/inf scores, negative budgets, duplicated (run, budget) rows, scores that
    do not share one scale (see :func:`check_scale`; ``scale`` states it instead of guessing), or a curve with
    fewer than 4 distinct budgets. CSV rows are named by line number and run files by path.
    """
    where = _locator(df, source)
    for col in ("budget", "score"):
        v = df[col].to_numpy(dtype=float)
        bad = ~np.isfinite(v)
        if bad.any():
            raise InputError(f"{where(np.flatnonzero(bad)[0])}: {col} is {v[bad][0]} (expected a finite number)")
    neg = df["budget"].to_numpy() < 0
    if neg.any():
        i = np.flatnonzero(neg)[0]
        raise InputError(f"{where(i)}: budget {df['budget'].iloc[i]:g} is negative (expected cumulative labels ≥ 0)")
    dup = df.duplicated([*CURVE_KEYS, "run", "budget"], keep="first").to_numpy()
    if dup.any():
        i = np.flatnonzero(dup)[0]
        r = df.iloc[i]
        raise InputError(f"{where(i)}: duplicated row for run {r['run']} at budget {r['budget']:g} of "
                         f"{_curve_name(r)} (expected one score per run and budget)")
    stated = scale is not None
    scale = check_scale(df, source, scale)
    for key, g in df.groupby(CURVE_KEYS, sort=False):
        n = g["budget"].nunique()
        if n < MIN_BUDGETS:
            raise InputError(f"{source}: curve {'/'.join(map(str, key))} has {n} distinct budget(s) "
                             f"(expected at least {MIN_BUDGETS} to fit 4 PALM parameters)")
    out = df.drop(columns=[c for c in df.columns if c.startswith("_")])
    out = out.sort_values([*CURVE_KEYS, "run", "budget"], key=_sort_key, kind="stable").reset_index(drop=True)
    out = out[TIDY_COLUMNS]
    out.attrs.update(df.attrs)
    out.attrs["scale"] = scale
    out.attrs.setdefault("notes", [])
    note = f"scores read as {SCALE_WORDS[scale]}, {'as stated with --scale' if stated else 'detected'}"
    out.attrs["notes"] = [n for n in out.attrs["notes"] if not n.startswith("scores read as")] + [note]
    return out


def _sort_key(col: pd.Series) -> pd.Series:
    if col.name in ("budget", "score"):
        return col
    return col.map(lambda s: tuple((0, t, "") if isinstance(t, int) else (1, 0, t) for t in natural_key(str(s))))


def _curve_name(row: pd.Series) -> str:
    return "/".join(str(row[k]) for k in CURVE_KEYS)


def _places(df: pd.DataFrame, source: str):
    """Function from a row position to (file, unit, number): a CSV line, or the episode of a run file (npy)."""
    if "_source" in df.columns:
        src = df["_source"].to_numpy()
        first = {f: int(np.flatnonzero(src == f)[0]) for f in pd.unique(src)}
        return lambda i: (str(src[i]), "episode", int(i) - first[src[i]] + 1)
    return lambda i: (source, "line", _line(i))


def _locator(df: pd.DataFrame, source: str):
    """Function from a row position to 'file: line N' (CSV) or 'run file: episode N' (npy)."""
    place = _places(df, source)

    def where(i: int) -> str:
        file, unit, n = place(i)
        return f"{file}: {unit} {n}"

    return where


def _rows_text(df: pd.DataFrame, source: str, rows: np.ndarray, show: int = 5) -> str:
    """'file: lines 5, 9 and 3 more' for row positions of one file (the first row's file)."""
    place = _places(df, source)
    file, unit, _ = place(rows[0])
    numbers = [place(i)[2] for i in rows if place(i)[0] == file]
    more = len(rows) - min(show, len(numbers))
    listed = ", ".join(map(str, numbers[:show])) + (f" and {more} more" if more else "")
    return f"{file}: {unit}{'s' if len(numbers) > 1 else ''} {listed}"


def check_scale(df: pd.DataFrame, source: str = "input", scale: str | None = None) -> str:
    """The score scale of a tidy table, checked run by run and curve by curve.

    With ``scale`` given (``"fraction"`` or ``"percent"``) every score must lie on it. Otherwise the scale is
    read from the scores: within (0, 1) a score is a fraction, above 1 a percentage (0 and 1 fit both). Every
    run, every curve and the whole table must then share one scale, so a run typed in percent among runs in
    fractions, or a single typo such as 1.7 in a run of fractions, is refused with the rows that do not fit,
    instead of turning the whole curve into "percent". Returns the scale; raises :class:`InputError`.
    """
    s = df["score"].to_numpy(dtype=float)
    if scale is not None:
        if scale not in SCALES:
            raise InputError(f"--scale {scale!r}: expected one of {', '.join(SCALES)}")
        top = scale_max(scale)
        bad = np.flatnonzero((s < 0) | (s > top))
        if bad.size:
            raise InputError(f"{_rows_text(df, source, bad)}: score {s[bad[0]]:g} is outside [0, {top:g}] "
                             f"(expected {scale}s, as stated with --scale)")
        return scale
    bad = np.flatnonzero((s < 0) | (s > 100))
    if bad.size:
        raise InputError(f"{_rows_text(df, source, bad)}: score {s[bad[0]]:g} is outside [0, 1] and [0, 100] "
                         "(expected accuracies as fractions or percent)")
    place = _places(df, source)

    def at(i: int) -> str:  # a CSV line within the message's file, or a run file and its episode
        file, unit, n = place(i)
        return f"{unit} {n}" if unit == "line" else f"{file}: {unit} {n}"

    kind = np.where(s > 1, "percent", np.where((s > 0) & (s < 1), "fraction", ""))  # "": 0 or 1, either scale
    expected = ("expected one scale for the whole input: fractions 0–1 or percent 0–100; if the guess is wrong, "
                "state it with --scale")
    seen: dict[str, tuple[str, int]] = {}  # scale -> (curve/run, a row of it)
    for (*curve, run), idx in df.groupby([*CURVE_KEYS, "run"], sort=False).indices.items():
        name = f"curve {'/'.join(map(str, curve))}, run {run}"
        k = kind[idx]
        n_frac, n_pct = int((k == "fraction").sum()), int((k == "percent").sum())
        if n_frac and n_pct:
            if n_pct <= n_frac:
                odd, what = idx[k == "percent"], f"score(s) above 1 among {n_frac} fractions (0–1)"
            else:
                odd, what = idx[k == "fraction"], f"score(s) between 0 and 1 among {n_pct} percentages (above 1)"
            raise InputError(f"{_rows_text(df, source, odd)}: {name}: {len(odd)} {what}, e.g. {s[odd[0]]:g} "
                             f"({expected})")
        run_scale = "percent" if n_pct else "fraction" if n_frac else None
        if run_scale is None:
            continue
        first = int(idx[k == run_scale][0])
        for other, (other_name, other_row) in seen.items():
            if other != run_scale:
                a, b = sorted([(run_scale, name, first), (other, other_name, other_row)], key=lambda t: t[2])
                raise InputError(f"{source}: {a[1]} is in {SCALE_WORDS[a[0]]} ({at(a[2])}: {s[a[2]]:g}) but "
                                 f"{b[1]} in {SCALE_WORDS[b[0]]} ({at(b[2])}: {s[b[2]]:g}); {expected}")
        seen.setdefault(run_scale, (name, first))
    return "percent" if "percent" in seen else "fraction"


# --------------------------------------------------------------------------------------------- selection


def curve_keys(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The (dataset, model, method) keys of the table, in table order."""
    return [tuple(k) for k in df[CURVE_KEYS].drop_duplicates().itertuples(index=False)]


def iter_curves(df: pd.DataFrame) -> Iterator[tuple[tuple[str, str, str], pd.DataFrame]]:
    """Yield ``((dataset, model, method), rows)`` for each curve, in table order."""
    for key, g in df.groupby(CURVE_KEYS, sort=False):
        yield tuple(key), g


def select(df: pd.DataFrame, *, dataset=None, model=None, method=None) -> pd.DataFrame:
    """Rows of the curves matching the given labels (each a string or a list of strings)."""
    mask = pd.Series(True, index=df.index)
    for col, want in (("dataset", dataset), ("model", model), ("method", method)):
        if want is None:
            continue
        want = [want] if isinstance(want, str) else list(want)
        m = df[col].isin(want)
        have = set(df[col])
        absent = [w for w in want if w not in have]
        if absent:
            found = ", ".join(sorted(have, key=natural_key))
            raise InputError(f"no {col} named {', '.join(absent)} in the input (found: {found})")
        mask &= m
    out = df[mask].reset_index(drop=True)
    if out.empty:
        raise InputError("no curve matches the selected dataset/model/method together")
    out.attrs.update(df.attrs)
    return out


def pilot(df: pd.DataFrame, *, max_points: int | None = None, upto: float | None = None) -> pd.DataFrame:
    """Keep each curve's first ``max_points`` distinct budgets, or its budgets ``<= upto``.

    The kept part is what a fit may see; later budgets never leak into it. Raises :class:`InputError` if a
    curve keeps fewer than 4 distinct budgets.
    """
    if max_points is not None and upto is not None:
        raise InputError("give either --max-points or --upto, not both")
    if max_points is None and upto is None:
        return df
    if max_points is not None and max_points < MIN_BUDGETS:
        raise InputError(f"--max-points {max_points}: expected at least {MIN_BUDGETS}")
    sizes = {}
    for key, g in iter_curves(df):
        budgets = np.sort(g["budget"].unique())
        sizes[key] = min(max_points, len(budgets)) if max_points is not None else int(np.sum(budgets <= upto))
        if sizes[key] < MIN_BUDGETS:
            flag = f"--max-points {max_points}" if max_points is not None else f"--upto {upto:g}"
            raise InputError(f"curve {'/'.join(key)}: {flag} leaves {sizes[key]} distinct budget(s) "
                             f"(expected at least {MIN_BUDGETS})")
    out = first_budgets(df, sizes)
    rule = (f"its first {max_points} budgets (--max-points)" if max_points is not None
            else f"budgets <= {upto:g} (--upto)")
    out.attrs["notes"] = [*df.attrs.get("notes", []), f"each curve fitted on {rule}: {len(df) - len(out)} later "
                          "observation(s) left out of the fit"]
    return out


def first_budgets(df: pd.DataFrame, sizes: dict[tuple[str, str, str], int]) -> pd.DataFrame:
    """Each curve's rows at its first ``sizes[key]`` distinct budgets, and nothing else (``attrs`` kept)."""
    parts = []
    for key, g in iter_curves(df):
        keep = np.sort(g["budget"].unique())[: sizes[key]]
        parts.append(g[g["budget"].isin(keep)])
    out = pd.concat(parts).reset_index(drop=True)
    out.attrs.update(df.attrs)
    return out


def mean_curve(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-budget mean score over the runs observed there: columns ``budget, mean, n_runs`` (sorted)."""
    g = rows.groupby("budget")["score"]
    return pd.DataFrame({"mean": g.mean(), "n_runs": g.size()}).reset_index()


def episode_size(budgets: np.ndarray) -> float:
    """Labels per episode ``b`` inferred from a curve's budgets: the smallest step between distinct budgets.

    For regular AL runs (``b, 2b, 3b, ...``, or an initial pool followed by steps of ``b``) this is the batch
    size; for irregular budgets (e.g. LCDB's geometric anchors 16, 23, 32, ...) it is the finest resolution the
    data have, so that ``x = B / b`` grows from about 1 at the first anchors.
    """
    u = np.unique(np.asarray(budgets, dtype=float))
    steps = np.diff(u)
    steps = steps[steps > 0]
    if steps.size == 0:
        raise InputError("cannot infer labels per episode from fewer than 2 distinct budgets")
    return float(steps.min())


def first_episodes(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """Each run cut to its first ``n`` budgets (PALM.py's ``--num_samples``)."""
    out = (df.sort_values([*CURVE_KEYS, "run", "budget"], kind="stable")
             .groupby([*CURVE_KEYS, "run"], sort=False).head(n))
    out = out.sort_index()
    out.attrs.update(df.attrs)
    out = validate(out.reset_index(drop=True), source="the first --num_samples episodes",
                   scale=df.attrs.get("scale"))
    out.attrs["notes"] = list(df.attrs.get("notes", []))  # the scale as it was read, not restated
    return out
