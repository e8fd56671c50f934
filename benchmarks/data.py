"""The synthetic data every contender of the speed benchmark trains on (NumPy only)."""

from __future__ import annotations

import math

import numpy as np

N_INPUTS = 7


def make_data(n: int = 10_000, d: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic multimodal regression data shared by every contender of the speed benchmark.

    NumPy only, so that the peers' environment (whose Keras runs must not import torch)
    shares it.

    Parameters
    ----------
    n : int
        Number of rows.
    d : int
        Number of target columns D.
    seed : int
        Seed of the NumPy generator.

    Returns
    -------
    x : ndarray of shape (n, 7), float32
        Standard normal inputs.
    y : ndarray of shape (n, d), float32
        Each row follows one of three branches, chosen at random, of a smooth function of
        ``x``, so that one ``x`` has three modes of ``y``; plus a little noise.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_INPUTS))
    w = rng.standard_normal((N_INPUTS, d)) / math.sqrt(N_INPUTS)
    branch = rng.integers(0, 3, size=(n, 1))
    y = np.sin(2.0 * (x @ w)) + 1.5 * (branch - 1) + 0.1 * rng.standard_normal((n, d))
    return x.astype(np.float32), y.astype(np.float32)
