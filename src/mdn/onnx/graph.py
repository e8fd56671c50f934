"""What an exported graph holds: its input and outputs, its metadata, and the mixtures its
outputs stand for.

``MDN.export_onnx`` (``mdn.estimator.onnx_export``) writes graphs of format 2: from the raw
features ``X`` (float64, (N, n_features), dynamic N) to the predictive mixture's parameters
in the user's units (recalibrated, members pooled; over ``log(y)`` for a log target) and
each member's mixture without recalibration, all as ``GaussianMixture`` holds them
(normalised log-weights, means, precision Cholesky factors). Graphs of format 1 emitted
covariance factors (``scale``) instead; they are still read, the factors turned into
precision factors here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.numpy_kernels import NUMPY_KERNELS

__all__ = [
    "FORMAT_VERSION",
    "INPUT",
    "MEMBER_OUTPUTS",
    "NOVELTY",
    "OUTPUTS",
    "member_mixture",
    "predictive_mixture",
    "read_metadata",
]

#: Version of the graph's inputs, outputs and metadata.
FORMAT_VERSION = 2
#: The graph's input: raw features, float64 (N, n_features).
INPUT = "X"
#: The predictive mixture, batch (N,): log-weights (N, M), means (N, M, D) and precision
#: Cholesky factors in the layout of the metadata's ``mixture_covariance``.
OUTPUTS = ("log_weights", "means", "precision_cholesky")
#: Each member's mixture without recalibration, a leading member axis (E = 1 for one network).
MEMBER_OUTPUTS = tuple(f"member_{name}" for name in OUTPUTS)
#: How far each row lies from the training inputs (N,): ``MDN.novelty``, in graphs of models
#: with an input density (their metadata's ``novelty_threshold`` is not null).
NOVELTY = "novelty"
#: Format 1's outputs, with covariance factors: lower Cholesky factors ("scale_tril") or
#: standard deviations ("std"), as its metadata's ``scale_layout`` says.
_FORMAT_1_OUTPUTS = ("log_weights", "means", "scale")


def read_metadata(path: str | os.PathLike, raw: Mapping[str, str]) -> dict[str, object]:
    """The metadata of an mdn graph, decoded from its JSON strings.

    Parameters
    ----------
    path : str or path-like
        The file, for the messages.
    raw : mapping of str to str
        The model's custom metadata, as onnxruntime reads it.

    Returns
    -------
    dict
        Names, sizes, covariance types, target transform, recalibration, the mdn version
        that wrote it and the format; ``mixture_covariance`` is filled in for format 1.

    Raises
    ------
    ValueError
        If the file was not written by mdn, or by a newer one.
    """
    if "mdn_onnx_format" not in raw:
        raise ValueError(f"{path} is not an ONNX file written by mdn (MDN.export_onnx)")
    try:
        meta = {key: json.loads(value) for key, value in raw.items()}
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} holds metadata that is not mdn's: {error}") from None
    if meta["mdn_onnx_format"] > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer mdn (format {meta['mdn_onnx_format']}, this one "
            f"reads {FORMAT_VERSION}): upgrade mdn"
        )
    if meta["mdn_onnx_format"] == 1:
        meta["mixture_covariance"] = "full" if meta["scale_layout"] == "scale_tril" else "diag"
    return meta


def predictive_mixture(outputs: Mapping[str, np.ndarray], meta: Mapping) -> GaussianMixture:
    """The predictive mixture that a run of the graph emitted.

    Parameters
    ----------
    outputs : mapping of str to ndarray
        The graph's outputs by name.
    meta : mapping
        The graph's metadata (``read_metadata``).

    Returns
    -------
    GaussianMixture
        Of NumPy arrays, batch shape (N,).
    """
    return _mixture(outputs, meta, "")


def member_mixture(outputs: Mapping[str, np.ndarray], meta: Mapping) -> GaussianMixture:
    """Each member's mixture that a run of the graph emitted, without recalibration.

    Parameters
    ----------
    outputs : mapping of str to ndarray
    meta : mapping

    Returns
    -------
    GaussianMixture
        Of NumPy arrays, batch shape (E, N).
    """
    return _mixture(outputs, meta, "member_")


def _mixture(outputs: Mapping[str, np.ndarray], meta: Mapping, prefix: str) -> GaussianMixture:
    covariance = meta["mixture_covariance"]
    if meta["mdn_onnx_format"] == 1:
        log_weights, means, scale = (outputs[prefix + name] for name in _FORMAT_1_OUTPUTS)
        factor = _precision_from_scale(scale, covariance)
    else:
        log_weights, means, factor = (outputs[prefix + name] for name in OUTPUTS)
    return GaussianMixture(log_weights, means, factor, covariance, validate=False, normalized=True)


def _precision_from_scale(scale: np.ndarray, covariance: str) -> np.ndarray:
    """Format 1's covariance factors as precision Cholesky factors: ``inverse(L).T`` of each
    lower Cholesky factor ``L``, or the reciprocals of the standard deviations."""
    if covariance == "diag":
        return 1.0 / scale
    eye = np.broadcast_to(np.eye(scale.shape[-1]), scale.shape)
    return np.swapaxes(NUMPY_KERNELS.solve_triangular(scale, eye, upper=False), -1, -2)
