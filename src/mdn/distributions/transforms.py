"""Target transforms a Gaussian mixture can be pushed through exactly.

``AffineTransform`` folds into the mixture (it stays a ``GaussianMixture``); ``exp``, the
inverse of a log-transformed target, gives a ``LogGaussianMixture`` whose density, samples,
moments, mode and quantiles stay exact. Both work on mixtures of torch tensors and of NumPy
arrays, as ``GaussianMixture`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from array_api_compat import is_torch_array

from mdn.distributions.kernels import kernels_for
from mdn.distributions.mixture import GaussianMixture

__all__ = ["AffineTransform", "LogGaussianMixture"]

Array = Any


class AffineTransform:
    """Elementwise affine map ``y = loc + scale * z`` over the target dimensions.

    Parameters
    ----------
    loc, scale : Tensor or array-like of shape (D,)
        ``scale`` must be non-zero (a negative entry flips that dimension). They are cast to
        each mixture's dtype and device when applied.
    """

    def __init__(self, loc: Array, scale: Array) -> None:
        loc, scale = _as_vector(loc), _as_vector(scale)
        if loc.ndim != 1 or loc.shape != scale.shape:
            raise ValueError(
                f"loc and scale must be vectors of one length, got {tuple(loc.shape)} and "
                f"{tuple(scale.shape)}"
            )
        checked = np.asarray([*_floats(loc), *_floats(scale)])
        if not (np.isfinite(checked).all() and (checked[len(checked) // 2 :] != 0).all()):
            raise ValueError("loc and scale must be finite and scale non-zero")
        self.loc, self.scale = loc, scale
        # Decided once, from the values: applying the transform then has no branch on data
        # (it is traced into the ONNX graph).
        magnitudes = np.abs(_floats(scale))
        self.isotropic = bool((magnitudes == magnitudes[0]).all())

    def covariance_after(self, covariance: str) -> str:
        """The covariance type of a mixture of type ``covariance`` after this transform: an
        anisotropic scale turns spherical components into diagonal ones.

        Parameters
        ----------
        covariance : {"full", "diag", "spherical"}

        Returns
        -------
        str
        """
        return "diag" if covariance == "spherical" and not self.isotropic else covariance

    def __call__(self, mixture: GaussianMixture) -> GaussianMixture:
        """The distribution of ``loc + scale * z`` for ``z ~ mixture``."""
        if mixture.n_dims != self.loc.shape[0]:
            raise ValueError(
                f"this transform acts on {self.loc.shape[0]} dimensions, the mixture has "
                f"{mixture.n_dims}"
            )
        kernels = kernels_for(mixture.means)
        xp = kernels.xp
        loc = kernels.as_array(self.loc, mixture.dtype, mixture.device)
        scale = kernels.as_array(self.scale, mixture.dtype, mixture.device)
        means = loc + scale * mixture.means
        prec_chol, kind = mixture.precision_cholesky, mixture.covariance_type
        if kind == "full":
            # P_y = S^-1 P_z S^-1 with S = diag(scale); flipping the sign of columns keeps
            # the triangular factor's diagonal positive.
            prec_chol = prec_chol / scale[:, None] * xp.sign(scale)
        elif kind == "diag":
            prec_chol = prec_chol / xp.abs(scale)
        elif self.covariance_after(kind) == "spherical":
            prec_chol = prec_chol / xp.abs(scale)[0]
        else:
            prec_chol = prec_chol[..., None] / xp.abs(scale)
        return mixture.replace(
            means=means, precision_cholesky=prec_chol, covariance=self.covariance_after(kind)
        )

    def log_abs_det_jacobian(self) -> Array:
        """``log |dy/dz|``, the same for every point.

        Returns
        -------
        array of shape ()
            ``sum(log |scale|)``, in ``scale``'s library.
        """
        xp = kernels_for(self.scale).xp
        return xp.sum(xp.log(xp.abs(self.scale)))


def _as_vector(values: Array) -> Array:
    """A torch tensor or NumPy array as given; anything else as a NumPy array."""
    if is_torch_array(values) or isinstance(values, np.ndarray):
        return values
    return np.asarray(values, dtype=np.float64)


def _floats(values: Array) -> np.ndarray:
    """The values as float64 on the host, for the checks and decisions made once."""
    if is_torch_array(values):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


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
        self._kernels = kernels_for(base.means)
        self._xp = self._kernels.xp

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
    def log_prob(self, y: Array) -> Array:
        """Log-density in user units: the base's at ``log(y)`` plus the Jacobian ``-sum(log y)``.

        Parameters
        ----------
        y : array of shape (..., *B, D)
            A point with any entry <= 0 has log-density ``-inf``; NaN entries are missing
            (the density of the observed ones' marginal).

        Returns
        -------
        array of shape (..., *B)
        """
        xp = self._xp
        y = self._kernels.as_array(y, self.dtype, self.device)
        missing = xp.isnan(y)
        positive = xp.all((y > 0) | missing, axis=-1)
        # Missing entries stay NaN, so that the base marginalises them out.
        log_y = xp.where(missing, xp.nan, xp.log(xp.where(y > 0, y, 1.0)))
        density = self.base.log_prob(log_y) - self._kernels.nansum(log_y, -1)
        return xp.where(positive, density, -xp.inf)

    def cdf(self, y: Array) -> Array:
        """Marginal CDF of each dimension: the base's at ``log(y)``, 0 where ``y <= 0``.

        Parameters
        ----------
        y : array of shape (..., *B, D)

        Returns
        -------
        array with the shape of ``y``
        """
        xp = self._xp
        y = self._kernels.as_array(y, self.dtype, self.device)
        return xp.where(y > 0, self.base.cdf(xp.log(xp.where(y > 0, y, 1.0))), 0.0)

    def sample(self, n: int = 1, generator: Any = None) -> Array:
        """``exp`` of the base's samples (see ``GaussianMixture.sample``).

        Parameters
        ----------
        n : int
        generator : torch.Generator, numpy.random.Generator, seed or None, optional
            As in ``GaussianMixture.sample``.

        Returns
        -------
        array of shape (n, *B, D)
            Positive.
        """
        return self._xp.exp(self.base.sample(n, generator))

    # ------------------------------------------------------------------ moments and points
    def mean(self) -> Array:
        """Mixture mean in user units: ``sum_k w_k exp(mu_k + sigma_k^2 / 2)``.

        Returns
        -------
        array of shape (*B, D)
        """
        xp = self._xp
        var = xp.linalg.diagonal(self.base.component_covariance_matrices())
        return xp.sum(self.weights[..., None] * xp.exp(self.base.means + 0.5 * var), axis=-2)

    def covariance(self) -> Array:
        """Mixture covariance in user units, from the log-normal moments.

        Returns
        -------
        array of shape (*B, D, D)
        """
        xp = self._xp
        cov = self.base.component_covariance_matrices()  # [*B, K, D, D]
        var = xp.linalg.diagonal(cov)  # [*B, K, D]
        half = self.base.means + 0.5 * var  # [*B, K, D]
        # E[y_i y_j | k] = exp(mu_i + mu_j + (S_ii + S_jj) / 2 + S_ij)
        second = xp.exp(half[..., :, None] + half[..., None, :] + cov)
        second = xp.sum(self.weights[..., None, None] * second, axis=-3)  # [*B, D, D]
        mean = self.mean()
        return second - mean[..., :, None] * mean[..., None, :]

    def variance(self) -> Array:
        """Mixture variance of each dimension in user units.

        Returns
        -------
        array of shape (*B, D)
            The diagonal of ``covariance``.
        """
        return self._xp.linalg.diagonal(self.covariance())

    def top(self) -> Array:
        """``exp`` of the heaviest component's mean (that component's median).

        Returns
        -------
        array of shape (*B, D)
        """
        return self._xp.exp(self.base.top())

    def mode(self, max_iter: int = 500, tol: float = 1e-6) -> Array:
        """Highest-density point in the user's units.

        ``exp`` of the mode of the exponentially tilted base (see the class), which
        ``GaussianMixture.mode`` finds.

        Parameters
        ----------
        max_iter, tol
            As in ``GaussianMixture.mode``.

        Returns
        -------
        array of shape (*B, D)
        """
        xp, base = self._xp, self.base
        row_sums = xp.sum(base.component_covariance_matrices(), axis=-1)  # Sigma_k 1, [*B, K, D]
        # p_y(e^z) e^{sum z} ... maximising p_y over y = maximising N(z) e^{-1'z} over z.
        tilted_logits = (
            base.log_weights - xp.sum(base.means, axis=-1) + 0.5 * xp.sum(row_sums, axis=-1)
        )
        tilted = GaussianMixture(
            tilted_logits,
            base.means - row_sums,
            base.precision_cholesky,
            base.covariance_type,
            validate=False,
        )
        return xp.exp(tilted.mode(max_iter=max_iter, tol=tol))

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

    def quantile(self, q: float | Array) -> Array:
        """Marginal quantiles: ``exp`` of the base quantiles (exp is increasing).

        Parameters
        ----------
        q : float or array
            Probabilities, broadcast as in ``GaussianMixture.quantile``.

        Returns
        -------
        array of shape ``broadcast(q.shape, (*B, D))``
        """
        return self._xp.exp(self.base.quantile(q))

    def median(self) -> Array:
        """Median of each one-dimensional marginal: ``exp`` of the base's median.

        Returns
        -------
        array of shape (*B, D)
        """
        return self._xp.exp(self.base.median())

    def interval(self, coverage: float = 0.9) -> tuple[Array, Array]:
        """Central interval of each marginal holding ``coverage`` of its mass.

        ``exp`` of the base's interval bounds.

        Parameters
        ----------
        coverage : float
            As in ``GaussianMixture.interval``.

        Returns
        -------
        lower, upper : array of shape (*B, D)
        """
        lower, upper = self.base.interval(coverage)
        return self._xp.exp(lower), self._xp.exp(upper)
