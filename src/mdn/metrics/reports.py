"""Tables of scores for a model's predictions: ``report`` and ``evaluate`` (all targets
pooled, as ``MDN.evaluate`` gives them) and ``per_target`` (one row of scores per target, with
the remote-sensing metrics for positive targets, as ``mdn evaluate`` prints them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from mdn.metrics.points import mae, retrieval_scores, rmse
from mdn.metrics.scores import (
    LEVELS,
    Distribution,
    calibration_error,
    coverage,
    crps,
    nll,
    observed_targets,
    pit,
)

if TYPE_CHECKING:
    from typing import Protocol

    from mdn.distributions.mixture import GaussianMixture
    from mdn.distributions.transforms import LogGaussianMixture

    class Predictor(Protocol):
        """What ``evaluate`` needs of a model (``MDN`` has it)."""

        def predict_dist(self, X: ArrayLike) -> GaussianMixture | LogGaussianMixture: ...

        def predict(self, X: ArrayLike, point: str = ...) -> ArrayLike: ...


__all__ = ["evaluate", "per_target", "report"]


def report(
    dist: Distribution,
    y: ArrayLike,
    points: dict[str, np.ndarray] | None = None,
    levels: Sequence[float] = LEVELS,
) -> dict[str, float]:
    """NLL, CRPS, calibration error, interval coverage and errors of point estimates.

    Parameters
    ----------
    dist : GaussianMixture or LogGaussianMixture
        The predicted distributions, batch shape (N,).
    y : array-like of shape (N,) or (N, D)
    points : dict of str to array, optional
        Point estimates by name (such as ``{"mean": ..., "top": ...}``), each the shape of
        ``y``: their RMSE and MAE are reported as ``rmse_<name>`` and ``mae_<name>``.
    levels : sequence of float
        Nominal coverages of the central intervals to check.

    Returns
    -------
    dict of str to float
        ``n``, ``nll``, ``crps`` (the mean), ``calibration_error``, ``coverage_<level>``
        (level in %) and ``rmse_<name>`` / ``mae_<name>`` for each of ``points``.
    """
    out = {
        "n": float(len(dist)),
        "nll": nll(dist, y),
        "crps": float(np.mean(crps(dist, y))),
        "calibration_error": calibration_error(pit(dist, y)),
    }
    for level, share in coverage(dist, y, levels).items():
        out[f"coverage_{round(100 * level):d}"] = share
    for name, point in (points or {}).items():
        out[f"rmse_{name}"] = rmse(point, y)
        out[f"mae_{name}"] = mae(point, y)
    return out


def evaluate(
    model: Predictor,
    X: ArrayLike,
    y: ArrayLike,
    points: Sequence[str] = ("mean", "top"),
    levels: Sequence[float] = LEVELS,
) -> dict[str, float]:
    """``report`` for a fitted model's predictions of ``X`` (anything with ``predict_dist``
    and ``predict(X, point=...)``, such as ``MDN``).

    Parameters
    ----------
    model : MDN or similar
        Fitted.
    X : array-like of shape (N, p)
    y : array-like of shape (N,) or (N, D)
    points : sequence of str
        Point estimates (``predict``'s ``point``) whose errors to report.
    levels : sequence of float
        As in ``report``.

    Returns
    -------
    dict
        ``n``, ``nll``, ``crps``, ``calibration_error``, ``coverage_<level>`` and
        ``rmse_<point>`` / ``mae_<point>`` for each of ``points``; ``pandas.Series(result)``
        makes it a table.
    """
    dist = model.predict_dist(X)
    targets = observed_targets(dist, y).cpu().numpy()
    estimates = {
        p: np.asarray(model.predict(X, point=p), dtype=np.float64).reshape(targets.shape)
        for p in points
    }
    return report(dist, targets, estimates, levels)


def per_target(
    dist: Distribution,
    y: ArrayLike,
    point: ArrayLike,
    coverage_level: float = 0.9,
) -> list[dict[str, float]]:
    """Scores of each target on its own: its marginal's NLL, CRPS and interval coverage, and
    the point estimates' RMSE; for a target whose observations are all positive, also the
    remote-sensing metrics (``retrieval_scores``: MdSA, SSPB, log-space MAE and bias, slope,
    the share of invalid pairs).

    Parameters
    ----------
    dist : GaussianMixture or LogGaussianMixture
        The predicted distributions, batch shape (N,).
    y : array-like of shape (N,) or (N, D)
        Observations; NaN marks a missing one, left out of that target's scores.
    point : array-like
        Point estimates, the shape of ``y``.
    coverage_level : float
        Nominal coverage of the central interval whose hit rate is reported.

    Returns
    -------
    list of dict
        One dict per target: ``n``, ``nll``, ``crps``, ``coverage_<level>``, ``rmse``, and
        for positive targets ``nll_log10`` (the NLL of log10(y), as retrieval papers give
        it) and the keys of ``retrieval_scores``.
    """
    y = np.asarray(y, dtype=np.float64).reshape(len(dist), -1)
    point = np.asarray(point, dtype=np.float64).reshape(y.shape)
    rows = []
    for d in range(y.shape[1]):
        seen = ~np.isnan(y[:, d])
        if not seen.any():
            raise ValueError(f"target {d} has no observed value to score")
        marginal, observed = dist.marginal(d)[np.flatnonzero(seen)], y[seen, d]
        level = round(100 * coverage_level)
        row = {
            "n": float(seen.sum()),
            "nll": nll(marginal, observed),
            "crps": float(np.mean(crps(marginal, observed))),
            f"coverage_{level:d}": coverage(marginal, observed, [coverage_level])[coverage_level],
            "rmse": rmse(point[seen, d], observed),
        }
        if np.all(observed > 0):  # log10(y) has density p(y) y ln 10, as the field reports
            row["nll_log10"] = row["nll"] - float(np.mean(np.log(observed * np.log(10))))
            row.update(retrieval_scores(point[seen, d], observed))
        rows.append(row)
    return rows
