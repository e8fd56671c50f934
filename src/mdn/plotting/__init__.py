"""Figures of a fitted ``MDN`` (matplotlib, the ``plot`` extra)."""

from mdn.plotting.density import plot_conditional_density
from mdn.plotting.retrieval import plot_retrieval

__all__ = ["plot_conditional_density", "plot_retrieval"]
