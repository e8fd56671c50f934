"""What users pass as data (NumPy, pandas, polars, torch), read into arrays, and back out."""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["column_names", "drop_unobserved_rows", "like_input", "num_rows", "to_numpy"]


def to_numpy(data: object) -> object:
    """Torch tensors to NumPy; everything else passes to scikit-learn's validation.

    Parameters
    ----------
    data : array-like

    Returns
    -------
    ndarray or the input unchanged
    """
    if isinstance(data, torch.Tensor):
        return data.detach().cpu().numpy()
    return data


def num_rows(data: object) -> int:
    """The number of rows of an array-like (without converting it).

    Parameters
    ----------
    data : array-like

    Returns
    -------
    int
    """
    if hasattr(data, "shape"):
        return data.shape[0]
    if hasattr(data, "__len__"):
        return len(data)
    return np.asarray(data).shape[0]  # array-likes with only __array__


def column_names(y: object) -> list[str] | None:
    """The column names of a pandas/polars target (a Series' name), else None.

    Parameters
    ----------
    y : array-like

    Returns
    -------
    list of str or None
    """
    if hasattr(y, "columns"):
        return [str(c) for c in y.columns]
    name = getattr(y, "name", None)
    return None if name is None or isinstance(y, np.ndarray) else [str(name)]


def drop_unobserved_rows(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop, with a warning, the rows whose targets are all missing (NaN).

    Parameters
    ----------
    X : ndarray of shape (n, p)
    y : ndarray of shape (n, D)

    Returns
    -------
    X, y : ndarray
        Without those rows.

    Raises
    ------
    ValueError
        If a target column has no observed value at all.
    """
    unobserved = np.isnan(y).all(axis=1)
    never = np.flatnonzero(np.isnan(y).all(axis=0))
    if len(never):
        raise ValueError(
            f"target column(s) {never.tolist()} have no observed value (all NaN); drop them"
        )
    if unobserved.any():
        warnings.warn(
            f"{int(unobserved.sum())} of {len(y)} rows have every target missing "
            "(NaN) and were dropped",
            UserWarning,
            stacklevel=3,
        )
    return X[~unobserved], y[~unobserved]


def like_input(values: np.ndarray, X: object, names: list[str] | None) -> object:
    """A pandas Series/DataFrame on X's index when X was a pandas DataFrame, else ``values``.

    Parameters
    ----------
    values : ndarray of shape (n,) or (n, D)
    X : array-like
        What the user passed.
    names : list of str or None
        Target names for the Series' name or the DataFrame's columns.

    Returns
    -------
    ndarray, Series or DataFrame
    """
    if not type(X).__module__.startswith("pandas"):
        return values
    import pandas as pd

    if values.ndim == 1:
        return pd.Series(values, index=X.index, name=names[0] if names else None)
    return pd.DataFrame(values, index=X.index, columns=names)
