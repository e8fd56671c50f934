"""Repeated train/test splits: every method fitted on the same training rows and scored on
the same test rows, as retrieval papers compare algorithms.

Random splits: split ``s`` is ``numpy.random.RandomState(s).permutation(n)``, its first rows
for training and the last ``test_size`` share for testing, so that any tool can rebuild the
same splits. Leave-groups-out splits: split ``s`` holds out whole groups (water bodies,
contributing datasets) drawn by scikit-learn's ``GroupShuffleSplit`` with seed ``s``, the
estimate of how a model does where nobody sampled for its training.
The methods are unfitted estimators (``MDN(...)``, or any regressor with ``predict_dist``),
cloned for every fit: this module knows nothing of the estimator it scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, clone

from mdn.metrics.points import retrieval_scores, rmse
from mdn.metrics.reports import per_target

__all__ = ["cross_validate", "group_splits", "protocol_splits", "summarise", "summarise_groups"]

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


def group_splits(
    groups: ArrayLike, splits: Sequence[int], test_groups: int | float = 4
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training and test rows of each split, the test rows whole groups: split ``s`` holds out
    the groups that ``GroupShuffleSplit(test_size=test_groups, random_state=s)`` draws.

    Splits that keep each group (a water body, a contributing dataset) whole estimate how a
    model does on groups it has never seen, which random rows cannot.

    Parameters
    ----------
    groups : array-like of shape (n,)
        Each row's group label.
    splits : sequence of int
        The seeds ``s``.
    test_groups : int or float
        Groups held out per split (an integer), or their share of the groups (in (0, 1)).

    Returns
    -------
    list of (ndarray, ndarray)
    """
    from sklearn.model_selection import GroupShuffleSplit

    labels = np.asarray(groups).astype(str)
    n_groups = len(np.unique(labels))
    held_out = test_groups if isinstance(test_groups, float) else int(test_groups)
    if n_groups < 2 or (isinstance(held_out, int) and not 0 < held_out < n_groups):
        raise ValueError(
            f"{n_groups} groups cannot be split into training groups and {test_groups} held "
            "out ones; give more groups or hold out fewer"
        )
    out = []
    for seed in splits:
        splitter = GroupShuffleSplit(n_splits=1, test_size=held_out, random_state=seed)
        out.append(next(splitter.split(labels, groups=labels)))
    return out


def _score_model(
    model: BaseEstimator, X: np.ndarray, y: np.ndarray, point: str | None
) -> list[dict]:
    estimate = np.asarray(model.predict(X, point=point), dtype=np.float64)
    return _per_target(model.predict_dist(X), y, estimate)


def _per_target(dist: object, y: np.ndarray, estimate: np.ndarray) -> list[dict]:
    """``per_target``, with an empty row (n = 0) for a target that these rows never observe
    (a held-out group without that product)."""
    y = y.reshape(len(y), -1)
    seen = ~np.isnan(y).all(axis=0)
    if seen.all():
        return per_target(dist, y, estimate)
    scored = iter(per_target(dist.marginal(list(np.flatnonzero(seen))), y[:, seen],
                             estimate.reshape(y.shape)[:, seen]))  # fmt: skip
    return [next(scored) if s else {"n": 0.0} for s in seen]


def _score_baseline(estimate: np.ndarray, y: np.ndarray) -> list[dict]:
    y = y.reshape(len(y), -1)
    estimate = estimate.reshape(y.shape)
    rows = []
    for d in range(y.shape[1]):
        seen = ~np.isnan(y[:, d])
        observed, guessed = y[seen, d], estimate[seen, d]
        row = {"n": float(seen.sum())}
        if seen.any():
            row["rmse"] = rmse(guessed, observed)
            if np.all(observed > 0):
                row.update(retrieval_scores(guessed, observed))
        rows.append(row)
    return rows


def _one_fit(template: BaseEstimator, X, y, groups, train, test, seed: int,
             point: str | None) -> tuple[list[dict], dict[str, list[dict]]]:  # fmt: skip
    """One fit on the training rows; its scores on the test rows, and on each held-out
    group's rows where there are groups."""
    start = time.perf_counter()
    model = clone(template)
    quiet = {"verbose": 0} if "verbose" in model.get_params() else {}
    if model.get_params().get("random_state", 0) is None:  # unset: the split's seed
        quiet["random_state"] = seed
    model = model.set_params(**quiet)
    fit_groups = {} if groups is None else {"groups": groups[train]}  # validate on groups too
    model.fit(X[train], y[train], **fit_groups)
    seconds = time.perf_counter() - start
    scores = _score_model(model, X[test], y[test], point)
    for row in scores:
        row["fit_s"] = seconds
    by_group = {}
    if groups is not None:
        for label in np.unique(groups[test]):
            rows = test[groups[test] == label]
            by_group[str(label)] = _score_model(model, X[rows], y[rows], point)
    return scores, by_group


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
    groups: ArrayLike | None = None,
    test_groups: int | float = 4,
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
        Split seeds (see ``protocol_splits`` and ``group_splits``).
    test_size : float
        The test rows' share, for random splits.
    point : str
        The point estimate the point metrics score.
    baselines : mapping of str to ndarray, optional
        Estimates of ``y`` by other methods for every row (such as OC4's), scored on the same
        test rows.
    n_jobs : int, optional
        Fits run side by side (joblib processes); each fit uses one thread.
    groups : array-like of shape (n,), optional
        Each row's group: the splits then hold out whole groups (``group_splits``), the
        models are fitted with the training rows' groups (their validation rows are whole
        groups too), and every held-out group is also scored on its own.
    test_groups : int or float
        With ``groups``: the groups held out per split, or their share.

    Returns
    -------
    dict
        For each method (baselines included), a list over splits of a list over targets of
        score dicts (``mdn.metrics.per_target``'s keys, and ``fit_s``). With ``groups``,
        also ``"by_group"``: for each method, a dict from group to a list (over the splits
        that held it out) of lists over targets of score dicts.
    """
    from joblib import Parallel, delayed

    y = np.asarray(y, dtype=np.float64)
    labels = None if groups is None else np.asarray(groups).astype(str)
    if labels is None:
        cuts = protocol_splits(len(y), list(splits), test_size)
    else:
        cuts = group_splits(labels, list(splits), test_groups)
    jobs = [
        (name, delayed(_one_fit)(template, X, y, labels, train, test, seed, point))
        for name, template in methods.items()
        for seed, (train, test) in zip(splits, cuts, strict=True)
    ]
    done = Parallel(n_jobs=n_jobs)(job for _, job in jobs)
    results: dict[str, list] = {name: [] for name in methods}
    by_group: dict[str, dict[str, list]] = {name: {} for name in methods}
    for (name, _), (scores, groups_scores) in zip(jobs, done, strict=True):
        results[name].append(scores)
        for label, rows in groups_scores.items():
            by_group[name].setdefault(label, []).append(rows)
    for name, estimate in (baselines or {}).items():
        results[name] = [_score_baseline(estimate[test], y[test]) for _, test in cuts]
        if labels is not None:
            by_group[name] = _baseline_by_group(estimate, y, labels, cuts)
    if labels is not None:
        results["by_group"] = by_group
    return results


def _baseline_by_group(estimate, y, labels, cuts) -> dict[str, list]:
    out: dict[str, list] = {}
    for _, test in cuts:
        for label in np.unique(labels[test]):
            rows = test[labels[test] == label]
            out.setdefault(str(label), []).append(_score_baseline(estimate[rows], y[rows]))
    return out


def summarise(
    results: Mapping[str, list[list[dict[str, float]]]], target_names: Sequence[str]
) -> list[dict[str, object]]:
    """Mean and standard deviation over splits of every score, a row per method and target.

    Parameters
    ----------
    results : dict
        ``cross_validate``'s (its ``"by_group"`` entry is left to ``summarise_groups``).
    target_names : sequence of str

    Returns
    -------
    list of dict
        ``method``, ``target``, ``splits``, and ``<score>_mean`` / ``<score>_std`` (the
        sample standard deviation over splits; 0 for one split). A score missing in a split
        (a target that split's test rows never observe) is left out of its mean.
    """
    rows = []
    for method, per_split in results.items():
        if method == "by_group":
            continue
        for d, target in enumerate(target_names):
            head = {"method": method, "target": target, "splits": len(per_split)}
            rows.append(head | _spread([split[d] for split in per_split]))
    return rows


def summarise_groups(
    by_group: Mapping[str, Mapping[str, list[list[dict[str, float]]]]],
    target_names: Sequence[str],
) -> list[dict[str, object]]:
    """Mean over the splits that held each group out of every score, a row per method,
    target and group (where the group observes that target).

    Parameters
    ----------
    by_group : dict
        ``cross_validate(..., groups=...)["by_group"]``.
    target_names : sequence of str

    Returns
    -------
    list of dict
        ``method``, ``target``, ``group``, ``splits`` (how many held it out) and
        ``<score>_mean`` / ``<score>_std``.
    """
    rows = []
    for method, groups in by_group.items():
        for d, target in enumerate(target_names):
            for group in sorted(groups):
                scores = [split[d] for split in groups[group]]
                if not any(s.get("n") for s in scores):
                    continue
                head = {"method": method, "target": target, "group": group,
                        "splits": len(scores)}  # fmt: skip
                rows.append(head | _spread(scores))
    return rows


def _spread(scores: list[dict[str, float]]) -> dict[str, float]:
    """The mean and sample standard deviation of each score over the dicts that have it."""
    out = {}
    keys = dict.fromkeys(key for s in scores for key in s)  # in the order first seen
    for key in keys:
        values = np.array([s[key] for s in scores if key in s], dtype=np.float64)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out
