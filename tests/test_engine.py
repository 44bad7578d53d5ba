"""The sampler engine's bookkeeping: models built and compiled once per process, phase timings, status lines."""

from __future__ import annotations

import logging
import sys
import types

from palm_bayes import engine


def test_a_model_is_compiled_once_per_key_with_a_status_line_and_timings(monkeypatch, caplog):
    compiles = []
    fake_nutpie = types.SimpleNamespace(compile_pymc_model=lambda model: compiles.append(model) or f"compiled {model}")
    monkeypatch.setitem(sys.modules, "nutpie", fake_nutpie)
    monkeypatch.setattr(engine, "_COMPILED", {})
    monkeypatch.setattr(engine, "TIMINGS", engine.Counter())
    sampler = engine.PalmSampler(backend="nutpie")
    with caplog.at_level(logging.INFO, logger="palm_bayes"):
        first = sampler.compiled(("shape", 8), lambda: "model A")
        again = sampler.compiled(("shape", 8), lambda: "model B")
        other = sampler.compiled(("levels", 8), lambda: "model C")
    assert first == again == ("model A", "compiled model A") and other == ("model C", "compiled model C")
    assert compiles == ["model A", "model C"]
    lines = [r.getMessage() for r in caplog.records if r.name == "palm_bayes"]
    assert len(lines) == 2 and "compiling the model (shape)" in lines[0] and "(levels)" in lines[1]
    assert engine.TIMINGS["compiles"] == 2 and engine.TIMINGS["compile"] >= 0
    # PyMC's own sampler compiles inside pm.sample: no nutpie compile and no status line
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="palm_bayes"):
        assert engine.PalmSampler(backend="pymc").compiled(("shape", 8), lambda: "model D") == ("model D", None)
    assert not caplog.records and engine.TIMINGS["compiles"] == 2


def test_the_retry_ladder_counts_first_runs_and_retries(monkeypatch):
    import pandas as pd

    monkeypatch.setattr(engine, "TIMINGS", engine.Counter())

    def attempt(geometry, accept):
        diag = pd.DataFrame({"param": ["A_max"], "r_hat": [1.0], "ess_bulk": [1000.0], "ess_tail": [1000.0]})
        return engine.CurvePosterior(draws={}, b=1.0, scale="fraction", diagnostics=diag, divergences=0,
                                     seconds=2.0, warnings=[] if geometry == "shape" else ["unhealthy"])

    engine.healthiest(attempt, engine.retry_ladder(0.97))
    assert (engine.TIMINGS["runs"], engine.TIMINGS["retries"]) == (1, 1)
    assert (engine.TIMINGS["sample"], engine.TIMINGS["retry"]) == (2.0, 2.0)


def test_library_status_lines_reach_the_terminal_unless_quiet(cli, tmp_path, monkeypatch):
    from conftest import AL_CSV

    real = engine.PalmSampler.sample

    def sample(self, data, key=()):
        engine.log.info("compiling the model (test) once for this process ...")
        return real(self, data, key)

    monkeypatch.setattr(engine.PalmSampler, "sample", sample)
    args = ["forecast", AL_CSV, "--method", "random", "--max-points", "6", "--draws", "100", "--tune", "100",
            "--chains", "2", "--pooling", "none"]
    code, _, err = cli(*args, "--out", tmp_path / "a")
    assert code == 0 and "palm-bayes: compiling the model (test)" in err
    code, _, err = cli(*args, "--out", tmp_path / "b", "--quiet")
    assert code == 0 and "compiling" not in err


def test_a_cached_compile_samples_the_same_numbers_and_survives_a_corrupt_or_unwritable_cache(
        tmp_path, monkeypatch, caplog):
    """The on-disk cache of the compiled model (compile_cache) changes no number: a fresh compile, a load from the
    cache, a rebuild after the cache was damaged, an in-memory compile when the folder cannot be written, and
    nutpie's own compile all give the same draws for the same seed."""
    import warnings

    import numpy as np
    import nutpie
    from conftest import simulate

    from palm_bayes import compile_cache
    from palm_bayes.model import CurveData, build_model

    df, _ = simulate(1, n_budgets=6)
    data = CurveData.from_rows(df, "fraction")
    values = engine.PalmSampler(engine.SamplerSettings(), backend="nutpie")._values(data)
    values.pop("x_last")  # the "shape" geometry does not declare it
    model = build_model(8, geometry="shape", marginal=True)

    def draws(compiled):
        result = nutpie.sample(compiled.with_data(**values), draws=150, tune=150, chains=2, cores=1, seed=3,
                               progress_bar=False)
        return np.asarray(result.posterior["A_max"].values)

    monkeypatch.setenv("PALM_BAYES_CACHE_DIR", str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="palm_bayes"):
        fresh, how = compile_cache.compile_model(model, "shape")
    assert how == "compiled" and "compiling the model (shape) once for this machine" in caplog.text
    entries = sorted((tmp_path / "cache" / "numba").glob("*.nbc"))
    assert len(entries) == 2  # the log-density and the draws' callbacks
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="palm_bayes"):
        loaded, how = compile_cache.compile_model(model, "shape")
    assert how == "loaded" and not caplog.records  # nothing to say when nothing is compiled
    reference = draws(fresh)
    assert np.array_equal(draws(loaded), reference)

    # PyTensor's rewritten and linked functions are kept too, under a fingerprint of the graph: the same for the
    # same model built again, another for another model
    (graph,) = (tmp_path / "cache" / "numba").glob("graph-*.pkl")
    assert graph.stem == compile_cache.graph_key(build_model(8, geometry="shape", marginal=True))
    assert graph.stem != compile_cache.graph_key(build_model(8, geometry="shape", marginal=True, noise_trend=False))

    for damaged in (entries[0], graph):
        damaged.write_bytes(damaged.read_bytes()[:100])  # a half-written cache file
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="palm_bayes"):
            rebuilt, how = compile_cache.compile_model(model, "shape")
        assert "did not match its checksums; rebuilding it" in caplog.text
        if damaged == entries[0]:
            assert how == "compiled"
        # (after a damaged graph the callbacks load, or compile again where PyTensor linked the same graph earlier
        # in this process and keyed it otherwise: either way the same draws)
        assert np.array_equal(draws(rebuilt), reference)
        assert compile_cache.compile_model(model, "shape")[1] == "loaded"

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PALM_BAYES_CACHE_DIR", str(tmp_path / "a-file" / "cache"))  # cannot be created
    in_memory, how = compile_cache.compile_model(model, "shape")
    assert how == "uncached" and np.array_equal(draws(in_memory), reference)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(draws(nutpie.compile_pymc_model(model)), reference)
