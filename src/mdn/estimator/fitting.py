"""The steps of ``MDN.fit`` around the training loop: the one preparation of the data (checks,
log target, scaling), seeds, the validation split, bagging, the initial network, and the
recalibration fitted on the validation rows afterwards. Each returns what it made; ``fit``
sets the fitted attributes."""

from __future__ import annotations

import hashlib
import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length

from mdn.distributions import calibration
from mdn.estimator.data import (
    check_scaled,
    column_names,
    observed_rows,
    row_groups,
    training_targets,
)
from mdn.estimator.fitted import NO_RECALIBRATION
from mdn.estimator.scaling import AffineScaling, fit_scaling, warn_if_outliers_dominate
from mdn.nn.network import MixtureDensityNetwork
from mdn.ocean.features import RRS_FLOOR, SpectralFeatures
from mdn.training import History
from mdn.training.checkpoint import Checkpoint
from mdn.training.ddp import in_process_group

if TYPE_CHECKING:
    from mdn.estimator.fitted import FittedModel

__all__ = [
    "TrainingData",
    "checkpoint_for",
    "fit_recalibration",
    "initial_network",
    "log_targets",
    "member_rows",
    "network_config",
    "prepare_training_data",
    "recalibrated",
    "seeds",
    "split_groups",
    "split_rows",
    "warn_if_worse_than_constant",
]


@dataclass(frozen=True)
class TrainingData:
    """A fit's data after its one preparation step.

    Attributes
    ----------
    X : ndarray of shape (n, p)
        The inputs, float64, without the rows that have no observed target.
    y : ndarray of shape (n, D)
        The targets, float64, their logarithm for a log target; NaN where missing.
    x_scaling, y_scaling : AffineScaling
        The fitted scalings.
    x_scaled, y_scaled : Tensor of shape (n, p) and (n, D)
        The scaled data, float32, as the network trains on it.
    output_1d : bool
        Whether ``y`` was one-dimensional.
    target_names : list of str or None
        Column names of a pandas or polars ``y``.
    groups : ndarray of shape (n,) or None
        Each row's group label, where the fit was given groups.
    rows : ndarray of shape (n,)
        Where each row stands in the data as the user passed it (rows without an observed
        target are left out).
    input_medians : ndarray of shape (p,)
        The median of each input column: the unit guard's reference (``mdn.ocean.units``).
    """

    X: np.ndarray
    y: np.ndarray
    x_scaling: AffineScaling
    y_scaling: AffineScaling
    x_scaled: torch.Tensor
    y_scaled: torch.Tensor
    output_1d: bool
    target_names: list[str] | None
    groups: np.ndarray | None = None
    rows: np.ndarray | None = None
    input_medians: np.ndarray | None = None


def prepare_training_data(
    X: np.ndarray,
    y: object,
    params: Mapping[str, object],
    groups: object = None,
    feature_names: Sequence[str] | None = None,
) -> TrainingData:
    """Check, transform and scale a fit's data, once.

    Parameters
    ----------
    X : ndarray of shape (n, p)
        Inputs as scikit-learn's ``validate_data`` returns them (float64).
    y : array-like of shape (n,) or (n, D)
        Targets as the user passed them; NaN marks a missing value.
    params : mapping
        The estimator's parameters: ``scaler_x``, ``scaler_y``, ``target_transform`` and
        ``nonpositive_targets`` are read.
    groups : array-like of shape (n,), optional
        Each row's group label.
    feature_names : sequence of str, optional
        The inputs' names (their wavelengths decide the visible bands of
        ``spectral_features="shape"``).

    Returns
    -------
    TrainingData

    Raises
    ------
    ValueError
        For non-finite inputs, infinite targets, a target column with no observed value,
        targets <= 0 under a log transform (unless ``nonpositive_targets="missing"``), or
        values beyond float32's range once scaled; each names the rows and columns.
    """
    target_names = column_names(y)
    check_scaled(X, "X", limit=math.inf)  # NaN, infinity: named by row and column
    y, output_1d = training_targets(y)
    check_consistent_length(X, y)
    if groups is not None:
        groups = row_groups(groups, len(X))
    if params["target_transform"] == "log":  # before dropping rows: the messages name rows
        y = log_targets(y, params["nonpositive_targets"], target_names)
    kept = observed_rows(y)
    X, y, groups = X[kept], y[kept], None if groups is None else groups[kept]
    features = _input_features(X, params["spectral_features"], feature_names)
    x_scaling = fit_scaling(params["scaler_x"], features, "scaler_x")
    y_scaling = fit_scaling(params["scaler_y"], y, "scaler_y")
    if params["scaler_y"] == "standard" or isinstance(params["scaler_y"], StandardScaler):
        warn_if_outliers_dominate(y, "scaler_y")
    x_scaled, y_scaled = x_scaling.transform(features), y_scaling.transform(y)
    check_scaled(x_scaled, "X")
    check_scaled(np.nan_to_num(y_scaled, nan=0.0), "y")  # NaN: a missing target
    return TrainingData(
        X,
        y,
        x_scaling,
        y_scaling,
        torch.as_tensor(x_scaled, dtype=torch.float32),
        torch.as_tensor(y_scaled, dtype=torch.float32),
        output_1d,
        target_names,
        groups,
        np.flatnonzero(kept),
        np.median(X, axis=0),
    )


def _input_features(X: np.ndarray, kind: str | None, names: Sequence[str] | None) -> np.ndarray:
    """The features the network sees (``mdn.ocean.features``), with a warning where more than
    a tenth of the reflectance had to be raised to the floor before its logarithm."""
    if kind is None:
        return X
    raised = int(np.sum(X <= RRS_FLOOR))
    if raised > 0.1 * X.size:  # a few are noise (the near-infrared of clear water); many are not
        warnings.warn(
            f"{raised} of {X.size} input values are <= {RRS_FLOOR:g} and were raised to it "
            f"before the logarithm of spectral_features={kind!r}: are the inputs reflectance "
            "in sr^-1?",
            UserWarning,
            stacklevel=5,  # the caller of MDN.fit
        )
    return SpectralFeatures.for_inputs(kind, names, X.shape[1])(X)


def log_targets(y: np.ndarray, nonpositive: str, names: list[str] | None) -> np.ndarray:
    """``log(y)`` for a log target, with the values <= 0 refused or made missing.

    A value below a detection limit is often recorded as 0: it carries no level to fit, and
    ``nonpositive="missing"`` treats it as a missing value (marginalised out, as NaN is).

    Parameters
    ----------
    y : ndarray of shape (n, D)
        The targets as the user passed them; NaN where missing.
    nonpositive : {"raise", "missing"}
        What to do with values <= 0.
    names : list of str or None
        The targets' column names, for the messages (their positions otherwise).

    Returns
    -------
    ndarray of shape (n, D)

    Raises
    ------
    ValueError
        For values <= 0 under "raise", naming each column, its count and its first rows.

    Warns
    -----
    UserWarning
        Under "missing", with the count per column.
    """
    bad = y <= 0  # NaN compares False: missing values stay missing
    if not bad.any():
        return np.log(y)
    columns = names or [f"column {d}" for d in range(y.shape[1])]
    counts = "; ".join(
        f"{columns[d]}: {int(bad[:, d].sum())}, smallest {np.min(y[bad[:, d], d]):g}, rows "
        f"{_first_rows(bad[:, d])}"
        for d in np.flatnonzero(bad.any(axis=0))
    )
    if nonpositive == "raise":
        raise ValueError(
            f"target_transform='log' needs y > 0, but {int(bad.sum())} target values are <= 0 "
            f"({counts}); drop or offset them, or treat them as missing with "
            "nonpositive_targets='missing' (mdn fit --nonpositive missing)"
        )
    warnings.warn(
        f"{int(bad.sum())} target values <= 0 are treated as missing under the log target "
        f"({counts})",
        UserWarning,
        stacklevel=5,  # the caller of MDN.fit
    )
    return np.log(np.where(bad, np.nan, y))


def _first_rows(bad: np.ndarray, shown: int = 5) -> str:
    rows = np.flatnonzero(bad)
    listed = ", ".join(str(r) for r in rows[:shown])
    return listed + (", ..." if len(rows) > shown else "")


def network_config(
    params: Mapping[str, object], n_features: int, n_outputs: int, *, single: bool = False
) -> dict[str, object]:
    """The network's constructor arguments for an estimator's parameters.

    Parameters
    ----------
    params : mapping
        The estimator's parameters (``n_mix``, ``hidden``, ``activation``, ``covariance``,
        ``epsilon``, ``n_models``).
    n_features, n_outputs : int
        Input and target dimensions (the inputs before their ``spectral_features``).
    single : bool
        One member's network rather than the batched ensemble of ``n_models`` > 1.

    Returns
    -------
    dict
        Keyword arguments of ``MixtureDensityNetwork``.
    """
    n_models = params["n_models"]
    features = SpectralFeatures.for_inputs(params.get("spectral_features"), None, n_features)
    return {
        "in_features": features.n_outputs(),
        "n_targets": n_outputs,
        "n_mix": params["n_mix"],
        "hidden": tuple(params["hidden"]),
        "activation": params["activation"],
        "covariance": params["covariance"],
        "epsilon": params["epsilon"],
        "n_models": None if single or n_models == 1 else n_models,
    }


def seeds(random_state: int | np.random.RandomState | None) -> tuple[int, int]:
    """The seed of member 0 (member e uses seed + e) and the seed of the validation split.

    An integer ``random_state`` is member 0's seed itself, so that member e of an
    ensemble starts as a single model with ``random_state + e`` would.

    Parameters
    ----------
    random_state : int, RandomState or None

    Returns
    -------
    seed, split_seed : int
    """
    if isinstance(random_state, numbers.Integral):
        seed = int(random_state)
    else:
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    # A seed unrelated to the members': torch and NumPy share the Mersenne twister, so
    # one seed would make the split and the first member's minibatches share draws.
    split_seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
    return seed, split_seed


def split_rows(
    n: int, validation_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training and validation rows (None without validation), drawn with ``generator``.

    Parameters
    ----------
    n : int
        Rows in all.
    validation_fraction : float
    generator : torch.Generator

    Returns
    -------
    train_rows : Tensor
    val_rows : Tensor or None
    """
    if validation_fraction == 0:
        return torch.arange(n), None
    n_val = round(n * validation_fraction)
    if n_val < 1 or n - n_val < 1:
        warnings.warn(
            f"validation_fraction={validation_fraction} leaves no validation or no "
            f"training row out of {n}; training without validation",
            UserWarning,
            stacklevel=3,
        )
        return torch.arange(n), None
    order = torch.randperm(n, generator=generator)
    return order[n_val:], order[:n_val]


def split_groups(
    groups: np.ndarray, validation_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training and validation rows made of whole groups (None without validation).

    The groups are taken in an order drawn with ``generator`` until they hold
    ``validation_fraction`` of the rows (at least one group, and at least one left for
    training), so that validation, early stopping and the recalibration see groups that
    training did not: the intervals are calibrated for new groups.

    Parameters
    ----------
    groups : ndarray of shape (n,)
        Each row's group label.
    validation_fraction : float
    generator : torch.Generator

    Returns
    -------
    train_rows : Tensor
    val_rows : Tensor or None
    """
    n = len(groups)
    labels, index = np.unique(groups.astype(str), return_inverse=True)
    if validation_fraction == 0 or len(labels) < 2:
        if validation_fraction > 0:
            warnings.warn(
                f"groups holds one group only ({labels[0]!r}): the validation rows cannot be "
                "whole groups; training without validation",
                UserWarning,
                stacklevel=3,
            )
        return torch.arange(n), None
    order = torch.randperm(len(labels), generator=generator).numpy()
    sizes = np.bincount(index, minlength=len(labels))[order]
    taken = max(1, int(np.searchsorted(np.cumsum(sizes), n * validation_fraction) + 1))
    held_out = np.isin(index, order[: min(taken, len(labels) - 1)])
    return (torch.as_tensor(np.flatnonzero(~held_out)),
            torch.as_tensor(np.flatnonzero(held_out)))  # fmt: skip


def member_rows(
    n: int, bagging: float | None, generators: list[torch.Generator]
) -> torch.Tensor | None:
    """Training rows of each member (E, m) when bagging, else None (all rows).

    Parameters
    ----------
    n : int
        Training rows.
    bagging : float or None
        Share of them each member draws, without replacement.
    generators : list of torch.Generator
        One per member.

    Returns
    -------
    Tensor of shape (E, m) or None
    """
    if bagging is None:
        return None
    m = max(1, round(n * bagging))
    return torch.stack([torch.randperm(n, generator=g)[:m] for g in generators])


def initial_network(
    build_single: Callable[[torch.Generator], MixtureDensityNetwork], n_models: int, seed: int
) -> MixtureDensityNetwork:
    """Member e initialised from its own generator seeded with seed + e, as a single model
    with that seed would be; torch's global generator is not used.

    Parameters
    ----------
    build_single : callable
        Builds one single network with weights drawn from the generator it is given.
    n_models : int
    seed : int

    Returns
    -------
    MixtureDensityNetwork
        One network, or a batched one of ``n_models`` members.
    """
    members = [build_single(torch.Generator().manual_seed(seed + e)) for e in range(n_models)]
    return members[0] if n_models == 1 else MixtureDensityNetwork.stack(members)


def fit_recalibration(
    network: MixtureDensityNetwork, x_val: torch.Tensor, y_val: torch.Tensor, scale_only: bool
) -> dict[str, float]:
    """The recalibration of ``network``'s predictive mixture on the validation rows.

    Parameters
    ----------
    network : MixtureDensityNetwork
        Fitted; scaled inputs to mixtures over scaled targets.
    x_val, y_val : Tensor
        Scaled validation rows.
    scale_only : bool
        Fit the component scale alone under ``calibration.SCALE_PRIOR_SD`` and then the
        tail weight; otherwise the member spread and the scale, as BIC chooses.

    Returns
    -------
    dict
        Values of ``member_spread_``, ``component_scale_`` and ``tail_weight_``.
    """
    network.eval()
    with torch.no_grad():
        mixture = network(x_val)
    mixture, y_val = mixture.to("cpu"), y_val.cpu()
    members = network.n_models is not None
    values = dict(NO_RECALIBRATION)
    values["member_spread_"], values["component_scale_"] = calibration.fit_recalibration(
        mixture,
        y_val,
        members=members,
        scale_prior_sd=calibration.SCALE_PRIOR_SD if scale_only else None,
    )
    if scale_only:
        values["tail_weight_"] = calibration.fit_tail_weight(
            mixture, y_val, members=members, component_scale=values["component_scale_"]
        )
    return values


def recalibrated(model: FittedModel) -> bool:
    """Whether ``model`` has any recalibration to apply.

    Parameters
    ----------
    model : FittedModel
        Fitted, with ``member_spread_``, ``component_scale_`` and ``tail_weight_``.

    Returns
    -------
    bool
        False where every fitted recalibration value is the one that changes nothing.
    """
    return any(getattr(model, name) != none for name, none in NO_RECALIBRATION.items())


def warn_if_worse_than_constant(
    history: History, y_train: torch.Tensor, y_val: torch.Tensor | None, epsilon: float
) -> None:
    """Warn when training ended far worse than one Gaussian per target would do.

    The comparison is in the network's (scaled) units, on the validation rows where there
    are some (else the training rows): the best validation NLL, or the last training NLL,
    against the NLL of a Gaussian fitted to each training target, more than half a nat
    per target worse. Such a fit diverged without turning non-finite (a learning rate far
    too large, targets far from the scale the network expects). The Gaussian's variance is
    held at the network's floor (``epsilon``) too, and fewer than 20 rows decide nothing.

    Parameters
    ----------
    history : History
        The record of the fit.
    y_train, y_val : Tensor of shape (n, D)
        Scaled targets; NaN for missing values.
    epsilon : float
        The network's variance floor, in scaled units.
    """
    y_fit = y_train.double().cpu()
    y_eval = (y_val if y_val is not None else y_train).double().cpu()
    if len(y_eval) < 20:
        return
    mean = torch.nanmean(y_fit, 0)
    var = torch.nanmean((y_fit - mean) ** 2, 0).clamp_min(epsilon)
    terms = 0.5 * (torch.log(2 * math.pi * var) + (y_eval - mean) ** 2 / var)  # [n, D]
    constant = float(torch.nansum(terms, 1).mean())
    reached = min(history.val_nll) if history.val_nll else history.train_nll[-1]
    if reached > constant + 0.5 * y_fit.shape[1]:
        warnings.warn(
            f"training ended with an NLL of {reached:.3g} (scaled units), worse than one "
            f"Gaussian per target ({constant:.3g}): the model is not usable. Try a smaller lr, "
            "scaled targets (scaler_y), or more iterations",
            UserWarning,
            stacklevel=3,  # the caller of MDN.fit
        )


def checkpoint_for(
    params: Mapping[str, object], X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
) -> Checkpoint | None:
    """The checkpoint of a fit with ``params`` on ``X`` and ``y``, if it asks for one.

    Its fingerprint hashes the data and every parameter that shapes the fit (not
    ``verbose``, ``device``, ``chunk_size`` or the checkpoint's own), so that only the same
    fit resumes from it.

    Parameters
    ----------
    params : mapping
        The estimator's parameters (``checkpoint`` and ``checkpoint_every`` among them).
    X, y : ndarray
        The data as ``fit`` trains on it (validated, float64).
    groups : ndarray, optional
        The rows' group labels (they decide the validation rows).

    Returns
    -------
    Checkpoint or None
    """
    if params["checkpoint"] is None:
        return None
    if in_process_group():
        raise ValueError("checkpoint is not supported inside a torch.distributed process group")
    ignored = ("verbose", "device", "chunk_size", "checkpoint", "checkpoint_every")
    shaping = {k: v for k, v in params.items() if k not in ignored}
    digest = hashlib.sha256(repr(sorted(shaping.items())).encode())
    for values in (X, y):
        digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    if groups is not None:
        digest.update(repr(groups.tolist()).encode())
    return Checkpoint(params["checkpoint"], params["checkpoint_every"], digest.hexdigest())
