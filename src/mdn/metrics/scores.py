"""Proper scores of predicted distributions: NLL, CRPS and the energy score, the PIT and
its calibration error, and the coverage of central intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.transforms import LogGaussianMixture

__all__ = [
    "calibration_error",
    "coverage",
    "crps",
    "energy_score",
    "nll",
    "observed_targets",
    "pit",
]

Distribution = GaussianMixture | LogGaussianMixture
LEVELS = (0.5, 0.8, 0.9, 0.95)
_ROWS_PER_BLOCK = 4096  # bounds the (rows, K, K) temporaries of the exact CRPS


def observed_targets(dist: Distribution, y: ArrayLike) -> torch.Tensor:
    """Observed targets to score ``dist`` against, checked.

    Parameters
    ----------
    dist : GaussianMixture or LogGaussianMixture
        Batch shape (N,).
    y : array-like of shape (N,) or (N, D)
        Finite.

    Returns
    -------
    Tensor of shape (N, D)
        float64, on ``dist``'s device.
    """
    values = torch.as_tensor(np.asarray(y, dtype=np.float64))
    if values.dim() == 1 and dist.n_dims == 1:
        values = values.unsqueeze(-1)
    if values.shape != (len(dist), dist.n_dims):
        raise ValueError(
            f"y must have shape ({len(dist)}, {dist.n_dims}) to match the "
            f"{len(dist)} predicted distributions, got {tuple(values.shape)}"
        )
    if not bool(torch.isfinite(values).all()):
        raise ValueError("y contains NaN or infinite values; drop those rows first")
    return values.to(dist.device)


def nll(dist: Distribution, y: ArrayLike) -> float:
    """Mean negative log-likelihood of ``y`` (nats per row, in the units of ``y``).

    Parameters
    ----------
    dist : GaussianMixture or LogGaussianMixture
        Batch shape (N,).
    y : array-like of shape (N,) or (N, D)

    Returns
    -------
    float
        Nats per row.
    """
    return float(-dist.log_prob(observed_targets(dist, y)).mean())


def crps(
    dist: Distribution, y: ArrayLike, *, n_samples: int = 1000, random_state: int | None = 0
) -> np.ndarray:
    """Continuous ranked probability score of each row, shape (N,).

    Exact for one-dimensional Gaussian mixtures (Grimit et al. 2006):
    ``sum_k w_k A(y - mu_k, s_k^2) - 1/2 sum_kl w_k w_l A(mu_k - mu_l, s_k^2 + s_l^2)`` with
    ``A(m, v) = 2 sqrt(v) phi(m / sqrt(v)) + m (2 Phi(m / sqrt(v)) - 1)``. For other
    distributions (several dimensions, log targets) it is the energy score, the CRPS's
    multivariate generalisation, estimated from ``n_samples`` draws.

    Parameters
    ----------
    dist : GaussianMixture or LogGaussianMixture
        Batch shape (N,).
    y : array-like of shape (N,) or (N, D)
    n_samples, random_state
        Draws and their seed for the energy score (see ``energy_score``); unused where
        the score is exact.

    Returns
    -------
    ndarray of shape (N,)
    """
    targets = observed_targets(dist, y)
    if not (isinstance(dist, GaussianMixture) and dist.n_dims == 1):
        return energy_score(dist, targets, n_samples=n_samples, random_state=random_state)
    scores = []
    for start in range(0, len(dist), _ROWS_PER_BLOCK):
        block = dist[start : start + _ROWS_PER_BLOCK]
        w, mu = block.weights, block.means[..., 0]  # [N, K]
        var = block.component_covariance_matrices()[..., 0, 0]  # [N, K]
        to_target = _expected_abs(targets[start : start + _ROWS_PER_BLOCK] - mu, var)
        between = _expected_abs(
            mu.unsqueeze(-1) - mu.unsqueeze(-2), var.unsqueeze(-1) + var.unsqueeze(-2)
        )  # [N, K, K]
        pairs = (w.unsqueeze(-1) * w.unsqueeze(-2) * between).sum((-2, -1))
        scores.append((w * to_target).sum(-1) - 0.5 * pairs)
    return torch.cat(scores).cpu().numpy()


def _expected_abs(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """E|X| for X ~ N(mean, var)."""
    std = var.sqrt()
    u = mean / std
    return 2 * std * torch.exp(-0.5 * u.square()) / math.sqrt(2 * math.pi) + mean * (
        2 * torch.special.ndtr(u) - 1
    )


def energy_score(
    dist: Distribution, y: ArrayLike, *, n_samples: int = 1000, random_state: int | None = 0
) -> np.ndarray:
    """Energy score ``E||X - y|| - 1/2 E||X - X'||`` of each row from ``n_samples`` draws.

    For one dimension it equals the CRPS. The second term uses the draws paired with a
    shifted copy of themselves, an unbiased estimate.

    Parameters
    ----------
    dist : GaussianMixture or LogGaussianMixture
        Batch shape (N,); sampled on the CPU.
    y : array-like of shape (N,) or (N, D)
    n_samples : int
        Draws per row, at least 2.
    random_state : int or None
        Seed of the draws (None means 0).

    Returns
    -------
    ndarray of shape (N,)
    """
    if not (isinstance(n_samples, int) and n_samples >= 2):
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    targets = observed_targets(dist, y)
    generator = torch.Generator().manual_seed(0 if random_state is None else random_state)
    scores = []
    for start in range(0, len(dist), _ROWS_PER_BLOCK):
        block = dist[start : start + _ROWS_PER_BLOCK].to("cpu")
        draws = block.sample(n_samples, generator)  # [S, N, D]
        to_target = (draws - targets[start : start + _ROWS_PER_BLOCK].cpu()).norm(dim=-1)
        between = (draws - draws.roll(1, dims=0)).norm(dim=-1)
        scores.append(to_target.mean(0) - 0.5 * between.mean(0))
    return torch.cat(scores).numpy()


def pit(dist: Distribution, y: ArrayLike) -> np.ndarray:
    """Probability integral transform: each target's marginal CDF at ``y``.

    For a calibrated model these values are uniform on [0, 1].

    Parameters
    ----------
    dist : GaussianMixture or LogGaussianMixture
        The predicted distributions, batch shape (N,).
    y : array-like of shape (N,) or (N, D)

    Returns
    -------
    ndarray of shape (N, D)
    """
    return dist.cdf(observed_targets(dist, y)).cpu().numpy()


def calibration_error(pit_values: ArrayLike, levels: int = 99) -> float:
    """Mean |share of PIT values <= u  -  u| over ``levels`` evenly spaced u in (0, 1).

    0 for perfectly uniform PIT values; a model whose intervals are too narrow or too wide
    scores higher. All dimensions' values are pooled.

    Parameters
    ----------
    pit_values : array-like
        PIT values of any shape (``pit``'s).
    levels : int
        Number of grid points u.

    Returns
    -------
    float
        Between 0 and 0.5.
    """
    values = np.asarray(pit_values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no PIT values")
    grid = np.arange(1, levels + 1) / (levels + 1)
    share = np.searchsorted(np.sort(values), grid, side="right") / values.size
    return float(np.mean(np.abs(share - grid)))


def coverage(
    dist: Distribution, y: ArrayLike, levels: Sequence[float] = LEVELS
) -> dict[float, float]:
    """Share of targets inside the central interval of each nominal ``level``.

    Intervals are per dimension (of each marginal); all dimensions are pooled.

    Parameters
    ----------
    dist : GaussianMixture or LogGaussianMixture
        Batch shape (N,).
    y : array-like of shape (N,) or (N, D)
    levels : sequence of float
        Nominal coverages, each strictly between 0 and 1.

    Returns
    -------
    dict of float to float
        The observed share for each level.
    """
    targets = observed_targets(dist, y)
    out = {}
    for level in levels:
        lower, upper = dist.interval(level)
        out[level] = float(((lower <= targets) & (targets <= upper)).double().mean())
    return out
