"""What users pass as data (NumPy, pandas, polars, torch), read into arrays, and back out."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_array, validate_data

#: float32's largest number: the network's inputs and outputs must stay within it.
FLOAT32_MAX = float(np.finfo(np.float32).max)

__all__ = [
    "FLOAT32_MAX",
    "check_scaled",
    "column_names",
    "like_input",
    "num_rows",
    "observed_rows",
    "row_groups",
    "scored_targets",
    "to_numpy",
    "training_targets",
    "validated_x",
]


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
        data = data.detach().cpu()
        if data.is_floating_point() and data.dtype not in (
            torch.float16,
            torch.float32,
            torch.float64,
        ):
            data = data.to(torch.float64)  # bfloat16 and kin have no NumPy type
        return data.numpy()
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


def observed_rows(y: np.ndarray) -> np.ndarray:
    """The rows with at least one observed target; the others are to be dropped, with a
    warning.

    Parameters
    ----------
    y : ndarray of shape (n, D)

    Returns
    -------
    ndarray of bool, shape (n,)

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
            stacklevel=5,  # the caller of MDN.fit
        )
    return ~unobserved


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


def training_targets(y: object) -> tuple[np.ndarray, bool]:
    """The targets of a fit as float64 (n, D), and whether they were one-dimensional.

    NaN marks a missing value (training marginalises it out); infinity is refused.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, D)

    Returns
    -------
    y : ndarray of shape (n, D)
    output_1d : bool

    Raises
    ------
    ValueError
        For no targets, no target columns, or infinity (named by row and column).
    """
    if y is None:
        raise ValueError("MDN requires y to be passed, but the target y is None")
    if getattr(y, "ndim", 0) == 2 and y.shape[1] == 0:
        raise ValueError("y has no target columns; pass at least one")
    y = check_array(
        to_numpy(y), ensure_2d=False, dtype=np.float64, input_name="y", ensure_all_finite=False
    )
    infinite = np.isinf(y.reshape(len(y), -1))
    if infinite.any():
        row = int(np.flatnonzero(infinite.any(axis=1))[0])
        raise ValueError(
            f"Input y contains infinity in row {row}, column "
            f"{int(np.flatnonzero(infinite[row])[0])}; drop those rows, or mark the values "
            "missing (NaN)"
        )
    if y.ndim == 2 and y.shape[1] == 0:
        raise ValueError("y has no target columns; pass at least one")
    return y.reshape(len(y), -1), y.ndim == 1


def check_scaled(
    scaled: np.ndarray, name: str, first_row: int = 0, limit: float = FLOAT32_MAX
) -> None:
    """Refuse scaled values that the float32 network cannot take, naming the row and column.

    Parameters
    ----------
    scaled : ndarray of shape (n, p)
        Values after the fitted scaling, in float64.
    name : str
        What they are ("X" or "y").
    first_row : int
        The row number of ``scaled[0]`` in what the user passed (for chunks).
    limit : float
        The largest magnitude allowed (float32's largest number; infinity for raw data).

    Raises
    ------
    ValueError
        For NaN or infinity ("Input X contains NaN or infinity in row ...") or a value
        beyond float32's range after scaling.
    """
    not_finite = ~np.isfinite(scaled)
    if not_finite.any():
        problem = f"Input {name} contains NaN or infinity"
        _refuse(not_finite, problem, "drop or impute those rows", first_row)
    if limit < math.inf:
        too_large = np.abs(scaled) > limit
        if too_large.any():
            problem = f"Input {name} has values beyond float32's range after scaling"
            advice = "rescale that column, or fit on data that covers its range"
            _refuse(too_large, problem, advice, first_row)


def _refuse(bad: np.ndarray, problem: str, advice: str, first_row: int) -> None:
    rows = np.flatnonzero(bad.any(axis=1))
    row, column = rows[0], int(np.flatnonzero(bad[rows[0]])[0])
    last = first_row + len(bad) - 1
    more = f" ({len(rows)} such rows in rows {first_row} to {last})" if len(rows) > 1 else ""
    raise ValueError(f"{problem} in row {first_row + row}, column {column}{more}; {advice}")


def validated_x(model: object, X: object, reset: bool, **kwargs: object) -> np.ndarray:
    """``X`` through scikit-learn's ``validate_data`` (finiteness left to ``check_scaled``),
    naming the columns of a DataFrame that are not numbers when the conversion fails.

    Parameters
    ----------
    model : MDN
    X : array-like
    reset : bool
        True at fit (records ``n_features_in_`` and feature names), False after.
    **kwargs
        Passed on to ``validate_data``.

    Returns
    -------
    ndarray
    """
    try:
        return validate_data(model, to_numpy(X), reset=reset, ensure_all_finite=False, **kwargs)
    except ValueError as error:
        select = getattr(X, "select_dtypes", None)  # pandas
        if select is None or "could not convert" not in str(error):
            raise
        columns = [str(c) for c in select(exclude=["number", "bool"]).columns]
        raise ValueError(
            f"{error}: column(s) {columns} of X are not numbers; drop or encode them"
        ) from None


def scored_targets(y: object, n_outputs: int, n_rows: int) -> np.ndarray:
    """Targets whose density a fitted model is to score, as float64 (n, D).

    Parameters
    ----------
    y : array-like of shape (n,) or (n, D)
        NaN marks a missing value.
    n_outputs : int
        The model's target dimension D.
    n_rows : int
        The rows of the inputs they go with.

    Returns
    -------
    ndarray of shape (n, D)

    Raises
    ------
    ValueError
        For no targets, the wrong number of columns or rows, or infinity.
    """
    if y is None:
        raise ValueError("y is None; pass the targets whose density to evaluate")
    y = check_array(
        to_numpy(y),
        ensure_2d=False,
        dtype=np.float64,
        input_name="y",
        ensure_all_finite="allow-nan",
    )
    if y.ndim == 1 and n_outputs == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(
            f"y must have {n_outputs} target column(s) as at fit time, got shape {y.shape}"
        )
    if len(y) != n_rows:
        raise ValueError(f"X and y have different numbers of rows: {n_rows} and {len(y)}")
    return y


def row_groups(groups: object, n_rows: int) -> np.ndarray:
    """The group labels of a fit's rows (a water body, a contributing dataset), checked.

    Parameters
    ----------
    groups : array-like of shape (n,)
        Any hashable labels: strings, integers.
    n_rows : int
        The rows of the inputs they go with.

    Returns
    -------
    ndarray of shape (n,)

    Raises
    ------
    ValueError
        For another number of labels than rows, or a missing label.
    """
    labels = np.asarray(to_numpy(groups), dtype=object)
    if labels.ndim != 1 or len(labels) != n_rows:
        raise ValueError(f"groups must hold one label per row ({n_rows}), got shape {labels.shape}")
    missing = [i for i, v in enumerate(labels) if v is None or (isinstance(v, float) and v != v)]
    if missing:
        raise ValueError(
            f"groups has no label in {len(missing)} rows (first row {missing[0]}); give every "
            "row a group, or drop those rows"
        )
    return labels
