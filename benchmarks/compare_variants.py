"""Compare model variants on the dev sets by PSIS-LOO (ArviZ) and by the forecast metrics (needs ../shared/data).

Every variant is fitted to the same pilot curves. LOO scores how well each variant predicts the *pilot* points it
was fitted on (left out one at a time); the forecast metrics score the later budgets it never saw. Differences
in ``elpd_loo`` are paired by curve: the table shows the summed difference to the default, its standard error
(√n × sd of the per-curve differences) and on how many curves the variant is ahead.

    python benchmarks/compare_variants.py [--limit 20] [--draws 1000 --tune 300] [--out benchmarks/out/variants]
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_benchmark import ROOT, load_task, parse, run_set

#: name → Forecaster settings that differ from the default model.
VARIANTS = {
    "default": {},
    "constant_noise": {"noise_trend": False},
    "student": {"likelihood": "student"},
    "misfit": {"misfit": True},
}


def main() -> None:
    argv = sys.argv[1:]
    if "--out" not in argv:
        argv += ["--out", str(ROOT / "benchmarks" / "out" / "variants")]
    a = parse([*argv, "--loo"])
    warnings.simplefilter("ignore")
    task = load_task(a.tools_dir)
    rows, loo = [], {}
    for name in a.sets:
        for variant, kw in VARIANTS.items():
            t0 = time.perf_counter()
            score, fc = run_set(a, name, task, kw)
            loo[(name, variant)] = fc.loo().set_index(["dataset", "model", "method"]).elpd_loo
            rows.append({"set": name, "variant": variant, "mae_final": score["mae_final"],
                         "mae_all": score["mae_all"], "cov_mean": score["cover_mean"],
                         "width_mean": score["width_mean"], "cov_pred": score["cover_pred"],
                         "width_pred": score["width_pred"], "healthy": score["healthy_fraction"],
                         "elpd_loo": score["elpd_loo_sum"], "k_gt_0_7": score["loo_points_k_gt_0_7"],
                         "seconds": time.perf_counter() - t0})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    diffs = []
    for r in table.itertuples():
        d = (loo[(r.set, r.variant)] - loo[(r.set, "default")]).dropna()
        diffs.append((d.sum(), np.sqrt(len(d)) * d.std(ddof=1) if len(d) > 1 else np.nan, int((d > 0).sum())))
    table["d_elpd"], table["d_elpd_se"], table["curves_ahead"] = zip(*diffs, strict=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(a.out) / "variants.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
