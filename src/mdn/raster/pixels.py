"""Everything a scene asks of a model for a table of pixels, from one run of the network:
the point estimate and the central interval that ``MDN.predict`` and ``MDN.predict_interval``
give, and the split of the predictive variance into its aleatoric and epistemic parts.

The split is the law of total variance over the ensemble's equal-weight pool of member
mixtures (recalibrated as the model's intervals are): ``Var = E_e[Var_e] + Var_e[E_e]``.
The aleatoric part is the members' mean within-member variance (the noise each member sees
in the data), the epistemic part the variance between the members' means (their
disagreement). Both are returned as standard deviations; a single network has no epistemic
part (0). For a log target (``target_transform="log"``) they are those of ``ln(y)``, where
the members' mixtures are Gaussian: in the target's own units the split would not add up.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np
import torch

from mdn.distributions.mixture import GaussianMixture
from mdn.estimator.data import FLOAT32_MAX
from mdn.estimator.prediction import (
    collect,
    in_target_space,
    input_features,
    median_of_members,
    n_members,
    novelty_scores,
    predictive,
    resolved_point,
)
from mdn.params import validate_argument
from mdn.runtime import denormals_flushed

if TYPE_CHECKING:
    from mdn.estimator.model import MDN

__all__ = ["FIELDS", "novel_pixels", "predict_pixels", "representable"]

#: What ``predict_pixels`` returns per target, in this order.
FIELDS = ("estimate", "lower", "upper", "aleatoric_sd", "epistemic_sd")


def _positional(model: MDN) -> MDN:
    """A shallow copy that takes its features by position: the scene's bands were matched
    to the model's feature names before, and a plain array must not warn about names."""
    if not hasattr(model, "feature_names_in_"):
        return model
    positional = copy.copy(model)
    del positional.feature_names_in_
    return positional


def _fields(model: MDN, mixture: GaussianMixture, point: str, coverage: float) -> torch.Tensor:
    """The FIELDS of a chunk from its members' mixtures, as ``MDN``'s methods make them."""
    ensemble = n_members(model) > 1
    adjusted, pooled = predictive(model, mixture)
    distribution = in_target_space(model, pooled)
    if ensemble and model.combine == "median":
        estimate = median_of_members(model, mixture, point)  # [rows, D], as MDN.predict
    else:
        estimate = getattr(distribution, point)()
    lower, upper = distribution.interval(coverage)
    means, variances = adjusted.mean(), adjusted.variance()  # [E, rows, D] or [rows, D]
    if ensemble:
        aleatoric, epistemic = variances.mean(0), means.var(0, unbiased=False)
    else:
        aleatoric, epistemic = variances, torch.zeros_like(variances)
    return torch.stack([estimate, lower, upper, aleatoric.sqrt(), epistemic.sqrt()])


def predict_pixels(
    model: MDN, X: np.ndarray, point: str | None = None, coverage: float = 0.9
) -> np.ndarray:
    """The FIELDS of every row of ``X``, from one run of the network.

    ``estimate`` equals ``model.predict(X, point)`` and ``lower``, ``upper`` equal
    ``model.predict_interval(X, coverage)``; the network runs on ``chunk_size`` rows at a
    time, as in ``MDN``.

    Parameters
    ----------
    model : MDN
        Fitted.
    X : ndarray of shape (n, n_features)
        Finite features, in the order the model was fitted on.
    point : {"top", "mean", "mode", "median"} or None
        The point estimate; None for the model's (``MDN(point=...)``: the median for a log
        target by default).
    coverage : float
        Of the central interval, strictly between 0 and 1.

    Returns
    -------
    ndarray of shape (len(FIELDS), n, n_targets)
        float64; see the module's description for the spreads.
    """
    point = resolved_point(model, point)
    validate_argument("coverage", coverage)
    if len(X) == 0:
        return np.empty((len(FIELDS), 0, model.n_outputs_))
    model = _positional(model)
    with denormals_flushed():  # as in MDN's methods
        values = collect(
            model,
            X,
            lambda mixture: _fields(model, mixture, point, coverage),
            row_axis=1,
            members=True,
        )
    return values.reshape(len(FIELDS), len(X), model.n_outputs_)


def representable(model: MDN, X: np.ndarray) -> np.ndarray:
    """Rows the float32 network can take: each feature within float32's range after the
    model's scaling (``MDN.predict`` refuses the others).

    Parameters
    ----------
    model : MDN
        Fitted.
    X : ndarray of shape (n, n_features)
        Finite features, in the order the model was fitted on.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    with np.errstate(over="ignore"):
        scaled = (input_features(model)(X.astype(np.float64)) - model.x_shift_) / model.x_scale_
    return (np.abs(scaled) <= FLOAT32_MAX).all(axis=1)


def novel_pixels(model: MDN, X: np.ndarray) -> np.ndarray:
    """Rows whose novelty score (``MDN.novelty``) lies above the model's threshold: inputs
    outside its training domain; none for a model without an input density.

    Parameters
    ----------
    model : MDN
        Fitted.
    X : ndarray of shape (n, n_features)
        Finite features the model can take, in the order it was fitted on.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    if getattr(model, "input_density_", None) is None:
        return np.zeros(len(X), dtype=bool)
    return novelty_scores(_positional(model), X) > model.input_density_.threshold
