"""Gaussian mixtures in NumPy alone: what ``mdn.onnx.OnnxPredictor`` does with the mixture
parameters an exported graph emits, where torch is not installed.

Each method computes what its torch counterpart in ``mdn.mixture`` (and its mixins and
solvers) or ``mdn.transforms.LogGaussianMixture`` computes: the same formulas, the same
fixed-point iteration for the mode (starting points, stopping rule and choice among the end
points), and quantiles solved to floating-point precision (Newton steps inside a bisection
bracket), so that both give the same numbers to about 1e-12 relative on the same
parameters. The components are held by their covariance factors (the lower Cholesky factor
of each covariance, or the standard deviations), the form the graph emits.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from mdn.onnx.numpy_solvers import (
    gather_component,
    logsumexp,
    mixture_mode,
    mixture_quantile,
    ndtr,
    solve_lower,
)

__all__ = ["LogNumpyMixture", "NumpyMixture"]

_LOG_2PI = math.log(2.0 * math.pi)


class NumpyMixture:
    """A batch of Gaussian mixtures held as NumPy arrays (float64).

    Parameters
    ----------
    log_weights : ndarray of shape (*B, K)
        Normalised log-weights.
    means : ndarray of shape (*B, K, D)
    scale : ndarray
        ``full``: (*B, K, D, D) lower Cholesky factors of the covariances; ``diag``:
        (*B, K, D) standard deviations.
    covariance : {"full", "diag"}
    """

    def __init__(
        self, log_weights: np.ndarray, means: np.ndarray, scale: np.ndarray, covariance: str
    ) -> None:
        if covariance not in ("full", "diag"):
            raise ValueError(f"covariance must be 'full' or 'diag', got {covariance!r}")
        self.log_weights, self.means, self.scale = log_weights, means, scale
        self.covariance_type = covariance

    @property
    def n_dims(self) -> int:
        return self.means.shape[-1]

    # Derived on first use: a point estimate such as ``top`` needs neither.
    @functools.cached_property
    def weights(self) -> np.ndarray:
        """Component weights, shape (*B, K)."""
        return np.exp(self.log_weights)

    @functools.cached_property
    def component_std(self) -> np.ndarray:
        """Marginal standard deviation of every component and dimension, shape (*B, K, D)."""
        if self.covariance_type == "full":
            return np.sqrt(np.sum(self.scale * self.scale, axis=-1))
        return self.scale

    def component_covariances(self) -> np.ndarray:
        """The covariance matrix of every component.

        Returns
        -------
        ndarray of shape (*B, K, D, D)
        """
        if self.covariance_type == "full":
            return self.scale @ np.swapaxes(self.scale, -1, -2)
        variance = self.scale * self.scale
        return variance[..., None] * np.eye(self.n_dims)

    # ------------------------------------------------------------------ densities
    def component_log_prob(self, y: np.ndarray) -> np.ndarray:
        """``log pi_k + log N(y; mu_k, Sigma_k)``; NaN coordinates of ``y`` are missing.

        Parameters
        ----------
        y : ndarray of shape (..., *B, D)

        Returns
        -------
        ndarray of shape (..., *B, K)
        """
        observed = ~np.isnan(y)
        seen = observed[..., None, :]  # [..., *B, 1, D]
        diff = np.where(seen, np.where(observed, y, 0.0)[..., None, :] - self.means, 0.0)
        n_seen = np.sum(observed, axis=-1, keepdims=True)  # [..., *B, 1]
        if self.covariance_type == "full":
            chol = self.scale
            if not observed.all():  # the observed block's factor, an identity elsewhere
                both = seen[..., :, None] & seen[..., None, :]
                cov = np.where(both, self.component_covariances(), np.eye(self.n_dims))
                chol = np.linalg.cholesky(cov)
            chol = np.broadcast_to(chol, (*diff.shape, self.n_dims))
            z = solve_lower(chol, diff)
            half_log_det = -np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        else:
            z = diff / self.scale
            half_log_det = -np.sum(np.log(self.scale) * seen, axis=-1)
        maha = np.sum(z * z, axis=-1)
        return self.log_weights + half_log_det - 0.5 * (maha + n_seen * _LOG_2PI)

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        """Log-density at ``y`` (..., *B, D); NaN coordinates are marginalised out.

        Parameters
        ----------
        y : ndarray of shape (..., *B, D)

        Returns
        -------
        ndarray of shape (..., *B)
        """
        return logsumexp(self.component_log_prob(y), axis=-1)

    def responsibilities(self, y: np.ndarray) -> np.ndarray:
        """Posterior probability of each component given ``y`` (NaN coordinates missing).

        Parameters
        ----------
        y : ndarray of shape (..., *B, D)

        Returns
        -------
        ndarray of shape (..., *B, K)
        """
        joint = self.component_log_prob(y)
        return np.exp(joint - logsumexp(joint, axis=-1)[..., None])

    # ------------------------------------------------------------------ points
    def mean(self) -> np.ndarray:
        """Mixture mean.

        Returns
        -------
        ndarray of shape (*B, D)
        """
        return np.sum(self.weights[..., None] * self.means, axis=-2)

    def top(self) -> np.ndarray:
        """Mean of the heaviest component.

        Returns
        -------
        ndarray of shape (*B, D)
        """
        return gather_component(self.means, np.argmax(self.log_weights, axis=-1))

    def mode(self, max_iter: int = 500, tol: float = 1e-6) -> np.ndarray:
        """Highest-density point, by ``GaussianMixture.mode``'s fixed-point iteration from
        every component mean (``numpy_solvers.mixture_mode``).

        Parameters
        ----------
        max_iter : int
        tol : float

        Returns
        -------
        ndarray of shape (*B, D)
        """
        return mixture_mode(self, max_iter, tol)

    # ------------------------------------------------------------------ marginals
    def _cdf_and_log_density(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = (x[..., None, :] - self.means) / self.component_std  # [..., *B, K, D]
        # Weights from a float32 network sum to 1 to float32 precision only.
        weights = self.weights / np.sum(self.weights, axis=-1, keepdims=True)
        cdf = np.clip(np.sum(weights[..., None] * ndtr(u), axis=-2), 0.0, 1.0)
        log_pdf = -0.5 * (u * u + _LOG_2PI) - np.log(self.component_std)
        return cdf, logsumexp(self.log_weights[..., None] + log_pdf, axis=-2)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """Marginal CDF of each dimension at ``y``.

        Parameters
        ----------
        y : ndarray of shape (..., *B, D)

        Returns
        -------
        ndarray of shape (..., *B, D)
        """
        return self._cdf_and_log_density(y)[0]

    def quantile(self, q: float | np.ndarray, max_iter: int = 100) -> np.ndarray:
        """Marginal quantiles (the inverse of ``cdf``), exact to floating-point precision
        (``numpy_solvers.mixture_quantile``).

        Parameters
        ----------
        q : float or ndarray
            Levels in [0, 1], broadcast against (*B, D).
        max_iter : int

        Returns
        -------
        ndarray of shape ``broadcast(q.shape, (*B, D))``
        """
        return mixture_quantile(self, q, max_iter)

    def median(self) -> np.ndarray:
        """Median of each marginal: ``quantile(0.5)``.

        Returns
        -------
        ndarray of shape (*B, D)
        """
        return self.quantile(0.5)

    def interval(self, coverage: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central interval of each marginal holding ``coverage`` of its mass.

        Parameters
        ----------
        coverage : float
            Strictly between 0 and 1.

        Returns
        -------
        lower, upper : ndarray of shape (*B, D)
        """
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage!r}")
        levels = np.array([(1 - coverage) / 2, (1 + coverage) / 2])
        bounds = self.quantile(levels.reshape(2, *([1] * (self.means.ndim - 1))))
        return bounds[0], bounds[1]

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` samples per mixture.

        Parameters
        ----------
        n : int
        rng : numpy.random.Generator

        Returns
        -------
        ndarray of shape (n, *B, D)
        """
        batch = self.means.shape[:-2]
        cumulative = np.cumsum(self.weights, axis=-1)  # [*B, K]
        draws = rng.random((n, *batch, 1)) * cumulative[..., -1:]
        chosen = np.minimum(np.sum(cumulative < draws, axis=-1), self.weights.shape[-1] - 1)
        noise = rng.standard_normal((n, *batch, self.n_dims))
        mu = gather_component(self.means, chosen)
        if self.covariance_type == "full":
            factor = gather_component(self.scale, chosen, event_ndim=2)
            return mu + (factor @ noise[..., None])[..., 0]
        return mu + noise * gather_component(self.scale, chosen)


class LogNumpyMixture:
    """The distribution of ``exp(z)`` for a ``NumpyMixture`` ``z``, as
    ``mdn.transforms.LogGaussianMixture`` computes it.

    Parameters
    ----------
    base : NumpyMixture
        The mixture over ``log(y)``.
    """

    def __init__(self, base: NumpyMixture) -> None:
        self.base = base

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        """Log-density in user units; NaN coordinates are missing, points with an observed
        entry <= 0 have density 0.

        Parameters
        ----------
        y : ndarray of shape (..., *B, D)

        Returns
        -------
        ndarray of shape (..., *B)
        """
        missing = np.isnan(y)
        positive = np.all((y > 0) | missing, axis=-1)
        log_y = np.log(np.where(y > 0, y, 1.0))
        log_y = np.where(missing, np.nan, log_y)
        density = self.base.log_prob(log_y) - np.nansum(log_y, axis=-1)
        return np.where(positive, density, -np.inf)

    def mean(self) -> np.ndarray:
        """Mixture mean ``sum_k w_k exp(mu_k + sigma_k^2 / 2)``.

        Returns
        -------
        ndarray of shape (*B, D)
        """
        var = self.base.component_std**2
        return np.sum(self.base.weights[..., None] * np.exp(self.base.means + 0.5 * var), axis=-2)

    def top(self) -> np.ndarray:
        """``exp`` of the heaviest component's mean.

        Returns
        -------
        ndarray of shape (*B, D)
        """
        return np.exp(self.base.top())

    def mode(self, max_iter: int = 500, tol: float = 1e-6) -> np.ndarray:
        """``exp`` of the mode of the exponentially tilted base mixture.

        Parameters
        ----------
        max_iter, tol
            As in ``NumpyMixture.mode``.

        Returns
        -------
        ndarray of shape (*B, D)
        """
        base = self.base
        row_sums = np.sum(base.component_covariances(), axis=-1)  # Sigma_k 1, [*B, K, D]
        logits = base.log_weights - np.sum(base.means, axis=-1) + 0.5 * np.sum(row_sums, axis=-1)
        log_weights = logits - logsumexp(logits, axis=-1)[..., None]
        tilted = NumpyMixture(log_weights, base.means - row_sums, base.scale, base.covariance_type)
        return np.exp(tilted.mode(max_iter=max_iter, tol=tol))

    def quantile(self, q: float | np.ndarray) -> np.ndarray:
        """``exp`` of the base's marginal quantiles.

        Parameters
        ----------
        q : float or ndarray

        Returns
        -------
        ndarray
        """
        return np.exp(self.base.quantile(q))

    def median(self) -> np.ndarray:
        """``exp`` of the base's marginal medians.

        Returns
        -------
        ndarray of shape (*B, D)
        """
        return np.exp(self.base.median())

    def interval(self, coverage: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """``exp`` of the base's interval bounds.

        Parameters
        ----------
        coverage : float

        Returns
        -------
        lower, upper : ndarray of shape (*B, D)
        """
        lower, upper = self.base.interval(coverage)
        return np.exp(lower), np.exp(upper)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``exp`` of the base's samples.

        Parameters
        ----------
        n : int
        rng : numpy.random.Generator

        Returns
        -------
        ndarray of shape (n, *B, D)
        """
        return np.exp(self.base.sample(n, rng))
