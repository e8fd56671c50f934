"""The numerical kernels of ``mdn.numpy_mixture``: the normal CDF and quantile function,
small triangular solves, and the iterative solvers of a mixture (its mode and marginal
quantiles), in NumPy alone.

They mirror ``mdn.mixture_solvers``: whole batches at once, converged entries frozen, so
that each result depends on its own mixture only (never on the chunk it was computed in).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mdn.onnx.numpy_mixture import NumpyMixture

__all__ = [
    "gather_component",
    "logsumexp",
    "mixture_mode",
    "mixture_quantile",
    "ndtr",
    "ndtri",
    "solve_lower",
]

_SQRT_PI = math.sqrt(math.pi)
_EPS = float(np.finfo(np.float64).eps)


def _erfc_nonnegative(x: np.ndarray) -> np.ndarray:
    """``erfc(x)`` for ``x >= 0`` to about 2e-13 relative (checked against SciPy).

    Below 2 the series ``erf(x) = 2/sqrt(pi) exp(-x^2) sum_n (2x^2)^n x / (2n+1)!!`` (all
    terms positive: no cancellation inside the sum); from 2 the continued fraction
    ``erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...))))``,
    evaluated from its 64th term back, which keeps the relative precision in the far tail.
    """
    out = np.empty_like(x)
    small = x < 2.0
    xs = x[small]
    two_x2, term = 2.0 * xs * xs, xs.copy()
    total = xs.copy()
    for n in range(1, 30):
        term *= two_x2 / (2 * n + 1)
        total += term
    out[small] = 1.0 - 2.0 / _SQRT_PI * np.exp(-xs * xs) * total
    xl = x[~small]
    fraction = xl.copy()
    for k in range(64, 0, -1):
        fraction = xl + (0.5 * k) / fraction
    out[~small] = np.exp(-xl * xl) / (_SQRT_PI * fraction)
    return out


def ndtr(u: np.ndarray) -> np.ndarray:
    """The standard normal CDF, with the relative precision of the lower tail kept.

    Parameters
    ----------
    u : ndarray

    Returns
    -------
    ndarray
        ``Phi(u)``, the shape of ``u``.
    """
    u = np.asarray(u, dtype=np.float64)
    tail = 0.5 * _erfc_nonnegative(np.abs(u) / math.sqrt(2.0))
    return np.where(u < 0, tail, 1.0 - tail)


def ndtri(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile function, the inverse of ``ndtr``.

    A rational start (Abramowitz & Stegun 26.2.23, error below 4.5e-4) refined by three
    Halley steps on ``ndtr``, which triple the correct digits each.

    Parameters
    ----------
    p : ndarray
        Probabilities in (0, 1).

    Returns
    -------
    ndarray
        ``Phi^-1(p)``, the shape of ``p``.
    """
    p = np.asarray(p, dtype=np.float64)
    lower = np.minimum(p, 1.0 - p)
    t = np.sqrt(-2.0 * np.log(lower))
    x = -(t - (2.515517 + t * (0.802853 + t * 0.010328))
          / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))))  # fmt: skip
    for _ in range(3):
        excess = (ndtr(x) - lower) * math.sqrt(2.0 * math.pi) * np.exp(0.5 * x * x)
        x = x - excess / (1.0 + 0.5 * x * excess)
    x = np.where(lower == 0.5, 0.0, x)
    return np.where(p > 0.5, -x, x)


def logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    """``log(sum(exp(values)))`` along ``axis`` without overflow; -inf where all are -inf.

    Parameters
    ----------
    values : ndarray
    axis : int

    Returns
    -------
    ndarray
        ``values``' shape without ``axis``.
    """
    peak = np.max(values, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):  # log(0) = -inf where every term is -inf
        total = np.log(np.sum(np.exp(values - peak), axis=axis, keepdims=True))
    return np.squeeze(total + peak, axis=axis)


def gather_component(values: np.ndarray, index: np.ndarray, event_ndim: int = 1) -> np.ndarray:
    """Pick one component per mixture (as ``mdn.mixture_solvers.gather_component``).

    Parameters
    ----------
    values : ndarray of shape (*B, K, *E)
        Per-component values, with ``len(E) == event_ndim``.
    index : ndarray of shape (*L, *B)
        The component to pick, with any leading dimensions L.
    event_ndim : int

    Returns
    -------
    ndarray of shape (*L, *B, *E)
    """
    k_axis = values.ndim - event_ndim - 1
    n_lead = index.ndim - k_axis
    expanded = np.broadcast_to(values, (*index.shape[:n_lead], *values.shape))
    idx = index.reshape(*index.shape, 1, *([1] * event_ndim))
    return np.take_along_axis(expanded, idx, axis=index.ndim).squeeze(index.ndim)


def solve_lower(chol: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``chol^-1 rhs`` by forward substitution over D (small), vectorised over every other
    axis: many tiny triangular systems at the cost of D^2 array operations.

    Parameters
    ----------
    chol : ndarray of shape (..., D, D)
        Lower-triangular with a non-zero diagonal.
    rhs : ndarray of shape (..., D)

    Returns
    -------
    ndarray of shape (..., D)
    """
    d = chol.shape[-1]
    out = [None] * d
    for i in range(d):
        value = rhs[..., i]
        for j in range(i):
            value = value - chol[..., i, j] * out[j]
        out[i] = value / chol[..., i, i]
    return np.stack(out, axis=-1)


def mixture_mode(mixture: NumpyMixture, max_iter: int = 500, tol: float = 1e-6) -> np.ndarray:
    """``mixture.mode(max_iter, tol)``: ``GaussianMixture.mode``'s fixed-point iteration
    from every component mean, with its stopping rule and choice among the end points.

    Parameters
    ----------
    mixture : NumpyMixture
    max_iter : int
    tol : float

    Returns
    -------
    ndarray of shape (*B, D)
    """
    starts = np.moveaxis(mixture.means, -2, 0)  # [S=K, *B, D]
    x = starts
    scale = np.min(mixture.component_std, axis=-2)  # [*B, D]
    if mixture.covariance_type == "full":
        d = mixture.n_dims
        eye = np.broadcast_to(np.eye(d), mixture.scale.shape)
        inverse = np.stack([solve_lower(mixture.scale, eye[..., i]) for i in range(d)], axis=-1)
        precision = np.swapaxes(inverse, -1, -2) @ inverse  # [*B, K, D, D]
        weighted_means = (precision @ mixture.means[..., None])[..., 0]
    else:
        precision = 1.0 / (mixture.scale * mixture.scale)  # [*B, K, D]
        weighted_means = precision * mixture.means
    done = np.zeros(x.shape[:-1], dtype=bool)  # [S, *B]
    for _ in range(max_iter):
        resp = mixture.responsibilities(x)  # [S, *B, K]
        rhs = np.sum(resp[..., None] * weighted_means, axis=-2)
        if mixture.covariance_type == "full":
            lhs = np.sum(resp[..., None, None] * precision, axis=-3)
            x_new = np.linalg.solve(lhs, rhs[..., None])[..., 0]
        else:
            x_new = rhs / np.sum(resp[..., None] * precision, axis=-2)
        x_new = np.where(done[..., None], x, x_new)  # converged starts stay put
        done = done | np.all(np.abs(x_new - x) / scale <= tol, axis=-1)
        x = x_new
        if done.all():
            break
    candidates = np.concatenate([x, starts])  # [2S, *B, D]
    best = np.argmax(mixture.log_prob(candidates), axis=0)  # [*B]
    return gather_component(np.moveaxis(candidates, 0, -2), best)


def mixture_quantile(
    mixture: NumpyMixture, q: float | np.ndarray, max_iter: int = 100
) -> np.ndarray:
    """``mixture.quantile(q, max_iter)``: the root of the marginal CDF minus ``q``, exact to
    floating-point precision, by Newton steps inside a bisection bracket that starts between
    the smallest and largest component quantiles (the mixture's lies between them).

    Parameters
    ----------
    mixture : NumpyMixture
    q : float or ndarray
        Levels in [0, 1], broadcast against (*B, D).
    max_iter : int

    Returns
    -------
    ndarray of shape ``broadcast(q.shape, (*B, D))``
    """
    q = np.asarray(q, dtype=np.float64)
    if np.any((q < 0) | (q > 1) | np.isnan(q)):
        raise ValueError("quantile levels q must lie in [0, 1]")
    std = mixture.component_std
    q = np.broadcast_to(
        q, np.broadcast_shapes(q.shape, (*mixture.means.shape[:-2], mixture.n_dims))
    )
    q_inner = np.where((q > 0) & (q < 1), q, 0.5)
    component_q = mixture.means + std * ndtri(q_inner)[..., None, :]
    lo, hi = np.min(component_q, axis=-2), np.max(component_q, axis=-2)
    x = 0.5 * (lo + hi)
    resolution = 4 * _EPS * (np.abs(x) + np.min(std, axis=-2))
    done = np.zeros(x.shape, dtype=bool)
    for _ in range(max_iter):
        cdf, log_density = mixture._cdf_and_log_density(x)
        excess = cdf - q_inner
        lo = np.where(excess < 0, x, lo)
        hi = np.where(excess > 0, x, hi)
        with np.errstate(divide="ignore", invalid="ignore"):  # density 0: bisect
            newton = x - excess / np.exp(log_density)
        inside = (newton > lo) & (newton < hi)
        x_new = np.where(done, x, np.where(inside, newton, 0.5 * (lo + hi)))
        done = done | (np.abs(x_new - x) <= resolution)
        x = x_new
        if done.all():
            break
    x = np.where(q == 0, -np.inf, x)
    return np.where(q == 1, np.inf, x)
