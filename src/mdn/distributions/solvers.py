"""Quantiles of one-dimensional Gaussian mixtures, on arrays of any library with ``Kernels``.

The quantiles are the hot path of ``MDN.predict_interval``: two levels for every row and
target, each a sum over all the pooled components (25 for the default ensemble). They are
solved with the components along the first axis of (K, M) arrays, so that the sums over
components are sums over the leading axis; nearly every column is done after one evaluation
of the CDF, its density and slope in the mixture's precision, from a start that float32
steps have brought close (see ``marginal_quantile``). ``GaussianMixture.quantile`` lays its
marginals out as such columns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import device

from mdn.distributions.kernels import kernels_for

__all__ = ["RTOL", "marginal_quantile"]

#: A quantile's accuracy in probability, relative to its tail probability ``min(q, 1 - q)``:
#: a column stops when the error left after its last step is predicted to be below this.
RTOL = 1e-13

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)
_FLOAT32_STEPS = 2
_BLOCK = 64  # columns, see _padded
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def marginal_quantile(weights: Any, means: Any, stds: Any, levels: Any, max_iter: int = 100) -> Any:
    """Quantiles of one-dimensional Gaussian mixtures, one mixture per column.

    Solves ``sum_k w_k Phi((x - mu_k) / s_k) = q`` for every column at once. Levels above
    1/2 are reflected (``P(X <= x) = q`` if and only if ``P(-X <= -x) = 1 - q``, and
    ``1 - q`` is exact in floating point there), so that every column solves for a tail
    probability ``t`` of at most 1/2, which ``erfc`` resolves to full relative precision.

    Each column starts from the quantile of the Gaussian with the mixture's mean and
    variance, improved by two unguarded Halley steps in float32. Then it takes Halley
    steps in the mixture's precision inside a bracket (the smallest and largest component
    quantiles, then the points on either side seen so far), with bisection where a step
    would leave the bracket or fails to halve (Numerical Recipes' rtsafe rule), so that it
    converges on any mixture. A column is done when the leading term of the step's error,
    with the CDF's third derivative bounded on the whole line, is below ``RTOL * t`` in
    probability, or when the step or bracket is down to rounding: on predicted mixtures,
    after one float64 step. Done columns leave the batch, so the cost follows the hard
    columns only, and a column's result depends on that column alone, to the last bit.

    Parameters
    ----------
    weights, means, stds : array of shape (K, M)
        Component weights (normalised here), means and standard deviations, components
        along the first axis; torch tensors or NumPy arrays.
    levels : array of shape (M,)
        Strictly between 0 and 1.
    max_iter : int
        Iteration limit; bisection alone halves the bracket at each step.

    Returns
    -------
    array of shape (M,)
    """
    xp = kernels_for(levels).xp
    upper = levels > 0.5
    sign = 1.0 - 2.0 * xp.astype(upper, levels.dtype)  # -1 where reflected
    tail = xp.where(upper, 1.0 - levels, levels)
    # Steps where a density underflows to 0 are infinite and fall back to bisection: NumPy
    # is told not to warn of them (torch never does).
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return sign * _lower_quantile(weights, means * sign, stds, tail, max_iter)


def _lower_quantile(w: Any, mu: Any, s: Any, t: Any, max_iter: int) -> Any:
    """``marginal_quantile`` for tail levels ``t`` <= 1/2."""
    kernels = kernels_for(t)
    xp = kernels.xp
    n, pad = t.shape[0], -t.shape[0] % _BLOCK
    # Padded with copies of the first column, contiguous (K, M): see _padded.
    w, mu, s = (_pad_columns(a, pad, kernels) for a in (w, mu, s))
    t = xp.concat([t, xp.broadcast_to(t[:1], (pad,))]) if pad else kernels.contiguous(t)
    index = xp.arange(n + pad, device=device(t))
    cols, params = _initial_columns(w, mu, s, t, index, kernels)
    out = xp.empty(n, dtype=t.dtype, device=device(t))
    active = cols["index"] < n  # padding is never written out
    for _ in range(max_iter):
        x_new, done = _safeguarded_step(cols, params, kernels)
        finished = done & active
        out[cols["index"][finished]] = x_new[finished]
        active = active & ~done
        n_active = int(xp.sum(active))
        if n_active == 0:
            return out
        # Finished columns are carried (and ignored) until half the batch has finished:
        # selecting the columns left costs a good part of an evaluation.
        if 2 * n_active <= active.shape[0]:
            pick = _padded(xp.nonzero(active)[0], kernels)
            cols = {key: kernels.take(value, pick, 0) for key, value in cols.items()}
            params = [kernels.take(p, pick, 1) for p in params]
            active = xp.arange(pick.shape[0], device=device(t)) < n_active
    out[cols["index"][active]] = cols["x"][active]
    return out


def _pad_columns(values: Any, pad: int, kernels: Any) -> Any:
    if not pad:
        return kernels.contiguous(values)
    xp = kernels.xp
    return xp.concat([values, xp.broadcast_to(values[:, :1], (values.shape[0], pad))], axis=1)


def _initial_columns(
    w: Any, mu: Any, s: Any, t: Any, index: Any, kernels: Any
) -> tuple[dict[str, Any], list[Any]]:
    """The state of each column (start, bracket, tolerances), and the CDF's parameters."""
    xp = kernels.xp
    w = w / xp.sum(w, axis=0)  # float32 networks give weights that sum to 1 to float32 precision
    z = kernels.ndtri(t)
    component_q = kernels.addcmul(mu, s, z)  # the mixture's quantile lies between these
    lo, hi = xp.min(component_q, axis=0), xp.max(component_q, axis=0)
    inv_s = xp.reciprocal(s)
    cols = {
        "x": _start(w, mu, s, t, z, lo, hi, kernels),
        "lo": lo,
        "hi": hi,
        "step": hi - lo,  # the last two steps, for the bisection rule
        "step_before": hi - lo,
        "t": t,
        "tol": RTOL * t,
        # Bounds |F'''| on the whole line, as |u^2 - 1| exp(-u^2 / 2) <= 1.
        "bound": xp.sum(w * inv_s * inv_s * inv_s, axis=0) * _INV_SQRT_2PI,
        "s_min": xp.min(s, axis=0),  # for the resolution of x near 0
        "index": index,
    }
    return cols, _cdf_params(w, mu, s, xp=xp)


def _padded(index: Any, kernels: Any) -> Any:
    """``index`` followed by copies of its first entry, to a multiple of ``_BLOCK`` entries.

    torch sums the components of a column in an order that depends on whether the column
    falls in the vectorised body of the loop or in its remainder; with whole blocks every
    column is in the body, so that each result is independent of the rest of the batch to
    the last bit (chunked predictions equal one pass).
    """
    xp = kernels.xp
    pad = -index.shape[0] % _BLOCK
    if not pad or not index.shape[0]:
        return index
    return xp.concat([index, xp.broadcast_to(index[:1], (pad,))])


def _start(w: Any, mu: Any, s: Any, t: Any, z: Any, lo: Any, hi: Any, kernels: Any) -> Any:
    """A start close to the root, for a fraction of the cost of a step in the mixture's
    precision: the quantile of the Gaussian with the mixture's mean and variance, then plain
    Halley steps in float32, about the mixture's mean so that float32 resolves the
    components. The iteration that follows, in the mixture's own precision, has the
    safeguards."""
    xp = kernels.xp
    mean = xp.sum(w * mu, axis=0)
    single = xp.float32
    w, mu, s = xp.astype(w, single), xp.astype(mu - mean, single), xp.astype(s, single)
    t = xp.astype(t, single)
    y = xp.sqrt(xp.sum(w * (xp.square(mu) + xp.square(s)), axis=0)) * xp.astype(z, single)
    params = _cdf_params(w, mu, s, xp=xp)
    for _ in range(_FLOAT32_STEPS):
        step = _halley(*_cdf_and_slopes(y, t, *params, kernels=kernels), xp=xp)
        y = xp.where(xp.isfinite(step), y - step, y)
    x = xp.astype(y, mean.dtype) + mean
    return xp.clip(xp.where(xp.isnan(x), 0.5 * (lo + hi), x), lo, hi)


def _safeguarded_step(cols: dict[str, Any], params: list[Any], kernels: Any) -> tuple[Any, Any]:
    """One safeguarded Halley step of every column: updates ``cols`` in place and returns
    the converged value and a mask of the columns that have converged."""
    xp = kernels.xp
    x = cols["x"]
    excess, density, slope = _cdf_and_slopes(x, cols["t"], *params, kernels=kernels)
    lo = cols["lo"] = xp.where(excess < 0, x, cols["lo"])
    hi = cols["hi"] = xp.where(excess > 0, x, cols["hi"])
    step = _halley(excess, density, slope, xp=xp)
    x_new = x - step
    inside = (x_new > lo) & (x_new < hi)
    # The leading term of Halley's error in probability, with the bound on |F'''|.
    newton = excess / density
    error = (
        xp.abs(newton) * xp.square(newton) * (xp.square(slope) / (4 * density) + cols["bound"] / 6)
    )
    # Below this a step or bracket is rounding: 4 ulp of x, or of the narrowest component.
    resolution = 4 * xp.finfo(x.dtype).eps * (xp.abs(x) + cols["s_min"])
    done = (
        (inside & (error <= cols["tol"])) | (xp.abs(step) <= resolution) | (hi - lo <= resolution)
    )
    # Bisection where the step leaves the bracket or does not shrink to half the step
    # before last, as in Numerical Recipes' rtsafe.
    take = inside & (2 * xp.abs(step) <= cols["step_before"])
    cols["x"] = xp.where(take, x_new, 0.5 * (lo + hi))
    cols["step_before"] = cols["step"]
    cols["step"] = xp.abs(cols["x"] - x)
    return xp.where(inside, x_new, x), done


def _halley(excess: Any, density: Any, slope: Any, *, xp: Any) -> Any:
    """Halley's step, or Newton's where Halley's correction is large (far from the root,
    where Halley's steps creep)."""
    newton = excess / density
    factor = 1 - 0.5 * newton * slope / density
    return xp.where((factor > 0.5) & (factor < 2), newton / factor, newton)


def _cdf_params(w: Any, mu: Any, s: Any, *, xp: Any) -> list[Any]:
    """``a, b, w / 2, w b / 2`` of the CDF ``sum_k w_k / 2 erfc(a_k + b_k x)``: erfc keeps
    the relative precision of the lower tail, and is faster than ndtr."""
    b = xp.reciprocal(s) * -_SQRT_HALF
    half_w = 0.5 * w
    return [mu * -b, b, half_w, half_w * b]


def _cdf_and_slopes(
    x: Any, t: Any, a: Any, b: Any, half_w: Any, half_wb: Any, *, kernels: Any
) -> tuple[Any, Any, Any]:
    """The mixture CDF at ``x`` minus ``t``, its density and the density's derivative."""
    xp = kernels.xp
    v = kernels.addcmul(a, b, x)  # [K, A]
    terms = kernels.erfc(v)
    terms *= half_w  # in place: one temporary fewer
    excess = xp.sum(terms, axis=0) - t
    scaled = kernels.exp_neg_square(v)
    scaled *= half_wb  # -sqrt(pi) / 2 times the densities
    density = xp.sum(scaled, axis=0) * -_TWO_OVER_SQRT_PI
    scaled *= v
    scaled *= b
    slope = xp.sum(scaled, axis=0) * (2 * _TWO_OVER_SQRT_PI)
    return excess, density, slope
