"""Iterative solvers on Gaussian mixtures: the mode, and quantiles of the marginals.

Both run on whole batches at once and freeze the entries that have converged, so that
each result is independent of the rest of the batch (and of the chunk size of a
prediction). ``GaussianMixture.mode`` and ``quantile`` call them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mdn.mixture import GaussianMixture

__all__ = ["gather_component", "mixture_mode", "mixture_quantile"]


def mixture_mode(mixture: GaussianMixture, max_iter: int = 500, tol: float = 1e-6) -> Tensor:
    """``mixture.mode(max_iter, tol)``: the fixed-point iteration described there.

    Parameters
    ----------
    mixture : GaussianMixture
    max_iter : int
    tol : float

    Returns
    -------
    Tensor of shape (*B, D)
    """
    starts = mixture.means.movedim(-2, 0)  # [S=K, *B, D]
    x = starts
    scale = mixture._component_std.amin(-2)  # [*B, D]
    if mixture.covariance_type == "full":
        precision = mixture.precision_cholesky @ mixture.precision_cholesky.mT  # [*B, K, D, D]
        weighted_means = (precision @ mixture.means.unsqueeze(-1)).squeeze(-1)  # [*B, K, D]
    else:
        precision = mixture.precision_cholesky.square()  # [*B, K, D] or [*B, K]
        if mixture.covariance_type == "spherical":
            precision = precision.unsqueeze(-1)
        weighted_means = precision * mixture.means  # [*B, K, D]
    done = torch.zeros(x.shape[:-1], dtype=torch.bool, device=x.device)  # [S, *B]
    with torch.no_grad():
        for _ in range(max_iter):
            resp = mixture.responsibilities(x)  # [S, *B, K]
            rhs = (resp.unsqueeze(-1) * weighted_means).sum(-2)  # [S, *B, D]
            if mixture.covariance_type == "full":
                lhs = (resp[..., None, None] * precision).sum(-3)  # [S, *B, D, D]
                x_new = torch.linalg.solve(lhs, rhs)
            else:
                x_new = rhs / (resp.unsqueeze(-1) * precision).sum(-2)
            # Converged starts are frozen: each result is independent of the batch.
            x_new = torch.where(done.unsqueeze(-1), x, x_new)
            done = done | ((x_new - x).abs() / scale <= tol).all(-1)
            x = x_new
            if bool(done.all()):
                break
        candidates = torch.cat([x, starts])  # [2S, *B, D]
        best = mixture.log_prob(candidates).argmax(0)  # [*B]
    return gather_component(candidates.movedim(0, -2), best)


def mixture_quantile(mixture: GaussianMixture, q: float | Tensor, max_iter: int = 100) -> Tensor:
    """``mixture.quantile(q, max_iter)``: the Newton-bisection described there.

    Parameters
    ----------
    mixture : GaussianMixture
    q : float or Tensor
    max_iter : int

    Returns
    -------
    Tensor of shape ``broadcast(q.shape, (*B, D))``
    """
    q = torch.as_tensor(q, dtype=mixture.dtype, device=mixture.device)
    if bool(((q < 0) | (q > 1) | q.isnan()).any()):
        raise ValueError("quantile levels q must lie in [0, 1]")
    std = mixture._component_std  # [*B, K, D]
    q = q.expand(torch.broadcast_shapes(q.shape, (*mixture.batch_shape, mixture.n_dims)))
    inner = (q > 0) & (q < 1)
    q_inner = torch.where(inner, q, 0.5)  # [..., *B, D]
    component_q = mixture.means + std * torch.special.ndtri(q_inner).unsqueeze(-2)
    lo, hi = component_q.amin(-2), component_q.amax(-2)  # [..., *B, D]
    x = 0.5 * (lo + hi)
    resolution = 4 * torch.finfo(mixture.dtype).eps * (x.abs() + std.amin(-2))
    # Converged entries are frozen, so each result is independent of the rest of the batch.
    done = torch.zeros_like(x, dtype=torch.bool)
    for _ in range(max_iter):
        u = mixture._standardised(x)  # one pass shared by the CDF and the density
        excess = mixture._cdf_of(u) - q_inner
        lo = torch.where(excess < 0, x, lo)
        hi = torch.where(excess > 0, x, hi)
        newton = x - excess / mixture._log_density_of(u).exp()
        inside = (newton > lo) & (newton < hi)
        x_new = torch.where(done, x, torch.where(inside, newton, 0.5 * (lo + hi)))
        done = done | ((x_new - x).abs() <= resolution)
        x = x_new
        if bool(done.all()):
            break
    x = torch.where(q == 0, -math.inf, x)
    return torch.where(q == 1, math.inf, x)


def gather_component(values: Tensor, index: Tensor, event_ndim: int = 1) -> Tensor:
    """Pick one component per mixture.

    Parameters
    ----------
    values : Tensor of shape (*B, K, *E)
        Per-component values, with ``len(E) == event_ndim``.
    index : Tensor of shape (*L, *B)
        The component to pick, with any leading dimensions L.
    event_ndim : int

    Returns
    -------
    Tensor of shape (*L, *B, *E)
    """
    k_dim = values.ndim - event_ndim - 1  # position of K in values, = len(B)
    n_lead = index.ndim - k_dim
    expanded = values.expand(*index.shape[:n_lead], *values.shape)  # [*L, *B, K, *E]
    idx = index.reshape(*index.shape, 1, *([1] * event_ndim))
    idx = idx.expand(*index.shape, 1, *values.shape[k_dim + 1 :])  # [*L, *B, 1, *E]
    return expanded.gather(index.ndim, idx).squeeze(index.ndim)
