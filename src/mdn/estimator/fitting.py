"""The steps of ``MDN.fit`` around the training loop: seeds, the validation split, bagging,
the initial network, and the recalibration fitted on the validation rows afterwards."""

from __future__ import annotations

import copy
import hashlib
import math
import numbers
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from mdn.distributions import calibration
from mdn.estimator.data import check_scaled
from mdn.estimator.scaling import fit_scaling, warn_if_outliers_dominate
from mdn.nn.network import MixtureDensityNetwork
from mdn.training import History
from mdn.training.checkpoint import Checkpoint
from mdn.training.ddp import in_process_group

if TYPE_CHECKING:
    from mdn.estimator.model import MDN

__all__ = [
    "NO_RECALIBRATION",
    "checkpoint_for",
    "fit_recalibration",
    "initial_network",
    "member_rows",
    "recalibrated",
    "scale_training_data",
    "seeds",
    "single_members",
    "split_rows",
    "warn_if_worse_than_constant",
]

#: The fitted recalibration values that change nothing.
NO_RECALIBRATION = {"member_spread_": 1.0, "component_scale_": 1.0, "tail_weight_": 0.0}


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


def recalibrated(model: MDN) -> bool:
    """Whether ``model`` has any recalibration to apply.

    Parameters
    ----------
    model : MDN
        Fitted, with ``member_spread_``, ``component_scale_`` and ``tail_weight_``.

    Returns
    -------
    bool
        False where every fitted recalibration value is the one that changes nothing.
    """
    return any(getattr(model, name) != none for name, none in NO_RECALIBRATION.items())


def single_members(model) -> list:
    """The members of a fitted ``MDN`` as single fitted models, without recalibration.

    Member e of an ensemble fitted with an integer ``random_state`` gets ``random_state +
    e``, the seed of the single model it trained as; its history is its own.

    Parameters
    ----------
    model : MDN
        Fitted.

    Returns
    -------
    list of MDN
        One per member (for a single network: the model itself, or a copy without its
        recalibration).
    """
    n_members = model.network_.n_models or 1
    if n_members == 1:
        if not recalibrated(model):
            return [model]
        member = copy.copy(model)  # shares the network; only the recalibration differs
        member.__dict__.update(NO_RECALIBRATION)
        return [member]
    fitted = {
        k: v
        for k, v in vars(model).items()
        if k.endswith("_") and not k.startswith("_") and k != "network_"
    }
    members = []
    for e in range(n_members):
        seed = model.random_state
        member = clone(model).set_params(
            n_models=1,
            bagging=None,
            random_state=seed + e if isinstance(seed, numbers.Integral) else seed,
        )
        member.__dict__.update(copy.deepcopy(fitted), **NO_RECALIBRATION)
        history = member.history_
        if history.get("member_best_step"):
            history["best_step"] = history["member_best_step"][e]
            history["val_nll"] = [values[e] for values in history["member_val_nll"]]
        member.network_ = model.network_.member(e).eval()
        members.append(member)
    return members


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


def checkpoint_for(model: MDN, X: np.ndarray, y: np.ndarray) -> Checkpoint | None:
    """The checkpoint of ``model``'s fit on ``X`` and ``y``, if it asks for one.

    Its fingerprint hashes the data and every parameter that shapes the fit (not
    ``verbose``, ``device``, ``chunk_size`` or the checkpoint's own), so that only the same
    fit resumes from it.

    Parameters
    ----------
    model : MDN
    X, y : ndarray
        The data as ``fit`` trains on it (validated, float64).

    Returns
    -------
    Checkpoint or None
    """
    if model.checkpoint is None:
        return None
    if in_process_group():
        raise ValueError("checkpoint is not supported inside a torch.distributed process group")
    ignored = ("verbose", "device", "chunk_size", "checkpoint", "checkpoint_every")
    params = {k: v for k, v in model.get_params(deep=False).items() if k not in ignored}
    digest = hashlib.sha256(repr(sorted(params.items())).encode())
    for values in (X, y):
        digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return Checkpoint(model.checkpoint, model.checkpoint_every, digest.hexdigest())


def scale_training_data(
    model: MDN, X: np.ndarray, y: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``model``'s scalings (``x_shift_``, ``x_scale_``, ``y_shift_``, ``y_scale_``) and
    return the scaled data as float32.

    Parameters
    ----------
    model : MDN
        Its ``scaler_x`` and ``scaler_y`` say how; the fitted values are set on it.
    X : ndarray of shape (n, p)
    y : ndarray of shape (n, D)
        NaN marks a missing target value.

    Returns
    -------
    x_scaled, y_scaled : Tensor
        float32.

    Raises
    ------
    ValueError
        Where a scaled value lies beyond float32's range (``mdn.data.check_scaled``).
    """
    x_scaling = fit_scaling(model.scaler_x, X, "scaler_x")
    y_scaling = fit_scaling(model.scaler_y, y, "scaler_y")
    if model.scaler_y == "standard" or isinstance(model.scaler_y, StandardScaler):
        warn_if_outliers_dominate(y, "scaler_y")
    model.x_shift_, model.x_scale_ = x_scaling.shift, x_scaling.scale
    model.y_shift_, model.y_scale_ = y_scaling.shift, y_scaling.scale
    x_scaled, y_scaled = x_scaling.transform(X), y_scaling.transform(y)
    check_scaled(x_scaled, "X")
    check_scaled(np.nan_to_num(y_scaled, nan=0.0), "y")  # NaN: a missing target
    return (torch.as_tensor(x_scaled, dtype=torch.float32),
            torch.as_tensor(y_scaled, dtype=torch.float32))  # fmt: skip
