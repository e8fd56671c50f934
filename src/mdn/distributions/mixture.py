"""Batches of Gaussian mixtures: the conditional distribution an MDN predicts per input.

``GaussianMixture`` is written once against the Array API (``array_api_compat``), with the
few operations it lacks in ``mdn.distributions.kernels``: the same class holds torch tensors
for ``MDN`` (differentiable, on any device) and NumPy arrays for the torch-free predictor
(``mdn.onnx``), and this module imports no torch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from array_api_compat import device as device_of

from mdn import params
from mdn.distributions.kernels import kernels_for
from mdn.distributions.parameters import (
    check_parameters,
    parameters_from_covariances,
    precision_cholesky_from_covariance,
)
from mdn.distributions.solvers import marginal_quantile
from mdn.params import COVARIANCE_TYPES

__all__ = [
    "COVARIANCE_TYPES",
    "GaussianMixture",
    "gather_component",
    "precision_cholesky_from_covariance",
]

_LOG_2PI = math.log(2.0 * math.pi)

#: Arrays of either library: torch tensors or NumPy arrays.
Array = Any


class GaussianMixture:
    r"""A batch of mixtures of K Gaussians over D-dimensional targets.

    .. math:: p(y) = \sum_k \pi_k \, \mathcal{N}(y;\ \mu_k, \Sigma_k)

    The batch may have any shape ``B`` (an MDN gives one mixture per input row, ``B = (N,)``).
    Each component's covariance is held as the upper-triangular Cholesky factor ``U`` of its
    precision, ``inverse(Sigma_k) = U @ U.mT``, so that a log-density costs one triangular
    product and a sum of logs; covariances are derived only on request.

    The parameters are torch tensors (differentiable, on any device) or NumPy arrays (where
    torch is not installed); every method returns arrays of the same library.

    Parameters
    ----------
    logits : Tensor or ndarray of shape (*B, K)
        Unnormalised log-weights; they are normalised with ``log_softmax``.
    means : Tensor or ndarray of shape (*B, K, D)
        Component means.
    precision_cholesky : Tensor or ndarray
        ``full``: (*B, K, D, D) upper-triangular with a positive diagonal;
        ``diag``: (*B, K, D) square roots of the precisions (1 / standard deviation);
        ``spherical``: (*B, K), one such value per component.
    covariance : {"full", "diag", "spherical"}
        Covariance type, named as in scikit-learn's ``GaussianMixture``.
    validate : bool
        Check types, shapes and values (turned off by the network head on its hot path).
    normalized : bool
        ``logits`` are normalised log-weights already (they sum to 1 once exponentiated):
        taken as they are.

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
        logits: Array,
        means: Array,
        precision_cholesky: Array,
        covariance: str = "full",
        *,
        validate: bool = True,
        normalized: bool = False,
    ) -> None:
        params.validate("covariance", covariance)
        self.covariance_type = covariance
        if validate:
            check_parameters(logits, means, precision_cholesky, covariance)
        self._kernels = kernels_for(means)
        self._xp = self._kernels.xp
        # Copies made here pass log-weights that are normalised already; log_softmax over a
        # short last axis is slow on CPU (a tenth of the prediction time).
        self.log_weights = logits if normalized else self._kernels.log_softmax(logits, -1)
        self.means = means  # [*B, K, D]
        self.precision_cholesky = precision_cholesky

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(
        cls,
        weights: Array,
        means: Array,
        covariances: Array,
        covariance: str | None = None,
    ) -> GaussianMixture:
        """Build a mixture of torch tensors from weights, means and covariances.

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
        concat = first._xp.concat
        return first.replace(
            log_weights=concat([m.log_weights for m in mixtures]),
            means=concat([m.means for m in mixtures]),
            precision_cholesky=concat([m.precision_cholesky for m in mixtures]),
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
        xp = self._xp

        def merge(values: Array) -> Array:  # [..., E, ..., K, *event] -> [..., E*K, *event]
            moved = xp.moveaxis(values, dim, ndim - 1)
            return xp.reshape(moved, (*moved.shape[: ndim - 1], -1, *moved.shape[ndim + 1 :]))

        return self.replace(
            log_weights=merge(self.log_weights) - math.log(members),
            means=merge(self.means),
            precision_cholesky=merge(self.precision_cholesky),
        )

    def replace(
        self,
        *,
        log_weights: Array | None = None,
        means: Array | None = None,
        precision_cholesky: Array | None = None,
        covariance: str | None = None,
    ) -> GaussianMixture:
        """This mixture with some of its parameters replaced, unchecked.

        For parameters derived from checked ones (a transform, a recalibration, a slice):
        ``log_weights`` must be normalised already.

        Parameters
        ----------
        log_weights, means, precision_cholesky : array, optional
            The new parameters (this mixture's where None).
        covariance : {"full", "diag", "spherical"}, optional
            The new covariance type (this mixture's where None).

        Returns
        -------
        GaussianMixture
        """
        return GaussianMixture(
            self.log_weights if log_weights is None else log_weights,
            self.means if means is None else means,
            self.precision_cholesky if precision_cholesky is None else precision_cholesky,
            covariance or self.covariance_type,
            validate=False,
            normalized=True,
        )

    # ------------------------------------------------------------------ shape and access
    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.means.shape[:-2]

    @property
    def n_components(self) -> int:
        return self.means.shape[-2]

    @property
    def n_dims(self) -> int:
        return self.means.shape[-1]

    @property
    def dtype(self) -> Any:
        return self.means.dtype

    @property
    def device(self) -> Any:
        return device_of(self.means)

    @functools.cached_property
    def weights(self) -> Array:
        """Component weights, shape (*B, K)."""
        return self._xp.exp(self.log_weights)

    @property
    def covariances(self) -> Array:
        """Component covariances in the shape ``from_params`` takes for this type."""
        if self.covariance_type == "full":
            return self.component_covariance_matrices()
        return self._xp.reciprocal(self._xp.square(self.precision_cholesky))

    def component_covariance_matrices(self) -> Array:
        """Covariance matrices of the components, for every covariance type.

        Returns
        -------
        array of shape (*B, K, D, D)
        """
        if self.covariance_type == "full":
            scale_tril = self._scale_tril
            return scale_tril @ self._xp.matrix_transpose(scale_tril)
        eye = self._xp.astype(self._eye(), self._xp.bool)
        return self._xp.where(eye, self._xp.square(self._component_std)[..., None], 0.0)

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
        return self.replace(
            log_weights=self.log_weights[key],
            means=self.means[key],
            precision_cholesky=self.precision_cholesky[key],
        )

    def to(self, *args: Any, **kwargs: Any) -> GaussianMixture:
        """Move or cast every parameter, as ``Tensor.to`` does (torch tensors only).

        Parameters
        ----------
        *args, **kwargs
            What ``Tensor.to`` takes: a device, a dtype, or both.

        Returns
        -------
        GaussianMixture
        """
        if self._kernels.name != "torch":
            raise TypeError("to() moves torch tensors; this mixture holds NumPy arrays")
        return self.replace(
            log_weights=self.log_weights.to(*args, **kwargs),
            means=self.means.to(*args, **kwargs),
            precision_cholesky=self.precision_cholesky.to(*args, **kwargs),
        )

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(batch_shape={tuple(self.batch_shape)}, n_components="
            f"{self.n_components}, n_dims={self.n_dims}, covariance={self.covariance_type!r})"
        )

    # ------------------------------------------------------------------ densities
    def component_log_prob(self, y: Array, complete: bool | None = None) -> Array:
        """``log pi_k + log N(y; mu_k, Sigma_k)`` for each component.

        NaN coordinates of ``y`` count as missing: a point's density is then that of the
        marginal over its observed coordinates (1 if none is observed).

        Parameters
        ----------
        y : array of shape (..., *B, D)
            Points, broadcast against the batch.
        complete : bool, optional
            Whether ``y`` is known to hold no NaN (None: look; True skips the look, which
            costs a host sync on a GPU and cannot be traced into a graph).

        Returns
        -------
        array of shape (..., *B, K)
        """
        xp = self._xp
        y = self._as_points(y)
        if not complete:
            observed = ~xp.isnan(y)
            if not bool(xp.all(observed)):
                return self._observed_component_log_prob(y, observed)
        diff = y[..., None, :] - self.means  # [..., *B, K, D]
        u = self.precision_cholesky
        if self.covariance_type == "full":
            z = (diff[..., None, :] @ u)[..., 0, :]  # [..., *B, K, D] = U^T (y - mu)
            half_log_det = xp.sum(xp.log(xp.linalg.diagonal(u)), axis=-1)  # [*B, K]
        elif self.covariance_type == "diag":
            z = diff * u
            half_log_det = xp.sum(xp.log(u), axis=-1)
        else:
            z = diff * u[..., None]
            half_log_det = self.n_dims * xp.log(u)
        maha = xp.sum(xp.square(z), axis=-1)  # [..., *B, K]
        return self.log_weights + half_log_det - 0.5 * (maha + self.n_dims * _LOG_2PI)

    def _observed_component_log_prob(self, y: Array, observed: Array) -> Array:
        """``component_log_prob`` of the marginals over the observed coordinates.

        Missing coordinates get zero residuals. Diagonal and spherical components drop their
        terms; full ones go through ``_full_marginal_terms``.
        """
        xp = self._xp
        seen = observed[..., None, :]  # [..., *B, 1, D]
        diff = xp.where(seen, xp.where(observed, y, 0.0)[..., None, :] - self.means, 0.0)
        n_seen = xp.astype(xp.sum(observed, axis=-1, keepdims=True), self.dtype)  # [..., *B, 1]
        u = self.precision_cholesky
        if self.covariance_type == "full":
            maha, half_log_det = self._full_marginal_terms(diff, ~seen)
        else:
            z = diff * (u if self.covariance_type == "diag" else u[..., None])
            maha = xp.sum(xp.square(z), axis=-1)  # [..., *B, K]
            half_log_det = (
                xp.sum(xp.log(u) * seen, axis=-1)
                if self.covariance_type == "diag"
                else n_seen * xp.log(u)
            )
        return self.log_weights + half_log_det - 0.5 * (maha + n_seen * _LOG_2PI)

    def _full_marginal_terms(self, diff: Array, missing: Array) -> tuple[Array, Array]:
        """The Mahalanobis term and half the log-determinant of each full component's marginal
        over the observed coordinates, from the precision alone.

        With P = U U^T split into observed (O) and missing (M) blocks, the marginal of O has
        precision S = P_OO - P_OM P_MM^-1 P_MO (a Schur complement) and determinant
        det(P) / det(P_MM). With the residual d zero on M, d^T S d = d^T P d - g^T P_MM^-1 g
        where g = (P d) on M. So only P_MM is factorised (its Cholesky factor, with the
        identity on O), and no covariance is rebuilt from an inverted precision: rebuilding
        and factorising it in float32 failed on real targets (GLORIA's chl, tss and cdom).
        The arithmetic is float64 whatever the mixture's dtype.
        """
        xp, kernels = self._xp, self._kernels
        u = xp.astype(self.precision_cholesky, xp.float64)  # [*B, K, D, D]
        d = xp.astype(diff, xp.float64)  # [..., *B, K, D], 0 where missing
        precision = u @ xp.matrix_transpose(u)  # [*B, K, D, D]
        eye = xp.eye(self.n_dims, dtype=xp.float64, device=self.device)
        both_missing = missing[..., :, None] & missing[..., None, :]  # [..., *B, 1, D, D]
        chol = kernels.cholesky(xp.where(both_missing, precision, eye))  # diag(I_O, L_MM)
        g = xp.where(missing, (precision @ d[..., None])[..., 0], 0.0)  # P_MO d_O, on M
        t = kernels.solve_triangular(chol, g[..., None], upper=False)[..., 0]
        z = (d[..., None, :] @ u)[..., 0, :]  # U^T d
        maha = xp.sum(xp.square(z), axis=-1) - xp.sum(xp.square(t), axis=-1)
        half_log_det = xp.sum(xp.log(xp.linalg.diagonal(u)), axis=-1) - xp.sum(
            xp.log(xp.linalg.diagonal(chol)), axis=-1
        )
        return xp.astype(maha, self.dtype), xp.astype(half_log_det, self.dtype)

    def log_prob(self, y: Array, complete: bool | None = None) -> Array:
        """Log-density at ``y`` of shape (..., *B, D) (broadcast against the batch).

        NaN coordinates count as missing (the density of the observed ones' marginal).

        Parameters
        ----------
        y : array of shape (..., *B, D)
        complete : bool, optional
            Whether ``y`` is known to hold no NaN (see ``component_log_prob``).

        Returns
        -------
        array of shape (..., *B)
        """
        return self._kernels.logsumexp(self.component_log_prob(y, complete), -1)

    def responsibilities(self, y: Array) -> Array:
        """Posterior probability of each component given ``y``.

        Parameters
        ----------
        y : array of shape (..., *B, D)
            NaN coordinates count as missing, as in ``log_prob``.

        Returns
        -------
        array of shape (..., *B, K)
            Sums to 1 over the last axis.
        """
        return self._kernels.softmax(self.component_log_prob(y), -1)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int = 1, generator: Any = None) -> Array:
        """Draw ``n`` samples per mixture.

        Parameters
        ----------
        n : int
            Draws per mixture, at least 1.
        generator : torch.Generator, numpy.random.Generator, seed or None, optional
            Source of randomness: for torch tensors a torch generator (torch's global one
            when None); for NumPy arrays anything ``numpy.random.default_rng`` takes.

        Returns
        -------
        array of shape (n, *B, D)
        """
        params.validate_argument("n", n)
        kernels, xp = self._kernels, self._xp
        generator = kernels.generator(generator)
        batch, k, d = self.batch_shape, self.n_components, self.n_dims
        with kernels.no_grad():
            flat_weights = xp.reshape(self.weights, (-1, k))
            chosen = kernels.draw_components(flat_weights, n, generator)  # [M, n]
            chosen = xp.reshape(xp.matrix_transpose(chosen), (n, *batch))  # [n, *B]
            noise = kernels.standard_normal((n, *batch, d), self.means, generator)
        mu = gather_component(self.means, chosen)  # [n, *B, D]
        if self.covariance_type == "full":
            scale_tril = gather_component(self._scale_tril, chosen, event_ndim=2)
            return mu + (scale_tril @ noise[..., None])[..., 0]
        return mu + noise * gather_component(self._component_std, chosen)

    # ------------------------------------------------------------------ moments and points
    def mean(self) -> Array:
        """Mixture mean.

        Returns
        -------
        array of shape (*B, D)
        """
        return self._xp.sum(self.weights[..., None] * self.means, axis=-2)

    def covariance(self) -> Array:
        """Mixture covariance, by the law of total covariance.

        Returns
        -------
        array of shape (*B, D, D)
        """
        weights = self.weights[..., None, None]  # [*B, K, 1, 1]
        spread = self.means - self.mean()[..., None, :]  # [*B, K, D]
        # Law of total covariance: E_k[Sigma_k] + Cov_k[mu_k].
        outer = spread[..., :, None] * spread[..., None, :]
        return self._xp.sum(weights * (self.component_covariance_matrices() + outer), axis=-3)

    def variance(self) -> Array:
        """Mixture variance of each dimension (the diagonal of ``covariance``).

        Returns
        -------
        array of shape (*B, D)
        """
        xp = self._xp
        spread = self.means - self.mean()[..., None, :]  # [*B, K, D]
        within = xp.square(self._component_std) + xp.square(spread)
        return xp.sum(self.weights[..., None] * within, axis=-2)

    def top(self) -> Array:
        """Mean of the heaviest component.

        Returns
        -------
        array of shape (*B, D)
        """
        return gather_component(self.means, self._xp.argmax(self.log_weights, axis=-1))

    def mode(self, max_iter: int = 500, tol: float = 1e-6) -> Array:
        """Highest-density point of each mixture, shape (*B, D).

        Runs the fixed-point iteration ``x <- (sum_k r_k P_k)^-1 sum_k r_k P_k mu_k``
        (``r_k`` the responsibilities at ``x``, ``P_k`` the precisions; Carreira-Perpinan
        2000) from every component mean, and keeps the point of highest density among the
        converged points and the starting means. Converged starts are frozen, so that each
        result is independent of the rest of the batch.

        Parameters
        ----------
        max_iter : int
            Iteration limit.
        tol : float
            Stop when no point moves by more than ``tol`` times the smallest component
            standard deviation of its dimension.

        Returns
        -------
        array of shape (*B, D)
        """
        xp = self._xp
        starts = xp.moveaxis(self.means, -2, 0)  # [S=K, *B, D]
        x = starts
        scale = xp.min(self._component_std, axis=-2)  # [*B, D]
        precision, weighted_means = self._precisions()
        done = xp.zeros(x.shape[:-1], dtype=xp.bool, device=self.device)  # [S, *B]
        with self._kernels.no_grad():
            for _ in range(max_iter):
                x_new = self._mode_step(x, precision, weighted_means)
                x_new = xp.where(done[..., None], x, x_new)
                done = done | xp.all(xp.abs(x_new - x) / scale <= tol, axis=-1)
                x = x_new
                if bool(xp.all(done)):
                    break
            candidates = xp.concat([x, starts])  # [2S, *B, D]
            best = xp.argmax(self.log_prob(candidates), axis=0)  # [*B]
        return gather_component(xp.moveaxis(candidates, 0, -2), best)

    def _precisions(self) -> tuple[Array, Array]:
        """Each component's precision (matrices for ``full``, else per dimension) and the
        precision times the mean, for the mode's fixed point."""
        u = self.precision_cholesky
        if self.covariance_type == "full":
            precision = u @ self._xp.matrix_transpose(u)  # [*B, K, D, D]
            return precision, (precision @ self.means[..., None])[..., 0]  # [*B, K, D]
        precision = self._xp.square(u)  # [*B, K, D] or [*B, K]
        if self.covariance_type == "spherical":
            precision = precision[..., None]
        return precision, precision * self.means

    def _mode_step(self, x: Array, precision: Array, weighted_means: Array) -> Array:
        """One step of the mode's fixed-point iteration from the points ``x`` (S, *B, D)."""
        xp = self._xp
        resp = self.responsibilities(x)  # [S, *B, K]
        rhs = xp.sum(resp[..., None] * weighted_means, axis=-2)  # [S, *B, D]
        if self.covariance_type == "full":
            lhs = xp.sum(resp[..., None, None] * precision, axis=-3)  # [S, *B, D, D]
            return self._kernels.solve(lhs, rhs)
        return rhs / xp.sum(resp[..., None] * precision, axis=-2)

    # ------------------------------------------------------------------ marginals
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
        return self.replace(means=means, precision_cholesky=prec_chol)

    def cdf(self, y: Array) -> Array:
        """Marginal CDF of each dimension at ``y``.

        Parameters
        ----------
        y : array of shape (..., *B, D)
            One value per dimension, each evaluated under its own marginal.

        Returns
        -------
        array of shape (..., *B, D)
            In [0, 1].
        """
        u = self._standardised(y)
        weighted = self.weights[..., None] * self._kernels.ndtr(u)
        # Softmax weights may sum to 1 + 1 ulp: clamp so that quantile(cdf(y)) stays valid.
        return self._xp.clip(self._xp.sum(weighted, axis=-2), 0.0, 1.0)

    def marginal_log_prob(self, y: Array) -> Array:
        """Log-density of each one-dimensional marginal at ``y``.

        Parameters
        ----------
        y : array of shape (..., *B, D)

        Returns
        -------
        array of shape (..., *B, D)
        """
        u = self._standardised(y)
        log_pdf = -0.5 * (self._xp.square(u) + _LOG_2PI) - self._component_log_std
        return self._kernels.logsumexp(self.log_weights[..., None] + log_pdf, -2)

    def quantile(self, q: float | Array, max_iter: int = 100) -> Array:
        """Quantiles of each one-dimensional marginal (the inverse of ``cdf``).

        Solves ``cdf(x) = q`` by Halley steps kept inside a bisection bracket that starts
        between the smallest and largest component quantiles (the mixture quantile always
        lies there), from a start that float32 steps bring close: exact to floating-point
        precision (to about ``1e-13 * min(q, 1 - q)`` in probability), not a Gaussian
        approximation (``mdn.distributions.solvers.marginal_quantile``). The weights are
        normalised first: a float32 network's sum to 1 only to float32 precision.

        Parameters
        ----------
        q : float or array
            Probabilities in [0, 1], broadcast against (*B, D) as ``torch.distributions``
            does for ``icdf``: a float gives (*B, D); levels of shape (Q, 1, 1) for a batch
            of shape (N,) give (Q, N, D).
        max_iter : int
            Iteration limit of the Newton-bisection.

        Returns
        -------
        array of shape ``broadcast(q.shape, (*B, D))``
        """
        xp = self._xp
        q = self._kernels.as_array(q, self.dtype, self.device)
        if bool(xp.any((q < 0) | (q > 1) | xp.isnan(q))):
            raise ValueError("quantile levels q must lie in [0, 1]")
        shape = np.broadcast_shapes(tuple(q.shape), (*self.batch_shape, self.n_dims))
        levels = xp.reshape(xp.broadcast_to(q, shape), (-1,))
        out = xp.astype(xp.where(levels < 0.5, -math.inf, math.inf), self.dtype)  # q = 0 or 1
        inner = (levels > 0) & (levels < 1)
        weights = xp.broadcast_to(self.weights[..., None], self.means.shape)
        columns = [
            self._component_major(values, shape)
            for values in (weights, self.means, self._component_std)
        ]
        if not bool(xp.all(inner)):
            columns = [values[:, inner] for values in columns]
        out[inner] = marginal_quantile(*columns, levels[inner], max_iter)
        return xp.reshape(out, shape)

    def median(self) -> Array:
        """Median of each one-dimensional marginal: ``quantile(0.5)``.

        Returns
        -------
        array of shape (*B, D)
        """
        return self.quantile(0.5)

    def interval(self, coverage: float = 0.9) -> tuple[Array, Array]:
        """Central interval of each one-dimensional marginal holding ``coverage`` of its mass.

        Parameters
        ----------
        coverage : float
            Strictly between 0 and 1.

        Returns
        -------
        lower, upper : array of shape (*B, D)
            The ``(1 - coverage) / 2`` and ``(1 + coverage) / 2`` quantiles.
        """
        params.validate_argument("coverage", coverage)
        levels = [(1 - coverage) / 2, (1 + coverage) / 2]
        shape = (2, *([1] * (len(self.batch_shape) + 1)))
        bounds = self.quantile(
            self._xp.reshape(self._kernels.as_array(levels, self.dtype, None), shape)
        )
        return bounds[0], bounds[1]

    # ------------------------------------------------------------------ internals
    def _as_points(self, y: Array) -> Array:
        y = self._kernels.as_array(y, self.dtype, self.device)
        if y.ndim == 0 or y.shape[-1] != self.n_dims:
            raise ValueError(
                f"points must have a last dimension of size {self.n_dims} (the target "
                f"dimension), got shape {tuple(y.shape)}"
            )
        return y

    def _eye(self) -> Array:
        return self._xp.eye(self.n_dims, dtype=self.dtype, device=self.device)

    def _standardised(self, y: Array) -> Array:
        """``(y - mean) / std`` of every component and dimension, shape (..., *B, K, D)."""
        return (self._as_points(y)[..., None, :] - self.means) / self._component_std

    def _component_major(self, values: Array, shape: tuple[int, ...]) -> Array:
        """(*B, K, D) per-component values, broadcast to ``shape`` = (..., *B, D), as (K, M)."""
        xp = self._xp
        lead = xp.broadcast_to(values, (*shape[:-1], *values.shape[-2:]))  # [..., *B, K, D]
        moved = xp.reshape(xp.moveaxis(lead, -2, 0), (values.shape[-2], -1))
        return self._kernels.contiguous(moved)

    @functools.cached_property
    def _scale_tril(self) -> Array:
        """Lower Cholesky factor of each full covariance: ``inverse(U).mT``."""
        u = self.precision_cholesky
        eye = self._xp.broadcast_to(self._eye(), u.shape)
        return self._xp.matrix_transpose(self._kernels.solve_triangular(u, eye, upper=True))

    @functools.cached_property
    def _component_std(self) -> Array:
        """Marginal standard deviation of each component and dimension, shape (*B, K, D)."""
        xp, u = self._xp, self.precision_cholesky
        if self.covariance_type == "full":
            if self.n_dims == 1:  # batched triangular solves cost ~1 us per 1x1 matrix on CPU
                return xp.reciprocal(u[..., 0])
            return xp.sqrt(xp.sum(xp.square(self._scale_tril), axis=-1))
        if self.covariance_type == "diag":
            return xp.reciprocal(u)
        return xp.broadcast_to(xp.reciprocal(u)[..., None], self.means.shape)

    @functools.cached_property
    def _component_log_std(self) -> Array:
        """``log`` of ``_component_std``, shape (*B, K, D)."""
        return self._xp.log(self._component_std)


def gather_component(values: Array, index: Array, event_ndim: int = 1) -> Array:
    """Pick one component per mixture.

    Parameters
    ----------
    values : array of shape (*B, K, *E)
        Per-component values, with ``len(E) == event_ndim``.
    index : integer array of shape (*L, *B)
        The component to pick, with any leading dimensions L.
    event_ndim : int

    Returns
    -------
    array of shape (*L, *B, *E)
    """
    kernels = kernels_for(values)
    xp = kernels.xp
    k_dim = values.ndim - event_ndim - 1  # position of K in values, = len(B)
    n_lead = index.ndim - k_dim
    expanded = xp.broadcast_to(values, (*index.shape[:n_lead], *values.shape))  # [*L, *B, K, *E]
    idx = xp.reshape(index, (*index.shape, 1, *([1] * event_ndim)))
    idx = xp.broadcast_to(idx, (*index.shape, 1, *values.shape[k_dim + 1 :]))  # [*L, *B, 1, *E]
    return xp.squeeze(kernels.take_along_axis(expanded, idx, index.ndim), axis=index.ndim)
