"""The mapping between a fitted ``MDN`` and its model file: parameters and fitted state to
JSON documents and tensors (``mdn.tensor_files`` writes and reads them), and back, every part
of a file checked before anything is built from it."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Collection
from dataclasses import dataclass, fields
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING

import numpy as np
import sklearn
import torch

from mdn.distributions.calibration import SCALE_BOUNDS, SPREAD_BOUNDS, TAIL_BOUNDS
from mdn.estimator.fitted import FITTED, SCALINGS
from mdn.estimator.fitting import network_config
from mdn.estimator.novelty import InputDensity
from mdn.estimator.scaling import SCALERS
from mdn.nn.network import MixtureDensityNetwork
from mdn.params import Integer, validate_all
from mdn.runtime import device_available, resolve_device
from mdn.tensor_files import ModelFileError, read_model_file, write_model_file
from mdn.training import History

if TYPE_CHECKING:
    from mdn.estimator.fitted import FittedModel

__all__ = ["DENSITY_TENSORS", "StoredModel", "check_fitted", "read_model", "write_model"]

#: The input density's arrays, stored as tensors ``novelty.<name>``.
DENSITY_TENSORS = ("log_weights", "means", "precision_cholesky")
#: Fitted values a model file may hold (files from earlier versions lack them).
OPTIONAL_FITTED = ("feature_names_in_", "novelty_threshold_", "input_medians_")

#: The range each stored recalibration value must lie in (those that fitting allows).
RECALIBRATION_BOUNDS = {
    "member_spread_": SPREAD_BOUNDS,
    "component_scale_": SCALE_BOUNDS,
    "tail_weight_": TAIL_BOUNDS,
}
# Scikit-learn scalers a model file may name and rebuild; other transformer objects are
# stored as a description only (their fitted scaling is always stored exactly).
_RESTORABLE_SCALERS = {cls.__name__: cls for cls in SCALERS.values()}


@dataclass(frozen=True)
class StoredModel:
    """What a model file holds, checked: enough to rebuild the fitted estimator.

    Attributes
    ----------
    params : dict
        The estimator's parameters.
    fitted : dict
        Its fitted values by attribute name (``FITTED``, ``SCALINGS`` and, for named
        columns, ``feature_names_in_``).
    network : MixtureDensityNetwork
        The fitted network, on the device asked for, in evaluation mode.
    """

    params: dict[str, object]
    fitted: dict[str, object]
    network: MixtureDensityNetwork


def write_model(model: FittedModel, path: str | os.PathLike) -> None:
    """Write the fitted ``model`` to ``path`` (see ``MDN.save``).

    Parameters
    ----------
    model : FittedModel
    path : str or path-like
    """
    tensors = {f"network.{k}": v for k, v in model.network_.state_dict().items()}
    for name in SCALINGS:
        tensors[name] = torch.as_tensor(getattr(model, name))
    fitted = {name: getattr(model, name) for name in FITTED}
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(n) for n in model.feature_names_in_]
    medians = getattr(model, "input_medians_", None)
    if medians is not None:
        fitted["input_medians_"] = [float(v) for v in medians]
    density = getattr(model, "input_density_", None)
    if density is not None:
        for name in DENSITY_TENSORS:
            tensors[f"novelty.{name}"] = torch.as_tensor(getattr(density, name))
        fitted["novelty_threshold_"] = density.threshold
    versions = {
        "mdn": package_version("mdn"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }
    params = _params_to_json(model.get_params(deep=False))
    write_model_file(path, tensors, {"params": params, "fitted": fitted, "versions": versions})


def read_model(
    path: str | os.PathLike, param_names: Collection[str], device: str | None = None
) -> StoredModel:
    """Read a model written by ``write_model`` (see ``MDN.load``).

    Parameters
    ----------
    path : str or path-like
    param_names : collection of str
        The estimator's parameter names: a file naming any other is refused.
    device : str, optional
        Where to put the network (default: the model's ``device``); the CPU where this
        machine lacks it.

    Returns
    -------
    StoredModel

    Raises
    ------
    ModelFileError
        If the file is not an mdn model file or its parts do not fit together.
    """
    if device is not None:
        resolve_device(device)  # a wrong name fails before the file is read
    tensors, documents = read_model_file(path)
    try:
        stored = _restore(tensors, documents, param_names)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise ModelFileError(
            f"{path} is an mdn file whose contents do not fit together "
            f"({type(error).__name__}: {error})"
        ) from None
    saved_device = stored.params.get("device", "cpu")
    stored.network.to(_load_device(device, saved_device)).eval()
    return stored


def _restore(
    tensors: dict[str, torch.Tensor], documents: dict, param_names: Collection[str]
) -> StoredModel:
    """What ``documents`` and ``tensors`` describe, every part checked first."""
    params, fitted = documents["params"], documents["fitted"]
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise TypeError("params and fitted must be JSON objects")
    unknown = set(params) - set(param_names)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}")
    params = _params_from_json(params)
    validate_all({k: v for k, v in params.items() if k not in ("scaler_x", "scaler_y")})
    check_fitted(fitted)
    values = {name: fitted[name] for name in FITTED}
    if "feature_names_in_" in fitted:
        values["feature_names_in_"] = np.asarray(fitted["feature_names_in_"], dtype=object)
    if "input_medians_" in fitted:
        values["input_medians_"] = np.asarray(fitted["input_medians_"], dtype=np.float64)
    config = network_config(params, values["n_features_in_"], values["n_outputs_"])
    sizes = {"x": config["in_features"], "y": values["n_outputs_"]}
    values["input_density_"] = _input_density(tensors, fitted, sizes["x"])
    for name in SCALINGS:
        scaling = tensors[name]
        if scaling.dtype != torch.float64 or tuple(scaling.shape) != (sizes[name[0]],):
            raise ValueError(f"{name} must hold {sizes[name[0]]} float64 values")
        if not bool(torch.isfinite(scaling).all()) or (
            name.endswith("scale_") and bool((scaling == 0).any())
        ):
            raise ValueError(f"{name} holds values that are not finite or a zero scale")
        values[name] = scaling.numpy()
    return StoredModel(params, values, _network(config, tensors))


def _input_density(
    tensors: dict[str, torch.Tensor], fitted: dict, n_features: int
) -> InputDensity | None:
    """The density of the training inputs, checked; None for files from before it."""
    if "novelty_threshold_" not in fitted:
        return None
    parts = {name: tensors[f"novelty.{name}"] for name in DENSITY_TENSORS}
    k = parts["log_weights"].shape[0] if parts["log_weights"].ndim == 1 else -1
    shapes = {"log_weights": (k,), "means": (k, n_features),
              "precision_cholesky": (k, n_features, n_features)}  # fmt: skip
    for name, values in parts.items():
        if values.dtype != torch.float64 or tuple(values.shape) != shapes[name] or k < 1:
            raise ValueError(f"novelty.{name} must hold float64 values of shape {shapes[name]}")
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"novelty.{name} holds values that are not finite")
    return InputDensity(*(parts[name].numpy() for name in DENSITY_TENSORS),
                        float(fitted["novelty_threshold_"]))  # fmt: skip


def _network(config: dict[str, object], tensors: dict[str, torch.Tensor]) -> MixtureDensityNetwork:
    """The fitted network, its shapes checked against the parameters before it is built."""
    with torch.device("meta"):  # shapes only: a file cannot make load allocate a network
        expected = {
            k: tuple(v.shape) for k, v in MixtureDensityNetwork(**config).state_dict().items()
        }
    state = {k.removeprefix("network."): v for k, v in tensors.items() if k.startswith("network.")}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        raise ValueError("the network's tensors do not have the shapes its parameters give")
    if any(not v.is_floating_point() or not bool(torch.isfinite(v).all()) for v in state.values()):
        raise ValueError("the network's weights must be finite floating-point numbers")
    network = MixtureDensityNetwork.empty(**config)
    network.load_state_dict(state, strict=True)
    return network


def check_fitted(fitted: dict[str, object]) -> None:
    """Check the stored fitted values: known names, types, sizes and ranges.

    Parameters
    ----------
    fitted : dict
        The "fitted" document of a model file.

    Raises
    ------
    ValueError or TypeError
        Naming the value that is wrong.
    """
    unknown = set(fitted) - {*FITTED, *OPTIONAL_FITTED}
    missing = set(FITTED) - set(fitted)
    if unknown or missing:
        raise ValueError(f"fitted values unknown: {sorted(unknown)}, missing: {sorted(missing)}")
    threshold = fitted.get("novelty_threshold_", 0.0)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"novelty_threshold_ must be a number, got {threshold!r}")
    medians = fitted.get("input_medians_", [0.0] * fitted["n_features_in_"])
    if (
        not isinstance(medians, list)
        or len(medians) != fitted["n_features_in_"]
        or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in medians)
    ):
        raise ValueError("input_medians_ must be a finite number for each feature")
    for name in ("n_features_in_", "n_outputs_"):
        Integer().check(name, fitted[name])
    if not isinstance(fitted["output_1d_"], bool) or (
        fitted["output_1d_"] and fitted["n_outputs_"] != 1
    ):
        raise ValueError("output_1d_ must be a bool, True only for one target")
    _check_names("target_names_", fitted["target_names_"], fitted["n_outputs_"], optional=True)
    if "feature_names_in_" in fitted:
        _check_names("feature_names_in_", fitted["feature_names_in_"], fitted["n_features_in_"])
    n_iter = fitted["n_iter_"]
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter_ must be a count, got {n_iter!r}")
    for name, bounds in RECALIBRATION_BOUNDS.items():
        value = fitted[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (bounds[0] <= value <= bounds[1])
        ):
            raise ValueError(f"{name} must be a number in {bounds}, got {value!r}")
    history = fitted["history_"]
    if not isinstance(history, dict) or not set(history) <= {f.name for f in fields(History)}:
        raise ValueError("history_ must be a training record")


def _check_names(name: str, names: object, size: int, optional: bool = False) -> None:
    if names is None and optional:
        return
    if (
        not isinstance(names, list)
        or len(names) != size
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(f"{name} must be a list of {size} strings")


def _load_device(asked: str | None, saved: str) -> torch.device:
    """The device asked for (which must name one), else the saved one where this machine has
    it, else the CPU."""
    if asked is not None:
        return resolve_device(asked)
    try:
        target = resolve_device(saved)
    except ValueError:
        return torch.device("cpu")
    return target if device_available(target) else torch.device("cpu")


def _params_to_json(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, np.random.RandomState):
            warnings.warn(
                f"{key} is a RandomState, which a model file cannot hold: it is saved as "
                f"None, so refitting the loaded model draws a fresh seed; pass an integer "
                f"{key} to make refits repeatable",
                UserWarning,
                stacklevel=4,
            )
            value = None
        elif type(value).__name__ in _RESTORABLE_SCALERS:
            value = {
                "scaler": type(value).__name__,
                "params": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in value.get_params().items()
                },
            }
        elif not (value is None or isinstance(value, (str, bool, int, float))):
            value = {"description": repr(value)}
        out[key] = value
    return out


def _params_from_json(params: dict) -> dict:
    out = dict(params)
    out["hidden"] = tuple(out["hidden"])
    for key in ("scaler_x", "scaler_y"):
        value = out.get(key)
        if isinstance(value, dict) and value.get("scaler") in _RESTORABLE_SCALERS:
            kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in value["params"].items()}
            out[key] = _RESTORABLE_SCALERS[value["scaler"]](**kwargs)
        elif isinstance(value, dict):
            warnings.warn(
                f"{key} was the object {value.get('description')}, which a model file cannot "
                "rebuild; its fitted scaling is restored exactly, but set "
                f"{key} again before refitting",
                UserWarning,
                stacklevel=5,  # the caller of MDN.load
            )
            out[key] = value.get("description")
    return out
