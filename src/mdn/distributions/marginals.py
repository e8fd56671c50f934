"""The one-dimensional marginals of a Gaussian mixture (CDF, density, quantiles, intervals),
sub-mixtures of chosen dimensions, and densities with missing coordinates.

``GaussianMixture`` takes the methods of ``MarginalsMixin``; they use only its parameters
and its cached per-component standard deviations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mdn.distributions.parameters import precision_cholesky_from_covariance
from mdn.distributions.solvers import mixture_quantile

if TYPE_CHECKING:
    from mdn.distributions.mixture import GaussianMixture

__all__ = ["MarginalsMixin", "observed_component_log_prob"]

_LOG_2PI = math.log(2.0 * math.pi)


class MarginalsMixin:
    """``GaussianMixture``'s methods on marginals (see there for the attributes used)."""

    def marginal(self, dims: int | Sequence[int]) -> GaussianMixture:
        """The mixture of the selected target dimensions (exact: Gaussians marginalise).

        Parameters
        ----------
        dims : int or sequence of int
            Distinct target dimensions, in the order to keep them.

        Returns
        -------
        GaussianMixture
            The same batch shape and weights, over ``len(dims)`` dimensions.
        """
        index = [dims] if isinstance(dims, int) else list(dims)
        if not index or any(not -self.n_dims <= i < self.n_dims for i in index):
            raise IndexError(f"dims must be a non-empty selection of 0..{self.n_dims - 1}")
        if len({i % self.n_dims for i in index}) != len(index):
            raise IndexError(f"dims must not repeat a dimension, got {index}")
        means = self.means[..., index]
        if self.covariance_type == "full":
            cov = self.component_covariance_matrices()[..., index, :][..., :, index]
            prec_chol = precision_cholesky_from_covariance(cov)
        elif self.covariance_type == "diag":
            prec_chol = self.precision_cholesky[..., index]
        else:
            prec_chol = self.precision_cholesky
        return self._derived(self.log_weights, means, prec_chol)

    def cdf(self, y: Tensor) -> Tensor:
        """Marginal CDF of each dimension at ``y``.

        Parameters
        ----------
        y : Tensor of shape (..., *B, D)
            One value per dimension, each evaluated under its own marginal.

        Returns
        -------
        Tensor of shape (..., *B, D)
            In [0, 1].
        """
        return self._cdf_of(self._standardised(y))

    def marginal_log_prob(self, y: Tensor) -> Tensor:
        """Log-density of each one-dimensional marginal at ``y``.

        Parameters
        ----------
        y : Tensor of shape (..., *B, D)

        Returns
        -------
        Tensor of shape (..., *B, D)
        """
        return self._log_density_of(self._standardised(y))

    def _standardised(self, y: Tensor) -> Tensor:
        """``(y - mean) / std`` of every component and dimension, shape (..., *B, K, D)."""
        return (self._as_points(y).unsqueeze(-2) - self.means) / self._component_std

    def _cdf_of(self, u: Tensor) -> Tensor:
        # Softmax weights may sum to 1 + 1 ulp: clamp so that quantile(cdf(y)) stays valid.
        return (self.weights.unsqueeze(-1) * torch.special.ndtr(u)).sum(-2).clamp(0.0, 1.0)

    def _log_density_of(self, u: Tensor) -> Tensor:
        log_pdf = -0.5 * (u.square() + _LOG_2PI) - self._component_log_std
        return torch.logsumexp(self.log_weights.unsqueeze(-1) + log_pdf, dim=-2)

    def quantile(self, q: float | Tensor, max_iter: int = 100) -> Tensor:
        """Quantiles of each one-dimensional marginal (the inverse of ``cdf``).

        Solves ``cdf(x) = q`` by Halley steps kept inside a bisection bracket that starts
        between the smallest and largest component quantiles (the mixture quantile always
        lies there), from a start that float32 steps bring close: exact to floating-point
        precision (to about ``1e-13 * min(q, 1 - q)`` in probability), not a Gaussian
        approximation. The weights are normalised first: a float32 network's sum to 1 only
        to float32 precision.

        Parameters
        ----------
        q : float or Tensor
            Probabilities in [0, 1], broadcast against (*B, D) as ``torch.distributions``
            does for ``icdf``: a float gives (*B, D); levels of shape (Q, 1, 1) for a batch
            of shape (N,) give (Q, N, D).
        max_iter : int
            Iteration limit of the Newton-bisection.

        Returns
        -------
        Tensor of shape ``broadcast(q.shape, (*B, D))``
        """
        return mixture_quantile(self, q, max_iter)

    def median(self) -> Tensor:
        """Median of each one-dimensional marginal: ``quantile(0.5)``.

        Returns
        -------
        Tensor of shape (*B, D)
        """
        return self.quantile(0.5)

    def interval(self, coverage: float = 0.9) -> tuple[Tensor, Tensor]:
        """Central interval of each one-dimensional marginal holding ``coverage`` of its mass.

        Parameters
        ----------
        coverage : float
            Strictly between 0 and 1.

        Returns
        -------
        lower, upper : Tensor of shape (*B, D)
            The ``(1 - coverage) / 2`` and ``(1 + coverage) / 2`` quantiles.
        """
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage!r}")
        levels = torch.tensor([(1 - coverage) / 2, (1 + coverage) / 2], dtype=self.dtype)
        bounds = self.quantile(levels.reshape(2, *([1] * (len(self.batch_shape) + 1))))
        return bounds[0], bounds[1]


def observed_component_log_prob(mixture: GaussianMixture, y: Tensor, observed: Tensor) -> Tensor:
    """``mixture.component_log_prob`` of the marginals over the observed coordinates.

    Missing coordinates get zero residuals; for full covariances, their rows and columns
    of the covariance are replaced by those of the identity, so that the D-dimensional
    Gaussian factorises into the marginal of the observed coordinates times a standard
    normal density at 0 for each missing one, which the constant then removes.

    Parameters
    ----------
    mixture : GaussianMixture
    y : Tensor of shape (..., *B, D)
        Points, with anything at the missing coordinates.
    observed : Tensor of bool, the shape of ``y``

    Returns
    -------
    Tensor of shape (..., *B, K)
    """
    seen = observed.unsqueeze(-2)  # [..., *B, 1, D]
    diff = torch.where(seen, torch.where(observed, y, 0.0).unsqueeze(-2) - mixture.means, 0.0)
    n_seen = observed.sum(-1, keepdim=True).to(mixture.dtype)  # [..., *B, 1]
    if mixture.covariance_type == "full":
        eye = torch.eye(mixture.n_dims, dtype=mixture.dtype, device=mixture.device)
        both = seen.unsqueeze(-1) & seen.unsqueeze(-2)  # [..., *B, 1, D, D]
        cov = torch.where(both, mixture.component_covariance_matrices(), eye)
        chol = torch.linalg.cholesky(cov)  # [..., *B, K, D, D]
        z = torch.linalg.solve_triangular(chol, diff.unsqueeze(-1), upper=False)[..., 0]
        half_log_det = -chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    elif mixture.covariance_type == "diag":
        z = diff * mixture.precision_cholesky
        half_log_det = (mixture.precision_cholesky.log() * seen).sum(-1)
    else:
        z = diff * mixture.precision_cholesky.unsqueeze(-1)
        half_log_det = n_seen * mixture.precision_cholesky.log()
    maha = z.square().sum(-1)  # [..., *B, K]
    return mixture.log_weights + half_log_det - 0.5 * (maha + n_seen * _LOG_2PI)
