"""Batches of Gaussian mixtures: the conditional distribution an MDN predicts per input."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mdn import params
from mdn.distributions.marginals import MarginalsMixin, observed_component_log_prob
from mdn.distributions.moments import MomentsMixin
from mdn.distributions.parameters import (
    check_parameters,
    parameters_from_covariances,
    precision_cholesky_from_covariance,
)
from mdn.distributions.solvers import gather_component
from mdn.params import COVARIANCE_TYPES

__all__ = ["COVARIANCE_TYPES", "GaussianMixture", "precision_cholesky_from_covariance"]

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixture(MomentsMixin, MarginalsMixin):
    r"""A batch of mixtures of K Gaussians over D-dimensional targets.

    .. math:: p(y) = \sum_k \pi_k \, \mathcal{N}(y;\ \mu_k, \Sigma_k)

    The batch may have any shape ``B`` (an MDN gives one mixture per input row, ``B = (N,)``).
    Each component's covariance is held as the upper-triangular Cholesky factor ``U`` of its
    precision, ``inverse(Sigma_k) = U @ U.mT``, so that a log-density costs one triangular
    product and a sum of logs; covariances are derived only on request.

    Parameters
    ----------
    logits : Tensor of shape (*B, K)
        Unnormalised log-weights; they are normalised with ``log_softmax``.
    means : Tensor of shape (*B, K, D)
        Component means.
    precision_cholesky : Tensor
        ``full``: (*B, K, D, D) upper-triangular with a positive diagonal;
        ``diag``: (*B, K, D) square roots of the precisions (1 / standard deviation);
        ``spherical``: (*B, K), one such value per component.
    covariance : {"full", "diag", "spherical"}
        Covariance type, named as in scikit-learn's ``GaussianMixture``.
    validate : bool
        Check shapes and values (turned off by the network head on its hot path).

    Examples
    --------
    >>> import torch
    >>> gm = GaussianMixture.from_params(
    ...     weights=torch.tensor([[0.3, 0.7]]),
    ...     means=torch.tensor([[[-1.0], [2.0]]]),
    ...     covariances=torch.tensor([[0.25, 1.0]]),
    ... )
    >>> gm
    GaussianMixture(batch_shape=(1,), n_components=2, n_dims=1, covariance='spherical')
    >>> gm.mean()
    tensor([[1.1000]])
    >>> gm.sample(1000, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([1000, 1, 1])
    >>> lo, hi = gm.interval(0.9)
    """

    def __init__(
        self,
        logits: Tensor,
        means: Tensor,
        precision_cholesky: Tensor,
        covariance: str = "full",
        *,
        validate: bool = True,
        _normalized: bool = False,
    ) -> None:
        params.validate("covariance", covariance)
        self.covariance_type = covariance
        if validate:
            check_parameters(logits, means, precision_cholesky, covariance)
        # Internal copies pass log-weights that are normalised already; log_softmax over a
        # short last axis is slow on CPU (a tenth of the prediction time).
        self.log_weights = logits if _normalized else torch.log_softmax(logits, dim=-1)  # [*B, K]
        self.means = means  # [*B, K, D]
        self.precision_cholesky = precision_cholesky

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(
        cls,
        weights: Tensor,
        means: Tensor,
        covariances: Tensor,
        covariance: str | None = None,
    ) -> GaussianMixture:
        """Build a mixture from weights, means and covariances.

        Parameters
        ----------
        weights : array-like of shape (*B, K)
            Non-negative, summing to 1 over the last axis.
        means : array-like of shape (*B, K, D)
        covariances : array-like
            (*B, K, D, D) matrices for ``full``, (*B, K, D) variances for ``diag``,
            (*B, K) variances for ``spherical``.
        covariance : {"full", "diag", "spherical"}, optional
            Inferred from the shape of ``covariances`` when omitted.

        Returns
        -------
        GaussianMixture
        """
        log_weights, means, precision_cholesky, covariance = parameters_from_covariances(
            weights, means, covariances, covariance
        )
        return cls(log_weights, means, precision_cholesky, covariance)

    @staticmethod
    def cat(mixtures: Sequence[GaussianMixture]) -> GaussianMixture:
        """Concatenate mixtures along the first batch dimension.

        Parameters
        ----------
        mixtures : sequence of GaussianMixture
            At least one, each with a batch dimension, all of one covariance type, number
            of components and dimension.

        Returns
        -------
        GaussianMixture
        """
        mixtures = list(mixtures)
        if not mixtures:
            raise ValueError("cat needs at least one mixture")
        first = mixtures[0]
        if any(not m.batch_shape for m in mixtures):
            raise ValueError(
                "cat joins mixtures along their first batch dimension; a mixture "
                "with an empty batch shape has none (index with gm[i:i+1])"
            )
        for other in mixtures[1:]:
            if (other.covariance_type, other.n_components, other.n_dims) != (
                first.covariance_type,
                first.n_components,
                first.n_dims,
            ):
                raise ValueError(
                    "cat needs mixtures of one covariance type, number of components and "
                    f"dimension; got {first!r} and {other!r}"
                )
        return first._derived(
            torch.cat([m.log_weights for m in mixtures]),
            torch.cat([m.means for m in mixtures]),
            torch.cat([m.precision_cholesky for m in mixtures]),
        )

    def pool(self, dim: int = 0) -> GaussianMixture:
        """The equal-weight mixture of the mixtures along batch dimension ``dim``.

        For an ensemble's predictions of batch shape (E, N) with K components each,
        ``pool(0)`` is the batch (N,) of mixtures of E * K components whose density is the
        mean of the E members' densities.

        Parameters
        ----------
        dim : int
            The batch dimension to pool over.

        Returns
        -------
        GaussianMixture
            Batch shape ``B`` without ``dim``, ``B[dim]`` times as many components.
        """
        ndim = len(self.batch_shape)
        if not -ndim <= dim < ndim:
            raise IndexError(f"dim {dim} is not a batch dimension of {tuple(self.batch_shape)}")
        dim %= ndim
        members = self.batch_shape[dim]

        def merge(values: Tensor) -> Tensor:  # [..., E, ..., K, *event] -> [..., E*K, *event]
            return values.movedim(dim, ndim - 1).flatten(ndim - 1, ndim)

        return self._derived(
            merge(self.log_weights) - math.log(members),
            merge(self.means),
            merge(self.precision_cholesky),
        )

    def _derived(self, log_weights: Tensor, means: Tensor, precision_cholesky: Tensor,
                 covariance: str | None = None) -> GaussianMixture:  # fmt: skip
        """A mixture of this one's type (unless ``covariance`` says otherwise) from
        normalised parameters derived from checked ones: nothing to check or normalise."""
        return GaussianMixture(log_weights, means, precision_cholesky,
                               covariance or self.covariance_type, validate=False,
                               _normalized=True)  # fmt: skip

    # ------------------------------------------------------------------ shape and access
    @property
    def batch_shape(self) -> torch.Size:
        return self.means.shape[:-2]

    @property
    def n_components(self) -> int:
        return self.means.shape[-2]

    @property
    def n_dims(self) -> int:
        return self.means.shape[-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def device(self) -> torch.device:
        return self.means.device

    @functools.cached_property
    def weights(self) -> Tensor:
        """Component weights, shape (*B, K)."""
        return self.log_weights.exp()

    @property
    def covariances(self) -> Tensor:
        """Component covariances in the shape ``from_params`` takes for this type."""
        if self.covariance_type == "full":
            return self.component_covariance_matrices()
        return self.precision_cholesky.square().reciprocal()

    def component_covariance_matrices(self) -> Tensor:
        """Covariance matrices of the components, for every covariance type.

        Returns
        -------
        Tensor of shape (*B, K, D, D)
        """
        if self.covariance_type == "full":
            scale_tril = self._scale_tril
            return scale_tril @ scale_tril.mT
        return torch.diag_embed(self._component_std.square())

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("len() of a mixture with an empty batch shape")
        return self.batch_shape[0]

    def __getitem__(self, key) -> GaussianMixture:
        keys = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis or k is None for k in keys) or len(keys) > len(self.batch_shape):
            raise IndexError(
                f"index the batch dimensions {tuple(self.batch_shape)} only, with at most "
                f"{len(self.batch_shape)} integers, slices or index arrays (no ... or None)"
            )
        return self._derived(
            self.log_weights[key],
            self.means[key],
            self.precision_cholesky[key],
        )

    def to(self, *args: Any, **kwargs: Any) -> GaussianMixture:
        """Move or cast every parameter, as ``Tensor.to`` does.

        Parameters
        ----------
        *args, **kwargs
            What ``Tensor.to`` takes: a device, a dtype, or both.

        Returns
        -------
        GaussianMixture
        """
        return self._derived(
            self.log_weights.to(*args, **kwargs),
            self.means.to(*args, **kwargs),
            self.precision_cholesky.to(*args, **kwargs),
        )

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(batch_shape={tuple(self.batch_shape)}, n_components="
            f"{self.n_components}, n_dims={self.n_dims}, covariance={self.covariance_type!r})"
        )

    # ------------------------------------------------------------------ densities
    def component_log_prob(self, y: Tensor) -> Tensor:
        """``log pi_k + log N(y; mu_k, Sigma_k)`` for each component.

        NaN coordinates of ``y`` count as missing: a point's density is then that of the
        marginal over its observed coordinates (1 if none is observed).

        Parameters
        ----------
        y : Tensor of shape (..., *B, D)
            Points, broadcast against the batch.

        Returns
        -------
        Tensor of shape (..., *B, K)
        """
        y = self._as_points(y)
        observed = ~torch.isnan(y)
        if not bool(observed.all()):
            return observed_component_log_prob(self, y, observed)
        diff = y.unsqueeze(-2) - self.means  # [..., *B, K, D]
        if self.covariance_type == "full":
            u = self.precision_cholesky
            z = (diff.unsqueeze(-2) @ u).squeeze(-2)  # [..., *B, K, D] = U^T (y - mu)
            half_log_det = u.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # [*B, K]
        elif self.covariance_type == "diag":
            z = diff * self.precision_cholesky
            half_log_det = self.precision_cholesky.log().sum(-1)
        else:
            z = diff * self.precision_cholesky.unsqueeze(-1)
            half_log_det = self.n_dims * self.precision_cholesky.log()
        maha = z.square().sum(-1)  # [..., *B, K]
        return self.log_weights + half_log_det - 0.5 * (maha + self.n_dims * _LOG_2PI)

    def log_prob(self, y: Tensor) -> Tensor:
        """Log-density at ``y`` of shape (..., *B, D) (broadcast against the batch).

        NaN coordinates count as missing (the density of the observed ones' marginal).

        Parameters
        ----------
        y : Tensor of shape (..., *B, D)

        Returns
        -------
        Tensor of shape (..., *B)
        """
        return torch.logsumexp(self.component_log_prob(y), dim=-1)

    def responsibilities(self, y: Tensor) -> Tensor:
        """Posterior probability of each component given ``y``.

        Parameters
        ----------
        y : Tensor of shape (..., *B, D)
            NaN coordinates count as missing, as in ``log_prob``.

        Returns
        -------
        Tensor of shape (..., *B, K)
            Sums to 1 over the last axis.
        """
        return torch.softmax(self.component_log_prob(y), dim=-1)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples per mixture.

        Parameters
        ----------
        n : int
            Draws per mixture, at least 1.
        generator : torch.Generator, optional
            Source of randomness (torch's global one when None).

        Returns
        -------
        Tensor of shape (n, *B, D)
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        batch, k, d = self.batch_shape, self.n_components, self.n_dims
        with torch.no_grad():
            flat_weights = self.weights.reshape(-1, k)
            chosen = torch.multinomial(flat_weights, n, replacement=True, generator=generator)
            chosen = chosen.T.reshape(n, *batch)  # [n, *B]
            noise = torch.randn(
                (n, *batch, d), generator=generator, dtype=self.dtype, device=self.device
            )
        mu = gather_component(self.means, chosen)  # [n, *B, D]
        if self.covariance_type == "full":
            scale_tril = gather_component(self._scale_tril, chosen, event_ndim=2)
            return mu + (scale_tril @ noise.unsqueeze(-1)).squeeze(-1)
        return mu + noise * gather_component(self._component_std, chosen)

    # ------------------------------------------------------------------ internals
    def _as_points(self, y: Tensor) -> Tensor:
        y = torch.as_tensor(y, dtype=self.dtype, device=self.device)
        if y.ndim == 0 or y.shape[-1] != self.n_dims:
            raise ValueError(
                f"points must have a last dimension of size {self.n_dims} (the target "
                f"dimension), got shape {tuple(y.shape)}"
            )
        return y

    @functools.cached_property
    def _scale_tril(self) -> Tensor:
        """Lower Cholesky factor of each full covariance: ``inverse(U).mT``."""
        u = self.precision_cholesky
        eye = torch.eye(self.n_dims, dtype=self.dtype, device=self.device)
        return torch.linalg.solve_triangular(u, eye.expand_as(u), upper=True).mT

    @functools.cached_property
    def _component_std(self) -> Tensor:
        """Marginal standard deviation of each component and dimension, shape (*B, K, D)."""
        if self.covariance_type == "full":
            if self.n_dims == 1:  # batched triangular solves cost ~1 us per 1x1 matrix on CPU
                return self.precision_cholesky[..., 0].reciprocal()
            return self._scale_tril.square().sum(-1).sqrt()
        if self.covariance_type == "diag":
            return self.precision_cholesky.reciprocal()
        return self.precision_cholesky.reciprocal().unsqueeze(-1).expand_as(self.means)

    @functools.cached_property
    def _component_log_std(self) -> Tensor:
        """``log`` of ``_component_std``, shape (*B, K, D)."""
        return self._component_std.log()
