"""The mapping between a fitted ``MDN`` and its model file: parameters and fitted state to
JSON documents and tensors (``mdn.io`` writes and reads them), and back."""

from __future__ import annotations

import os
import warnings
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING

import numpy as np
import sklearn
import torch

from mdn.fitting import NO_RECALIBRATION
from mdn.io import ModelFileError, read_model_file, write_model_file
from mdn.preprocessing import SCALERS
from mdn.runtime import device_available, resolve_device

if TYPE_CHECKING:
    from mdn.estimator import MDN

__all__ = ["read_model", "write_model"]

#: Fitted arrays stored as tensors.
SCALINGS = ("x_shift_", "x_scale_", "y_shift_", "y_scale_")
#: Fitted values stored in the "fitted" JSON document (besides ``feature_names_in_``).
FITTED = ("n_features_in_", "n_outputs_", "output_1d_", "target_names_", "history_", "n_iter_",
          *NO_RECALIBRATION)  # fmt: skip
# Scikit-learn scalers a model file may name and rebuild; other transformer objects are
# stored as a description only (their fitted scaling is always stored exactly).
_RESTORABLE_SCALERS = {cls.__name__: cls for cls in SCALERS.values()}


def write_model(model: MDN, path: str | os.PathLike) -> None:
    """Write the fitted ``model`` to ``path`` (see ``MDN.save``).

    Parameters
    ----------
    model : MDN
        Fitted.
    path : str or path-like
    """
    tensors = {f"network.{k}": v for k, v in model.network_.state_dict().items()}
    for name in SCALINGS:
        tensors[name] = torch.as_tensor(getattr(model, name))
    fitted = {name: getattr(model, name) for name in FITTED}
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(n) for n in model.feature_names_in_]
    versions = {
        "mdn": package_version("mdn"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }
    params = _params_to_json(model.get_params(deep=False))
    write_model_file(path, tensors, {"params": params, "fitted": fitted, "versions": versions})


def read_model(cls: type[MDN], path: str | os.PathLike, device: str | None = None) -> MDN:
    """Read a model written by ``write_model`` (see ``MDN.load``).

    Parameters
    ----------
    cls : type
        ``MDN`` or a subclass.
    path : str or path-like
    device : str, optional
        Where to put the network (default: the model's ``device``); the CPU where this
        machine lacks it.

    Returns
    -------
    MDN
        An instance of ``cls``, fitted.

    Raises
    ------
    ModelFileError
        If the file is not an mdn model file or its parts do not fit together.
    """
    tensors, documents = read_model_file(path)
    try:
        model = cls(**_params_from_json(documents["params"]))
        fitted = documents["fitted"]
        for name, value in fitted.items():
            setattr(model, name, value)
        if "feature_names_in_" in fitted:
            model.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        for name in SCALINGS:
            setattr(model, name, tensors[name].numpy())
        network = model._build_network(torch.Generator())  # its weights are loaded next
        state = {
            k.removeprefix("network."): v for k, v in tensors.items() if k.startswith("network.")
        }
        network.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelFileError(
            f"{path} is an mdn file whose contents do not fit together "
            f"({type(error).__name__}: {error})"
        ) from None
    model.network_ = network.to(_load_device(device or model.device)).eval()
    return model


def _load_device(spec: str) -> torch.device:
    """``spec``'s device where this machine has it, else the CPU."""
    try:
        target = resolve_device(spec)
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
                stacklevel=4,
            )
            out[key] = value.get("description")
    return out
