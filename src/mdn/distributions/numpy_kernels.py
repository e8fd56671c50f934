"""``Kernels`` for NumPy arrays, in NumPy alone: the torch-free predictor runs where neither
torch nor SciPy is installed, so the normal CDF and its inverse are computed here."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import array_api_compat.numpy as xp
import numpy as np

__all__ = ["NUMPY_KERNELS", "erfc", "ndtr", "ndtri"]

_SQRT_PI = math.sqrt(math.pi)


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


def erfc(x: np.ndarray) -> np.ndarray:
    """The complementary error function, with the relative precision of its tail kept.

    Parameters
    ----------
    x : ndarray

    Returns
    -------
    ndarray
        ``erfc(x)``, the shape and dtype of ``x`` (computed in float64).
    """
    x = np.asarray(x)
    with np.errstate(over="ignore"):  # x * x beyond float64: erfc is 0 there all the same
        magnitude = _erfc_nonnegative(np.abs(x).astype(np.float64))
    return np.where(x < 0, 2.0 - magnitude, magnitude).astype(x.dtype, copy=False)


def ndtr(u: np.ndarray) -> np.ndarray:
    """The standard normal CDF, with the relative precision of the lower tail kept.

    Parameters
    ----------
    u : ndarray

    Returns
    -------
    ndarray
        ``Phi(u)``, the shape and (floating-point) dtype of ``u``, computed in float64.
    """
    u = np.asarray(u)
    with np.errstate(over="ignore"):
        tail = 0.5 * _erfc_nonnegative(np.abs(u).astype(np.float64) / math.sqrt(2.0))
    values = np.where(u < 0, tail, 1.0 - tail)
    return values.astype(u.dtype, copy=False) if u.dtype.kind == "f" else values


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
        ``Phi^-1(p)``, the shape and dtype of ``p`` (computed in float64).
    """
    p = np.asarray(p)
    lower = np.minimum(p, 1.0 - p).astype(np.float64)
    t = np.sqrt(-2.0 * np.log(lower))
    numerator = 2.515517 + t * (0.802853 + t * 0.010328)
    x = -(t - numerator / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))))
    for _ in range(3):
        excess = (ndtr(x) - lower) * math.sqrt(2.0 * math.pi) * np.exp(0.5 * x * x)
        x = x - excess / (1.0 + 0.5 * x * excess)
    x = np.where(lower == 0.5, 0.0, x)
    return np.where(p > 0.5, -x, x).astype(p.dtype, copy=False)


class NumpyKernels:
    """The operations of ``mdn.distributions.kernels.Kernels`` on NumPy arrays."""

    xp = xp
    name = "numpy"
    erfc = staticmethod(erfc)
    ndtr = staticmethod(ndtr)
    ndtri = staticmethod(ndtri)

    @staticmethod
    def logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
        peak = np.max(x, axis=axis, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, 0.0)
        with np.errstate(divide="ignore"):  # log(0) = -inf where every term is -inf
            total = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True))
        return np.squeeze(total + peak, axis=axis)

    def log_softmax(self, x: np.ndarray, axis: int) -> np.ndarray:
        return x - np.expand_dims(self.logsumexp(x, axis), axis)

    def softmax(self, x: np.ndarray, axis: int) -> np.ndarray:
        return np.exp(self.log_softmax(x, axis))

    @staticmethod
    def exp_neg_square(x: np.ndarray) -> np.ndarray:
        out = np.square(x)
        np.negative(out, out=out)
        return np.exp(out, out=out)

    @staticmethod
    def nansum(x: np.ndarray, axis: int) -> np.ndarray:
        return np.nansum(x, axis=axis)

    @staticmethod
    def solve_triangular(a: np.ndarray, b: np.ndarray, *, upper: bool) -> np.ndarray:
        """By substitution over D (small), vectorised over every other axis: many tiny
        systems at the cost of D^2 array operations (NumPy has no batched triangular solve).
        """
        d = a.shape[-1]
        rows: list[np.ndarray | None] = [None] * d
        for i in reversed(range(d)) if upper else range(d):
            value = b[..., i, :]
            for j in range(i + 1, d) if upper else range(i):
                value = value - a[..., i, j, None] * rows[j]
            rows[i] = value / a[..., i, i, None]
        return np.stack(rows, axis=-2)

    @staticmethod
    def solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.solve(a, b[..., None])[..., 0]

    @staticmethod
    def cholesky(a: np.ndarray) -> np.ndarray:
        return np.linalg.cholesky(a)

    @staticmethod
    def cholesky_ex(a: np.ndarray) -> tuple[np.ndarray, int]:
        try:
            return np.linalg.cholesky(a), 0
        except np.linalg.LinAlgError:  # rare: count the failures one matrix at a time
            flat = a.reshape(-1, *a.shape[-2:])
            chol, failed = np.full_like(flat, np.nan), 0
            for i, matrix in enumerate(flat):
                try:
                    chol[i] = np.linalg.cholesky(matrix)
                except np.linalg.LinAlgError:
                    failed += 1
            return chol.reshape(a.shape), failed

    @staticmethod
    def addcmul(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return a + b * c

    @staticmethod
    def take(x: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
        return np.take(x, index, axis=axis)

    @staticmethod
    def take_along_axis(x: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
        return np.take_along_axis(x, index, axis=axis)

    @staticmethod
    def contiguous(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x)

    @staticmethod
    def as_array(values: object, dtype: np.dtype, device: object) -> np.ndarray:
        return np.asarray(values, dtype=dtype)

    @staticmethod
    def generator(source: object) -> np.random.Generator:
        return np.random.default_rng(source)

    @staticmethod
    def draw_components(weights: np.ndarray, n: int, generator: np.random.Generator) -> np.ndarray:
        cumulative = np.cumsum(weights, axis=-1)  # [M, K]
        # Drawn draw-major, (n, M), as NumPy mixtures always drew: the same seed, the same
        # components.
        draws = generator.random((n, len(weights), 1)) * cumulative[:, -1:]
        chosen = np.minimum(np.sum(cumulative < draws, axis=-1), weights.shape[-1] - 1)
        return chosen.T  # [M, n]

    @staticmethod
    def standard_normal(
        shape: Sequence[int], like: np.ndarray, generator: np.random.Generator
    ) -> np.ndarray:
        return generator.standard_normal(tuple(shape)).astype(like.dtype, copy=False)

    @staticmethod
    def no_grad() -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


NUMPY_KERNELS = NumpyKernels()
