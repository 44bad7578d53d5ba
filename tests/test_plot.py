"""Figures from synthetic inputs (no sampling): names the fonts lack, and curves drawn on top of each other."""

import io
import warnings
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from palm_bayes import plot

B = np.arange(1, 21) * 10.0


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(plt.Text)]


def _saved_without_warnings(make):
    """Build a figure with ``make()`` and save it as PNG (Matplotlib's missing-glyph warning comes at layout and
    draw time); return it and the warnings both steps raised, with every warning shown."""
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = make()
        fig.savefig(io.BytesIO(), format="png", dpi=50)
    assert warnings.filters == before  # palm-bayes changed no warning filter of its own
    return fig, [f"{w.category.__name__}: {w.message}" for w in caught]


class FakeForecaster:
    """What plot_comparison reads from a Forecaster: the observed rows of a curve and the score scale."""

    scale = "fraction"

    def __init__(self, history: pd.DataFrame):
        self.history = history

    def observed(self, key):
        h = self.history
        return h[(h.dataset == key[0]) & (h.model == key[1]) & (h.method == key[2])]


def _comparison_inputs(methods: dict[str, float]):
    """A predict table and a fake forecaster: one curve per method, shifted by ``methods[name]``."""
    mu = 0.5 + 0.02 * np.sqrt(B)
    table = pd.concat([pd.DataFrame({"dataset": "d", "model": "m", "method": name, "budget": B, "median": mu + shift,
                                     "lower": mu + shift - 0.03, "upper": mu + shift + 0.03})
                       for name, shift in methods.items()], ignore_index=True)
    history = pd.concat([pd.DataFrame({"dataset": "d", "model": "m", "method": name, "run": r, "budget": B[:8],
                                       "score": mu[:8] + shift + 0.01 * (r - 0.5)})
                         for name, shift in methods.items() for r in (0, 1)], ignore_index=True)
    return FakeForecaster(history), table


def test_readable_names_missing_glyphs_and_keeps_the_rest():
    assert plot.readable("margin 🚀") == "margin [ROCKET]"
    assert plot.readable("Yeast · SVC_RBF ≤ 0.9 é×÷–") == "Yeast · SVC_RBF ≤ 0.9 é×÷–"  # the font has these
    assert plot.readable("a\nb") == "a\nb"
    # the configured fallback list counts: STIXGeneral (shipped with Matplotlib) has U+210A, DejaVu Sans has not
    assert plot.readable("ℊ") == "[SCRIPT SMALL G]"
    with plt.rc_context({"font.family": ["DejaVu Sans", "STIXGeneral"]}):
        assert plot.readable("ℊ") == "ℊ"
        fig, caught = _saved_without_warnings(lambda: plot.plot_point_fit(
            pd.DataFrame({"run": "0", "budget": B, "score": 0.5 + 0.01 * np.sqrt(B)}), B, 0.5 + 0.01 * np.sqrt(B),
            title="ℊ-method", scale="fraction"))
    assert not caught, caught
    assert "ℊ-method" in _texts(fig)
    plt.close(fig)


def test_point_fit_with_an_emoji_name_draws_without_warnings():
    rows = pd.DataFrame({"run": np.repeat(["0", "1"], len(B)), "budget": np.tile(B, 2),
                         "score": np.tile(0.5 + 0.01 * np.sqrt(B), 2)})
    fig, caught = _saved_without_warnings(lambda: plot.plot_point_fit(
        rows, B, 0.5 + 0.01 * np.sqrt(B), title="Yeast · SVC_RBF · margin 🚀", scale="fraction",
        label="margin 🚀 fit"))
    assert not caught, caught
    ax = fig.axes[0]
    assert ax.get_title() == "Yeast · SVC_RBF · margin [ROCKET]"
    assert "margin [ROCKET] fit" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any("🚀" in t for t in _texts(fig))
    plt.close(fig)


def test_tick_labels_and_legends_with_emoji_draw_without_warnings():
    methods = ["random", "margin 🚀"]
    params = pd.DataFrame([dict(dataset="d", model="m", method=m, param=p, median=1.0, lower=0.5, upper=1.5, point=1.1)
                           for m in methods for p in ("A_max", "delta", "alpha", "beta")])
    fig, caught = _saved_without_warnings(lambda: plot.plot_forest(params, "d", "m"))
    assert not caught, caught
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["random", "margin [ROCKET]"]
    plt.close(fig)
    cover = pd.Series({"m/random": 0.9, "m/margin 🚀": 0.8})
    fig, caught = _saved_without_warnings(lambda: plot.plot_ppc(np.linspace(0, 1, 50), cover))
    assert not caught, caught
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["m/random", "m/margin [ROCKET]"]
    plt.close(fig)
    fc, table = _comparison_inputs({"random": 0.0, "margin 🚀": 0.1})
    fig, caught = _saved_without_warnings(lambda: plot.plot_comparison(fc, table, "d", "m"))
    assert not caught, caught
    assert "margin [ROCKET]" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)


def _median_lines(fig, methods):
    lines = {ln.get_label().split(" (")[0]: ln for ln in fig.axes[0].lines}
    return [lines[m] for m in methods]


def test_comparison_keeps_identical_methods_visible_and_says_so():
    fc, table = _comparison_inputs({"random": 0.0, "entropy": 0.0, "margin": 0.15})
    fig = plot.plot_comparison(fc, table, "d", "m")
    lines = _median_lines(fig, ["random", "entropy", "margin"])
    styles = {(ln.get_linestyle(), ln.get_marker()) for ln in lines}
    assert len(styles) == 3  # every method has its own line style and marker
    assert lines[0].get_markevery() != lines[1].get_markevery()  # staggered: the lower curve's markers show
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "entropy (same curve as random)" in legend
    assert "random" in legend and "margin" in legend  # distinct curves carry no note
    plt.close(fig)


@pytest.mark.parametrize("shift", [0.0, 1e-5])
def test_coincidence_is_numeric(shift):
    fc, table = _comparison_inputs({"random": 0.0, "entropy": shift})
    fig = plot.plot_comparison(fc, table, "d", "m")
    assert "entropy (same curve as random)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    assert plot._coinciding([(B, B * 0), (B, B * 0 + 0.02)], 1.0) == {}
    assert plot._coinciding([(B, B * 0), (B[:3], B[:3] * 0)], 1.0) == {1: 0}  # on the budgets they share
    assert plot._coinciding([(B, B * 0), (B + 1, B * 0)], 1.0) == {}  # no shared budget: nothing to compare


def test_decision_chart_keeps_identical_methods_visible():
    rows = [dict(dataset="d", model="m", method=m, target=0.8, pick=m == "random", alda_pick=False,
                 current_budget=80.0) for m in ("random", "entropy")]
    p = np.clip((B - 50) / 100, 0, 1)
    decision = SimpleNamespace(table=pd.DataFrame(rows), reach={("d", "m", "random"): (B, p),
                                                               ("d", "m", "entropy"): (B, p.copy())})
    fig = plot.plot_decision(decision)
    steps = [ln for ln in fig.axes[0].lines if not ln.get_label().startswith(("_", "observed"))]
    assert len(steps) == 2 and steps[0].get_linestyle() != steps[1].get_linestyle()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "entropy (same curve as random)" in legend and "random (pick)" in legend
    plt.close(fig)
