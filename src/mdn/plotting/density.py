"""Plots of fitted models (needs the ``plot`` extra: ``pip install mdn[plot]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike

from mdn.plotting.backend import pyplot

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from mdn.estimator.model import MDN

__all__ = ["plot_conditional_density"]


def plot_conditional_density(
    model: MDN,
    X: ArrayLike | None = None,
    y: ArrayLike | None = None,
    *,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    resolution: int = 200,
    point: str | None = "top",
    ax: Axes | None = None,
) -> Axes:
    """Heat map of p(y|x) over a grid, for a model with one input and one target.

    Parameters
    ----------
    model : fitted MDN
    X, y : array-like, optional
        Data to scatter on top (and to set the ranges when they are not given).
    x_range, y_range : (float, float), optional
        Extent of the grid.
    resolution : int
        Grid points along each axis.
    point : {"top", "mean", "mode", "median"} or None
        Point estimate to draw along x; None draws none.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    if model.n_features_in_ != 1 or model.n_outputs_ != 1:
        raise ValueError(
            "plot_conditional_density needs a model with one input and one target; "
            f"this one has {model.n_features_in_} and {model.n_outputs_}"
        )
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    if x_range is None or y_range is None:
        if X is None or y is None:
            raise ValueError("give X and y, or both x_range and y_range")
        x_data, y_data = np.asarray(X, float).ravel(), np.asarray(y, float).ravel()
        pad_x, pad_y = 0.05 * np.ptp(x_data), 0.1 * np.ptp(y_data)
        x_range = x_range or (x_data.min() - pad_x, x_data.max() + pad_x)
        y_range = y_range or (y_data.min() - pad_y, y_data.max() + pad_y)
    x_grid = np.linspace(*x_range, resolution)
    y_grid = np.linspace(*y_range, resolution)
    dist = model.predict_dist(x_grid[:, None])
    points = torch.as_tensor(y_grid, dtype=torch.float64).reshape(-1, 1, 1)  # [Y, 1, 1]
    density = dist.log_prob(points).exp().cpu().numpy()  # [Y, X]
    from matplotlib.colors import PowerNorm

    # A square-root colour scale keeps broad, multimodal regions visible next to sharp peaks.
    mesh = ax.pcolormesh(
        x_grid, y_grid, density, shading="auto", cmap="viridis", norm=PowerNorm(0.5)
    )
    plt.colorbar(mesh, ax=ax, label="p(y | x)")
    if X is not None and y is not None:
        ax.scatter(
            np.asarray(X).ravel(),
            np.asarray(y).ravel(),
            s=2,
            c="white",
            alpha=0.3,
            linewidths=0,
            label="data",
        )
    if point is not None:
        ax.plot(
            x_grid,
            model.predict(x_grid[:, None], point=point),
            ".",
            ms=3,
            c="tab:red",
            label=f"{point} estimate",
        )
    ax.set(xlim=x_range, ylim=y_range, xlabel="x", ylabel="y")
    ax.legend(loc="upper left", fontsize="small")
    return ax
