"""Where the time of a forecast goes, beside a plain PyMC script on the same curve (not run in CI).

1. One cold single-curve forecast: ``palm-bayes forecast`` on one curve of the shipped example (its first 8
   budgets) in a fresh Python process, split into interpreter start + import, model build, sampler compile, NUTS
   (the first run), retries (later rungs of the retry ladder) and the rest (point fit, forecast, writing files).
2. The reference: a plain PyMC script a user would write, the same model and data (``palm_bayes.model``) sampled
   with ``pm.sample()`` defaults, in a fresh process.
3. With ``--sets``: every curve of a dev set (``../shared/data``, official pilots) in one call in a fresh process,
   through ``forecast_benchmark.run_set``, once per ``--jobs`` value (default: one process, then every core as
   ``palm-bayes forecast`` does by default): wall time per curve (compile included), the phases, health and
   accuracy. The same seed gives the same forecast whatever ``--jobs``.

Each of 1 and 2 runs ``--repeats`` times (the first run on a machine also fills PyTensor's and palm-bayes's
on-disk caches, see palm_bayes/compile_cache.py; the acceptance figure is the later runs). "compiles" counts the
models compiled, "loads" those loaded from palm-bayes's cache; "compile" is the time of both. Run nothing heavy
beside it: the timings are wall-clock.

    python benchmarks/speed.py [--repeats 3] [--sets lcdb al] [--method random] [--jobs 1 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "al_curves_yeast_svc.csv"

#: the palm-bayes child: times its imports, runs the command line, reports the engine's phase timings
PALM_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from palm_bayes_cli.main import main
from palm_bayes import engine
t1 = time.perf_counter()
rc = main(["forecast", sys.argv[1], "--max-points", "8", "--out", sys.argv[2], "--quiet", "--seed", "0"])
t2 = time.perf_counter()
print(json.dumps({"rc": rc, "import": t1 - t0, "run": t2 - t1, **engine.TIMINGS}))
"""

#: the reference child: the same model and data, sampled as a PyMC user would (pm.sample() defaults)
PYMC_CHILD = """
import json, sys, time, warnings
t0 = time.perf_counter()
import pandas as pd
import pymc as pm
from palm_bayes import data
from palm_bayes.engine import PalmSampler, SamplerSettings
from palm_bayes.model import CurveData, build_model, pad_runs
t1 = time.perf_counter()
warnings.simplefilter("ignore")
rows = data.pilot(data.load_curves(sys.argv[1]), max_points=8)
cd = CurveData.from_rows(rows, "fraction")
model = build_model(pad_runs(cd.n_runs), geometry="shape", marginal=True)
with model:
    pm.set_data(PalmSampler(SamplerSettings(), backend="pymc")._values(cd))
    t2 = time.perf_counter()
    idata = pm.sample(random_seed=0, progressbar=False)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "build": t2 - t1, "sample": t3 - t2,
                  "divergences": int(idata.sample_stats["diverging"].sum())}))
"""

#: the batch child: one dev set in one process (compile included), through forecast_benchmark.run_set
BATCH_CHILD = """
import json, sys, time, warnings
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import forecast_benchmark as fb
from palm_bayes import engine
warnings.simplefilter("ignore")
if sys.argv[4]:
    engine.LADDER = engine.parse_ladder(sys.argv[4])
a = fb.parse(["--sets", sys.argv[2], "--out", sys.argv[3], *sys.argv[5].split()])
score, _ = fb.run_set(a, sys.argv[2], fb.load_task(a.tools_dir))
score.pop("per_curve_final_abs_err")
print(json.dumps({"process_s": time.perf_counter() - t0, "score": score, **engine.TIMINGS}))
"""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--method", default="random", help="the example curve to forecast")
    ap.add_argument("--sets", nargs="*", default=[], choices=["lcdb", "al"])
    ap.add_argument("--skip-reference", action="store_true", help="do not run the plain PyMC script")
    ap.add_argument("--skip-single", action="store_true", help="only the --sets batches")
    ap.add_argument("--ladder", default="", help="the batches' retry ladder, geometry[:target_accept][:long],... "
                    "(default: the library's)")
    ap.add_argument("--batch-args", default="", help="more forecast_benchmark.py flags for the batches, e.g. "
                    "'--draws 500'")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 0],
                    help="worker processes of the batches, each value a batch (0 = every core, the command line's "
                    "default; 1 = one process, where the phases are not shared between workers)")
    return ap.parse_args(argv)


def child(code: str, *args: str) -> tuple[dict, float, float]:
    """Run ``code`` in a fresh interpreter; its last stdout line is JSON. Returns (that, wall s, peak MiB)."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if res.returncode:
        sys.exit(f"child failed ({res.returncode}):\n{res.stderr[-3000:]}")
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
    return json.loads(res.stdout.strip().splitlines()[-1]), wall, peak


def single(a: argparse.Namespace, tmp: Path) -> None:
    import pandas as pd

    df = pd.read_csv(EXAMPLE)
    curve = tmp / "one.csv"
    df[df.method == a.method].to_csv(curve, index=False)
    rows = []
    for i in range(a.repeats):
        t, wall, _ = child(PALM_CHILD, str(curve), str(tmp / f"out{i}"))
        rest = t["run"] - t.get("build", 0) - t.get("compile", 0) - t.get("sample", 0) - t.get("retry", 0)
        rows.append({"run": i + 1, "wall": wall, "start+import": wall - t["run"], "build": t.get("build", 0),
                     "compile": t.get("compile", 0), "compiles": t.get("compiles", 0), "loads": t.get("loads", 0),
                     "nuts": t.get("sample", 0),
                     "retries": t.get("retry", 0), "rungs": t.get("retries", 0), "rest": rest})
    ref = []
    if not a.skip_reference:
        for i in range(a.repeats):
            t, wall, _ = child(PYMC_CHILD, str(curve))
            ref.append({"run": i + 1, "wall": wall, "start+import": wall - t["build"] - t["sample"],
                        "build": t["build"], "pm.sample": t["sample"], "divergences": t["divergences"]})
    print(f"\n== cold single-curve forecast: {EXAMPLE.name}, method {a.method}, first 8 budgets ==")
    print("palm-bayes forecast (fresh process each):")
    print(pd.DataFrame(rows).round(2).to_string(index=False))
    if ref:
        print("plain PyMC script, same model and data, pm.sample() defaults (fresh process each):")
        print(pd.DataFrame(ref).round(2).to_string(index=False))
    later = rows[1:] or rows
    ours = statistics.median(r["wall"] for r in later)
    line = f"median wall of runs 2..{a.repeats}: palm-bayes {ours:.1f} s"
    if ref:
        theirs = statistics.median(r["wall"] for r in (ref[1:] or ref))
        line += f", plain PyMC {theirs:.1f} s, ratio {ours / theirs:.2f} (goal <= 0.5, and <= 10 s)"
    print(line)


def batch(a: argparse.Namespace, tmp: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from palm_bayes.parallel import check_jobs

    for name in a.sets:
        for jobs in a.jobs:
            workers = check_jobs(jobs)
            t, wall, peak = child(BATCH_CHILD, str(ROOT / "benchmarks"), name, str(tmp / f"batch_{name}_{jobs}"),
                                  a.ladder, f"{a.batch_args} --jobs {workers}")
            s = t["score"]
            n = s["curves_fitted"]
            how = "one process" if workers == 1 else f"{workers} worker processes" + (
                ", the command line's default" if jobs == 0 else "")
            summed = "" if workers == 1 else " (phases summed over the workers)"
            print(f"\n== {name} dev: {n} curves in one call, {how} (ladder {a.ladder or 'default'}"
                  f"{', ' + a.batch_args if a.batch_args else ''}) ==")
            print(f"  wall {wall:.1f} s = {wall / n:.2f} s per curve (compile included); fit {s['wall_s_total']:.1f} s")
            print(f"  compile {t.get('compile', 0):.1f} s ({t.get('compiles', 0)} models compiled,"
                  f" {t.get('loads', 0)} loaded from the cache), build {t.get('build', 0):.1f} s,"
                  f" NUTS first runs {t.get('sample', 0):.1f} s ({t.get('runs', 0)} runs),"
                  f" retries {t.get('retry', 0):.1f} s ({t.get('retries', 0)} rungs){summed}")
            print(f"  healthy {s['healthy_fraction']:.0%}; final-budget MAE {s['mae_final']:.2f}; peak memory of"
                  f" the largest child so far {peak:.0f} MiB")


def main() -> None:
    a = parse()
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_single:
            single(a, Path(tmp))
        batch(a, Path(tmp))


if __name__ == "__main__":
    main()
