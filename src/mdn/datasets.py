"""Built-in data: synthetic problems with known answers (the inverted sine), and a simulated
ocean-colour set (Rrs at a sensor's bands from chlorophyll-a, suspended solids and CDOM,
made by ``mdn.ocean.simulation``)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils import check_random_state

from mdn.ocean.simulation import (
    OCEAN_COLOUR_CORRELATION,
    OCEAN_COLOUR_LOG10_MEAN,
    OCEAN_COLOUR_LOG10_SD,
    OCEAN_COLOUR_TARGETS,
    simulate_ocean_colour,
)

__all__ = [
    "OCEAN_COLOUR_CORRELATION",
    "OCEAN_COLOUR_LOG10_MEAN",
    "OCEAN_COLOUR_LOG10_SD",
    "OCEAN_COLOUR_TARGETS",
    "inverted_sine_on_branch",
    "make_inverted_sine",
    "simulate_ocean_colour",
]


def _forward(y: np.ndarray) -> np.ndarray:
    return y + 0.3 * np.sin(2 * np.pi * y)


def make_inverted_sine(
    n_samples: int = 2000,
    noise: float = 0.1,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The inverted sine: a one-to-many regression problem (Bishop 1994).

    ``y ~ U(0, 1)``, ``x = y + 0.3 sin(2 pi y) + U(-noise, noise)``; the task is to predict
    ``y`` from ``x``, for which up to three ``y`` values (branches) fit one ``x``.

    Parameters
    ----------
    n_samples : int
    noise : float
        Half-width of the uniform noise on ``x``.
    random_state : int, RandomState or None

    Returns
    -------
    X : ndarray of shape (n_samples, 1)
    y : ndarray of shape (n_samples,)
    """
    rng = check_random_state(random_state)
    y = rng.uniform(0.0, 1.0, n_samples)
    x = _forward(y) + rng.uniform(-noise, noise, n_samples)
    return x[:, None], y


def inverted_sine_on_branch(
    X: ArrayLike, y_hat: ArrayLike, noise: float = 0.1, tol: float = 0.02
) -> np.ndarray:
    """Whether each estimate ``y_hat`` lies on a branch that could have produced ``x``.

    ``y_hat`` is on a true branch when it lies in [0, 1] and ``x`` is within the noise band
    (widened by ``tol``) of ``y_hat + 0.3 sin(2 pi y_hat)``.

    Parameters
    ----------
    X : array-like of shape (n, 1) or (n,)
        The inputs ``x``.
    y_hat : array-like of shape (n,)
        Estimates of ``y``, one per input.
    noise : float
        The ``noise`` the data were made with (``make_inverted_sine``).
    tol : float
        Slack added to the noise band and to [0, 1].

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    x = np.asarray(X, dtype=float).reshape(-1)
    y_hat = np.asarray(y_hat, dtype=float).reshape(-1)
    inside = (y_hat >= -tol) & (y_hat <= 1 + tol)
    return inside & (np.abs(x - _forward(y_hat)) <= noise + tol)
