"""ONNX export of a fitted ``MDN``: a graph from raw features to the mixture's parameters in
the user's units, built with torch's own exporter (``torch.onnx.export``, dynamo).

ONNX has no Cholesky factorisation or triangular solve and ``torch.distributions`` does not
export, so the graph stops at the mixture's parameters and ``mdn.onnx.OnnxPredictor`` (NumPy
and onnxruntime only) does the mixture maths. The graph holds the input scaling, the
network, the target scaling folded into the components, the recalibration and the pooling
of ensemble members; its outputs (float64, one row per input row):

- ``log_weights`` (N, M), ``means`` (N, M, D) and ``scale``: the predictive mixture, as
  ``MDN.predict_dist`` gives it (recalibrated, members pooled; over ``log(y)`` for a log
  target). ``scale`` is (N, M, D, D), the lower Cholesky factors of the covariances, for
  ``covariance="full"``, else (N, M, D), the standard deviations.
- ``member_log_weights`` (E, N, K), ``member_means`` (E, N, K, D), ``member_scale``: each
  member's own mixture without recalibration (E = 1 for one network), for the members'
  point estimates (``combine="median"``, ``predict_members``).

The input ``X`` is float64 (N, n_features) with a dynamic N.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from mdn.distributions.calibration import TAIL_SCALE
from mdn.estimator.fitting import NO_RECALIBRATION
from mdn.estimator.model_file import FITTED, check_fitted
from mdn.estimator.prediction import resolved_point
from mdn.onnx.predictor import FORMAT_VERSION, INPUT, MEMBER_OUTPUTS, OUTPUTS

if TYPE_CHECKING:
    from mdn.estimator.model import MDN

__all__ = ["ExportGraph", "export_onnx", "metadata"]

#: A batch size for tracing that is neither 0 nor 1, which torch.export would specialise.
_EXAMPLE_ROWS = 3


class ExportGraph(nn.Module):
    """Raw features (N, p) to the mixture parameters listed in the module's docstring.

    Each step repeats in float64 what ``mdn.prediction`` does (``AffineTransform``,
    ``calibration.recalibrate``, ``GaussianMixture.pool``), with the fitted values as
    constants; the network runs in float32 as it does in ``MDN``.

    Parameters
    ----------
    model : MDN
        Fitted; its network is copied to the CPU.
    """

    def __init__(self, model: MDN) -> None:
        super().__init__()
        network = model.network_
        if next(network.parameters()).device.type != "cpu":
            network = copy.deepcopy(network).cpu()
        self.network = network.eval()
        self.ensemble = (network.n_models or 1) > 1
        self.full, self.spherical = model.covariance == "full", model.covariance == "spherical"
        self.recalibration = tuple(float(getattr(model, k)) for k in NO_RECALIBRATION)
        self.recalibrated = self.recalibration != tuple(NO_RECALIBRATION.values())
        for name in ("x_shift_", "x_scale_", "y_shift_", "y_scale_"):
            value = torch.as_tensor(np.asarray(getattr(model, name), dtype=np.float64))
            self.register_buffer(name.rstrip("_"), value, persistent=False)
        # AffineTransform's decisions, taken once: they depend on fitted constants only.
        scale = self.y_scale
        self.isotropic = bool((scale.abs() == scale.abs()[0]).all())
        self.register_buffer("y_sign", scale.sign(), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        scaled = ((x - self.x_shift) / self.x_scale).to(torch.float32)
        mixture = self.network(scaled)
        log_weights = mixture.log_weights.to(torch.float64)  # [E?, N, K]
        means = mixture.means.to(torch.float64)
        factor = self._covariance_factor(mixture.precision_cholesky.to(torch.float64))
        if not self.ensemble:  # a member axis of one, so that every model has the same outputs
            log_weights, means, factor = log_weights[None], means[None], factor[None]
        means = self.y_shift + self.y_scale * means  # [E, N, K, D]
        members = (log_weights, means, factor)
        if self.recalibrated:
            log_weights, means, factor = self._recalibrate(log_weights, means, factor)
        n_members = log_weights.shape[0]
        pooled = (
            _merge_members(log_weights) - math.log(n_members),
            _merge_members(means),
            _merge_members(factor),
        )
        return (*pooled, *members)

    def _covariance_factor(self, precision_cholesky: Tensor) -> Tensor:
        """The covariance factor in the user's units from the scaled precision factor: the
        lower Cholesky factor of each covariance (full), else standard deviations (*, D)."""
        if self.full:
            # AffineTransform: rows over the scale, columns times its sign.
            u = precision_cholesky / self.y_scale.unsqueeze(-1) * self.y_sign
            return _inverse_upper(u).transpose(-1, -2)
        if self.spherical:
            if self.isotropic:
                std = 1.0 / (precision_cholesky / self.y_scale.abs()[0])  # [*, K]
                return std.unsqueeze(-1).expand(*std.shape, self.y_scale.shape[0])
            precision_cholesky = precision_cholesky.unsqueeze(-1)
        return 1.0 / (precision_cholesky / self.y_scale.abs())

    def _recalibrate(
        self, log_weights: Tensor, means: Tensor, factor: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``calibration.recalibrate`` on members (E, N, K, ...), with its factor widened
        instead of its precision narrowed."""
        spread, component_scale, tail_weight = self.recalibration
        if self.ensemble:
            member_means = (log_weights.exp().unsqueeze(-1) * means).sum(-2)  # [E, N, D]
            offset = member_means - member_means.mean(0, keepdim=True)
            means = means + ((spread - 1.0) * offset).unsqueeze(-2)
        factor = factor * component_scale
        if tail_weight > 0:
            log_weights = torch.cat(
                [log_weights + math.log1p(-tail_weight), log_weights + math.log(tail_weight)], 2
            )
            means = torch.cat([means, means], 2)
            factor = torch.cat([factor, factor * TAIL_SCALE], 2)
        return log_weights, means, factor


def _merge_members(values: Tensor) -> Tensor:
    """(E, N, K, *event) -> (N, E * K, *event), member-major as ``GaussianMixture.pool``."""
    return values.movedim(0, 1).flatten(1, 2)


def _inverse_upper(u: Tensor) -> Tensor:
    """The inverse of upper-triangular matrices (..., D, D) by back substitution, unrolled
    over D: ONNX has no triangular solve, and D is small and fixed."""
    d = u.shape[-1]
    eye = torch.eye(d, dtype=u.dtype)
    rows: list[Tensor] = [eye[0]] * d
    for i in reversed(range(d)):
        row = eye[i].expand(*u.shape[:-2], d)
        for j in range(i + 1, d):
            row = row - u[..., i, j : j + 1] * rows[j]
        rows[i] = row / u[..., i, i : i + 1]
    return torch.stack(rows, dim=-2)


def metadata(model: MDN) -> dict[str, str]:
    """What the ONNX file says about the model besides its graph (JSON values as strings).

    Parameters
    ----------
    model : MDN
        Fitted.

    Returns
    -------
    dict of str to str
        Feature and target names, sizes, covariance type and the layout of ``scale``, the
        target transform, ``combine``, the recalibration values, the mdn version and the
        format version of the file.
    """
    names = getattr(model, "feature_names_in_", None)
    values = {
        "mdn_onnx_format": FORMAT_VERSION,
        "mdn_version": package_version("mdn"),
        "feature_names": None if names is None else [str(n) for n in names],
        "target_names": model.target_names_,
        "n_features": int(model.n_features_in_),
        "n_targets": int(model.n_outputs_),
        "output_1d": bool(model.output_1d_),
        "covariance": model.covariance,
        "scale_layout": "scale_tril" if model.covariance == "full" else "std",
        "target_transform": model.target_transform,
        "n_models": int(model.network_.n_models or 1),
        "n_mix": int(model.n_mix),
        "combine": model.combine,
        "point": resolved_point(model, None),  # predict's default, "auto" resolved
        **{name.rstrip("_"): float(getattr(model, name)) for name in NO_RECALIBRATION},
    }
    return {key: json.dumps(value) for key, value in values.items()}


def export_onnx(model: MDN, path: str | os.PathLike) -> None:
    """Write ``model`` as an ONNX graph from raw features to its mixture's parameters.

    The fitted state is checked as ``mdn.load`` checks a model file's first (a model that
    would not load is not exported); the file is written atomically. Needs the extra
    ``mdn[onnx]`` (onnx, onnxscript); ``mdn.onnx.OnnxPredictor`` reads the file.

    Parameters
    ----------
    model : MDN
        Fitted.
    path : str or path-like
        The ``.onnx`` file to write.

    Raises
    ------
    ImportError
        Without the ``onnx`` extra.
    ValueError
        If the fitted state fails the checks of ``mdn.load``.
    """
    onnx = _require_onnx()
    check_is_fitted(model, "network_")
    _check_state(model)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as model.onnx")
    graph = ExportGraph(model).eval()
    example = torch.zeros(_EXAMPLE_ROWS, model.n_features_in_, dtype=torch.float64)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=[INPUT],
            output_names=[*OUTPUTS, *MEMBER_OUTPUTS],
            dynamic_shapes={"x": {0: torch.export.Dim("rows")}},
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    proto.doc_string = __doc__
    onnx.helper.set_model_props(proto, metadata(model))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        onnx.save_model(proto, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _check_state(model: MDN) -> None:
    """The checks that ``mdn.load`` applies to a file's fitted values and tensors."""
    fitted = {name: getattr(model, name) for name in FITTED}
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(n) for n in model.feature_names_in_]
    try:
        check_fitted(fitted)
        for name in ("x_shift_", "x_scale_", "y_shift_", "y_scale_"):
            values = np.asarray(getattr(model, name), dtype=np.float64)
            if not np.isfinite(values).all() or (name.endswith("scale_") and (values == 0).any()):
                raise ValueError(f"{name} holds values that are not finite or a zero scale")
        if any(not bool(torch.isfinite(p).all()) for p in model.network_.parameters()):
            raise ValueError("the network's weights must be finite")
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"cannot export this model: its fitted state fails the checks of mdn.load ({error})"
        ) from None


def _require_onnx():
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs the onnx extra ({error.name} is missing): pip install 'mdn[onnx]'"
        ) from None
    return onnx


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the exporter's progress lines and notes on optional packages (torchvision)
    out of the user's log: the export either works or raises."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
