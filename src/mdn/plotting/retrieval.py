"""The figure remote-sensing papers show for a retrieval, made from a fitted model and
held-out rows: observed against predicted with interval bars, a 1:1 line and the MdSA, SSPB
and slope; the PIT histogram; the training curve; the predicted density of chosen rows.
Needs the ``plot`` extra (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike

from mdn.metrics import pit, retrieval_scores
from mdn.plotting.backend import pyplot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mdn.estimator.model import MDN

__all__ = ["plot_retrieval"]


_MAX_BARS = 300  # more interval bars hide the points


def _scatter(ax: Axes, observed, estimate, lower, upper, name: str, log: bool) -> None:
    ax.scatter(observed, estimate, s=6, alpha=0.5, color="tab:blue", lw=0)
    bars = np.random.default_rng(0).permutation(len(observed))[:_MAX_BARS]
    ax.errorbar(
        observed[bars],
        estimate[bars],
        fmt="none",
        elinewidth=0.5,
        alpha=0.4,
        yerr=[estimate[bars] - lower[bars], upper[bars] - estimate[bars]],
        color="tab:blue",
    )
    both = np.concatenate([observed, lower, upper])
    both = both[np.isfinite(both) & ((both > 0) if log else True)]
    low, high = both.min(), both.max()
    ax.plot([low, high], [low, high], "k--", lw=1, label="1:1")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"observed {name}")
    ax.set_ylabel(f"predicted {name}")
    if np.all(observed > 0):
        s = retrieval_scores(estimate, observed)
        text = f"MdSA {s['mdsa']:.1f} %\nSSPB {s['sspb']:+.1f} %\nslope {s['slope']:.2f}"
        ax.text(
            0.04,
            0.96,
            text,
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
        )


def _pit_histogram(ax: Axes, values: np.ndarray) -> None:
    ax.hist(values[np.isfinite(values)], bins=20, range=(0, 1), density=True, color="tab:gray")
    ax.axhline(1, color="k", ls="--", lw=1)
    ax.set_xlabel("PIT (uniform when calibrated)")
    ax.set_ylabel("density")


def _training_curve(ax: Axes, history: dict) -> None:
    steps = history.get("step") or []
    ax.plot(steps, history.get("train_nll") or [], label="training")
    val = history.get("val_nll") or []
    if any(v is not None for v in val):
        ax.plot(steps, [np.nan if v is None else v for v in val], label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("NLL (scaled units)")
    ax.legend(fontsize=8)


def _densities(
    ax: Axes, model: MDN, X: ArrayLike, y: np.ndarray, rows: Sequence[int], log: bool
) -> None:
    chosen = X.iloc[list(rows)] if hasattr(X, "iloc") else np.asarray(X)[list(rows)]
    dist = model.predict_dist(chosen).marginal(0)
    lower, upper = dist.interval(0.998)
    low, high = float(lower.min()), float(upper.max())
    grid = np.geomspace(low, high, 400) if log and low > 0 else np.linspace(low, high, 400)
    values = torch.as_tensor(grid, dtype=torch.float64).reshape(-1, 1, 1)
    density = dist.log_prob(values.expand(-1, len(rows), 1)).exp().cpu().numpy()  # [G, rows]
    if log:  # the density of log10(y), whose peaks a log axis shows as they are
        density = density * grid[:, None] * np.log(10)
    for i, row in enumerate(rows):
        (line,) = ax.plot(grid, density[:, i], label=f"row {row}")
        if np.isfinite(y[row, 0]):
            ax.axvline(y[row, 0], color=line.get_color(), ls=":", lw=1)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("target (dotted: observed)")
    ax.set_ylabel("p(log10 y | x)" if log else "p(y | x)")
    ax.legend(fontsize=8)


def plot_retrieval(
    model: MDN,
    X: ArrayLike,
    y: ArrayLike,
    *,
    point: str = "top",
    coverage: float = 0.9,
    rows: Sequence[int] = (0, 1, 2),
    target_names: Sequence[str] | None = None,
) -> Figure:
    """Observed against predicted per target, the PIT histogram, the training curve and the
    predicted density of ``rows``, in one figure.

    Parameters
    ----------
    model : fitted MDN
    X : array-like of shape (n, p)
        A DataFrame for a model fitted on named features.
    y : array-like of shape (n,) or (n, D)
        Observations; NaN for a missing one.
    point : {"top", "mean", "mode", "median"}
        The estimate on the vertical axis.
    coverage : float
        The central interval drawn as error bars.
    rows : sequence of int
        Rows whose first target's density is drawn.
    target_names : sequence of str, optional

    Returns
    -------
    matplotlib Figure
    """
    plt = pyplot()
    y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
    rows = [r for r in rows if 0 <= r < len(X)] or [0]
    names = list(target_names or [f"y{d}" for d in range(y.shape[1])])
    estimate = np.asarray(model.predict(X, point=point), dtype=np.float64).reshape(y.shape)
    lower, upper = (
        np.asarray(v, dtype=np.float64).reshape(y.shape)
        for v in model.predict_interval(X, coverage=coverage)
    )
    log = model.target_transform == "log"
    n_top = y.shape[1]
    columns = 2 if n_top == 1 else max(n_top, 3)
    fig, grid = plt.subplots(2, columns, figsize=(4.5 * columns, 8.5), squeeze=False)
    scatters, lower_row = (
        (grid[0, :1], [grid[0, 1], grid[1, 0], grid[1, 1]])
        if n_top == 1
        else (grid[0, :n_top], list(grid[1, :3]))
    )
    for d, ax in enumerate(scatters):
        seen = np.isfinite(y[:, d])
        _scatter(ax, y[seen, d], estimate[seen, d], lower[seen, d], upper[seen, d], names[d], log)
    for ax in [*grid[0, n_top:], *grid[1, 3:]] if n_top > 1 else []:
        ax.axis("off")
    dist = model.predict_dist(X)
    pits = np.concatenate(
        [
            pit(dist.marginal(d)[np.flatnonzero(np.isfinite(y[:, d]))], y[np.isfinite(y[:, d]), d])
            for d in range(n_top)
        ],
        axis=None,
    )
    _pit_histogram(lower_row[0], pits)
    _training_curve(lower_row[1], model.history_)
    _densities(lower_row[2], model, X, y, rows, log)
    fig.tight_layout()
    return fig
