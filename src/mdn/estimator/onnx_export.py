"""ONNX export of a fitted ``MDN``: a graph from raw features to the mixture's parameters in
the user's units, built with torch's own exporter (``torch.onnx.export``, dynamo).

ONNX has no Cholesky factorisation or triangular solve and ``torch.distributions`` does not
export, so the graph stops at the mixture's parameters and ``mdn.onnx.OnnxPredictor`` (NumPy
and onnxruntime only) does the mixture maths, with the same ``GaussianMixture`` code on NumPy
arrays. The graph is ``MDN``'s own prediction path traced (the input scaling, the network,
the target scaling folded into the components, the recalibration and the pooling of
ensemble members: ``mdn.estimator.prediction.predictive``), so that nothing of the maths is
written twice; ``mdn.onnx.graph`` describes its outputs.
"""

from __future__ import annotations

import copy
import json
import logging
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

from mdn.distributions.mixture import GaussianMixture
from mdn.distributions.transforms import AffineTransform
from mdn.estimator.fitted import FITTED, NO_RECALIBRATION, SCALINGS
from mdn.estimator.model_file import check_fitted
from mdn.estimator.prediction import input_features, predictive, resolved_point
from mdn.onnx.graph import FORMAT_VERSION, INPUT, MEMBER_OUTPUTS, NOVELTY, OUTPUTS

if TYPE_CHECKING:
    from mdn.estimator.fitted import FittedModel

__all__ = ["ExportGraph", "export_onnx", "metadata", "output_names"]

#: A batch size for tracing that is neither 0 nor 1, which torch.export would specialise.
_EXAMPLE_ROWS = 3


class ExportGraph(nn.Module):
    """Raw features (N, p) to the mixture parameters that ``mdn.onnx.graph`` lists.

    ``forward`` is ``MDN``'s prediction of one chunk (``mdn.estimator.prediction``), with the
    fitted values as constants; the network runs in float32 as it does in ``MDN``.

    Parameters
    ----------
    model : FittedModel
        Fitted; its network is copied to the CPU.
    """

    def __init__(self, model: FittedModel) -> None:
        super().__init__()
        network = model.network_
        if next(network.parameters()).device.type != "cpu":
            network = copy.deepcopy(network).cpu()
        self.network = network.eval()
        self.model = model
        self.ensemble = (network.n_models or 1) > 1
        for name in ("x_shift_", "x_scale_"):
            value = torch.as_tensor(np.asarray(getattr(model, name), dtype=np.float64))
            self.register_buffer(name.rstrip("_"), value, persistent=False)
        self.features = input_features(model)
        self.unscale = AffineTransform(
            torch.as_tensor(model.y_shift_, dtype=torch.float64),
            torch.as_tensor(model.y_scale_, dtype=torch.float64),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        scaled = (self.features(x) - self.x_shift) / self.x_scale  # float64
        members = self.unscale(self.network(scaled.to(torch.float32)).to(torch.float64))
        pooled = predictive(self.model, members)[1]  # [N]
        if not self.ensemble:  # a member axis of one, so that every model has the same outputs
            members = _with_member_axis(members)
        density = getattr(self.model, "input_density_", None)
        novelty = () if density is None else (density.score(scaled),)
        return (*_parameters(pooled), *_parameters(members), *novelty)


def output_names(model: FittedModel) -> list[str]:
    """The graph's outputs for ``model``: the novelty score where it has an input density.

    Parameters
    ----------
    model : FittedModel

    Returns
    -------
    list of str
    """
    novelty = [NOVELTY] if getattr(model, "input_density_", None) is not None else []
    return [*OUTPUTS, *MEMBER_OUTPUTS, *novelty]


def _parameters(mixture: GaussianMixture) -> tuple[Tensor, Tensor, Tensor]:
    return mixture.log_weights, mixture.means, mixture.precision_cholesky


def _with_member_axis(mixture: GaussianMixture) -> GaussianMixture:
    """``mixture`` with a leading batch axis of one."""
    return mixture.replace(
        log_weights=mixture.log_weights[None],
        means=mixture.means[None],
        precision_cholesky=mixture.precision_cholesky[None],
    )


def metadata(model: FittedModel) -> dict[str, str]:
    """What the ONNX file says about the model besides its graph (JSON values as strings).

    Parameters
    ----------
    model : FittedModel
        Fitted.

    Returns
    -------
    dict of str to str
        Feature and target names, sizes, the model's covariance type and that of the graph's
        mixtures (a spherical model under an anisotropic target scaling predicts diagonal
        components), the target transform, ``combine``, the default point estimate, the
        recalibration values, the mdn version and the format version of the file.
    """
    names = getattr(model, "feature_names_in_", None)
    unscale = AffineTransform(np.asarray(model.y_shift_), np.asarray(model.y_scale_))
    values = {
        "mdn_onnx_format": FORMAT_VERSION,
        "mdn_version": package_version("mdn"),
        "feature_names": None if names is None else [str(n) for n in names],
        "target_names": model.target_names_,
        "n_features": int(model.n_features_in_),
        "n_targets": int(model.n_outputs_),
        "output_1d": bool(model.output_1d_),
        "covariance": model.covariance,
        "mixture_covariance": unscale.covariance_after(model.covariance),
        "spectral_features": getattr(model, "spectral_features", None),
        "input_medians": _as_list(getattr(model, "input_medians_", None)),
        "novelty_threshold": getattr(getattr(model, "input_density_", None), "threshold", None),
        "target_transform": model.target_transform,
        "n_models": int(model.network_.n_models or 1),
        "n_mix": int(model.n_mix),
        "combine": model.combine,
        "point": resolved_point(model, None),  # predict's default, "auto" resolved
        **{name.rstrip("_"): float(getattr(model, name)) for name in NO_RECALIBRATION},
    }
    return {key: json.dumps(value) for key, value in values.items()}


def _as_list(values: np.ndarray | None) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def export_onnx(model: FittedModel, path: str | os.PathLike) -> None:
    """Write ``model`` as an ONNX graph from raw features to its mixture's parameters.

    The fitted state is checked as ``mdn.load`` checks a model file's first (a model that
    would not load is not exported); the file is written atomically. Needs the extra
    ``mdn[onnx]`` (onnx, onnxscript); ``mdn.onnx.OnnxPredictor`` reads the file.

    Parameters
    ----------
    model : FittedModel
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
            output_names=output_names(model),
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


def _check_state(model: FittedModel) -> None:
    """The checks that ``mdn.load`` applies to a file's fitted values and tensors."""
    fitted = {name: getattr(model, name) for name in FITTED}
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(n) for n in model.feature_names_in_]
    try:
        check_fitted(fitted)
        for name in SCALINGS:
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
