"""What the commands read: a training table split into features and targets, and a model
with the columns of a table that it needs, matched by name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from mdn.cli.tables import numeric_columns, read_table, select_columns
from mdn.estimator.model import MDN

__all__ = [
    "Table",
    "load_model",
    "model_inputs",
    "model_targets",
    "scored_rows",
    "training_table",
]


@dataclass
class Table:
    """Numeric features and targets taken from a table, with their names."""

    X: np.ndarray
    y: np.ndarray
    features: list[str]
    targets: list[str]
    frame: object  # the rows kept, as a pandas DataFrame
    groups: np.ndarray | None = None  # each kept row's group label, with --groups


def _split_list(texts: tuple[str, ...] | str | None) -> list[str]:
    if texts is None:
        return []
    items = [texts] if isinstance(texts, str) else list(texts)
    return [part.strip() for text in items for part in text.split(",") if part.strip()]


def training_table(
    path: str | os.PathLike,
    target: tuple[str, ...] | str,
    features: tuple[str, ...] | str | None = None,
    id_column: str | None = None,
    groups: str | None = None,
) -> Table:
    """Features and targets of a training table; rows without a usable value are dropped
    with a note on stderr.

    Parameters
    ----------
    path : path-like
        CSV or Parquet.
    target : str or tuple of str
        Target column names, comma-separated.
    features : str or tuple of str, optional
        Feature names or globs; by default every numeric column but the targets and the id.
    id_column : str, optional
        A column never used as a feature.
    groups : str, optional
        A column of group labels (a water body, a dataset), never used as a feature; rows
        without a label are dropped.

    Returns
    -------
    Table
    """
    table = read_table(path)
    targets = select_columns(table, _split_list(target), "target")
    if groups is not None and groups not in table.columns:
        raise ValueError(f"no groups column {groups!r} in {path}")
    excluded = set(targets) | {c for c in (id_column, groups) if c}
    if features:
        names = select_columns(table, _split_list(features), "feature")
        overlap = sorted(set(names) & set(targets))
        if overlap:
            raise ValueError(f"column(s) {', '.join(overlap)} cannot be both feature and target")
    else:
        import pandas as pd

        names = [
            str(c)
            for c in table.columns
            if str(c) not in excluded and pd.api.types.is_numeric_dtype(table[c])
        ]
        if not names:
            raise ValueError(
                f"{path}: no numeric column is left for features; name them with --features"
            )
    X = numeric_columns(table, names, "feature")
    y = numeric_columns(table, targets, "target")
    keep = np.isfinite(X).all(axis=1) & ~np.isnan(y).all(axis=1)
    if groups is not None:
        keep &= table[groups].notna().to_numpy()
    if not keep.any():
        raise ValueError(f"{path}: no row has finite features and an observed target")
    if not keep.all():
        click.echo(
            f"mdn: note: {int((~keep).sum())} of {len(keep)} rows dropped (a feature missing or "
            f"not finite, every target missing{', or no group' if groups else ''})",
            err=True,
        )
    labels = None if groups is None else table[groups].to_numpy()[keep].astype(str)
    return Table(X[keep], y[keep], names, targets, table[keep].reset_index(drop=True), labels)


def load_model(path: str | os.PathLike) -> MDN:
    """The model file at ``path``, verified (``mdn.load``).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    MDN
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    return MDN.load(path)


def model_inputs(model: MDN, table: object) -> tuple[np.ndarray, np.ndarray]:
    """The columns ``model`` was trained on, taken from ``table`` by name.

    Parameters
    ----------
    model : MDN
        Fitted on named features (the ``mdn fit`` command always records them).
    table : pandas.DataFrame

    Returns
    -------
    X : pandas.DataFrame
        Those columns as float64, every row, NaN kept.
    usable : ndarray of bool
        The rows whose features are all finite.
    """
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise ValueError(
            "the model does not record its feature names (fitted on an array); "
            "refit it with `mdn fit` or on a DataFrame"
        )
    names = [str(n) for n in names]
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ValueError(f"the table lacks the model's feature column(s): {', '.join(missing)}")
    values = numeric_columns(table, names, "feature")
    X = table[names].astype(np.float64).reset_index(drop=True)
    return X, np.isfinite(values).all(axis=1)


def model_targets(model: MDN) -> list[str]:
    """The model's target names (``y0``, ``y1``... where it was fitted without names).

    Parameters
    ----------
    model : MDN

    Returns
    -------
    list of str
    """
    names = getattr(model, "target_names_", None)
    return [str(n) for n in names] if names else [f"y{d}" for d in range(model.n_outputs_)]


def scored_rows(model: MDN, table: object, data: object) -> tuple[object, np.ndarray, np.ndarray]:
    """The rows of ``table`` that ``model`` can be scored on: its features all finite and at
    least one of its targets observed.

    Parameters
    ----------
    model : MDN
    table : pandas.DataFrame
    data : path-like
        Where the table came from, for messages.

    Returns
    -------
    X : pandas.DataFrame
        The model's features, those rows only.
    y : ndarray of shape (rows, D)
        Its targets, NaN where missing.
    rows : ndarray of int
        Their positions in ``table``.
    """
    X, usable = model_inputs(model, table)
    names = model_targets(model)
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ValueError(f"the table lacks the model's target column(s): {', '.join(missing)}")
    y = numeric_columns(table, names, "target")
    rows = np.flatnonzero(usable & ~np.isnan(y).all(axis=1))
    if not len(rows):
        raise ValueError(f"{data}: no row has the model's features and an observed target")
    return X.iloc[rows], y[rows], rows
