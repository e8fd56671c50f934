"""Recalibration of a fitted model's predictive mixture on held-out rows.

Up to three numbers are fitted on validation rows, after training. The first two by
maximum likelihood, with the Bayesian information criterion choosing between no change, the
scale alone, and both; or, on few rows, the scale alone under a prior that pulls it towards
1, and then the tail weight:

- ``member_spread`` moves each ensemble member's mixture, unchanged in shape, towards (< 1)
  or away from (> 1) the centre of the ensemble. An ensemble of members that are each
  calibrated is under-confident when the members' errors are largely independent: pooling
  adds their disagreement to the spread while averaging removes it from the error
  (Rahaman & Thiery 2021, "Uncertainty quantification and deep ensembles").
- ``component_scale`` multiplies every component's standard deviation (the regression form
  of temperature scaling; Levi et al. 2022, "Evaluating and calibrating uncertainty
  prediction in regression tasks"), for networks that are over- or under-confident.
- ``tail_weight`` mixes in a copy of the mixture with every standard deviation
  ``TAIL_SCALE`` times as large (a contaminated normal, as in Tukey's): the share of rows
  the network predicts far worse than it claims, which one scale cannot describe without
  widening every other row's intervals too. It is fitted after the other two, by maximum
  likelihood (``fit_tail_weight``).

All three act the same way in scaled and in original target units (the scalers are affine per
column), so they are fitted on the network's scaled outputs and applied in user units.
Moving whole members keeps each member's modes apart; scaling the pooled mixture about
its mean instead would squeeze genuinely separate modes together. The offset is that of a
member's mean, so members that share modes but weight them differently move their modes
apart; BIC weighs that against the validation rows like any other change.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import brentq, minimize
from torch import Tensor

from mdn.distributions.mixture import GaussianMixture

__all__ = [
    "AUTO_MIN_ROWS",
    "SCALE_PRIOR_SD",
    "TAIL_SCALE",
    "fit_recalibration",
    "fit_tail_weight",
    "recalibrate",
]

#: Validation rows from which ``MDN(recalibrate="auto")`` lets BIC choose both values (below,
#: it fits the scale alone under ``SCALE_PRIOR_SD``): on the UCI benchmark's validation rows
#: BIC's choice lost on the small sets and never on the large ones (benchmarks/README.md).
AUTO_MIN_ROWS = 500

#: Standard deviation of the prior on ``log(component_scale)`` when it is fitted alone
#: (``MDN(recalibrate="scale")``, and "auto" below ``AUTO_MIN_ROWS``). The validation rows
#: also chose the best weights, so they flatter the model. 0.2 gave the best held-out NLL of
#: the priors tried (benchmarks/README.md, round 4). It lets a scale move about two thirds of
#: the way to the likelihood's peak on 22 rows and nine tenths on 100: the posterior of
#: log(scale) has precision 2 n + 1 / 0.2**2 for n rows of one Gaussian each.
SCALE_PRIOR_SD = 0.2

#: How much wider than the mixture itself its tail copy is (``tail_weight``): wide enough
#: to hold rows the mixture misses by several standard deviations, and fixed, because a
#: width is not identifiable from the few misses on validation rows.
TAIL_SCALE = 3.0

#: Bounds of the fitted values: beyond them the validation rows are too few to trust.
SPREAD_BOUNDS = (0.0, 3.0)
SCALE_BOUNDS = (0.1, 10.0)
TAIL_BOUNDS = (0.0, 0.5)


def recalibrate(
    mixture: GaussianMixture,
    member_spread: float | Tensor = 1.0,
    component_scale: float | Tensor = 1.0,
    tail_weight: float = 0.0,
    *,
    members: bool,
) -> GaussianMixture:
    """``mixture`` with its members' spread, its components' scale and its tail changed.

    Parameters
    ----------
    mixture : GaussianMixture
        Batch shape (E, *B) when ``members`` (the members along the first axis), else any.
    member_spread : float or Tensor
        Each member's mixture is moved to ``centre + member_spread * (mean_e - centre)``,
        where ``mean_e`` is its mean and ``centre`` the mean over members; 1 keeps it.
    component_scale : float or Tensor
        Factor on every component's standard deviation (covariances scale by its square).
    tail_weight : float
        Weight of the tail copy (every component again, ``TAIL_SCALE`` times as wide); the
        mixture keeps ``1 - tail_weight``. With 0 the components are not doubled.
    members : bool
        Whether the first batch axis holds ensemble members; if not, ``member_spread`` does
        not apply.

    Returns
    -------
    GaussianMixture
        The batch shape of ``mixture``, with twice as many components when
        ``tail_weight > 0``.
    """
    means = mixture.means
    if members:
        member_means = mixture.mean()  # [E, *B, D]
        offset = member_means - member_means.mean(0, keepdim=True)
        means = means + ((member_spread - 1.0) * offset).unsqueeze(-2)
    log_weights, precision = mixture.log_weights, mixture.precision_cholesky / component_scale
    if tail_weight > 0:
        k = len(mixture.batch_shape)  # the component axis of all three tensors
        log_weights = torch.cat(
            [log_weights + math.log1p(-tail_weight), log_weights + math.log(tail_weight)], k
        )
        means = torch.cat([means, means], k)
        precision = torch.cat([precision, precision / TAIL_SCALE], k)
    return mixture.replace(log_weights=log_weights, means=means, precision_cholesky=precision)


def fit_recalibration(
    mixture: GaussianMixture, y: Tensor, *, members: bool, scale_prior_sd: float | None = None
) -> tuple[float, float]:
    """``member_spread`` and ``component_scale`` fitted by NLL on ``y``, chosen by BIC.

    Three models compete: no change, ``component_scale`` alone, and (for ensembles) both
    values. Each is fitted by maximum likelihood and the one with the lowest Bayesian
    information criterion ``2 n NLL + k log n`` wins, so that a value is only changed where
    the rows give evidence for it. It cannot remove every bias: the validation rows also
    chose the best weights, and on a few dozen rows the fit still follows their noise
    (benchmarks/README.md), hence ``AUTO_MIN_ROWS``.

    With ``scale_prior_sd``, ``component_scale`` alone is fitted and kept without a
    criterion, as its maximum a posteriori value under a normal prior on its logarithm,
    which pulls it towards 1 the more the fewer the rows (``SCALE_PRIOR_SD``).

    Parameters
    ----------
    mixture : GaussianMixture
        Predicted mixtures of the validation rows, batch shape (E, n) when ``members``,
        else (n,).
    y : Tensor of shape (n, D)
        Validation targets; NaN entries are missing and marginalised out.
    members : bool
        Whether the first batch axis holds ensemble members (only then can
        ``member_spread`` differ from 1).
    scale_prior_sd : float or None, default=None
        None: BIC's choice as above. A number: fit ``component_scale`` alone
        (``member_spread`` stays 1) under a normal prior on ``log(component_scale)`` with
        mean 0 and this standard deviation; ``math.inf`` gives the maximum likelihood value.

    Returns
    -------
    member_spread, component_scale : float
    """
    mixture = mixture.replace(
        log_weights=mixture.log_weights.detach().double(),
        means=mixture.means.detach().double(),
        precision_cholesky=mixture.precision_cholesky.detach().double(),
    )
    y = y.detach().double()
    n = y.shape[0]
    scale_only = scale_prior_sd is not None

    def nll_and_gradient(values: np.ndarray) -> tuple[float, np.ndarray]:
        params = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        changed = recalibrate(mixture, params[0], params[1].exp(), members=members)
        nll = -(changed.pool(0) if members else changed).log_prob(y).mean()
        if scale_only:  # the prior's share of each row; MAP minimises their sum
            nll = nll + params[1].square() / (2 * scale_prior_sd**2 * n)
        nll.backward()
        return float(nll.detach()), params.grad.numpy()

    scale_bounds = tuple(np.log(SCALE_BOUNDS))
    # Without a criterion, "no change" only wins where the fit itself fails.
    no_change = np.inf if scale_only else 2 * n * nll_and_gradient(np.array([1.0, 0.0]))[0]
    best = (no_change, 1.0, 1.0)
    models = [((1.0, 1.0), 1)] + ([(SPREAD_BOUNDS, 2)] if members and not scale_only else [])
    for spread_bounds, n_values in models:
        fit = minimize(
            nll_and_gradient,
            np.array([1.0, 0.0]),
            jac=True,
            method="L-BFGS-B",
            bounds=[spread_bounds, scale_bounds],
        )
        criterion = 2 * n * fit.fun + n_values * np.log(n)
        if np.isfinite(criterion) and criterion < best[0]:
            best = (criterion, float(fit.x[0]), float(np.exp(fit.x[1])))
    return best[1], best[2]


def fit_tail_weight(
    mixture: GaussianMixture,
    y: Tensor,
    *,
    members: bool,
    member_spread: float = 1.0,
    component_scale: float = 1.0,
) -> float:
    """The maximum likelihood ``tail_weight`` on ``y``, with the other two values given.

    The log-likelihood is concave in the weight w: with r the density ratio of the tail
    copy to the mixture at each row, its derivative is the mean of
    (r - 1) / (1 + w (r - 1)), which decreases in w. So w is 0 where that mean is <= 0 at
    w = 0 (the rows ask for no tail), ``TAIL_BOUNDS[1]`` where it is still >= 0 there, and
    the root between otherwise.

    Parameters
    ----------
    mixture, y, members
        As in ``fit_recalibration``.
    member_spread, component_scale : float
        The values fitted before (``fit_recalibration``).

    Returns
    -------
    float
    """
    with torch.no_grad():
        mixture = mixture.to(torch.float64)
        body, tail = (
            recalibrate(mixture, member_spread, scale, members=members)
            for scale in (component_scale, component_scale * TAIL_SCALE)
        )
        if members:
            body, tail = body.pool(0), tail.pool(0)
        y = y.double()
        # Clipped so that r stays finite; beyond e^50 every term is 1 / w to double precision.
        ratio = (tail.log_prob(y) - body.log_prob(y)).clamp(max=50.0).exp().numpy()

    def slope(w: float) -> float:
        return float(np.mean((ratio - 1) / (1 + w * (ratio - 1))))

    low, high = TAIL_BOUNDS
    if slope(low) <= 0:
        return low
    if slope(high) >= 0:
        return high
    return float(brentq(slope, low, high, xtol=1e-12))
