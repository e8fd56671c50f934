"""Chunked prediction of a fitted ``MDN``: the network runs on a bounded number of rows at a
time, and each chunk's mixture is turned into what a prediction method asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, validate_data

from mdn import calibration
from mdn.data import num_rows, to_numpy
from mdn.fitting import NO_RECALIBRATION
from mdn.mixture import GaussianMixture
from mdn.transforms import AffineTransform, LogGaussianMixture

__all__ = ["collect", "distributions", "in_target_space", "member_distributions", "recalibrated"]

Distribution = GaussianMixture | LogGaussianMixture


def member_distributions(model, X) -> Iterator[tuple[slice, GaussianMixture]]:
    """Each member's predicted mixture in the user's units, a chunk of rows at a time.

    The mixtures have batch shape (rows,) for a single model and (E, rows) for an
    ensemble; the log transform is not applied yet.

    Parameters
    ----------
    model : MDN
        Fitted.
    X : array-like of shape (n, p)

    Yields
    ------
    rows : slice
    mixture : GaussianMixture
    """
    check_is_fitted(model, "network_")
    # Finiteness is checked chunk by chunk below: checking all of X at once costs
    # temporaries as large as X.
    X = validate_data(
        model, to_numpy(X), reset=False, dtype=(np.float64, np.float32), ensure_all_finite=False
    )
    network = model.network_
    device = next(network.parameters()).device
    unscale = AffineTransform(torch.as_tensor(model.y_shift_), torch.as_tensor(model.y_scale_))
    network.eval()
    step = max(1, model.chunk_size // (network.n_models or 1))
    for start in range(0, len(X), step):
        rows = slice(start, start + step)
        scaled_x = (X[rows] - model.x_shift_) / model.x_scale_
        if not np.isfinite(scaled_x).all():
            raise ValueError(
                f"Input X contains NaN or infinity (in rows {start} to "
                f"{start + len(scaled_x) - 1}); drop or impute those rows"
            )
        x = torch.as_tensor(scaled_x.astype(np.float32))
        with torch.inference_mode():
            scaled = network(x.to(device))
        # float64 from here: user units may be far from 1, and densities are compared
        # against other float64 tools.
        yield rows, unscale(scaled.to(torch.float64))


def recalibrated(model) -> bool:
    """Whether ``model`` has any recalibration to apply."""
    return any(getattr(model, name) != none for name, none in NO_RECALIBRATION.items())


def distributions(model, X) -> Iterator[tuple[slice, Distribution]]:
    """The predictive distribution in the user's units, a chunk of rows at a time: the
    members' mixtures, recalibrated and pooled.

    Parameters
    ----------
    model : MDN
    X : array-like of shape (n, p)

    Yields
    ------
    rows : slice
    distribution : GaussianMixture or LogGaussianMixture
    """
    check_is_fitted(model, "network_")
    ensemble = (model.network_.n_models or 1) > 1
    for rows, mixture in member_distributions(model, X):
        if recalibrated(model):
            mixture = calibration.recalibrate(
                mixture,
                model.member_spread_,
                model.component_scale_,
                model.tail_weight_,
                members=ensemble,
            )
        yield rows, in_target_space(model, mixture.pool(0) if ensemble else mixture)


def in_target_space(model, mixture: GaussianMixture) -> Distribution:
    """``mixture`` pushed through the inverse of the model's target transform."""
    return LogGaussianMixture(mixture) if model.target_transform == "log" else mixture


def collect(
    model,
    X,
    compute: Callable[[Distribution], torch.Tensor],
    row_axis: int = 0,
    members: bool = False,
) -> np.ndarray:
    """Apply ``compute`` (distribution -> tensor ending in the target axis) chunk by chunk.

    Parameters
    ----------
    model : MDN
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
