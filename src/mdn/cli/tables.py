"""Tables in and out of the command line: CSV or Parquet read with pandas, columns chosen by
name or glob and checked to be numeric, results written atomically."""

from __future__ import annotations

import fnmatch
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "atomic_output",
    "check_output_path",
    "numeric_columns",
    "read_table",
    "select_columns",
    "write_table",
]

READERS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
WRITERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _pandas():
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the mdn command reads tables with pandas: pip install 'mdn[io]'"
        ) from None
    return pd


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """The table at ``path``: CSV (``.csv``, ``.txt``), tab-separated (``.tsv``) or Parquet.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, an unknown suffix, or a file that does not parse as its suffix says.
    """
    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: unknown table type {path.suffix!r}; use {', '.join(READERS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    pd = _pandas()
    try:
        if kind == "parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except ImportError as error:
        raise ImportError(f"{path}: {error}; pip install 'mdn[io]'") from None
    except Exception as error:  # pandas and pyarrow raise many kinds for a broken file
        raise ValueError(f"{path} is not a readable {kind} table ({error})") from None
    if table.empty:
        raise ValueError(f"{path} holds no rows")
    return table


def select_columns(table: pd.DataFrame, patterns: list[str], what: str) -> list[str]:
    """The columns of ``table`` that ``patterns`` name: exact names or globs (``Rrs_*``).

    Parameters
    ----------
    table : pandas.DataFrame
    patterns : list of str
    what : str
        What the columns are for (``"target"``, ``"feature"``), for messages.

    Returns
    -------
    list of str
        In the order the patterns name them, each once.

    Raises
    ------
    ValueError
        Naming each pattern that matches no column, with the columns there are.
    """
    columns = [str(c) for c in table.columns]
    chosen: list[str] = []
    for pattern in patterns:
        hits = fnmatch.filter(columns, pattern) if _is_glob(pattern) else [pattern]
        missing = [h for h in hits if h not in columns]
        if not hits or missing:
            raise ValueError(
                f"no {what} column {pattern!r} in the table; its columns are {_listing(columns)}"
            )
        chosen += [h for h in hits if h not in chosen]
    return chosen


def numeric_columns(table: pd.DataFrame, columns: list[str], what: str) -> np.ndarray:
    """``table[columns]`` as float64, refusing text or other non-numeric columns.

    Parameters
    ----------
    table : pandas.DataFrame
    columns : list of str
    what : str
        What the columns are for, for messages.

    Returns
    -------
    ndarray of shape (rows, len(columns))

    Raises
    ------
    ValueError
        Naming the first non-numeric column and a value in it that is not a number.
    """
    pd = _pandas()
    for name in columns:
        column = table[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            numbers = pd.to_numeric(column, errors="coerce")
            bad = column[numbers.isna() & column.notna()]
            example = f" (row {bad.index[0]}: {bad.iloc[0]!r})" if len(bad) else ""
            raise ValueError(f"{what} column {name!r} is not numeric{example}")
    return table[columns].to_numpy(dtype=np.float64)


def check_output_path(path: str | os.PathLike, writers: dict[str, str] = WRITERS) -> Path:
    """``path`` checked before any work: a known suffix and an existing folder.

    Parameters
    ----------
    path : str or path-like
    writers : dict
        The suffixes allowed.

    Returns
    -------
    Path
    """
    path = Path(path)
    if path.suffix.lower() not in writers:
        raise ValueError(f"{path}: unknown output type {path.suffix!r}; use {', '.join(writers)}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    return path


class atomic_output:
    """A temporary path beside ``path`` that replaces it only when the block succeeds.

    Parameters
    ----------
    path : path-like
        The output; left untouched when the block raises.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        handle, name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=self.path.suffix
        )
        os.close(handle)
        self.temporary = Path(name)
        return self.temporary

    def __exit__(self, kind: type | None, *_: object) -> None:
        if kind is None:
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` to ``path`` (CSV or Parquet by suffix) atomically.

    Parameters
    ----------
    table : pandas.DataFrame
    path : str or path-like
    """
    path = check_output_path(path)
    with atomic_output(path) as temporary:
        if WRITERS[path.suffix.lower()] == "parquet":
            table.to_parquet(temporary, index=False)
        else:
            table.to_csv(temporary, index=False)


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _listing(columns: list[str], limit: int = 12) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f" ... ({len(columns)} in all)" if len(columns) > limit else "")
