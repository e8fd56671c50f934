"""Tables of scores printed for people: one row per target (or method and target), the
columns in a fixed order, numbers to four significant digits."""

from __future__ import annotations

import click

__all__ = ["ORDER", "format_value", "print_table"]

#: Columns first in this order; the rest after them, as they come.
ORDER = ("method", "target", "group", "splits", "n", "nll", "nll_log10", "crps", "coverage_90",
         "rmse", "mdsa", "sspb", "log_mae", "log_bias", "slope", "invalid", "fit_s")  # fmt: skip


def format_value(value: object) -> str:
    """A cell: floats to 4 significant digits, whole numbers without decimals.

    Parameters
    ----------
    value : object

    Returns
    -------
    str
    """
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def _spread_rows(rows: list[dict]) -> list[dict]:
    """``x_mean`` and ``x_std`` merged into one cell ``x``: ``mean ± std``."""
    out = []
    for row in rows:
        merged = {}
        for key, value in row.items():
            if key.endswith("_mean"):
                name = key[: -len("_mean")]
                merged[name] = f"{format_value(value)} ± {format_value(row[name + '_std'])}"
            elif not key.endswith("_std"):
                merged[key] = value
        out.append(merged)
    return out


def _transposed(rows: list[dict], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """One column per method (and target), one row per score."""
    names = [" ".join(str(row[k]) for k in ("method", "target") if k in row) for row in rows]
    scores = [k for k in keys if k not in ("method", "target")]
    cells = [[k] + [format_value(row.get(k, "-")) for row in rows] for k in scores]
    return ["score", *names], cells


def print_table(rows: list[dict], spread: bool = False, transpose: bool = False) -> None:
    """Print ``rows`` as an aligned table on stdout.

    Parameters
    ----------
    rows : list of dict
    spread : bool
        Merge ``<name>_mean``/``<name>_std`` pairs into ``mean ± std`` cells.
    transpose : bool
        A column per row of ``rows`` (each named by its method and target), a row per score.
    """
    if spread:
        rows = _spread_rows(rows)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    keys.sort(key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))
    if transpose:
        keys, cells = _transposed(rows, keys)
    else:
        cells = [[format_value(row.get(k, "-")) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    click.echo("  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True)))
    for line in cells:
        click.echo("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
