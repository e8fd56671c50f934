"""Target transforms a Gaussian mixture can be pushed through exactly.

``AffineTransform`` folds into the mixture (it stays a ``GaussianMixture``); ``exp``, the
inverse of a log-transformed target, gives a ``LogGaussianMixture`` whose density, samples,
moments, mode and quantiles stay exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mdn.distributions.mixture import GaussianMixture

__all__ = ["AffineTransform", "LogGaussianMixture"]


class AffineTransform:
    """Elementwise affine map ``y = loc + scale * z`` over the target dimensions.

    Parameters
    ----------
    loc, scale : Tensor of shape (D,)
        ``scale`` must be non-zero (a negative entry flips that dimension).
    """

    def __init__(self, loc: Tensor, scale: Tensor) -> None:
        loc, scale = torch.as_tensor(loc), torch.as_tensor(scale)
        if loc.ndim != 1 or loc.shape != scale.shape:
            raise ValueError(
                f"loc and scale must be vectors of one length, got {tuple(loc.shape)} and "
                f"{tuple(scale.shape)}"
            )
        if not bool(torch.isfinite(loc).all() & torch.isfinite(scale).all() & (scale != 0).all()):
            raise ValueError("loc and scale must be finite and scale non-zero")
        self.loc, self.scale = loc, scale

    def __call__(self, mixture: GaussianMixture) -> GaussianMixture:
        """The distribution of ``loc + scale * z`` for ``z ~ mixture``."""
        if mixture.n_dims != self.loc.numel():
            raise ValueError(
                f"this transform acts on {self.loc.numel()} dimensions, the mixture has "
                f"{mixture.n_dims}"
            )
        loc = self.loc.to(mixture.dtype).to(mixture.device)
        scale = self.scale.to(mixture.dtype).to(mixture.device)
        means = loc + scale * mixture.means
        prec_chol, kind = mixture.precision_cholesky, mixture.covariance_type
        if kind == "full":
            # P_y = S^-1 P_z S^-1 with S = diag(scale); flipping the sign of columns keeps
            # the triangular factor's diagonal positive.
            prec_chol = prec_chol / scale.unsqueeze(-1) * scale.sign()
        elif kind == "diag":
            prec_chol = prec_chol / scale.abs()
        elif bool((scale.abs() == scale.abs()[0]).all()):
            prec_chol = prec_chol / scale.abs()[0]
        else:  # an anisotropic scale turns spherical components into diagonal ones
            prec_chol, kind = prec_chol.unsqueeze(-1) / scale.abs(), "diag"
        return mixture._derived(mixture.log_weights, means, prec_chol, kind)

    def log_abs_det_jacobian(self) -> Tensor:
        """``log |dy/dz|``, the same for every point.

        Returns
        -------
        Tensor of shape ()
            ``sum(log |scale|)``.
        """
        return self.scale.abs().log().sum()


class LogGaussianMixture:
    """The distribution of ``y = exp(z)`` (elementwise) for a Gaussian mixture ``z``.

    This is what an MDN fitted on ``log(y)`` predicts in the user's units. Every method is
    exact: the density gains the Jacobian ``-sum(log y)``, samples and quantiles map
    through ``exp``, the moments are those of a log-normal mixture, and the mode is found
    on the exponentially tilted mixture (a Gaussian times ``exp(-sum z)`` is again a
    Gaussian, with mean ``mu - Sigma 1``).

    Parameters
    ----------
    base : GaussianMixture
        The mixture over ``log(y)``.
    """

    def __init__(self, base: GaussianMixture) -> None:
        self.base = base

    # ------------------------------------------------------------------ shape and access
    batch_shape = property(lambda self: self.base.batch_shape)
    n_components = property(lambda self: self.base.n_components)
    n_dims = property(lambda self: self.base.n_dims)
    dtype = property(lambda self: self.base.dtype)
    device = property(lambda self: self.base.device)
    weights = property(lambda self: self.base.weights)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key) -> LogGaussianMixture:
        return LogGaussianMixture(self.base[key])

    def to(self, *args: Any, **kwargs: Any) -> LogGaussianMixture:
        """``base.to(*args, **kwargs)``, still over ``exp``.

        Parameters
        ----------
        *args, **kwargs
            As ``GaussianMixture.to`` takes them.

        Returns
        -------
        LogGaussianMixture
        """
        return LogGaussianMixture(self.base.to(*args, **kwargs))

    @staticmethod
    def cat(mixtures: Sequence[LogGaussianMixture]) -> LogGaussianMixture:
        """Concatenate along the first batch dimension (see ``GaussianMixture.cat``).

        Parameters
        ----------
        mixtures : sequence of LogGaussianMixture

        Returns
        -------
        LogGaussianMixture
        """
        return LogGaussianMixture(GaussianMixture.cat([m.base for m in mixtures]))

    def __repr__(self) -> str:
        return f"LogGaussianMixture(base={self.base!r})"

    # ------------------------------------------------------------------ densities
    def log_prob(self, y: Tensor) -> Tensor:
        """Log-density in user units: the base's at ``log(y)`` plus the Jacobian ``-sum(log y)``.

        Parameters
        ----------
        y : Tensor of shape (..., *B, D)
            A point with any entry <= 0 has log-density ``-inf``; NaN entries are missing
            (the density of the observed ones' marginal).

        Returns
        -------
        Tensor of shape (..., *B)
        """
        y = torch.as_tensor(y, dtype=self.dtype, device=self.device)
        missing = torch.isnan(y)
        positive = ((y > 0) | missing).all(-1)
        # Missing entries stay NaN, so that the base marginalises them out.
        log_y = torch.where(missing, torch.nan, torch.where(y > 0, y, 1.0).log())
        density = self.base.log_prob(log_y) - log_y.nansum(-1)
        return torch.where(positive, density, -torch.inf)

    def cdf(self, y: Tensor) -> Tensor:
        """Marginal CDF of each dimension: the base's at ``log(y)``, 0 where ``y <= 0``.

        Parameters
        ----------
        y : Tensor of shape (..., *B, D)

        Returns
        -------
        Tensor with the shape of ``y``
        """
        y = torch.as_tensor(y, dtype=self.dtype, device=self.device)
        return torch.where(y > 0, self.base.cdf(torch.where(y > 0, y, 1.0).log()), 0.0)

    def sample(self, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """``exp`` of the base's samples (see ``GaussianMixture.sample``).

        Parameters
        ----------
        n : int
        generator : torch.Generator, optional

        Returns
        -------
        Tensor of shape (n, *B, D)
            Positive.
        """
        return self.base.sample(n, generator).exp()

    # ------------------------------------------------------------------ moments and points
    def mean(self) -> Tensor:
        """Mixture mean in user units: ``sum_k w_k exp(mu_k + sigma_k^2 / 2)``.

        Returns
        -------
        Tensor of shape (*B, D)
        """
        var = self.base.component_covariance_matrices().diagonal(dim1=-2, dim2=-1)
        return (self.weights.unsqueeze(-1) * (self.base.means + 0.5 * var).exp()).sum(-2)

    def covariance(self) -> Tensor:
        """Mixture covariance in user units, from the log-normal moments.

        Returns
        -------
        Tensor of shape (*B, D, D)
        """
        cov = self.base.component_covariance_matrices()  # [*B, K, D, D]
        var = cov.diagonal(dim1=-2, dim2=-1)  # [*B, K, D]
        half = self.base.means + 0.5 * var  # [*B, K, D]
        # E[y_i y_j | k] = exp(mu_i + mu_j + (S_ii + S_jj) / 2 + S_ij)
        second = (half.unsqueeze(-1) + half.unsqueeze(-2) + cov).exp()
        second = (self.weights[..., None, None] * second).sum(-3)  # [*B, D, D]
        mean = self.mean()
        return second - mean.unsqueeze(-1) * mean.unsqueeze(-2)

    def variance(self) -> Tensor:
        """Mixture variance of each dimension in user units.

        Returns
        -------
        Tensor of shape (*B, D)
            The diagonal of ``covariance``.
        """
        return self.covariance().diagonal(dim1=-2, dim2=-1)

    def top(self) -> Tensor:
        """``exp`` of the heaviest component's mean (that component's median).

        Returns
        -------
        Tensor of shape (*B, D)
        """
        return self.base.top().exp()

    def mode(self, max_iter: int = 500, tol: float = 1e-6) -> Tensor:
        """Highest-density point in the user's units.

        ``exp`` of the mode of the exponentially tilted base (see the class), which
        ``GaussianMixture.mode`` finds.

        Parameters
        ----------
        max_iter, tol
            As in ``GaussianMixture.mode``.

        Returns
        -------
        Tensor of shape (*B, D)
        """
        base = self.base
        cov = base.component_covariance_matrices()
        row_sums = cov.sum(-1)  # Sigma_k 1, [*B, K, D]
        # p_y(e^z) e^{sum z} ... maximising p_y over y = maximising N(z) e^{-1'z} over z.
        tilted_logits = base.log_weights - base.means.sum(-1) + 0.5 * row_sums.sum(-1)
        tilted = GaussianMixture(
            tilted_logits,
            base.means - row_sums,
            base.precision_cholesky,
            base.covariance_type,
            validate=False,
        )
        return tilted.mode(max_iter=max_iter, tol=tol).exp()

    def marginal(self, dims: int | Sequence[int]) -> LogGaussianMixture:
        """The distribution of the selected dimensions (``exp`` of the base's marginal).

        Parameters
        ----------
        dims : int or sequence of int
            As in ``GaussianMixture.marginal``.

        Returns
        -------
        LogGaussianMixture
        """
        return LogGaussianMixture(self.base.marginal(dims))

    def quantile(self, q: float | Tensor) -> Tensor:
        """Marginal quantiles: ``exp`` of the base quantiles (exp is increasing).

        Parameters
        ----------
        q : float or Tensor
            Probabilities, broadcast as in ``GaussianMixture.quantile``.

        Returns
        -------
        Tensor of shape ``broadcast(q.shape, (*B, D))``
        """
        return self.base.quantile(q).exp()

    def median(self) -> Tensor:
        """Median of each one-dimensional marginal: ``exp`` of the base's median.

        Returns
        -------
        Tensor of shape (*B, D)
        """
        return self.base.median().exp()

    def interval(self, coverage: float = 0.9) -> tuple[Tensor, Tensor]:
        """Central interval of each marginal holding ``coverage`` of its mass.

        ``exp`` of the base's interval bounds.

        Parameters
        ----------
        coverage : float
            As in ``GaussianMixture.interval``.

        Returns
        -------
        lower, upper : Tensor of shape (*B, D)
        """
        lower, upper = self.base.interval(coverage)
        return lower.exp(), upper.exp()
