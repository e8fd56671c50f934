"""Input and target scaling: scalers by name or any elementwise-affine scikit-learn transformer.

A fitted scaler is reduced to ``shift`` and ``scale`` vectors, ``z = (v - shift) / scale``:
an affine target scaling then folds exactly into the predicted mixture, and a model file
stores two vectors instead of a pickled object.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

__all__ = ["SCALERS", "AffineScaling", "fit_scaling", "warn_if_outliers_dominate"]

SCALERS = {
    "standard": StandardScaler,
    "robust": RobustScaler,
    "minmax": MinMaxScaler,
    "maxabs": MaxAbsScaler,
}


class AffineScaling:
    """``z = (v - shift) / scale`` per column.

    Parameters
    ----------
    shift, scale : array-like of shape (p,)
    """

    def __init__(self, shift: np.ndarray, scale: np.ndarray) -> None:
        self.shift = np.asarray(shift, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale ``values`` of shape (n, p).

        Parameters
        ----------
        values : ndarray of shape (n, p)

        Returns
        -------
        ndarray of shape (n, p)
        """
        return (values - self.shift) / self.scale


def make_scaler(spec: str | BaseEstimator | None, name: str) -> BaseEstimator | None:
    """The unfitted transformer for ``spec`` (a name, None, or a transformer to clone).

    Parameters
    ----------
    spec : str, transformer or None
        A key of ``SCALERS``, "none" or None for no scaling, or a scikit-learn
        transformer (cloned, not fitted).
    name : str
        The parameter's name, for error messages.

    Returns
    -------
    transformer or None
    """
    if spec is None or (isinstance(spec, str) and spec == "none"):
        return None
    if isinstance(spec, str):
        if spec not in SCALERS:
            raise ValueError(
                f"{name} must be one of {sorted(SCALERS)}, 'none', None or a scikit-learn "
                f"transformer, got {spec!r}"
            )
        return SCALERS[spec]()
    if not (hasattr(spec, "fit") and hasattr(spec, "transform")):
        raise TypeError(
            f"{name} must be a scaler name or an object with fit and transform (a scikit-learn "
            f"transformer), got {type(spec).__name__}"
        )
    return clone(spec)


def fit_scaling(spec: str | BaseEstimator | None, data: np.ndarray, name: str) -> AffineScaling:
    """Fit the scaler ``spec`` on ``data`` (n, p) and reduce it to an ``AffineScaling``.

    The fitted transformer is probed on points spread over the data's range; it must act
    on each column as ``a + b * v`` with ``b != 0``, which every scikit-learn scaler does.

    Parameters
    ----------
    spec : str, transformer or None
        As ``make_scaler`` takes it.
    data : ndarray of shape (n, p)
        May hold NaN (missing targets).
    name : str
        The parameter's name, for error messages.

    Returns
    -------
    AffineScaling
        The identity for no scaler.

    Raises
    ------
    ValueError
        If the transformer is not elementwise affine (for example a QuantileTransformer or
        PCA), with advice on what to use instead.
    """
    n_cols = data.shape[1]
    scaler = make_scaler(spec, name)
    if scaler is None:
        return AffineScaling(np.zeros(n_cols), np.ones(n_cols))
    scaler.fit(data)
    lo, hi = np.nanmin(data, axis=0), np.nanmax(data, axis=0)  # targets may have gaps
    span = np.where(hi > lo, hi - lo, 1.0)
    base = np.vstack([lo, lo + span])
    rng = np.random.default_rng(0)
    probes = lo + span * rng.uniform(-0.5, 1.5, size=(8, n_cols))
    try:
        out_base = np.asarray(scaler.transform(base), dtype=np.float64)
        out_probes = np.asarray(scaler.transform(probes), dtype=np.float64)
    except Exception as error:  # a transformer may reject probe points outside its domain
        raise ValueError(
            f"{name}: the fitted {type(scaler).__name__} failed on probe points "
            f"({error}); use an affine scaler"
        ) from error
    affine = out_base.shape == base.shape and out_probes.shape == probes.shape
    if affine:
        slope = (out_base[1] - out_base[0]) / span
        intercept = out_base[0] - slope * lo
        expected = intercept + slope * probes
        affine = (
            np.all(np.isfinite(out_probes))
            and np.all(slope != 0)
            and np.allclose(out_probes, expected, rtol=1e-6, atol=1e-9 * (1 + np.abs(expected)))
        )
    if not affine:
        raise ValueError(
            f"{name}: {type(scaler).__name__} does not scale each column affinely "
            "(v -> a + b*v with b != 0), so it cannot be folded into the predicted mixture "
            "or stored without pickle. Use 'standard', 'robust', 'minmax', 'maxabs' or None; "
            "put non-linear input transforms in a Pipeline before MDN, and use "
            "target_transform='log' for positive, skewed targets"
        )
    # z = intercept + slope * v  <=>  z = (v - shift) / scale
    return _keep_tiny_spreads(AffineScaling(-intercept / slope, 1.0 / slope), data, name)


def _keep_tiny_spreads(scaling: AffineScaling, data: np.ndarray, name: str) -> AffineScaling:
    """Standardise the columns whose real spread the scaler took for none.

    scikit-learn's scalers leave a column unscaled when its spread is below about 1e-15
    (absolute); a feature measured in tiny units then reaches the network as a constant.
    A spread is real when it is above float32's resolution of the column's magnitude.
    """
    lo, hi = np.nanmin(data, axis=0), np.nanmax(data, axis=0)
    spread = hi - lo
    magnitude = np.maximum(np.abs(lo), np.abs(hi))
    lost = (spread > 1e-6 * magnitude) & (spread / scaling.scale < 1e-6)
    if not lost.any():
        return scaling
    columns = np.flatnonzero(lost).tolist()
    warnings.warn(
        f"{name} left column(s) {columns} unscaled, taking their spread "
        f"({', '.join(f'{v:.3g}' for v in spread[lost])}) for none; they are standardised "
        "instead, so that the network sees them vary",
        UserWarning,
        stacklevel=6,  # the caller of MDN.fit
    )
    shift, scale = scaling.shift.copy(), scaling.scale.copy()
    shift[lost] = np.nanmean(data[:, lost], axis=0)
    scale[lost] = np.nanstd(data[:, lost], axis=0)
    return AffineScaling(shift, scale)


def warn_if_outliers_dominate(data: np.ndarray, name: str) -> None:
    """Warn where a few extreme values, not the bulk, set a column's standard deviation.

    A standard target scaling then shrinks the bulk of the targets towards 0 in the units
    the network sees, and the variance floor (``epsilon``, in those units) widens every
    interval. The robust scaler follows the bulk.

    Parameters
    ----------
    data : ndarray of shape (n, p)
        May hold NaN (missing values).
    name : str
        The parameter's name, for the message.
    """
    std = np.nanstd(data, axis=0)
    q1, q3 = np.nanpercentile(data, [25, 75], axis=0)
    bulk = (q3 - q1) / 1.349  # the standard deviation a normal bulk would have
    ratio = np.divide(std, bulk, out=np.zeros_like(std), where=bulk > 0)
    columns = np.flatnonzero(ratio > 10).tolist()
    if columns:
        warnings.warn(
            f"{name}: in column(s) {columns} the standard deviation is "
            f"{', '.join(f'{r:.0f}' for r in ratio[columns])} times the spread of the bulk "
            "(outliers?), so standard scaling lets a few values set the units of every "
            f"prediction and widen every interval; use {name}='robust', or check those values",
            UserWarning,
            stacklevel=5,  # the caller of MDN.fit
        )
