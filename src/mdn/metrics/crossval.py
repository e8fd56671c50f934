"""Repeated random train/test splits: every method fitted on the same training rows and
scored on the same test rows, as retrieval papers compare algorithms.

Split ``s`` is ``numpy.random.RandomState(s).permutation(n)``, its first rows for training
and the last ``test_size`` share for testing, so that any tool can rebuild the same splits.
The methods are unfitted estimators (``MDN(...)``, or any regressor with ``predict_dist``),
cloned for every fit: this module knows nothing of the estimator it scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, clone

from mdn.metrics.points import retrieval_scores, rmse
from mdn.metrics.reports import per_target

__all__ = ["cross_validate", "protocol_splits", "summarise"]

Baseline = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def protocol_splits(
    n: int, splits: Sequence[int], test_size: float = 0.5
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training and test rows of each split: ``RandomState(s).permutation(n)`` cut once.

    Parameters
    ----------
    n : int
        Rows in all.
    splits : sequence of int
        The seeds ``s``.
    test_size : float
        Share of rows for testing, in (0, 1); training takes ``n - ceil(n * test_size)``
        (``n // 2`` at 0.5).

    Returns
    -------
    list of (ndarray, ndarray)
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size}")
    n_train = n - math.ceil(n * test_size - 1e-9)
    if n_train < 2 or n - n_train < 1:
        raise ValueError(f"{n} rows leave no room for training and testing at {test_size}")
    out = []
    for seed in splits:
        order = np.random.RandomState(seed).permutation(n)
        out.append((order[:n_train], order[n_train:]))
    return out


def _score_model(
    model: BaseEstimator, X: np.ndarray, y: np.ndarray, point: str | None
) -> list[dict]:
    estimate = np.asarray(model.predict(X, point=point), dtype=np.float64)
    return per_target(model.predict_dist(X), y, estimate)


def _score_baseline(estimate: np.ndarray, y: np.ndarray) -> list[dict]:
    y = y.reshape(len(y), -1)
    estimate = estimate.reshape(y.shape)
    rows = []
    for d in range(y.shape[1]):
        row = {"n": float(len(y)), "rmse": rmse(estimate[:, d], y[:, d])}
        if np.all(y[:, d] > 0):
            row.update(retrieval_scores(estimate[:, d], y[:, d]))
        rows.append(row)
    return rows


def _one_fit(
    template: BaseEstimator, X, y, train, test, seed: int, point: str | None
) -> list[dict]:
    start = time.perf_counter()
    model = clone(template)
    quiet = {"verbose": 0} if "verbose" in model.get_params() else {}
    if model.get_params().get("random_state", 0) is None:  # unset: the split's seed
        quiet["random_state"] = seed
    model = model.set_params(**quiet).fit(X[train], y[train])
    seconds = time.perf_counter() - start
    scores = _score_model(model, X[test], y[test], point)
    for row in scores:
        row["fit_s"] = seconds
    return scores


def cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    methods: Mapping[str, BaseEstimator],
    *,
    splits: Sequence[int] = range(20),
    test_size: float = 0.5,
    point: str = "median",
    baselines: Mapping[str, np.ndarray] | None = None,
    n_jobs: int | None = None,
) -> dict[str, list[list[dict[str, float]]]]:
    """Fit each of ``methods`` on every split's training rows and score it on its test rows.

    Parameters
    ----------
    X : ndarray of shape (n, p)
    y : ndarray of shape (n,) or (n, D)
    methods : mapping of str to estimator
        Unfitted estimators by method name (``MDN(...)``), cloned for each fit and run with
        ``verbose=0``; an unset ``random_state`` (None) becomes the split's seed.
    splits : sequence of int
        Split seeds (see ``protocol_splits``).
    test_size : float
    point : str
        The point estimate the point metrics score.
    baselines : mapping of str to ndarray, optional
        Estimates of ``y`` by other methods for every row (such as OC4's), scored on the same
        test rows.
    n_jobs : int, optional
        Fits run side by side (joblib processes); each fit uses one thread.

    Returns
    -------
    dict
        For each method (baselines included), a list over splits of a list over targets of
        score dicts (``mdn.metrics.per_target``'s keys, and ``fit_s``).
    """
    from joblib import Parallel, delayed

    y = np.asarray(y, dtype=np.float64)
    cuts = protocol_splits(len(y), list(splits), test_size)
    jobs = [
        (name, delayed(_one_fit)(template, X, y, train, test, seed, point))
        for name, template in methods.items()
        for seed, (train, test) in zip(splits, cuts, strict=True)
    ]
    done = Parallel(n_jobs=n_jobs)(job for _, job in jobs)
    results: dict[str, list] = {name: [] for name in methods}
    for (name, _), scores in zip(jobs, done, strict=True):
        results[name].append(scores)
    for name, estimate in (baselines or {}).items():
        results[name] = [_score_baseline(estimate[test], y[test]) for _, test in cuts]
    return results


def summarise(
    results: Mapping[str, list[list[dict[str, float]]]], target_names: Sequence[str]
) -> list[dict[str, object]]:
    """Mean and standard deviation over splits of every score, a row per method and target.

    Parameters
    ----------
    results : dict
        ``cross_validate``'s.
    target_names : sequence of str

    Returns
    -------
    list of dict
        ``method``, ``target``, ``splits``, and ``<score>_mean`` / ``<score>_std`` (the
        sample standard deviation over splits; 0 for one split).
    """
    rows = []
    for method, per_split in results.items():
        for d, target in enumerate(target_names):
            scores = [split[d] for split in per_split]
            row: dict[str, object] = {"method": method, "target": target, "splits": len(scores)}
            for key in scores[0]:
                values = np.array([s[key] for s in scores], dtype=np.float64)
                row[f"{key}_mean"] = float(values.mean())
                row[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            rows.append(row)
    return rows
