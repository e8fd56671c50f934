"""Iterative solvers on Gaussian mixtures: the mode, and quantiles of the marginals.

Both run on whole batches at once and freeze the entries that have converged, so that
each result is independent of the rest of the batch (and of the chunk size of a
prediction). ``GaussianMixture.mode`` and ``quantile`` call them.

The quantiles are the hot path of ``MDN.predict_interval``: two levels for every row and
target, each a sum over all the pooled components (25 for the default ensemble). They are
solved with the components along the first axis of (K, M) arrays, so that the sums over
components are sums over the leading axis; nearly every column is done after one
float64 evaluation of the CDF, its density and slope, from a start that float32 steps
have brought close (see ``marginal_quantile``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mdn.distributions.mixture import GaussianMixture

__all__ = ["RTOL", "gather_component", "marginal_quantile", "mixture_mode", "mixture_quantile"]

#: A quantile's accuracy in probability, relative to its tail probability ``min(q, 1 - q)``:
#: a column stops when the error left after its last step is predicted to be below this.
RTOL = 1e-13

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)
_FLOAT32_STEPS = 2
_BLOCK = 64  # columns, see _padded
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def mixture_mode(mixture: GaussianMixture, max_iter: int = 500, tol: float = 1e-6) -> Tensor:
    """``mixture.mode(max_iter, tol)``: the fixed-point iteration described there.

    Parameters
    ----------
    mixture : GaussianMixture
    max_iter : int
    tol : float

    Returns
    -------
    Tensor of shape (*B, D)
    """
    starts = mixture.means.movedim(-2, 0)  # [S=K, *B, D]
    x = starts
    scale = mixture._component_std.amin(-2)  # [*B, D]
    if mixture.covariance_type == "full":
        precision = mixture.precision_cholesky @ mixture.precision_cholesky.mT  # [*B, K, D, D]
        weighted_means = (precision @ mixture.means.unsqueeze(-1)).squeeze(-1)  # [*B, K, D]
    else:
        precision = mixture.precision_cholesky.square()  # [*B, K, D] or [*B, K]
        if mixture.covariance_type == "spherical":
            precision = precision.unsqueeze(-1)
        weighted_means = precision * mixture.means  # [*B, K, D]
    done = torch.zeros(x.shape[:-1], dtype=torch.bool, device=x.device)  # [S, *B]
    with torch.no_grad():
        for _ in range(max_iter):
            resp = mixture.responsibilities(x)  # [S, *B, K]
            rhs = (resp.unsqueeze(-1) * weighted_means).sum(-2)  # [S, *B, D]
            if mixture.covariance_type == "full":
                lhs = (resp[..., None, None] * precision).sum(-3)  # [S, *B, D, D]
                x_new = torch.linalg.solve(lhs, rhs)
            else:
                x_new = rhs / (resp.unsqueeze(-1) * precision).sum(-2)
            # Converged starts are frozen: each result is independent of the batch.
            x_new = torch.where(done.unsqueeze(-1), x, x_new)
            done = done | ((x_new - x).abs() / scale <= tol).all(-1)
            x = x_new
            if bool(done.all()):
                break
        candidates = torch.cat([x, starts])  # [2S, *B, D]
        best = mixture.log_prob(candidates).argmax(0)  # [*B]
    return gather_component(candidates.movedim(0, -2), best)


def mixture_quantile(mixture: GaussianMixture, q: float | Tensor, max_iter: int = 100) -> Tensor:
    """``mixture.quantile(q, max_iter)``: the safeguarded Halley iteration described there.

    Parameters
    ----------
    mixture : GaussianMixture
    q : float or Tensor
    max_iter : int

    Returns
    -------
    Tensor of shape ``broadcast(q.shape, (*B, D))``
    """
    q = torch.as_tensor(q, dtype=mixture.dtype, device=mixture.device)
    if bool(((q < 0) | (q > 1) | q.isnan()).any()):
        raise ValueError("quantile levels q must lie in [0, 1]")
    shape = torch.broadcast_shapes(q.shape, (*mixture.batch_shape, mixture.n_dims))
    levels = q.expand(shape).reshape(-1)
    out = torch.where(levels < 0.5, -math.inf, math.inf).to(levels.dtype)  # q = 0 or 1
    inner = (levels > 0) & (levels < 1)
    weights = mixture.weights.unsqueeze(-1).expand_as(mixture.means)
    columns = [
        _component_major(values, shape)
        for values in (weights, mixture.means, mixture._component_std)
    ]
    if not bool(inner.all()):
        columns = [values[:, inner] for values in columns]
    out[inner] = marginal_quantile(*columns, levels[inner], max_iter)
    return out.reshape(shape)


def marginal_quantile(
    weights: Tensor, means: Tensor, stds: Tensor, levels: Tensor, max_iter: int = 100
) -> Tensor:
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
    weights, means, stds : Tensor of shape (K, M)
        Component weights (normalised here), means and standard deviations, components
        along the first axis.
    levels : Tensor of shape (M,)
        Strictly between 0 and 1.
    max_iter : int
        Iteration limit; bisection alone halves the bracket at each step.

    Returns
    -------
    Tensor of shape (M,)
    """
    upper = levels > 0.5
    sign = torch.where(upper, -1.0, 1.0).to(levels.dtype)
    tail = torch.where(upper, 1.0 - levels, levels)
    return sign * _lower_quantile(weights, means * sign, stds, tail, max_iter)


def _lower_quantile(w: Tensor, mu: Tensor, s: Tensor, t: Tensor, max_iter: int) -> Tensor:
    """``marginal_quantile`` for tail levels ``t`` <= 1/2."""
    n, pad = len(t), -len(t) % _BLOCK
    # Padded with copies of the first column, contiguous (K, M): see _padded.
    w, mu, s = (torch.cat([a, a[:, :1].expand(-1, pad)], 1) if pad else a.contiguous()
                for a in (w, mu, s))  # fmt: skip
    t = torch.cat([t, t[:1].expand(pad)]) if pad else t.contiguous()
    cols, params = _initial_columns(w, mu, s, t, torch.arange(n + pad, device=t.device))
    out = torch.empty(n, dtype=t.dtype, device=t.device)
    active = cols["index"] < n  # padding is never written out
    for _ in range(max_iter):
        x_new, done = _safeguarded_step(cols, params)
        finished = done & active
        out[cols["index"][finished]] = x_new[finished]
        active &= ~done
        n_active = int(active.sum())
        if n_active == 0:
            return out
        # Finished columns are carried (and ignored) until half the batch has finished:
        # selecting the columns left costs a good part of an evaluation.
        if 2 * n_active <= len(active):
            pick = _padded(active.nonzero()[:, 0])
            cols = {key: value.index_select(0, pick) for key, value in cols.items()}
            params = [p.index_select(1, pick) for p in params]
            active = torch.arange(len(pick), device=t.device) < n_active
    out[cols["index"][active]] = cols["x"][active]
    return out


def _initial_columns(
    w: Tensor, mu: Tensor, s: Tensor, t: Tensor, index: Tensor
) -> tuple[dict[str, Tensor], list[Tensor]]:
    """The state of each column (start, bracket, tolerances), and the CDF's parameters."""
    w = w / w.sum(0)  # float32 networks give weights that sum to 1 to float32 precision only
    z = torch.special.ndtri(t)
    component_q = torch.addcmul(mu, s, z)  # the mixture's quantile lies between these
    lo, hi = component_q.amin(0), component_q.amax(0)
    inv_s = s.reciprocal()
    cols = {
        "x": _start(w, mu, s, t, z, lo, hi),
        "lo": lo,
        "hi": hi,
        "step": hi - lo,  # the last two steps, for the bisection rule
        "step_before": hi - lo,
        "t": t,
        "tol": RTOL * t,
        # Bounds |F'''| on the whole line, as |u^2 - 1| exp(-u^2 / 2) <= 1.
        "bound": (w * inv_s * inv_s * inv_s).sum(0) * _INV_SQRT_2PI,
        "s_min": s.amin(0),  # for the resolution of x near 0
        "index": index,
    }
    return cols, _cdf_params(w, mu, s)


def _padded(index: Tensor) -> Tensor:
    """``index`` followed by copies of its first entry, to a multiple of ``_BLOCK`` entries.

    torch sums the components of a column in an order that depends on whether the column
    falls in the vectorised body of the loop or in its remainder; with whole blocks every
    column is in the body, so that each result is independent of the rest of the batch to
    the last bit (chunked predictions equal one pass).
    """
    pad = -len(index) % _BLOCK
    return torch.cat([index, index[:1].expand(pad)]) if pad and len(index) else index


def _start(
    w: Tensor, mu: Tensor, s: Tensor, t: Tensor, z: Tensor, lo: Tensor, hi: Tensor
) -> Tensor:
    """A start close to the root, for a fraction of the cost of a float64 step: the quantile
    of the Gaussian with the mixture's mean and variance, then plain Halley steps in
    float32, about the mixture's mean so that float32 resolves the components. The
    iteration that follows, in the mixture's own precision, has the safeguards."""
    mean = (w * mu).sum(0)
    w, mu, s = w.float(), (mu - mean).float(), s.float()
    t = t.float()
    y = (w * (mu.square() + s.square())).sum(0).sqrt() * z.float()
    params = _cdf_params(w, mu, s)
    for _ in range(_FLOAT32_STEPS):
        step = _halley(*_cdf_and_slopes(y, t, *params))
        y = torch.where(step.isfinite(), y - step, y)
    x = y.to(mean.dtype) + mean
    return torch.where(x.isnan(), 0.5 * (lo + hi), x).clamp(lo, hi)


def _safeguarded_step(cols: dict[str, Tensor], params: list[Tensor]) -> tuple[Tensor, Tensor]:
    """One safeguarded Halley step of every column: updates ``cols`` in place and returns
    the converged value and a mask of the columns that have converged."""
    x = cols["x"]
    excess, density, slope = _cdf_and_slopes(x, cols["t"], *params)
    lo = cols["lo"] = torch.where(excess < 0, x, cols["lo"])
    hi = cols["hi"] = torch.where(excess > 0, x, cols["hi"])
    step = _halley(excess, density, slope)
    x_new = x - step
    inside = (x_new > lo) & (x_new < hi)
    # The leading term of Halley's error in probability, with the bound on |F'''|.
    newton = excess / density
    error = newton.abs() * newton.square() * (slope.square() / (4 * density) + cols["bound"] / 6)
    # Below this a step or bracket is rounding: 4 ulp of x, or of the narrowest component.
    resolution = 4 * torch.finfo(x.dtype).eps * (x.abs() + cols["s_min"])
    done = (inside & (error <= cols["tol"])) | (step.abs() <= resolution) | (hi - lo <= resolution)
    # Bisection where the step leaves the bracket or does not shrink to half the step
    # before last, as in Numerical Recipes' rtsafe.
    take = inside & (2 * step.abs() <= cols["step_before"])
    cols["x"] = torch.where(take, x_new, 0.5 * (lo + hi))
    cols["step_before"] = cols["step"]
    cols["step"] = (cols["x"] - x).abs()
    return torch.where(inside, x_new, x), done


def _halley(excess: Tensor, density: Tensor, slope: Tensor) -> Tensor:
    """Halley's step, or Newton's where Halley's correction is large (far from the root,
    where Halley's steps creep)."""
    newton = excess / density
    factor = 1 - 0.5 * newton * slope / density
    return torch.where((factor > 0.5) & (factor < 2), newton / factor, newton)


def _cdf_params(w: Tensor, mu: Tensor, s: Tensor) -> list[Tensor]:
    """``a, b, w / 2, w b / 2`` of the CDF ``sum_k w_k / 2 erfc(a_k + b_k x)``: erfc keeps
    the relative precision of the lower tail, and is faster than ndtr."""
    b = s.reciprocal() * -_SQRT_HALF
    half_w = 0.5 * w
    return [mu * -b, b, half_w, half_w * b]


def _cdf_and_slopes(
    x: Tensor, t: Tensor, a: Tensor, b: Tensor, half_w: Tensor, half_wb: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The mixture CDF at ``x`` minus ``t``, its density and the density's derivative."""
    v = torch.addcmul(a, b, x)  # [K, A]; in-place below: one temporary fewer each
    excess = torch.special.erfc(v).mul_(half_w).sum(0) - t
    scaled = v.square().neg_().exp_().mul_(half_wb)  # -sqrt(pi) / 2 times the densities
    density = scaled.sum(0) * -_TWO_OVER_SQRT_PI
    slope = scaled.mul_(v).mul_(b).sum(0) * (2 * _TWO_OVER_SQRT_PI)
    return excess, density, slope


def _component_major(values: Tensor, shape: torch.Size) -> Tensor:
    """(*B, K, D) per-component values, broadcast to ``shape`` = (..., *B, D), as (K, M)."""
    lead = values.expand(*shape[:-1], *values.shape[-2:])  # [..., *B, K, D]
    return lead.movedim(-2, 0).reshape(values.shape[-2], -1).contiguous()


def gather_component(values: Tensor, index: Tensor, event_ndim: int = 1) -> Tensor:
    """Pick one component per mixture.

    Parameters
    ----------
    values : Tensor of shape (*B, K, *E)
        Per-component values, with ``len(E) == event_ndim``.
    index : Tensor of shape (*L, *B)
        The component to pick, with any leading dimensions L.
    event_ndim : int

    Returns
    -------
    Tensor of shape (*L, *B, *E)
    """
    k_dim = values.ndim - event_ndim - 1  # position of K in values, = len(B)
    n_lead = index.ndim - k_dim
    expanded = values.expand(*index.shape[:n_lead], *values.shape)  # [*L, *B, K, *E]
    idx = index.reshape(*index.shape, 1, *([1] * event_ndim))
    idx = idx.expand(*index.shape, 1, *values.shape[k_dim + 1 :])  # [*L, *B, 1, *E]
    return expanded.gather(index.ndim, idx).squeeze(index.ndim)
