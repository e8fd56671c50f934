"""The moments and single points of a Gaussian mixture: mean, covariance, variance, the
heaviest component's mean and the mode.

``GaussianMixture`` takes the methods of ``MomentsMixin``; they use only its parameters,
its weights and its cached component factors.
"""

from __future__ import annotations

from torch import Tensor

from mdn.distributions.solvers import gather_component, mixture_mode

__all__ = ["MomentsMixin"]


class MomentsMixin:
    """``GaussianMixture``'s moments and points (see there for the attributes used)."""

    def mean(self) -> Tensor:
        """Mixture mean.

        Returns
        -------
        Tensor of shape (*B, D)
        """
        return (self.weights.unsqueeze(-1) * self.means).sum(-2)

    def covariance(self) -> Tensor:
        """Mixture covariance, by the law of total covariance.

        Returns
        -------
        Tensor of shape (*B, D, D)
        """
        weights = self.weights[..., None, None]  # [*B, K, 1, 1]
        spread = self.means - self.mean().unsqueeze(-2)  # [*B, K, D]
        # Law of total covariance: E_k[Sigma_k] + Cov_k[mu_k].
        return (
            weights
            * (self.component_covariance_matrices() + spread.unsqueeze(-1) * spread.unsqueeze(-2))
        ).sum(-3)

    def variance(self) -> Tensor:
        """Mixture variance of each dimension (the diagonal of ``covariance``).

        Returns
        -------
        Tensor of shape (*B, D)
        """
        spread = self.means - self.mean().unsqueeze(-2)  # [*B, K, D]
        return (self.weights.unsqueeze(-1) * (self._component_std.square() + spread.square())).sum(
            -2
        )

    def top(self) -> Tensor:
        """Mean of the heaviest component.

        Returns
        -------
        Tensor of shape (*B, D)
        """
        return gather_component(self.means, self.log_weights.argmax(-1))

    def mode(self, max_iter: int = 500, tol: float = 1e-6) -> Tensor:
        """Highest-density point of each mixture, shape (*B, D).

        Runs the fixed-point iteration ``x <- (sum_k r_k P_k)^-1 sum_k r_k P_k mu_k``
        (``r_k`` the responsibilities at ``x``, ``P_k`` the precisions; Carreira-Perpinan
        2000) from every component mean, and keeps the point of highest density among the
        converged points and the starting means.

        Parameters
        ----------
        max_iter : int
            Iteration limit.
        tol : float
            Stop when no point moves by more than ``tol`` times the smallest component
            standard deviation of its dimension.

        Returns
        -------
        Tensor of shape (*B, D)
        """
        return mixture_mode(self, max_iter, tol)
