"""``palm-bayes fit``: the classic PALM point fit, with PALM.py's flags and output files."""

from __future__ import annotations

import argparse

import pandas as pd

from palm_bayes import data
from palm_bayes.errors import InputError
from palm_bayes.outputs import OutputDir
from palm_bayes.pointfit import FIT_MODES, PalmPyOptions, fit_curve

from .forecast import add_scale_flag


def _flag(parser: argparse.ArgumentParser, name: str, **kw) -> None:
    """Add a PALM.py flag under its own underscored name and the dashed spelling."""
    spellings = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    parser.add_argument(*spellings, dest=name, **kw)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="classic PALM point fit (PALM.py-compatible flags and outputs)",
        description="Fit the PALM curve to AL runs. Reads PALM.py's run layout (--base_path) or a CSV "
        "(--input), and writes PALM.py's files (palm_params.json, palm_params.csv, y_avg.npy, y_fit.npy, "
        "palm_fit.png) into --out_dir. --fit-mode palm.py reproduces PALM.py exactly; the default 'robust' "
        "fits x = B/b with a seeded multistart over every run.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    _flag(src, "base_path", help="folder holding the run folders <method>_<i>/plot_episode_yvalues.npy")
    src.add_argument("--input", help="a CSV (long or ALDA format), a run folder tree or a PALM.py output folder")
    _flag(p, "dataset", help="dataset label (run layout: default = name of base_path's parent; CSV: filter)")
    _flag(p, "model", help="model label (run layout: default = name of base_path; CSV: filter)")
    _flag(p, "method", help="run-folder prefix / method to fit (default: every method found)")
    _flag(p, "num_variants", type=int, default=None,
          help="runs per method (PALM.py discovery; default: 1 in palm.py mode like PALM.py, all in robust mode)")
    _flag(p, "num_samples", type=int, default=None,
          help="episodes used from each run, -1 = all (default: 20 in palm.py mode like PALM.py, all in robust)")
    _flag(p, "x_mode", choices=["episodes", "cumulative_normalized"], default="episodes",
          help="PALM.py's x mode (both fit the episode index 1..N in PALM.py; recorded in 'mode')")
    p.add_argument("--budget_size", "--budget-size", "-b", dest="budget_size", type=float, default=None,
                   help="labels per episode (palm.py mode and runs without x values: default 100 like PALM.py; "
                   "robust mode: default inferred from the budgets)")
    _flag(p, "out_dir", default="./palm_fit_out", help="output folder (default ./palm_fit_out)")
    _flag(p, "plot", action="store_true", help="accepted for PALM.py compatibility; palm_fit.png is always written")
    _flag(p, "save_csv", action="store_true", help="accepted for PALM.py compatibility; the CSV is always written")
    _flag(p, "init_A_max", type=float, default=None, help="palm.py mode start value of A_max (default max(y_avg))")
    _flag(p, "init_delta", type=float, default=0.5)
    _flag(p, "init_alpha", type=float, default=1.0)
    _flag(p, "init_beta", type=float, default=1.0)
    _flag(p, "alpha_lo", type=float, default=-1000.0, help="parsed but not applied, exactly like PALM.py")
    _flag(p, "alpha_hi", type=float, default=1000.0)
    _flag(p, "beta_hi", type=float, default=100.0)
    p.add_argument("--fit-mode", "--fit_mode", dest="fit_mode", choices=FIT_MODES, default="robust",
                   help="robust (default) or palm.py (PALM.py's exact procedure)")
    p.add_argument("--seed", type=int, default=0, help="seed of the robust multistart (default 0)")
    add_scale_flag(p)
    p.set_defaults(run=run)


def resolve_defaults(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """PALM.py's defaults in palm.py mode (1 run, 20 episodes); all runs and episodes in robust mode."""
    compat = args.fit_mode == "palm.py"
    variants = args.num_variants if args.num_variants is not None else (1 if compat else None)
    samples = args.num_samples if args.num_samples is not None else (20 if compat else None)
    if samples is not None and samples < 0:
        samples = None
    if variants is not None and variants <= 0:
        raise InputError(f"--num_variants {variants}: expected a positive number of runs")
    if samples == 0:
        raise InputError("--num_samples 0: expected a positive number of episodes or -1 for all")
    if args.budget_size is not None and not args.budget_size > 0:
        raise InputError(f"--budget_size {args.budget_size:g}: expected a positive number of labels per episode")
    return variants, samples


def load(args: argparse.Namespace, variants: int | None, samples: int | None) -> pd.DataFrame:
    """The tidy rows to fit, from the run layout or an input path."""
    if args.base_path:
        df = data.load_palm_runs(args.base_path, args.method, num_variants=variants, num_samples=samples,
                                 budget_size=args.budget_size or 100.0, dataset=args.dataset, model=args.model,
                                 scale=args.scale)
        return df
    df = data.load_curves(args.input, scale=args.scale, budget_size=args.budget_size or 100.0)
    df = data.select(df, dataset=args.dataset, model=args.model, method=args.method)
    if variants is not None:
        keep = df.groupby(data.CURVE_KEYS, sort=False)["run"].transform(
            lambda r: r.isin(pd.unique(r)[:variants]))
        df = df[keep.astype(bool)]
    if samples is not None:
        df = data.first_episodes(df, samples)
    return df


def run(args: argparse.Namespace) -> int:
    variants, samples = resolve_defaults(args)
    df = load(args, variants, samples)
    from palm_bayes.export import OUTPUT_FILES, PALM_PY_CSV_COLUMNS, params_record, write_palm_py_folder  # matplotlib
    scale = df.attrs["scale"]
    keys = data.curve_keys(df)
    out = OutputDir(args.out_dir)
    single = len(keys) == 1
    prefixes = {k: "" if single else "/".join(_safe(p) for p in k) for k in keys}
    out.check(*[f"{pre}/{f}" if pre else f for pre in prefixes.values() for f in OUTPUT_FILES])
    compat = args.fit_mode == "palm.py"
    options = PalmPyOptions(num_samples=samples, init_A_max=args.init_A_max, init_delta=args.init_delta,
                            init_alpha=args.init_alpha, init_beta=args.init_beta, alpha_lo=args.alpha_lo,
                            alpha_hi=args.alpha_hi, beta_hi=args.beta_hi)
    for note in df.attrs.get("notes", []):
        print(note)
    records = []
    for key, rows in data.iter_curves(df):
        b = (args.budget_size or 100.0) if compat else args.budget_size
        fit = fit_curve(rows, mode=args.fit_mode, scale=scale, b=b, seed=args.seed, palm_py=options)
        run_files = _run_files(df, key, rows)
        meta = write_palm_py_folder(out, prefixes[key], key, rows, fit, scale=scale, run_files=run_files,
                                    num_samples=samples, x_mode=args.x_mode)
        records.append(params_record(key, fit, meta["episodes"], args.x_mode))
        print("\n=== PALM fit ===")
        print(f"dataset={key[0]}  model={key[1]}  method={key[2]}")
        print(f"variants={meta['runs']}  episodes={meta['episodes']}  scores={scale}s")
        print(f"mode: {meta['mode']}")
        print(f"A_max={fit.A_max:.6f}  delta={fit.delta:.8f}  alpha={fit.alpha:.8f}  beta={fit.beta:.8f}  "
              f"rmse={fit.rmse:.4g}")
        if fit.note:
            print(f"warning: {fit.note}")
        if not fit.success:
            print(f"warning: the optimiser did not report convergence ({fit.message})")
        print(f"Saved → {out.path / prefixes[key]}")
    if not single:
        out.write_csv("palm_params.csv", pd.DataFrame(records)[PALM_PY_CSV_COLUMNS])
        print(f"\nAll {len(records)} curves → {out.path / 'palm_params.csv'}")
    return 0


def _run_files(df: pd.DataFrame, key: tuple, rows: pd.DataFrame) -> list[str]:
    files = df.attrs.get("run_files", {}).get(key[2])
    return files if files else [str(r) for r in pd.unique(rows["run"])]


def _safe(part: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=+" else "_" for c in str(part)) or "_"


__all__ = ["add_parser", "run"]
