"""How a fitted ``MDN`` predicts: the network runs on a bounded number of rows at a time
(``chunk_size``), and each chunk's mixture is turned into what a prediction method asked
for. ``MDN``'s prediction methods, the scene's per-pixel fields and the ONNX graph all go
through these functions."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.utils.validation import check_is_fitted

from mdn.distributions import calibration
from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.transforms import AffineTransform, LogGaussianMixture
from mdn.estimator.data import check_scaled, num_rows, validated_x
from mdn.estimator.fitting import recalibrated
from mdn.ocean.features import SpectralFeatures
from mdn.ocean.units import unit_factor, unit_warning
from mdn.params import AUTO_POINTS, validate_argument
from mdn.runtime import outside_mdn_stacklevel, settle_allocator

if TYPE_CHECKING:
    from mdn.estimator.fitted import FittedModel

__all__ = [
    "collect",
    "distributions",
    "in_target_space",
    "input_features",
    "median_of_members",
    "member_distributions",
    "n_members",
    "novelty_scores",
    "predictive",
    "resolved_point",
    "scaled_features",
    "warn_if_another_unit",
]

Distribution = GaussianMixture | LogGaussianMixture


def member_distributions(
    model: FittedModel, X: ArrayLike
) -> Iterator[tuple[slice, GaussianMixture]]:
    """Each member's predicted mixture in the user's units, a chunk of rows at a time.

    The mixtures have batch shape (rows,) for a single model and (E, rows) for an
    ensemble; the log transform is not applied yet.

    Parameters
    ----------
    model : FittedModel
        Fitted.
    X : array-like of shape (n, p)

    Yields
    ------
    rows : slice
    mixture : GaussianMixture
    """
    check_is_fitted(model, "network_")
    network = model.network_
    device = next(network.parameters()).device
    unscale = AffineTransform(torch.as_tensor(model.y_shift_), torch.as_tensor(model.y_scale_))
    network.eval()
    for rows, scaled_x in scaled_features(model, X, model.chunk_size // (network.n_models or 1)):
        x = torch.as_tensor(scaled_x.astype(np.float32))
        with torch.inference_mode():
            scaled = network(x.to(device))
        # float64 from here: user units may be far from 1, and densities are compared
        # against other float64 tools.
        yield rows, unscale(scaled.to(torch.float64))


def scaled_features(
    model: FittedModel, X: ArrayLike, rows_per_chunk: int
) -> Iterator[tuple[slice, np.ndarray]]:
    """The features the network sees (``spectral_features``, then the input scaling), a chunk
    of rows at a time, in float64; each chunk checked for values the network cannot take.

    Parameters
    ----------
    model : FittedModel
        Fitted.
    X : array-like of shape (n, p)
    rows_per_chunk : int

    Yields
    ------
    rows : slice
    features : ndarray of shape (rows, p')
    """
    # Finiteness is checked chunk by chunk: checking all of X at once costs temporaries as
    # large as X.
    X = validated_x(model, X, reset=False, dtype=(np.float64, np.float32))
    warn_if_another_unit(model, X[:rows_per_chunk])
    features = input_features(model)
    step = max(1, rows_per_chunk)
    for start in range(0, len(X), step):
        rows = slice(start, start + step)
        scaled = (features(X[rows]) - model.x_shift_) / model.x_scale_
        check_scaled(scaled, "X", first_row=start)
        yield rows, scaled


def warn_if_another_unit(model: FittedModel, X: np.ndarray) -> None:
    """Warn where ``X``'s level is the training inputs' times a known factor between units of
    reflectance (``mdn.ocean.units``): pi (rho_w), 100 (percent), 10,000 (Sentinel-2 L2A).

    Parameters
    ----------
    model : FittedModel
        Fitted; models saved before the unit guard have no ``input_medians_``.
    X : ndarray of shape (n, p)
        Some of the rows to predict (a chunk).
    """
    medians = getattr(model, "input_medians_", None)
    factor = None if medians is None or not len(X) else unit_factor(X, medians)
    if factor is not None:
        warnings.warn(unit_warning(factor), UserWarning, stacklevel=outside_mdn_stacklevel())


def novelty_scores(model: FittedModel, X: ArrayLike) -> np.ndarray:
    """How far each row lies from the training inputs (``mdn.estimator.novelty``).

    Parameters
    ----------
    model : FittedModel
        Fitted, with an input density (``input_density_``).
    X : array-like of shape (n, p)

    Returns
    -------
    ndarray of shape (n,)
        ``-log p(x)`` of each row's features under the training inputs' density; rows above
        ``model.novelty_threshold_`` are novel.
    """
    check_is_fitted(model, "network_")
    density = getattr(model, "input_density_", None)
    if density is None:
        raise ValueError(
            "this model has no density of its training inputs (fitted on fewer than 10 rows, "
            "or saved by an mdn from before novelty scores): refit it to score novelty"
        )
    out = np.empty(num_rows(X))
    for rows, scaled in scaled_features(model, X, model.chunk_size):
        out[rows] = density.score(scaled)
    return out


def distributions(model: FittedModel, X: ArrayLike) -> Iterator[tuple[slice, Distribution]]:
    """The predictive distribution in the user's units, a chunk of rows at a time: the
    members' mixtures, recalibrated and pooled.

    Parameters
    ----------
    model : FittedModel
    X : array-like of shape (n, p)

    Yields
    ------
    rows : slice
    distribution : GaussianMixture or LogGaussianMixture
    """
    check_is_fitted(model, "network_")
    for rows, mixture in member_distributions(model, X):
        yield rows, in_target_space(model, predictive(model, mixture)[1])


def predictive(
    model: FittedModel, members: GaussianMixture
) -> tuple[GaussianMixture, GaussianMixture]:
    """A chunk's members' mixtures with the model's fitted recalibration, and the predictive
    mixture they make in the user's units (their equal-weight pool for an ensemble), before
    the target transform is undone (``in_target_space``).

    Parameters
    ----------
    model : FittedModel
        Fitted.
    members : GaussianMixture
        Of ``member_distributions``: batch (E, rows) for an ensemble, (rows,) otherwise.

    Returns
    -------
    recalibrated : GaussianMixture
    pooled : GaussianMixture
    """
    ensemble = (model.network_.n_models or 1) > 1
    if recalibrated(model):
        members = calibration.recalibrate(
            members,
            model.member_spread_,
            model.component_scale_,
            model.tail_weight_,
            members=ensemble,
        )
    return members, members.pool(0) if ensemble else members


def median_of_members(model: FittedModel, mixture: GaussianMixture, point: str) -> torch.Tensor:
    """The median over members of each member's ``point`` estimate, in the user's units.

    Parameters
    ----------
    model : FittedModel
    mixture : GaussianMixture
        The members' mixtures, batch shape (E, rows).
    point : str
        A ``GaussianMixture`` method returning one point per row.

    Returns
    -------
    Tensor of shape (rows, D)
    """
    points = getattr(in_target_space(model, mixture), point)()  # [E, rows, D]
    ordered = points.sort(dim=0).values
    n_members = len(points)
    middle = (n_members - 1) // 2, n_members // 2
    return (ordered[middle[0]] + ordered[middle[1]]) / 2  # np.median's convention


def in_target_space(model: FittedModel, mixture: GaussianMixture) -> Distribution:
    """``mixture`` pushed through the inverse of the model's target transform.

    Parameters
    ----------
    model : FittedModel
    mixture : GaussianMixture
        In the user's units before the target transform is undone.

    Returns
    -------
    GaussianMixture or LogGaussianMixture
        ``mixture`` itself, or a ``LogGaussianMixture`` of it for a log target.
    """
    return LogGaussianMixture(mixture) if model.target_transform == "log" else mixture


def collect(
    model: FittedModel,
    X: ArrayLike,
    compute: Callable[[Distribution], torch.Tensor],
    row_axis: int = 0,
    members: bool = False,
) -> np.ndarray:
    """Apply ``compute`` (distribution -> tensor ending in the target axis) chunk by chunk.

    Parameters
    ----------
    model : FittedModel
    X : array-like of shape (n, p)
    compute : callable
        Gets the predictive distribution of a chunk, or with ``members`` each member's
        mixture before the target transform.
    row_axis : int
        The axis of ``compute``'s result that runs over rows.
    members : bool

    Returns
    -------
    ndarray
        The chunks' results joined along ``row_axis``; the target axis is dropped for a
        model fitted on a 1-D target.
    """
    settle_allocator()
    chunks = member_distributions(model, X) if members else distributions(model, X)
    out = None  # allocated once the first chunk shows the shape: no list of parts
    for rows, dist in chunks:
        part = compute(dist).cpu().numpy()
        if out is None:
            shape = list(part.shape)
            shape[row_axis] = num_rows(X)
            out = np.empty(shape, dtype=part.dtype)
        out[(slice(None),) * row_axis + (rows,)] = part
    return out[..., 0] if model.output_1d_ else out


def input_features(model: FittedModel) -> SpectralFeatures:
    """The features a fitted model's network sees, from its inputs.

    Parameters
    ----------
    model : FittedModel

    Returns
    -------
    SpectralFeatures
        The identity where the model has no ``spectral_features``.
    """
    names = getattr(model, "feature_names_in_", None)
    kind = getattr(model, "spectral_features", None)
    return SpectralFeatures.for_inputs(kind, names, model.n_features_in_)


def n_members(model: FittedModel) -> int:
    """The number of ensemble members of a fitted model (1 for a single network).

    Parameters
    ----------
    model : FittedModel

    Returns
    -------
    int
    """
    check_is_fitted(model, "network_")
    return model.network_.n_models or 1


def resolved_point(model: FittedModel, point: str | None) -> str:
    """``point``, or the model's default where it is None (its ``point`` parameter, with
    "auto" read from ``AUTO_POINTS`` by the target transform).

    Parameters
    ----------
    model : FittedModel
    point : str or None

    Returns
    -------
    str
        One of ``POINTS``.
    """
    validate_argument("point", point)
    if point is None:
        point = getattr(model, "point", "auto")
        if point == "auto":
            point = AUTO_POINTS[model.target_transform]
    return point
