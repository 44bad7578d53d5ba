"""palm-bayes: Bayesian PALM learning-curve forecasts for active learning."""

from . import _compat  # noqa: F401  (first: its filter of ArviZ's import-time announcement)
from .curve import PARAMETERS, budget_curve, budget_to_reach, episodes_to_reach, labels_to_reach, palm_curve
from .data import load_curves, read_csv_curves
from .errors import InputError, OutputError
from .pointfit import PalmPyOptions, PointFit, fit_curve

__version__ = "0.1.0"

__all__ = [
    "PARAMETERS",
    "InputError",
    "OutputError",
    "PalmPyOptions",
    "PointFit",
    "budget_curve",
    "budget_to_reach",
    "episodes_to_reach",
    "fit_curve",
    "labels_to_reach",
    "load_curves",
    "palm_curve",
    "read_csv_curves",
]
