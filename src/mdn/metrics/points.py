"""Errors of point estimates: RMSE and MAE in the units of ``y``, and the log-ratio metrics
that remote sensing reports for positive, skewed quantities such as chlorophyll-a.

The log-ratio metrics (MdSA, SSPB, log-space MAE and bias, slope) compare estimates and
observations on a logarithmic scale. As the field does (Seegers et al. 2018; Morley et al.
2018; Pahlevan et al. 2020), a pair in which either value is not positive or not finite is
left out of them, and ``invalid_share`` counts such pairs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "invalid_share",
    "log_bias",
    "log_mae",
    "mae",
    "mdsa",
    "retrieval_scores",
    "rmse",
    "slope",
    "sspb",
    "valid_pairs",
]


def _points(point: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    point, y = np.asarray(point, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if point.shape != y.shape:
        raise ValueError(f"point estimates {point.shape} and y {y.shape} differ in shape")
    if point.size == 0:
        raise ValueError("no point estimates to score (empty arrays)")
    return point, y


def rmse(point: ArrayLike, y: ArrayLike) -> float:
    """Root mean squared error of point estimates (all dimensions pooled).

    Parameters
    ----------
    point : array-like
        Estimates, the shape of ``y``.
    y : array-like of shape (N,) or (N, D)

    Returns
    -------
    float
    """
    point, y = _points(point, y)
    return float(np.sqrt(np.mean((point - y) ** 2)))


def mae(point: ArrayLike, y: ArrayLike) -> float:
    """Mean absolute error of point estimates (all dimensions pooled).

    Parameters
    ----------
    point : array-like
        Estimates of ``y``, in its shape.
    y : array-like of shape (N,) or (N, D)

    Returns
    -------
    float
        In the units of ``y``.
    """
    point, y = _points(point, y)
    return float(np.mean(np.abs(point - y)))


def valid_pairs(point: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The pairs in which both the estimate and the observation are finite and positive.

    Parameters
    ----------
    point : array-like
        Estimates, the shape of ``y``.
    y : array-like
        Observations.

    Returns
    -------
    point, y : ndarray
        One-dimensional, the valid pairs only (all dimensions pooled).

    Raises
    ------
    ValueError
        If no pair is valid.
    """
    point, y = _points(point, y)
    keep = np.isfinite(point) & np.isfinite(y) & (point > 0) & (y > 0)
    if not keep.any():
        raise ValueError(
            f"none of the {point.size} pairs has a positive, finite estimate and target; "
            "log-ratio metrics (MdSA, SSPB, log-space MAE and bias, slope) need some"
        )
    return point[keep], y[keep]


def invalid_share(point: ArrayLike, y: ArrayLike) -> float:
    """Share of pairs left out of the log-ratio metrics: an estimate or an observation that
    is not positive or not finite.

    Parameters
    ----------
    point : array-like
        Estimates, the shape of ``y``.
    y : array-like
        Observations.

    Returns
    -------
    float
        Between 0 and 1.
    """
    point, y = _points(point, y)
    keep = np.isfinite(point) & np.isfinite(y) & (point > 0) & (y > 0)
    return float(1 - keep.mean())


def _log10_ratios(point: ArrayLike, y: ArrayLike) -> np.ndarray:
    point, y = valid_pairs(point, y)
    return np.log10(point) - np.log10(y)


def mdsa(point: ArrayLike, y: ArrayLike) -> float:
    """Median symmetric accuracy, %: ``100 (exp(median |ln(point / y)|) - 1)`` (Morley 2018).

    Parameters
    ----------
    point : array-like
        Estimates, the shape of ``y``; pairs that are not positive and finite are left out.
    y : array-like
        Observations.

    Returns
    -------
    float
    """
    ratios = np.log(10) * _log10_ratios(point, y)
    return float(100 * (np.exp(np.median(np.abs(ratios))) - 1))


def sspb(point: ArrayLike, y: ArrayLike) -> float:
    """Symmetric signed percentage bias, %: ``100 sign(m) (exp(|m|) - 1)``, m the median
    natural log ratio of estimates to observations (Morley 2018).

    Parameters
    ----------
    point : array-like
        Estimates in the shape of ``y``; pairs that are not positive and finite are left out.
    y : array-like
        Observations.

    Returns
    -------
    float
        Positive where the estimates run high.
    """
    m = float(np.log(10) * np.median(_log10_ratios(point, y)))
    return float(100 * np.sign(m) * (np.exp(abs(m)) - 1))


def log_mae(point: ArrayLike, y: ArrayLike) -> float:
    """Mean absolute error in log10 space: ``mean |log10(point) - log10(y)|``.

    Seegers et al. (2018) report ``10 ** log_mae`` as a multiplicative factor (1.5 means
    estimates off by a factor of 1.5 on average).

    Parameters
    ----------
    point : array-like
        Estimates, the shape of ``y``; pairs that are not positive and finite are left out.
    y : array-like
        Observations.

    Returns
    -------
    float
        In decades (log10 units).
    """
    return float(np.mean(np.abs(_log10_ratios(point, y))))


def log_bias(point: ArrayLike, y: ArrayLike) -> float:
    """Mean signed error in log10 space: ``mean(log10(point) - log10(y))``.

    Parameters
    ----------
    point : array-like
        Estimates, the shape of ``y``; pairs that are not positive and finite are left out.
    y : array-like
        Observations.

    Returns
    -------
    float
        In decades; positive where the estimates run high (``10 ** log_bias`` as a factor).
    """
    return float(np.mean(_log10_ratios(point, y)))


def slope(point: ArrayLike, y: ArrayLike) -> float:
    """Slope of the least-squares line of log10(estimate) on log10(observation).

    1 for estimates that follow the observations over their whole range; below 1 where
    they flatten out (high values underestimated, low ones overestimated).

    Parameters
    ----------
    point : array-like
        Estimates, the shape of ``y``; pairs that are not positive and finite are left out.
    y : array-like
        Observations.

    Returns
    -------
    float
        NaN where fewer than two valid observations differ.
    """
    point, y = valid_pairs(point, y)
    log_y, log_point = np.log10(y), np.log10(point)
    spread = np.sum((log_y - log_y.mean()) ** 2)
    if len(y) < 2 or spread == 0:
        return float("nan")
    return float(np.sum((log_y - log_y.mean()) * (log_point - log_point.mean())) / spread)


def retrieval_scores(point: ArrayLike, y: ArrayLike) -> dict[str, float]:
    """The log-ratio metrics of remote sensing for one quantity, in one dict.

    Parameters
    ----------
    point : array-like
        Estimates, the shape of ``y``.
    y : array-like
        Observations.

    Returns
    -------
    dict of str to float
        ``mdsa`` and ``sspb`` (%), ``log_mae`` and ``log_bias`` (decades), ``slope``,
        ``invalid`` (the share of pairs left out) and ``n_valid``.
    """
    valid_point, valid_y = valid_pairs(point, y)
    return {
        "mdsa": mdsa(valid_point, valid_y),
        "sspb": sspb(valid_point, valid_y),
        "log_mae": log_mae(valid_point, valid_y),
        "log_bias": log_bias(valid_point, valid_y),
        "slope": slope(valid_point, valid_y),
        "invalid": invalid_share(point, y),
        "n_valid": float(valid_y.size),
    }
